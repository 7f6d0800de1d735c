"""image_updater settings from the environment, validated at start-up.

A wrong value fails the cold start with a ConfigError naming the variable and, for IMAGE_MAP, the entry and the
field: ``IMAGE_MAP[2].constraint: '>=x' is not a semver range``.

IMAGE_MAP is a JSON list of entries::

    {"repository": "payments-api",              # the ECR repository (name only, no registry host)
     "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api",   # the name the files write
     "files": ["apps/payments/overlays/prod/kustomization.yaml"],            # relative paths in the repo
     "policy": "semver",                        # semver | latest | regex
     "constraint": ">=1.4,<2",                  # semver only; default * (any version)
     "tag_pattern": "^main-[0-9a-f]{7}$",       # regex only, required there (fullmatch)
     "prerelease": false,                       # semver only: may pick 1.5.0-rc.1
     "digest": false,                           # true: write digest: sha256:... (kustomize's pin)
     "keep_tag": true,                          # with digest true: also write newTag (false: digest only)
     "block_on_severity": "CRITICAL"}           # this entry's gate threshold; default BLOCK_ON_SEVERITY

``repository``, ``image``, ``files`` and ``policy`` are required; any other key is refused. With ``"digest": true``
the file gets ``newTag`` and ``digest`` (kustomize renders ``name:tag@sha256:...``: readable and pinned) unless
``"keep_tag": false``, which writes the digest alone. The constraint and tag pattern rules are in
:mod:`eksops.images.policy`, the gate's in :mod:`eksops.images.gate`.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from string import Template
from typing import Any
from urllib.parse import urlsplit

from eksops import config
from eksops.errors import ConfigError
from eksops.images.gate import Severity
from eksops.images.policy import Policy, Range, compile_tag_pattern, parse_range
from eksops.images.repo import Author

__all__ = [
    "PLACEHOLDERS",
    "ImageEntry",
    "RepoKind",
    "RepoLocation",
    "UpdaterConfig",
    "normalise_image",
    "parse_image_map",
]

CONFIG_REPO_URL = "CONFIG_REPO_URL"
CONFIG_BRANCH = "CONFIG_BRANCH"
CONFIG_REPO_SECRET_ARN = "CONFIG_REPO_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
IMAGE_MAP = "IMAGE_MAP"
BLOCK_ON_SEVERITY = "BLOCK_ON_SEVERITY"
PIPELINE_STAGES = "PIPELINE_STAGES"
COMMIT_AUTHOR = "COMMIT_AUTHOR"
COMMIT_MESSAGE_TEMPLATE = "COMMIT_MESSAGE_TEMPLATE"

DEFAULT_BRANCH = "main"
DEFAULT_SEVERITY = Severity.CRITICAL
GATE_OFF = "NONE"
DEFAULT_AUTHOR = "eksops <eksops@users.noreply.github.com>"
# $placeholders of COMMIT_MESSAGE_TEMPLATE; the service fills every one ("" when unknown, e.g. no pipeline).
PLACEHOLDERS = (
    "image",  # the image name as the files write it
    "repository",  # the ECR repository
    "old",  # what the files held: tag, tag@digest or digest
    "new",  # what they hold now, in the same form
    "old_tag",
    "new_tag",
    "old_digest",
    "new_digest",
    "policy",
    "files",  # the changed files, comma-separated
    "trigger",  # push, scan, pipeline or reconcile
    "pipeline",
    "pipeline_execution",
    "source_revision",
    "event_id",
    "provenance",  # "Pipeline execution: ...\nSource revision: ..." when a pipeline triggered it, else ""
)
DEFAULT_MESSAGE_TEMPLATE = "$image: $old -> $new\n\nPolicy $policy, triggered by $trigger.\n$provenance"
MAX_MESSAGE_TEMPLATE = 4000

ENTRY_KEYS = (
    "repository",
    "image",
    "files",
    "policy",
    "constraint",
    "tag_pattern",
    "prerelease",
    "digest",
    "keep_tag",
    "block_on_severity",
)
_REQUIRED = ("repository", "image", "files", "policy")

# ECR: 2-256 characters, lowercase path segments of letters and digits joined by single . _ or -.
_ECR_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
# An image name as Docker references write it, without tag or digest: an optional registry host[:port], then
# lowercase path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
# ECR hosts: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]; dual-stack <account>.dkr-ecr.<region>.on.aws
_ECR_HOST = re.compile(
    r"\d{12}\.(?:dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?|dkr-ecr\.[a-z0-9-]+\.on\.aws)/"
)
_CODECOMMIT_NAME = re.compile(r"[\w.-]{1,100}")
_SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}")
_STAGE_PART = re.compile(r"[A-Za-z0-9.@_\-*?\[\]!]{1,100}")
_AUTHOR = re.compile(r"(?P<name>[^<>\x00-\x1f\x7f]+?)\s*<(?P<email>[^<>@\s\x00-\x1f\x7f]+@[^<>@\s\x00-\x1f\x7f]+)>")
_LOOPBACK_NAMES = frozenset({"localhost"})
MAX_PATH = 1024
_ALLOWED_URLS = "use codecommit://<repository> or https://<host>/<path> (http:// only to 127.0.0.1, ::1 or localhost)"


class RepoKind(StrEnum):
    CODECOMMIT = "codecommit"
    GIT = "git"  # any Git remote over https (http on loopback only)


@dataclass(frozen=True)
class RepoLocation:
    kind: RepoKind
    url: str  # as configured
    name: str  # the CodeCommit repository name, or the remote URL for git

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class ImageEntry:
    """One IMAGE_MAP entry, validated. ``index`` is its position, for messages."""

    repository: str
    image: str
    files: tuple[str, ...]
    policy: Policy
    constraint: str = "*"
    tag_pattern: str | None = None
    prerelease: bool = False
    digest: bool = False
    keep_tag: bool = True
    block_on_severity: Severity | None = DEFAULT_SEVERITY
    index: int = 0
    range: Range = field(default_factory=lambda: parse_range("*"), compare=False, repr=False)
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def writes_tag(self) -> bool:
        return not self.digest or self.keep_tag

    @property
    def writes_digest(self) -> bool:
        return self.digest

    @property
    def label(self) -> str:
        return f"{IMAGE_MAP}[{self.index}]"


@dataclass(frozen=True)
class UpdaterConfig:
    """Settings of image_updater."""

    repo: RepoLocation
    branch: str = DEFAULT_BRANCH
    secret_arn: str | None = None
    images: tuple[ImageEntry, ...] = ()
    block_on_severity: Severity | None = DEFAULT_SEVERITY  # None: the gate is off
    pipeline_stages: tuple[str, ...] = ()  # "pipeline/stage" globs
    author: Author = field(default_factory=lambda: Author("eksops", "eksops@users.noreply.github.com"))
    message_template: str = DEFAULT_MESSAGE_TEMPLATE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UpdaterConfig:
        repo = _repo_location(config.read(CONFIG_REPO_URL, environ))
        severity = _severity(BLOCK_ON_SEVERITY, config.read(BLOCK_ON_SEVERITY, environ) or DEFAULT_SEVERITY.value)
        return cls(
            repo=repo,
            branch=_branch(config.read(CONFIG_BRANCH, environ) or DEFAULT_BRANCH),
            secret_arn=_secret_arn(config.read(CONFIG_REPO_SECRET_ARN, environ), repo),
            images=parse_image_map(config.read(IMAGE_MAP, environ), default_severity=severity),
            block_on_severity=severity,
            pipeline_stages=_stages(config.read(PIPELINE_STAGES, environ)),
            author=_author(config.read(COMMIT_AUTHOR, environ) or DEFAULT_AUTHOR),
            message_template=_message_template(config.read(COMMIT_MESSAGE_TEMPLATE, environ)),
        )

    def entries_for(self, repository: str) -> tuple[ImageEntry, ...]:
        """The IMAGE_MAP entries of one ECR repository (several: the same image in other files or policies)."""
        return tuple(entry for entry in self.images if entry.repository == repository)

    def stage_enabled(self, pipeline: str, stage: str) -> bool:
        """Whether PIPELINE_STAGES lists this stage (globs, case-sensitive as CodePipeline names are)."""
        name = f"{pipeline}/{stage}"
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.pipeline_stages)

    def commit_message(self, values: Mapping[str, str]) -> str:
        """The commit message for one update; placeholders without a value are left empty."""
        filled = {name: str(values.get(name, "")) for name in PLACEHOLDERS}
        return Template(self.message_template).substitute(filled)


def normalise_image(name: str) -> str:
    """An image name without an ECR registry host or a ``:tag`` / ``@sha256:`` suffix, for comparing names."""
    name = name.strip().split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return _ECR_HOST.sub("", name, count=1) if _ECR_HOST.match(name) else name


# --- the repository ---------------------------------------------------------------------------------------------


def _repo_location(raw: str) -> RepoLocation:
    if not raw:
        raise ConfigError(CONFIG_REPO_URL, f"must name the config repository; {_ALLOWED_URLS}")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise ConfigError(CONFIG_REPO_URL, "must not contain spaces or control characters")
    if raw.startswith("codecommit://"):
        name = raw.removeprefix("codecommit://")
        if not _CODECOMMIT_NAME.fullmatch(name) or name in {".", ".."} or name.endswith(".git"):
            raise ConfigError(
                CONFIG_REPO_URL, f"{name!r} is not a CodeCommit repository name (1-100 letters, digits, . _ -)"
            )
        return RepoLocation(RepoKind.CODECOMMIT, raw, name)
    _check_remote(raw)
    return RepoLocation(RepoKind.GIT, raw, raw)


def _check_remote(raw: str) -> None:
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(CONFIG_REPO_URL, f"not a valid URL ({exc}); {_ALLOWED_URLS}") from None
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"} or not parts.hostname:
        raise ConfigError(CONFIG_REPO_URL, f"{_redacted(raw)!r} is not allowed; {_ALLOWED_URLS}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            CONFIG_REPO_URL,
            "must not hold credentials; put them in the secret CONFIG_REPO_SECRET_ARN names "
            '({"username": ..., "password": ...})',
        )
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        raise ConfigError(CONFIG_REPO_URL, "a Git remote URL has no query or fragment")
    if scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError(CONFIG_REPO_URL, f"http:// only to loopback hosts, not {parts.hostname}; use https")
    if port == 0:
        raise ConfigError(CONFIG_REPO_URL, "port 0 is not a port")


def _redacted(raw: str) -> str:
    """A URL for a message, without anything between :// and @ (credentials never reach a log)."""
    return re.sub(r"(?<=://)[^/@]*@", "***@", raw)


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def _branch(raw: str) -> str:
    """A branch name git accepts (git check-ref-format --branch)."""
    problem = _ref_problem(raw)
    if problem:
        raise ConfigError(CONFIG_BRANCH, f"{raw!r} is not a valid branch name: {problem}")
    return raw


def _ref_problem(name: str) -> str | None:
    if name.startswith("refs/"):
        return "write the branch name alone (main), not refs/heads/main"
    if name.startswith("-"):
        return "it must not start with '-'"
    if len(name) > 255:
        return "it is longer than 255 characters"
    if any(ord(ch) < 32 or ord(ch) == 127 or ch in " ~^:?*[\\" for ch in name):
        return "it must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    if name == "@" or "@{" in name or ".." in name or "//" in name:
        return "it must not be '@' or contain '@{', '..' or '//'"
    if name.startswith("/") or name.endswith(("/", ".")):
        return "it must not start or end with '/', or end with '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "no part may start with '.' or end with '.lock'"
    return None


def _secret_arn(raw: str, repo: RepoLocation) -> str | None:
    if not raw:
        return None
    if repo.kind is RepoKind.CODECOMMIT:
        raise ConfigError(
            CONFIG_REPO_SECRET_ARN, "applies to https remotes only; CodeCommit is reached with the function's role"
        )
    if not _SECRET_ARN.fullmatch(raw):
        raise ConfigError(
            CONFIG_REPO_SECRET_ARN,
            "is not a Secrets Manager secret ARN (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>)",
        )
    return raw


# --- gate, pipeline, commits ------------------------------------------------------------------------------------


def _severity(name: str, raw: str) -> Severity | None:
    """A severity threshold (any case); NONE turns the gate off (None)."""
    value = raw.strip().upper()
    allowed = [s.value for s in Severity] + [GATE_OFF]
    if value == GATE_OFF:
        return None
    if value not in allowed:
        raise ConfigError(name, f"{raw!r} is not allowed; use one of: {', '.join(allowed)}")
    return Severity(value)


def _stages(raw: str) -> tuple[str, ...]:
    """A JSON list or a comma-separated list of ``pipeline/stage`` names (globs allowed)."""
    if not raw:
        return ()
    if raw.startswith(("[", "{")):
        value: Any = config.parse_json(PIPELINE_STAGES, raw)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(PIPELINE_STAGES, 'must be a list of "pipeline/stage" names, e.g. ["web/Build"]')
        names = [v.strip() for v in value]
    else:
        names = [v.strip() for v in raw.split(",")]
    for name in names:
        pipeline, slash, stage = name.partition("/")
        if not slash or not _STAGE_PART.fullmatch(pipeline) or not _STAGE_PART.fullmatch(stage):
            raise ConfigError(
                PIPELINE_STAGES,
                f"{name!r} is not a pipeline/stage name (letters, digits, . @ _ - and globs * ? [ ] on both sides "
                "of one /, e.g. web/Build or */Deploy-*)",
            )
    return tuple(dict.fromkeys(names))


def _author(raw: str) -> Author:
    match = _AUTHOR.fullmatch(raw)
    if match is None:
        raise ConfigError(COMMIT_AUTHOR, f"{raw!r} is not 'Name <email>' (e.g. {DEFAULT_AUTHOR})")
    return Author(match["name"].strip(), match["email"])


def _message_template(raw: str) -> str:
    """COMMIT_MESSAGE_TEMPLATE: a string.Template; the two characters \\n stand for a line break (a template
    parameter is one line)."""
    if not raw:
        return DEFAULT_MESSAGE_TEMPLATE
    text = raw.replace("\\n", "\n")
    if len(text) > MAX_MESSAGE_TEMPLATE:
        raise ConfigError(COMMIT_MESSAGE_TEMPLATE, f"is longer than {MAX_MESSAGE_TEMPLATE} characters")
    template = Template(text)
    if not template.is_valid():
        raise ConfigError(
            COMMIT_MESSAGE_TEMPLATE, "has a '$' that starts no placeholder; write $$ for a dollar sign, or $name"
        )
    unknown = sorted(set(template.get_identifiers()) - set(PLACEHOLDERS))
    if unknown:
        raise ConfigError(
            COMMIT_MESSAGE_TEMPLATE,
            f"unknown placeholder{'s' if len(unknown) > 1 else ''} {', '.join('$' + u for u in unknown)}; "
            f"use: {', '.join('$' + p for p in PLACEHOLDERS)}",
        )
    if not template.substitute(dict.fromkeys(PLACEHOLDERS, "x")).strip():
        raise ConfigError(COMMIT_MESSAGE_TEMPLATE, "gives an empty commit message")
    return text


# --- IMAGE_MAP --------------------------------------------------------------------------------------------------


def parse_image_map(raw: str, *, default_severity: Severity | None = DEFAULT_SEVERITY) -> tuple[ImageEntry, ...]:
    """IMAGE_MAP (JSON) into entries; ConfigError names the entry and field of the first problem."""
    value = _load_json(raw or "[]")
    if not isinstance(value, list):
        raise ConfigError(IMAGE_MAP, 'must be a JSON list of entries, e.g. [{"repository": "web", ...}]')
    entries = tuple(_entry(i, item, default_severity) for i, item in enumerate(value))
    owners: dict[tuple[str, str], int] = {}
    for entry in entries:
        for n, path in enumerate(entry.files):
            key = (normalise_image(entry.image), path)
            if key in owners:
                raise ConfigError(
                    f"{entry.label}.files[{n}]",
                    f"{path!r} already maps image {entry.image!r} in {IMAGE_MAP}[{owners[key]}]: "
                    "two entries would fight over one line",
                )
            owners[key] = entry.index
    return entries


def _load_json(raw: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ConfigError(IMAGE_MAP, f"key {repeated[0]!r} appears twice in one object")
        return dict(pairs)

    try:
        return json.loads(raw, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(IMAGE_MAP, f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise ConfigError(IMAGE_MAP, "nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits (Python's int/str conversion limit)
        raise ConfigError(IMAGE_MAP, f"not valid JSON ({exc})") from None


def _entry(index: int, item: Any, default_severity: Severity | None) -> ImageEntry:
    label = f"{IMAGE_MAP}[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(label, "must be an object with repository, image, files and policy")
    unknown = sorted(set(item) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{label}.{unknown[0]}", f"unknown key; allowed: {', '.join(ENTRY_KEYS)}")
    for key in _REQUIRED:
        if key not in item:
            raise ConfigError(f"{label}.{key}", "is required")
    repository, image = _names(item, label)
    policy_text = _text(item, "policy", label)
    if policy_text not in {p.value for p in Policy}:
        raise ConfigError(f"{label}.policy", f"{policy_text!r} is not allowed; use one of: semver, latest, regex")
    policy = Policy(policy_text)
    digest = _flag(item, "digest", label, default=False)
    if "keep_tag" in item and not digest:
        raise ConfigError(f"{label}.keep_tag", 'applies only with "digest": true')
    severity = default_severity
    if "block_on_severity" in item:
        severity = _severity(f"{label}.block_on_severity", _text(item, "block_on_severity", label))
    constraint, value_range = _constraint(item, policy, label)
    tag_pattern, pattern = _tag_pattern(item, policy, label)
    if "prerelease" in item and policy is not Policy.SEMVER:
        raise ConfigError(f"{label}.prerelease", 'applies only to policy "semver"')
    return ImageEntry(
        repository=repository,
        image=image,
        files=_files(item.get("files"), label),
        policy=policy,
        constraint=constraint,
        tag_pattern=tag_pattern,
        prerelease=_flag(item, "prerelease", label, default=False),
        digest=digest,
        keep_tag=_flag(item, "keep_tag", label, default=True),
        block_on_severity=severity,
        index=index,
        range=value_range,
        pattern=pattern,
    )


def _names(item: Mapping[str, Any], label: str) -> tuple[str, str]:
    repository = _text(item, "repository", label)
    if not 2 <= len(repository) <= 256 or not _ECR_REPOSITORY.fullmatch(repository) or _ECR_HOST.match(repository):
        raise ConfigError(
            f"{label}.repository",
            f"{repository!r} is not an ECR repository name (lowercase letters, digits, . _ - /; no registry host)",
        )
    image = _text(item, "image", label)
    if len(image) > 255 or not _IMAGE_NAME.fullmatch(image):
        raise ConfigError(
            f"{label}.image",
            f"{image!r} is not an image name as a kustomization writes it (no :tag or @digest; lowercase path)",
        )
    return repository, image


def _text(item: Mapping[str, Any], key: str, label: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{label}.{key}", f"must be a non-empty string, not {_shown(value)}")
    return value.strip()


def _flag(item: Mapping[str, Any], key: str, label: str, *, default: bool) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{label}.{key}", f"must be true or false, not {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, bool | int | float | str | type(None)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _constraint(item: Mapping[str, Any], policy: Policy, label: str) -> tuple[str, Range]:
    if "constraint" not in item:
        return "*", parse_range("*")
    if policy is not Policy.SEMVER:
        raise ConfigError(f"{label}.constraint", 'applies only to policy "semver"')
    value = item["constraint"]
    if not isinstance(value, str):
        raise ConfigError(f"{label}.constraint", f"must be a string such as '>=1.4,<2', not {_shown(value)}")
    try:
        return value.strip() or "*", parse_range(value)
    except ValueError as exc:
        raise ConfigError(f"{label}.constraint", str(exc)) from None


def _tag_pattern(item: Mapping[str, Any], policy: Policy, label: str) -> tuple[str | None, re.Pattern[str] | None]:
    if policy is not Policy.REGEX:
        if "tag_pattern" in item:
            raise ConfigError(f"{label}.tag_pattern", 'applies only to policy "regex"')
        return None, None
    if "tag_pattern" not in item:
        raise ConfigError(f"{label}.tag_pattern", 'is required with policy "regex"')
    value = item["tag_pattern"]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{label}.tag_pattern", f"must be a non-empty regular expression, not {_shown(value)}")
    try:
        return value, compile_tag_pattern(value)
    except ValueError as exc:
        raise ConfigError(f"{label}.tag_pattern", str(exc)) from None


def _files(value: Any, label: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{label}.files", "must be a non-empty list of paths in the config repository")
    paths: list[str] = []
    for n, path in enumerate(value):
        where = f"{label}.files[{n}]"
        if not isinstance(path, str) or not path:
            raise ConfigError(where, f"must be a path string, not {_shown(path)}")
        problem = _path_problem(path)
        if problem:
            raise ConfigError(where, f"{path!r} {problem}")
        if path in paths:
            raise ConfigError(where, f"{path!r} is listed twice")
        paths.append(path)
    return tuple(paths)


def _path_problem(path: str) -> str | None:
    if len(path) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    if path.startswith("/"):
        return "must be relative to the repository root (no leading /)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path) or "\\" in path:
        return "must not contain control characters or backslashes (use /)"
    parts = path.split("/")
    if ".." in parts:
        return "must not contain '..'"
    if "" in parts or "." in parts:
        return "must be a plain path (no '.', '//' or trailing '/'), e.g. apps/web/kustomization.yaml"
    if parts[0] == ".git":
        return "must not point into .git"
    return None
