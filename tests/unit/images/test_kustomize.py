"""Byte-exact edits of one kustomization `images:` entry (eksops.images.kustomize), acceptance 1 of issue 11.

Three independent checks per case: the output equals hand-written expected bytes; a byte comparison shows change only
inside the target entry's lines (located with PyYAML, not with the module under test); and PyYAML reads the new file
as the old one with just the intended fields changed. Real-world shapes come from tests/unit/images/kustomizations/,
each also run with CRLF line endings, a BOM and no final newline. A hypothesis property test covers generated
files, and `kubectl kustomize` (when installed) checks the kustomize semantics the module relies on.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eksops.errors import PermanentError
from eksops.images import kustomize
from eksops.images.kustomize import (
    AmbiguousImage,
    ImageNotInFile,
    ImageRef,
    InvalidKustomization,
    UnsafeEdit,
    current,
    current_bytes,
    same_image,
    set_image,
    set_image_bytes,
)

CORPUS = Path(__file__).parent / "kustomizations"
# Generated documents per property test in `make test` (and twice that for the damaged-file one); set
# EKSOPS_PROPERTY_EXAMPLES higher for a long run.
PROPERTY_EXAMPLES = int(os.environ.get("EKSOPS_PROPERTY_EXAMPLES", "150"))
DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
OTHER_DIGEST = "sha256:" + "0" * 64
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@dataclass(frozen=True)
class Case:
    name: str  # <name>.yaml and <name>.expected.yaml in the corpus
    image: str
    tag: str | None
    digest: str | None
    entry: int  # index of the target in images:, as the test (not the module) knows it


CASES = [
    Case("overlay-basic", f"{ECR}/shop/frontend", "v1.5.0", None, 0),
    Case("comments-everywhere", "payments-worker", "2024.06.0", None, 1),
    Case("indented-sequence", "billing", "0.10.0", DIGEST, 1),
    Case("flow-sequence", "api", "2.10", None, 1),
    Case("flow-mappings", "redis", "7.2.5", DIGEST, 1),
    Case("quoted-tags", "beta", "1.10", None, 1),
    Case("plain-to-number", "gamma", "1.10", None, 1),
    Case("newname-ecr", "123456789012.dkr.ecr.eu-central-1.amazonaws.com/checkout", "5.3.0-rc.1", None, 0),
    Case("newname-placeholder", "team/orders", "build-4711", None, 0),
    Case("digest-both", "api", "v1.3.0", DIGEST, 0),
    Case("digest-only", "api", None, DIGEST, 0),
    Case("digest-dropped", "api", "v1.3.0", None, 1),
    Case("tag-to-digest", "api", None, DIGEST, 0),
    Case("patches-around", "api", "1.0.1", None, 0),
    Case("tag-added", "registry.example.com/team/api", "v1.0.0", None, 0),
    Case("multiline-flow", "api", "v2", DIGEST, 0),
    Case("dash-alone", "web", None, DIGEST, 1),
    Case("component", "metrics-agent", "0.44.0", DIGEST, 0),
    Case("last-entry-last-line", "api", "v2", DIGEST, 1),
]


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def _bom(data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data


def _no_final_newline(data: bytes) -> bytes:
    assert data.endswith(b"\n")
    return data.removesuffix(b"\r\n") if data.endswith(b"\r\n") else data[:-1]


VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "lf": lambda data: data,
    "crlf": _crlf,
    "cr": lambda data: data.replace(b"\n", b"\r"),  # classic Mac line endings: YAML allows them
    "bom": _bom,
    "no-final-newline": _no_final_newline,
    "crlf-bom-no-final-newline": lambda data: _bom(_no_final_newline(_crlf(data))),
}


def _entry_region(text: str, index: int) -> tuple[int, int]:
    """Character range of the target entry's lines (line start of the entry to the end of its last line, break
    included), located with PyYAML's composer: an implementation independent of the module under test."""
    root: Any = yaml.compose(text)
    images = next(value for key, value in root.value if key.value == "images")
    entry = images.value[index]
    start = entry.start_mark.index
    end = max(value.end_mark.index for _, value in entry.value)
    line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    newline = re.compile(r"\r\n|\r|\n").search(text, end)
    return line_start, len(text) if newline is None else newline.end()


def _entry_lines(text: str, index: int) -> tuple[int, int]:
    """First and last line (1-based) of the entry's text, from PyYAML's marks."""
    root: Any = yaml.compose(text)
    images = next(value for key, value in root.value if key.value == "images")
    entry = images.value[index]
    return entry.start_mark.line + 1, max(value.end_mark.line for _, value in entry.value) + 1


def _assert_only_entry_changed(old: str, new: str, index: int) -> None:
    start, end = _entry_region(old, index)
    assert new[:start] == old[:start], "bytes before the entry changed"
    tail = len(old) - end
    assert new[len(new) - tail :] == old[end:], "bytes after the entry changed"


def _expected_data(old: str, index: int, tag: str | None, digest: str | None) -> Any:
    data = copy.deepcopy(yaml.safe_load(old))
    fields = data["images"][index]
    for key, value in (("newTag", tag), ("digest", digest)):
        if value is not None:
            fields[key] = value
        elif fields.get(key) not in (None, ""):  # an empty `digest:` reads as no digest and is left alone
            del fields[key]
    return data


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_edit_is_byte_exact(case: Case, variant: str) -> None:
    transform = VARIANTS[variant]
    before = transform((CORPUS / f"{case.name}.yaml").read_bytes())
    expected = transform((CORPUS / f"{case.name}.expected.yaml").read_bytes())
    assert before != expected

    edit = set_image_bytes(before, case.image, tag=case.tag, digest=case.digest, path=f"{case.name}.yaml")

    assert edit.content == expected
    assert edit.changed
    old_text, new_text = before.decode(), expected.decode()
    _assert_only_entry_changed(old_text, new_text, case.entry)
    assert yaml.safe_load(new_text) == _expected_data(old_text, case.entry, case.tag, case.digest)
    # ruamel reads it back too, and the module reports the entry as it now is
    assert edit.new == current(edit.text, case.image)
    assert (edit.new.tag, edit.new.digest) == (case.tag, case.digest)
    assert edit.old == current_bytes(before, case.image)
    assert edit.lines == _entry_lines(new_text, case.entry)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_second_edit_is_a_no_op(case: Case) -> None:
    after = (CORPUS / f"{case.name}.expected.yaml").read_bytes()
    edit = set_image_bytes(after, case.image, tag=case.tag, digest=case.digest)
    assert not edit.changed
    assert edit.content == after
    assert edit.old == edit.new
    assert edit.describe() == f"{case.image} unchanged"


def test_corpus_files_are_all_used() -> None:
    names = {path.name.removesuffix(".yaml") for path in CORPUS.glob("*.yaml")}
    inputs = {name for name in names if not name.endswith(".expected")}
    assert inputs == {case.name for case in CASES}
    assert {f"{name}.expected" for name in inputs} == names - inputs


# --- matching -----------------------------------------------------------------------------------------------------


def test_same_image_normalises_an_ecr_prefix_on_either_side() -> None:
    assert same_image(f"{ECR}/team/app", "team/app")
    assert same_image("team/app", f"{ECR}/team/app:1.0")
    assert same_image("app@" + DIGEST, "app:v1")
    assert same_image("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app", "app")
    assert not same_image(f"{ECR}/app", "210987654321.dkr.ecr.us-east-1.amazonaws.com/app")  # two accounts
    assert not same_image("ghcr.io/acme/app", "acme/app")  # only an ECR prefix is implied
    assert not same_image("localhost:5000/app", "app")
    assert not same_image("team/app", "app")


def test_name_beats_new_name_and_exact_beats_normalised() -> None:
    text = (
        "images:\n"
        f"- name: placeholder\n  newName: {ECR}/app\n  newTag: v1\n"
        f"- name: {ECR}/app\n  newTag: v1\n"
        "- name: app\n  newTag: v1\n"
    )
    assert set_image(text, "app", tag="v2").lines == (7, 8)  # name written exactly
    assert set_image(text, f"{ECR}/app", tag="v2").lines == (5, 6)  # name written exactly, with the prefix
    without_exact = text.replace("- name: app\n  newTag: v1\n", "")
    assert set_image(without_exact, "app", tag="v2").lines == (5, 6)  # name up to the prefix beats newName
    only_new_name = "images:\n- name: placeholder\n  newName: " + ECR + "/app\n  newTag: v1\n"
    edit = set_image(only_new_name, "app", tag="v2")
    assert edit.text == only_new_name.replace("v1", "v2")
    assert edit.old == ImageRef("placeholder", f"{ECR}/app", "v1", None)


def test_several_entries_at_one_level_are_refused() -> None:
    text = "images:\n- name: app\n  newTag: v1\n- {name: app, newTag: v1}\n"
    with pytest.raises(AmbiguousImage) as caught:
        set_image(text, "app", tag="v2")
    assert caught.value.lines == (2, 4)
    assert "app" in str(caught.value)
    both_prefixed = f"images:\n- name: {ECR}/app\n- name: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app\n"
    with pytest.raises(AmbiguousImage):
        current(both_prefixed, "app")


def test_no_matching_entry_is_reported_never_appended() -> None:
    text = "images:\n- name: web\n  newTag: v1\n- newName: x/y\n"
    with pytest.raises(ImageNotInFile) as caught:
        set_image(text, "api", tag="v2", path="apps/prod/kustomization.yaml")
    error = caught.value
    assert isinstance(error, PermanentError)
    assert (error.path, error.image, error.names) == ("apps/prod/kustomization.yaml", "api", ("web", "x/y"))
    assert "apps/prod/kustomization.yaml" in str(error) and "api" in str(error)
    assert current(text, "api") is None


# --- shapes beyond the corpus -------------------------------------------------------------------------------------


def test_inserted_line_ends_like_its_neighbour_in_a_mixed_file() -> None:
    text = "kind: Kustomization\nimages:\r\n- name: app\r\n  newTag: v1\r\n# tail\n"
    edit = set_image(text, "app", tag="v1", digest=DIGEST)
    assert edit.text == text.replace("v1\r\n", f"v1\r\n  digest: {DIGEST}\r\n")


def test_empty_value_is_filled_in_and_empty_digest_left_alone() -> None:
    text = "images:\n- name: app\n  newTag:   # set by the pipeline\n  digest:\n"
    edit = set_image(text, "app", tag="v3")
    assert edit.text == "images:\n- name: app\n  newTag: v3   # set by the pipeline\n  digest:\n"
    assert edit.old == ImageRef("app", None, None, None)
    key_alone = "images:\n- {name: app, newTag}\n"
    assert set_image(key_alone, "app", tag="v2").text == "images:\n- {name: app, newTag: v2}\n"
    with pytest.raises(UnsafeEdit, match="explicit key"):
        set_image("images:\n- name: app\n  ? newTag\n", "app", tag="v2")
    # a field added after an empty one in a flow mapping (found by the property test: `newTag:,` read back wrong)
    flow_empty = "images: [{name: app, newTag: }, {name: web}]\n"
    assert set_image(flow_empty, "app", tag=None, digest=DIGEST).text == flow_empty.replace(
        "newTag:", f"newTag: , digest: {DIGEST}"
    )
    lines_empty = "images: [\n  {\n    name: app,\n    newTag:\n  },\n]\n"
    assert current(set_image(lines_empty, "app", tag=None, digest=DIGEST).text, "app") == ImageRef(
        "app", None, None, DIGEST
    )
    quoted_empty = "images:\n- {name: app, newTag: v1, digest: ''}\n"
    assert set_image(quoted_empty, "app", tag="v2").text == quoted_empty.replace("v1", "v2")
    assert current(quoted_empty, "app") == ImageRef("app", None, "v1", None)


def test_new_key_is_quoted_like_its_siblings() -> None:
    text = 'images:\n- "name": "app"\n'
    assert set_image(text, "app", tag="v1").text == text + '  "newTag": "v1"\n'
    text = "images:\n- {'name': 'app', 'newTag': 'v1'}\n"
    assert set_image(text, "app", tag="v1", digest=DIGEST).text == text.replace("'v1'", f"'v1', 'digest': '{DIGEST}'")


def test_plain_numeric_tag_is_rewritten_quoted_even_when_equal() -> None:
    # `newTag: 1.10` is a number: kustomize refuses to build it. Setting the same text quotes it.
    text = "images:\n- name: app\n  newTag: 1.10\n"
    edit = set_image(text, "app", tag="1.10")
    assert edit.changed
    assert edit.text == 'images:\n- name: app\n  newTag: "1.10"\n'


@pytest.mark.parametrize("tag", ["1.10", "2024-01-01", "007", "1e3", "yes", "y", "on", "null", "True", "1_000", "0x1F"])
def test_tags_a_yaml_parser_would_not_read_as_strings_are_quoted(tag: str) -> None:
    text = "images:\n- name: app\n  newTag: v1\n- name: web\n  newTag: 'v1'\n"
    edit = set_image(text, "app", tag=tag)
    assert edit.text == text.replace("newTag: v1\n", f'newTag: "{tag}"\n', 1)
    assert yaml.safe_load(edit.text)["images"][0]["newTag"] == tag
    single = set_image("images:\n- name: 'app'\n  newTag: v1\n", "app", tag=tag)
    assert single.text == f"images:\n- name: 'app'\n  newTag: '{tag}'\n"  # the entry's own quote


def test_describe_names_old_and_new() -> None:
    edit = set_image(f"images:\n- name: app\n  newTag: v1\n  digest: {OTHER_DIGEST}\n", "app", tag="v2")
    assert edit.describe() == f"app newTag v1 -> v2, digest {OTHER_DIGEST} -> -"


def test_set_image_rejects_values_that_are_not_tags_or_digests() -> None:
    text = "images:\n- name: app\n"
    for kwargs in (
        {"tag": None, "digest": None},
        {"tag": "v1\n  evil: true"},
        {"tag": "-v1"},
        {"tag": "a" * 129},
        {"tag": None, "digest": "sha256:abc"},
        {"tag": None, "digest": "sha512:" + "0" * 128},
    ):
        with pytest.raises(ValueError):
            set_image(text, "app", **kwargs)


# --- refusals -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"- name: app\n", "not a mapping"),
        (b"images: [\n", "invalid YAML"),
        (b"images:\n\t- name: app\n", "invalid YAML"),
        (b"images:\n- name: app\n  newTag:\tv1\n", "invalid YAML"),
        (b"images:\n- name: app\n---\nimages: []\n", "2 YAML documents"),
        (b"", "empty"),
        (b"resources: [a.yaml]\n", "no images: list"),
        (b"images:\n", "images: is not a list"),
        (b"images: {name: app}\n", "images: is not a list"),
        (b"images:\n- app:v1\n", "images[0] (line 2) is not a mapping"),
        (b"images:\n- name: app\n  newTag: [v1]\n", "not a string"),
        (b"images:\n- name: app\n  newTag: v1\n  newTag: v2\n", "duplicate key"),
        (b"images: []\nimages:\n- name: app\n", "duplicate key"),
        (b"kind: Deployment\nimages:\n- name: app\n", "kind is Deployment"),
        (b"images:\n- name: app\n  newTag: \xff\n", "not UTF-8"),
        (b"images:\n- {}\n", "is empty"),
        (b"kind: [Kustomization]\nimages: []\n", "kind is not a string"),
        (b"? : images:\n", "ruamel.yaml cannot read it"),  # ruamel raises TypeError here, not a YAMLError
    ],
)
def test_files_that_are_not_kustomizations_are_refused(content: bytes, problem: str) -> None:
    with pytest.raises(InvalidKustomization) as caught:
        set_image_bytes(content, "app", tag="v2", path="k.yaml")
    assert problem in str(caught.value)
    assert caught.value.path == "k.yaml"
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("images:\n- name: app\n  newTag: &t v1\n- name: web\n  newTag: *t\n", "anchor &t"),
        ("tags:\n  t: &t v1\nimages:\n- name: app\n  newTag: *t\n", "alias *t"),
        ("images:\n- &e\n  name: app\n  newTag: v1\n", "anchor &e"),
        ("base: &b {newTag: v1}\nimages:\n- name: app\n  <<: *b\n", "alias *b"),
        ("images:\n- name: app\n  <<: {newTag: v1}\n", "merge key"),
        ("images:\n- name: app\n  newTag: !!str v1\n", "explicit tag"),
        ("!!str images:\n- name: app\n  newTag: v1\n", "explicit tag"),
        ("images: &all\n- name: app\n  newTag: v1\ncopy: *all\n", "anchor &all"),
        ("x: &all\n- name: app\n  newTag: v1\nimages: *all\n", "alias"),
        ("images:\n- name: app\n  newTag: |\n    v1\n", "block scalar"),
        ("images:\n- name: app\n  newName: reg/a\x85b\n  newTag: v1\n", "line separator"),  # NEL: ruamel folds it
        ("base: &e {name: app, newTag: v1}\nimages:\n- *e\n", "images[0] is an alias"),
    ],
)
def test_entries_written_with_yaml_features_that_cannot_be_spliced_are_refused(text: str, problem: str) -> None:
    with pytest.raises(UnsafeEdit) as caught:
        set_image(text, "app", tag="v2")
    assert problem in str(caught.value)


def test_unsafe_features_elsewhere_do_not_block_the_edit() -> None:
    text = "labels: &l {team: a}\ncommonLabels: *l\nimages:\n- name: web\n  newTag: &w v1\n- name: app\n  newTag: v1\n"
    edit = set_image(text, "app", tag="v2")
    assert edit.text == text[: -len("v1\n")] + "v2\n"
    # reading an entry with an anchor is fine; only an edit of it is refused
    assert current(text, "web") == ImageRef("web", None, "v1", None)
    # an entry that is an alias does not disturb the ones after it
    text = "base: &e {name: web}\nimages:\n- name: app\n- *e\n- name: x\n  newTag: v1\n"
    assert set_image(text, "x", tag="v2").text == text.replace("v1", "v2")
    assert set_image(text, "app", tag="v2").text == text.replace("- name: app\n", "- name: app\n  newTag: v2\n")


def test_a_failed_read_back_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-parse check is the last guard: a splice that breaks the file (simulated) becomes UnsafeEdit."""
    monkeypatch.setattr(kustomize, "_render", lambda value, style, entry: f'"{value}')  # an unclosed quote
    with pytest.raises(UnsafeEdit, match="did not read back as intended"):
        set_image("images:\n- name: app\n  newTag: v1\n", "app", tag="v2")
    monkeypatch.setattr(kustomize, "_render", lambda value, style, entry: f"{value}\nextra: 1")
    with pytest.raises(UnsafeEdit, match="the document differs"):
        set_image("images:\n- name: app\n  newTag: v1\nz: 1\n", "app", tag="v2")


# --- kustomize itself ---------------------------------------------------------------------------------------------

KUBECTL = shutil.which("kubectl")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - {name: app, image: app:0.1}
      - {name: web, image: web:0.1}
      - {name: orders, image: ORDERS}
"""


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize(
    ("images", "image", "tag", "digest", "rendered"),
    [
        ("- name: app\n  newTag: v1\n", "app", "1.10", None, "app:1.10"),  # plain 1.10 would not build
        (f"- name: app\n  newTag: v1\n  digest: {OTHER_DIGEST}\n", "app", "v2", None, "app:v2"),
        ("- {name: app, newTag: v1}\n", "app", "v2", DIGEST, f"app:v2@{DIGEST}"),
        ("- name: app\n  newTag: v1\n", "app", None, DIGEST, f"app@{DIGEST}"),
        (f"- name: ORDERS\n  newName: {ECR}/orders\n", "orders", "v3", None, f"{ECR}/orders:v3"),
    ],
)
def test_kustomize_renders_the_edited_image(
    tmp_path: Path, images: str, image: str, tag: str | None, digest: str | None, rendered: str
) -> None:
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    others = "- name: web\n  newTag: '0.2'\n"
    text = "resources:\n- deployment.yaml\nimages:\n" + images + others
    edit = set_image(text, image, tag=tag, digest=digest)
    (tmp_path / "kustomization.yaml").write_text(edit.text)
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    containers = yaml.safe_load(result.stdout)["spec"]["template"]["spec"]["containers"]
    images_by_name = {c["name"]: c["image"] for c in containers}
    assert images_by_name[image] == rendered
    assert images_by_name["web"] == "web:0.2"  # the other entry still applies


# --- property: generated kustomizations ----------------------------------------------------------------------------

TAGS = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True),
    st.sampled_from(["1.10", "1.0", "2024-01-01", "007", "1e3", "yes", "null", "True", "v1.2.3-rc.1", "latest"]),
)
DIGESTS = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)
COMMENT_TEXT = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"], exclude_characters="\x85"), max_size=12
)


def _plain_ok(value: str) -> bool:
    """Whether a plain scalar reads back as this string under YAML 1.1 (PyYAML) and 1.2 (ruamel)."""
    from ruamel.yaml import YAML

    line = f"k: {value}"
    return bool(yaml.safe_load(line)["k"] == value and YAML(typ="safe").load(line)["k"] == value)


def _scalar(draw: st.DrawFn, value: str) -> str:
    style = draw(st.sampled_from(["", "'", '"']))
    if not style and not _plain_ok(value):
        style = '"'
    return f"{style}{value}{style}"


def _comment(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["", "", " # " + draw(COMMENT_TEXT), "  #" + draw(COMMENT_TEXT)]))


@dataclass
class Generated:
    lines: list[str]
    eol: str
    bom: bool
    final_newline: bool
    target_lines: tuple[int, int]  # first and last line index of the target entry
    target: int
    image: str
    fields: dict[str, str]  # the target entry as generated

    @property
    def text(self) -> str:
        return ("\ufeff" if self.bom else "") + self.eol.join(self.lines) + (self.eol if self.final_newline else "")


TOP_KEYS = [
    ["apiVersion: kustomize.config.k8s.io/v1beta1"],
    ["kind: Kustomization"],
    ["namespace: shop  # where it runs"],
    ["resources:", "- ../../base", "- 'ingress.yaml'"],
    [
        "patches:",
        "- target: {kind: Deployment}",
        "  patch: |-",
        "    - op: add",
        "      path: /x",
        "      value: 'a: b'",
    ],
    ["# a comment between top-level keys"],
    ["commonLabels:", "  app: shop"],
]


@st.composite
def kustomizations(draw: st.DrawFn) -> Generated:
    count = draw(st.integers(1, 4))
    flow_list = draw(st.sampled_from(["block", "block", "flow-one-line", "flow-lines"]))
    indent = draw(st.sampled_from(["", "  ", "    "]))
    gap = draw(st.sampled_from([" ", "   "]))
    entries = []
    for i in range(count):
        kind = draw(st.sampled_from(["name", "ecr-name", "placeholder"]))
        fields = {"name": {"name": f"app{i}", "ecr-name": f"{ECR}/app{i}", "placeholder": f"PH{i}"}[kind]}
        if kind == "placeholder":
            fields["newName"] = f"{ECR}/real{i}"
        elif draw(st.booleans()):
            fields["newName"] = f"mirror.example.com/app{i}"
        if draw(st.booleans()):
            fields["newTag"] = draw(TAGS)
        if draw(st.booleans()):
            fields["digest"] = draw(DIGESTS)
        order = draw(st.permutations(list(fields)))
        pairs = [f"{_scalar(draw, key)}: {_scalar(draw, fields[key])}" for key in order]
        image = f"real{i}" if kind == "placeholder" else f"app{i}"
        if draw(st.booleans()):
            image = f"{ECR}/{image}"
        entries.append((fields, pairs, image, draw(st.booleans()) and flow_list == "block"))
    target = draw(st.integers(0, count - 1))
    before: list[list[str]] = []
    after: list[list[str]] = []
    for key_lines in draw(st.permutations(TOP_KEYS)):
        if draw(st.booleans()):
            (before if draw(st.booleans()) else after).append(key_lines)

    lines: list[str] = [line for block in before for line in block]
    spans: list[tuple[int, int]] = []
    if flow_list == "flow-one-line":
        spans = [(len(lines), len(lines))] * count
        lines.append("images: [" + ", ".join("{" + ", ".join(p) + "}" for _, p, _, _ in entries) + "]" + _comment(draw))
    elif flow_list == "flow-lines":
        lines.append("images: [" + _comment(draw))
        for _, pairs, _, _ in entries:
            spans.append((len(lines), len(lines)))
            lines.append(f"{indent}  {{{', '.join(pairs)}}}," + _comment(draw))
        lines.append(f"{indent}]")
    else:
        lines.append("images:" + _comment(draw))
        for _, pairs, _, flow_entry in entries:
            if draw(st.booleans()):
                lines.append(f"{indent}# before an entry{_comment(draw)}")
            first = len(lines)
            if flow_entry:
                lines.append(f"{indent}-{gap}{{{', '.join(pairs)}}}" + _comment(draw))
            else:
                lines.append(f"{indent}-{gap}{pairs[0]}" + _comment(draw))
                for pair in pairs[1:]:
                    if draw(st.integers(0, 4)) == 0:
                        lines.append(f"{indent} {gap}# inside the entry")
                    lines.append(f"{indent} {gap}{pair}" + _comment(draw))
            spans.append((first, len(lines) - 1))
    lines.extend(line for block in after for line in block)
    if draw(st.booleans()):
        lines.append("# the end")
    return Generated(
        lines=lines,
        eol=draw(st.sampled_from(["\n", "\r\n"])),
        bom=draw(st.booleans()),
        final_newline=draw(st.booleans()),
        target_lines=spans[target],
        target=target,
        image=entries[target][2],
        fields=entries[target][0],
    )


@settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=kustomizations(), tag=st.one_of(st.none(), TAGS), digest=st.one_of(st.none(), DIGESTS))
def test_property_only_the_target_entry_changes(doc: Generated, tag: str | None, digest: str | None) -> None:
    if tag is None and digest is None:
        tag = "v9"
    old = doc.text
    edit = set_image_bytes(old.encode(), doc.image, tag=tag, digest=digest)
    new = edit.content.decode()

    # the document reads as before with only the target's newTag/digest changed
    assert yaml.safe_load(new) == _expected_data(old, doc.target, tag, digest)
    # every byte outside the target entry's lines is identical
    first, last = doc.target_lines
    prefix = ("\ufeff" if doc.bom else "") + "".join(line + doc.eol for line in doc.lines[:first])
    suffix = "".join(doc.eol + line for line in doc.lines[last + 1 :]) + (doc.eol if doc.final_newline else "")
    assert new.startswith(prefix)
    assert new.endswith(suffix)
    assert len(new) >= len(prefix) + len(suffix)
    # the module reports what it wrote; the same edit again changes nothing
    assert edit.new == ImageRef(doc.fields["name"], doc.fields.get("newName"), tag, digest)
    assert edit.changed == ((doc.fields.get("newTag"), doc.fields.get("digest")) != (tag, digest))
    again = set_image_bytes(edit.content, doc.image, tag=tag, digest=digest)
    assert not again.changed
    assert again.content == edit.content


PIECES = [
    *["images:", "\n", "\r\n", "- ", "  ", "name: app", "name: web", "newTag: v1", f"digest: {OTHER_DIGEST}"],
    *["newName: x/app", "{", "}", "[", "]", ", ", "# c", "'", '"', "&a ", "*a", "!!str ", "|", ">", "\t", ": "],
    *["app", "newTag:", "? ", "---", "...", "<<: ", "kind: Kustomization", "\ufeff", "\x85", "1.10", "~", "null"],
]


@st.composite
def mutated_corpus(draw: st.DrawFn) -> tuple[Case, str]:
    """A corpus file with a few random pieces of YAML syntax inserted or characters deleted."""
    case = draw(st.sampled_from(CASES))
    text = (CORPUS / f"{case.name}.yaml").read_text()
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:position] + draw(st.sampled_from(PIECES)) + text[position:]
        else:
            text = text[:position] + text[position + draw(st.integers(1, 3)) :]
    return case, text


@settings(max_examples=2 * PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutated=mutated_corpus(),
    want=st.sampled_from([("v2", None), (None, DIGEST), ("1.10", DIGEST)]),
)
def test_property_damaged_files_are_edited_right_or_refused(
    mutated: tuple[Case, str], want: tuple[str | None, str | None]
) -> None:
    """Odd but possibly valid YAML: the edit reads back as intended, or a KustomizationError says why not; the
    re-parse guard never has to catch a splice that went wrong."""
    case, text = mutated
    tag, digest = want
    try:
        edit = set_image(text, case.image, tag=tag, digest=digest)
    except kustomize.KustomizationError as exc:
        assert "did not read back" not in str(exc), text
        return
    ref = current(edit.text, case.image)
    assert ref is not None
    assert (ref.tag, ref.digest) == (tag, digest)
    assert edit.changed == (edit.text != text)


def test_importing_the_module_does_not_load_ruamel() -> None:
    """ruamel.yaml is not in the shared layer: only image_updater ships it, and only an edit may import it."""
    import sys

    code = "import sys, eksops.images.kustomize; print(sorted(m for m in sys.modules if m.startswith('ruamel')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
