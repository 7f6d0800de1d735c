"""image_updater configuration: every variable validated at start-up, errors naming the variable, entry and field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eksops import config
from eksops.errors import ConfigError
from eksops.images.config import (
    BLOCK_ON_SEVERITY,
    COMMIT_AUTHOR,
    COMMIT_MESSAGE_TEMPLATE,
    CONFIG_BRANCH,
    CONFIG_REPO_SECRET_ARN,
    CONFIG_REPO_URL,
    DEFAULT_MESSAGE_TEMPLATE,
    ENTRY_KEYS,
    IMAGE_MAP,
    PIPELINE_STAGES,
    ImageEntry,
    RepoKind,
    UpdaterConfig,
    normalise_image,
    parse_image_map,
)
from eksops.images.gate import Severity
from eksops.images.policy import Policy
from eksops.images.repo import Author

ALL = {
    CONFIG_REPO_URL,
    CONFIG_BRANCH,
    CONFIG_REPO_SECRET_ARN,
    IMAGE_MAP,
    BLOCK_ON_SEVERITY,
    PIPELINE_STAGES,
    COMMIT_AUTHOR,
    COMMIT_MESSAGE_TEMPLATE,
}
BASE = {CONFIG_REPO_URL: "codecommit://platform-config"}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:eksops/git-AbCdEf"
WEB = {"repository": "web", "image": "web", "files": ["apps/web/kustomization.yaml"], "policy": "semver"}


def env(**values: str) -> dict[str, str]:
    return {**BASE, **values}


def image_map(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries))


def test_defaults() -> None:
    cfg = UpdaterConfig.from_env(BASE)
    assert cfg.repo.kind is RepoKind.CODECOMMIT and cfg.repo.name == "platform-config"
    assert cfg.branch == "main" and cfg.secret_arn is None and cfg.images == ()
    assert cfg.block_on_severity is Severity.CRITICAL
    assert cfg.pipeline_stages == () and not cfg.stage_enabled("web", "Build")
    assert cfg.author == Author("eksops", "eksops@users.noreply.github.com")
    assert cfg.message_template == DEFAULT_MESSAGE_TEMPLATE


def test_every_variable_is_read_through_the_config_module() -> None:
    config.READ_VARIABLES.clear()
    UpdaterConfig.from_env(BASE)
    assert config.READ_VARIABLES >= ALL


def test_values_are_parsed() -> None:
    cfg = UpdaterConfig.from_env(
        {
            CONFIG_REPO_URL: "https://gitlab.example.com/platform/config.git",
            CONFIG_BRANCH: "release/2025-03",
            CONFIG_REPO_SECRET_ARN: SECRET_ARN,
            IMAGE_MAP: image_map(
                {**WEB, "constraint": ">=1.4,<2", "prerelease": True, "digest": True},
                {
                    "repository": "team/worker",
                    "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/worker",
                    "files": ["apps/worker/prod/kustomization.yaml", "apps/worker/staging/kustomization.yaml"],
                    "policy": "regex",
                    "tag_pattern": "^main-[0-9a-f]{7}$",
                    "digest": True,
                    "keep_tag": False,
                    "block_on_severity": "none",
                },
                {**WEB, "files": ["apps/web/dev/kustomization.yaml"], "policy": "latest"},
            ),
            BLOCK_ON_SEVERITY: "high",
            PIPELINE_STAGES: "web-pipeline/Build, */Deploy-*",
            COMMIT_AUTHOR: "Image Bot <image-bot@example.com>",
            COMMIT_MESSAGE_TEMPLATE: "chore($image): $old -> $new\\n\\nExecution $pipeline_execution",
        }
    )
    assert cfg.repo.kind is RepoKind.GIT and cfg.repo.name == "https://gitlab.example.com/platform/config.git"
    assert (cfg.branch, cfg.secret_arn, cfg.block_on_severity) == ("release/2025-03", SECRET_ARN, Severity.HIGH)
    web, worker, dev = cfg.images
    assert (web.policy, web.constraint, web.prerelease, web.digest, web.keep_tag) == (
        Policy.SEMVER,
        ">=1.4,<2",
        True,
        True,
        True,
    )
    assert web.writes_tag and web.writes_digest and web.block_on_severity is Severity.HIGH
    assert worker.pattern is not None and worker.pattern.fullmatch("main-5114f85")
    assert not worker.writes_tag and worker.writes_digest and worker.block_on_severity is None
    assert worker.files == ("apps/worker/prod/kustomization.yaml", "apps/worker/staging/kustomization.yaml")
    assert (dev.policy, dev.constraint, dev.index) == (Policy.LATEST, "*", 2)
    assert cfg.entries_for("web") == (web, dev) and cfg.entries_for("team/worker") == (worker,)
    assert cfg.stage_enabled("web-pipeline", "Build") and cfg.stage_enabled("api", "Deploy-prod")
    assert not cfg.stage_enabled("web-pipeline", "Test") and not cfg.stage_enabled("web-pipeline", "build")
    assert cfg.author == Author("Image Bot", "image-bot@example.com")
    message = cfg.commit_message({"image": "web", "old": "1.4.2", "new": "1.5.0", "pipeline_execution": "e-1"})
    assert message == "chore(web): 1.4.2 -> 1.5.0\n\nExecution e-1"


def test_pipeline_stages_as_a_json_list() -> None:
    cfg = UpdaterConfig.from_env(env(PIPELINE_STAGES='["web/Build", "api/Build", "web/Build"]'))
    assert cfg.pipeline_stages == ("web/Build", "api/Build")


def test_the_default_commit_message_leaves_unknown_values_empty() -> None:
    cfg = UpdaterConfig.from_env(BASE)
    message = cfg.commit_message(
        {"image": "web", "old": "1.4.2", "new": "1.5.0", "policy": "semver", "trigger": "push"}
    )
    assert message.splitlines()[0] == "web: 1.4.2 -> 1.5.0"
    assert "Policy semver, triggered by push." in message


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/config.git",
        "https://git.example.com:8443/acme/config",
        "http://127.0.0.1:9418/config.git",
        "http://localhost/config.git",
        "http://[::1]:8080/config.git",
        "codecommit://my_repo.name-1",
    ],
)
def test_accepted_repository_urls(url: str) -> None:
    assert UpdaterConfig.from_env({CONFIG_REPO_URL: url}).repo.url == url


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "must name the config repository"),
        ("http://git.example.com/config.git", "http:// only to loopback hosts"),
        ("http://127.0.0.2/config.git", "http:// only to loopback hosts"),
        ("http://localhost.example.com/config.git", "http:// only to loopback hosts"),
        ("https://x-token:glpat-s3cr3t@github.com/acme/config.git", "must not hold credentials"),
        ("https://deploy@github.com/acme/config.git", "must not hold credentials"),
        ("ssh://git@github.com/acme/config.git", "is not allowed"),
        ("git@github.com:acme/config.git", "is not allowed"),
        ("file:///srv/git/config.git", "is not allowed"),
        ("https:///config.git", "is not allowed"),
        ("https://github.com/acme/config.git?ref=x", "no query or fragment"),
        ("https://github.com/acme/config.git#main", "no query or fragment"),
        ("https://github.com:99999/acme/config.git", "not a valid URL"),
        ("https://github.com/acme/con fig.git", "spaces or control characters"),
        ("codecommit://", "is not a CodeCommit repository name"),
        ("codecommit://a/b", "is not a CodeCommit repository name"),
        ("codecommit://config.git", "is not a CodeCommit repository name"),
    ],
)
def test_refused_repository_urls(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        UpdaterConfig.from_env({CONFIG_REPO_URL: url})
    assert raised.value.variable == CONFIG_REPO_URL and fragment in raised.value.problem
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("variables", "variable", "fragment"),
    [
        ({CONFIG_BRANCH: "refs/heads/main"}, CONFIG_BRANCH, "not refs/heads/main"),
        ({CONFIG_BRANCH: "feature..x"}, CONFIG_BRANCH, "'..'"),
        ({CONFIG_BRANCH: "my branch"}, CONFIG_BRANCH, "spaces"),
        ({CONFIG_BRANCH: "main.lock"}, CONFIG_BRANCH, ".lock"),
        ({CONFIG_BRANCH: "release/"}, CONFIG_BRANCH, "end with '/'"),
        ({CONFIG_BRANCH: "-main"}, CONFIG_BRANCH, "start with '-'"),
        ({CONFIG_BRANCH: "a@{1}"}, CONFIG_BRANCH, "'@{'"),
        ({CONFIG_BRANCH: "topic/.hidden"}, CONFIG_BRANCH, "start with '.'"),
        ({CONFIG_REPO_SECRET_ARN: SECRET_ARN}, CONFIG_REPO_SECRET_ARN, "https remotes only"),
        (
            {CONFIG_REPO_URL: "https://github.com/a/b.git", CONFIG_REPO_SECRET_ARN: "eksops/git"},
            CONFIG_REPO_SECRET_ARN,
            "not a Secrets Manager secret ARN",
        ),
        (
            {BLOCK_ON_SEVERITY: "SEVERE"},
            BLOCK_ON_SEVERITY,
            "INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL, UNDEFINED, NONE",
        ),
        ({PIPELINE_STAGES: "web"}, PIPELINE_STAGES, "not a pipeline/stage name"),
        ({PIPELINE_STAGES: "web/Build/x"}, PIPELINE_STAGES, "not a pipeline/stage name"),
        ({PIPELINE_STAGES: "web/Build,"}, PIPELINE_STAGES, "not a pipeline/stage name"),
        ({PIPELINE_STAGES: '{"web": "Build"}'}, PIPELINE_STAGES, "must be a list"),
        ({PIPELINE_STAGES: "[web/Build]"}, PIPELINE_STAGES, "not valid JSON"),
        ({COMMIT_AUTHOR: "eksops"}, COMMIT_AUTHOR, "is not 'Name <email>'"),
        ({COMMIT_AUTHOR: "<bot@example.com>"}, COMMIT_AUTHOR, "is not 'Name <email>'"),
        ({COMMIT_AUTHOR: "Bot <not-an-email>"}, COMMIT_AUTHOR, "is not 'Name <email>'"),
        ({COMMIT_AUTHOR: "Image\nBot <bot@example.com>"}, COMMIT_AUTHOR, "is not 'Name <email>'"),
        ({COMMIT_MESSAGE_TEMPLATE: "bump $image to $tag"}, COMMIT_MESSAGE_TEMPLATE, "unknown placeholder $tag;"),
        ({COMMIT_MESSAGE_TEMPLATE: "$a $b ${image}"}, COMMIT_MESSAGE_TEMPLATE, "unknown placeholders $a, $b;"),
        ({COMMIT_MESSAGE_TEMPLATE: "costs $5"}, COMMIT_MESSAGE_TEMPLATE, "write $$ for a dollar sign"),
        ({COMMIT_MESSAGE_TEMPLATE: "x" * 4001}, COMMIT_MESSAGE_TEMPLATE, "longer than 4000"),
    ],
)
def test_invalid_values_name_the_variable(variables: dict[str, str], variable: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        UpdaterConfig.from_env(env(**variables))
    assert raised.value.variable == variable
    assert fragment in raised.value.problem
    assert str(raised.value).startswith(f"{variable}: ")


def test_an_entry_may_turn_its_own_gate_off_or_tighten_it() -> None:
    cfg = UpdaterConfig.from_env(
        env(
            IMAGE_MAP=image_map(WEB, {**WEB, "files": ["b.yaml"], "block_on_severity": "MEDIUM"}),
            BLOCK_ON_SEVERITY="NONE",
        )
    )
    assert cfg.block_on_severity is None
    assert [e.block_on_severity for e in cfg.images] == [None, Severity.MEDIUM]


# A table of bad IMAGE_MAPs: (value, the variable the error names, a fragment of the problem).
BAD_IMAGE_MAPS: list[tuple[Any, str, str]] = [
    ("not json", "IMAGE_MAP", "not valid JSON"),
    ({"repository": "web"}, "IMAGE_MAP", "must be a JSON list"),
    ([WEB, "web"], "IMAGE_MAP[1]", "must be an object"),
    ([{k: v for k, v in WEB.items() if k != "files"}], "IMAGE_MAP[0].files", "is required"),
    ([{k: v for k, v in WEB.items() if k != "policy"}], "IMAGE_MAP[0].policy", "is required"),
    ([{**WEB, "tag": "1.0"}], "IMAGE_MAP[0].tag", "unknown key; allowed: repository, image, files"),
    ([{**WEB, "repository": ""}], "IMAGE_MAP[0].repository", "must be a non-empty string"),
    ([{**WEB, "repository": 7}], "IMAGE_MAP[0].repository", "not 7"),
    ([{**WEB, "repository": "Web"}], "IMAGE_MAP[0].repository", "is not an ECR repository name"),
    (
        [{**WEB, "repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"}],
        "IMAGE_MAP[0].repository",
        "no registry host",
    ),
    ([{**WEB, "image": "web:1.4.2"}], "IMAGE_MAP[0].image", "no :tag or @digest"),
    ([{**WEB, "image": "web@sha256:" + "a" * 64}], "IMAGE_MAP[0].image", "no :tag or @digest"),
    ([{**WEB, "image": "Web"}], "IMAGE_MAP[0].image", "lowercase path"),
    ([{**WEB, "files": []}], "IMAGE_MAP[0].files", "non-empty list"),
    ([{**WEB, "files": "a.yaml"}], "IMAGE_MAP[0].files", "non-empty list"),
    ([{**WEB, "files": ["a.yaml", 3]}], "IMAGE_MAP[0].files[1]", "must be a path string"),
    ([{**WEB, "files": ["../other/kustomization.yaml"]}], "IMAGE_MAP[0].files[0]", "must not contain '..'"),
    ([{**WEB, "files": ["apps/../../x.yaml"]}], "IMAGE_MAP[0].files[0]", "must not contain '..'"),
    ([{**WEB, "files": ["/etc/kustomization.yaml"]}], "IMAGE_MAP[0].files[0]", "no leading /"),
    ([{**WEB, "files": ["apps\\web.yaml"]}], "IMAGE_MAP[0].files[0]", "backslashes"),
    ([{**WEB, "files": ["./apps/web.yaml"]}], "IMAGE_MAP[0].files[0]", "plain path"),
    ([{**WEB, "files": ["apps//web.yaml"]}], "IMAGE_MAP[0].files[0]", "plain path"),
    ([{**WEB, "files": [".git/config"]}], "IMAGE_MAP[0].files[0]", "must not point into .git"),
    ([{**WEB, "files": ["a.yaml", "a.yaml"]}], "IMAGE_MAP[0].files[1]", "listed twice"),
    ([{**WEB, "policy": "newest"}], "IMAGE_MAP[0].policy", "use one of: semver, latest, regex"),
    ([{**WEB, "constraint": ">=x"}], "IMAGE_MAP[0].constraint", "'>=x' is not a semver range"),
    ([WEB, {**WEB, "files": ["b.yaml"], "constraint": "~> 1.4"}], "IMAGE_MAP[1].constraint", "not a semver range"),
    ([{**WEB, "constraint": 2}], "IMAGE_MAP[0].constraint", "must be a string"),
    ([{**WEB, "policy": "latest", "constraint": ">=1"}], "IMAGE_MAP[0].constraint", 'only to policy "semver"'),
    ([{**WEB, "policy": "regex"}], "IMAGE_MAP[0].tag_pattern", 'is required with policy "regex"'),
    ([{**WEB, "policy": "regex", "tag_pattern": "("}], "IMAGE_MAP[0].tag_pattern", "does not compile"),
    ([{**WEB, "policy": "regex", "tag_pattern": "(a+)+"}], "IMAGE_MAP[0].tag_pattern", "backtrack"),
    ([{**WEB, "policy": "regex", "tag_pattern": ""}], "IMAGE_MAP[0].tag_pattern", "non-empty regular expression"),
    ([{**WEB, "tag_pattern": "v.*"}], "IMAGE_MAP[0].tag_pattern", 'only to policy "regex"'),
    ([{**WEB, "prerelease": "yes"}], "IMAGE_MAP[0].prerelease", "must be true or false"),
    ([{**WEB, "policy": "latest", "prerelease": True}], "IMAGE_MAP[0].prerelease", 'only to policy "semver"'),
    ([{**WEB, "digest": 1}], "IMAGE_MAP[0].digest", "must be true or false, not 1"),
    ([{**WEB, "keep_tag": False}], "IMAGE_MAP[0].keep_tag", 'only with "digest": true'),
    ([{**WEB, "block_on_severity": "SEVERE"}], "IMAGE_MAP[0].block_on_severity", "use one of"),
    ([WEB, {**WEB, "policy": "latest"}], "IMAGE_MAP[1].files[0]", "already maps image 'web' in IMAGE_MAP[0]"),
    (
        [WEB, {**WEB, "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"}],
        "IMAGE_MAP[1].files[0]",
        "already maps image",
    ),
    ('[{"repository": "web", "repository": "api"}]', "IMAGE_MAP", "key 'repository' appears twice"),
    ("[" * 100_000, "IMAGE_MAP", "nested too deeply"),
    ("[" + "1" * 5000 + "]", "IMAGE_MAP", "not valid JSON"),
]


@pytest.mark.parametrize(("value", "variable", "fragment"), BAD_IMAGE_MAPS)
def test_bad_image_maps_name_the_entry_and_field(value: Any, variable: str, fragment: str) -> None:
    raw = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(ConfigError) as raised:
        UpdaterConfig.from_env(env(IMAGE_MAP=raw))
    assert raised.value.variable == variable, raised.value
    assert fragment in raised.value.problem, raised.value


def test_the_message_names_entry_field_and_value() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_image_map(image_map(WEB, WEB | {"files": ["b"]}, WEB | {"files": ["c"], "constraint": ">=x"}))
    assert str(raised.value).startswith("IMAGE_MAP[2].constraint: '>=x' is not a semver range")


def test_entries_are_frozen_and_ordered() -> None:
    entries = parse_image_map(image_map(WEB, {**WEB, "files": ["b.yaml"], "policy": "latest"}))
    assert [e.index for e in entries] == [0, 1] and all(isinstance(e, ImageEntry) for e in entries)
    with pytest.raises(AttributeError):
        entries[0].policy = Policy.LATEST  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("web", "web"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web", "team/web"),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/web:1.2", "web"),
        ("web@sha256:" + "a" * 64, "web"),
        ("localhost:5000/web:1.2", "localhost:5000/web"),
        ("ghcr.io/acme/web", "ghcr.io/acme/web"),
        ("123456789012.dkr-ecr.eu-west-1.on.aws/web", "web"),
        ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/web", "web"),
    ],
)
def test_image_names_compare_without_ecr_host_tag_or_digest(name: str, normal: str) -> None:
    assert normalise_image(name) == normal


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Entries start valid; then some fields take other values: plausible mistakes or any JSON at all.
valid_entries = st.fixed_dictionaries(
    {
        "repository": st.sampled_from(["web", "team/web", "a.b-c_d"]),
        "image": st.sampled_from(["web", "ghcr.io/acme/web", "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"]),
        "files": st.lists(st.sampled_from(["a.yaml", "apps/b/kustomization.yaml", "c.yml"]), min_size=1, unique=True),
        "policy": st.just("semver"),
    }
)
changes = st.fixed_dictionaries(
    {},
    optional={
        "repository": st.sampled_from(["Web", "", "a", "x" * 300]) | json_values,
        "image": st.sampled_from(["web:1", "Web", "web@sha256:00"]) | json_values,
        "files": st.lists(st.sampled_from(["a.yaml", "../c", "/d", "e//f", "", "./g"]), max_size=3) | json_values,
        "policy": st.sampled_from(["semver", "latest", "regex", "SEMVER"]) | json_values,
        "constraint": st.sampled_from([">=1.4,<2", "^1", "~0.2.x", ">=x", "", "*", "1.x.3"]) | st.text(max_size=12),
        "tag_pattern": st.sampled_from(["main-.*", "(a+)+", "(", "v\\d+", "(?P<x>a)(?P=x)"]) | st.text(max_size=12),
        "prerelease": st.booleans() | json_values,
        "digest": st.booleans() | json_values,
        "keep_tag": st.booleans() | json_values,
        "block_on_severity": st.sampled_from(["HIGH", "none", "x"]) | json_values,
    },
)
stray = st.sampled_from([{}] * 7 + [{"extra": 1}, {"Policy": "semver"}])  # now and then a key that does not exist
entries = st.builds(lambda base, changed, extra: {**base, **changed, **extra}, valid_entries, changes, stray)


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.lists(entries, max_size=4) | json_values)
def test_any_json_image_map_parses_or_raises_config_error(value: Any) -> None:
    raw = json.dumps(value)
    try:
        parsed = parse_image_map(raw)
    except ConfigError as exc:
        assert exc.variable.startswith(IMAGE_MAP)
        return
    assert isinstance(value, list) and len(parsed) == len(value)
    for entry in parsed:
        assert set(vars(entry)) >= set(ENTRY_KEYS) and entry.files


@settings(max_examples=200)
@given(raw=st.text(max_size=60))
def test_any_text_as_image_map_parses_or_raises_config_error(raw: str) -> None:
    try:
        parse_image_map(raw)
    except ConfigError as exc:
        assert exc.variable.startswith(IMAGE_MAP)
