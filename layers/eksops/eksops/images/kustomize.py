"""Byte-exact edit of one ``images:`` entry of a kustomization.yaml: only that entry's bytes change.

ruamel.yaml (round trip) parses the file to *locate* the nodes: the ``images:`` sequence, the matching entry and its
``name``/``newName``/``newTag``/``digest`` scalars, with their character positions. The new value is then spliced
into the original text at those positions; the document is never re-dumped (a dump is never byte-exact). Every
byte outside the entry (comments, key order, quoting, indentation, flow style, line endings, a BOM, a missing final
newline) is kept, and so is everything inside the entry that is not the replaced scalar. Before an edit is
returned, the new text is parsed again and must equal the old document with exactly the intended fields changed;
anything else raises :class:`UnsafeEdit` instead of writing something wrong.

Kustomize semantics relied on (checked against kustomize 5.5 through ``kubectl kustomize`` in the tests):

- An entry is matched by the IMAGE_MAP ``image``, in this order of precedence; the first level with a match wins
  and two entries matching at the same level is :class:`AmbiguousImage`:
  1. ``name`` equal to the image, 2. ``name`` equal up to an ECR registry prefix
  (``<account>.dkr.ecr.<region>.amazonaws.com/app`` matches ``app``, either side), 3. ``newName`` equal,
  4. ``newName`` equal up to an ECR registry prefix. ``name`` is kustomize's key for the entry (what
  ``kustomize edit set image`` looks up), so it beats ``newName``; an exact spelling beats a normalised one, so
  an operator can always target one entry by writing its ``name`` as is. A ``:tag`` or ``@sha256:`` suffix is
  ignored when comparing. No match is :class:`ImageNotInFile`: an entry is never appended.
- ``set_image(tag=..., digest=...)`` states the entry's final ``newTag`` and ``digest``; ``None`` removes the key
  (an empty ``digest:`` or ``""`` already reads as none and is left alone). Kustomize 5 renders ``name:tag@digest``
  when both are set (older releases dropped the tag) and the digest decides what is pulled, so a stale digest left
  beside a new tag would pin the old image: a tag-only update removes an existing ``digest`` (as Flux's image
  automation does). ``digest: true`` in IMAGE_MAP maps to ``tag=..., digest=...`` (both: the tag stays readable in
  review) or ``tag=None, digest=...`` (the digest instead of the tag). Swapping one for the other rewrites that
  pair in place. A new key goes after the nearest field before it in kustomize's order (name, newName, newTag,
  digest), on its own line with the entry's indentation and that line's ending, or inside the braces of a flow
  mapping; it is quoted like its siblings.
- Kustomize reads ``newTag`` into a string field and refuses a number (``newTag: 1.10`` fails the build), so a tag
  that a YAML 1.1 or 1.2 parser would read as anything but a string is quoted, in double quotes as
  ``kustomize edit`` writes them (single quotes when the entry already uses them). A replaced scalar keeps its
  quoting otherwise.
- Refused (:class:`InvalidKustomization`): not UTF-8, invalid YAML (ruamel rejects tabs), several documents, not a
  mapping, ``kind`` other than Kustomization or Component, duplicate keys, no ``images:`` list. Refused
  (:class:`UnsafeEdit`) when the target entry would need rewriting YAML features: anchors, aliases, merge keys,
  explicit tags, block scalars, Unicode line separators (ruamel and Go disagree on them). Other entries may use them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from eksops.errors import PermanentError

__all__ = [
    "AmbiguousImage",
    "ImageEdit",
    "ImageNotInFile",
    "ImageRef",
    "InvalidKustomization",
    "KustomizationError",
    "UnsafeEdit",
    "current",
    "current_bytes",
    "same_image",
    "set_image",
    "set_image_bytes",
]

DEFAULT_PATH = "kustomization.yaml"
# Docker's tag grammar; a tag never needs escaping inside quotes and never carries YAML syntax.
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
ECR_HOST_RE = re.compile(r"\d{12}\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?", re.IGNORECASE)
# The order kustomize itself writes the fields in; a new key goes after the nearest one before it.
FIELD_ORDER = ("name", "newName", "newTag", "digest")
KUSTOMIZE_KINDS = frozenset({"Kustomization", "Component"})
_BREAK_RE = re.compile(r"\r\n|\r|\n")
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


class KustomizationError(PermanentError):
    """A kustomization file that cannot be edited as asked; the message names the file and the reason."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class InvalidKustomization(KustomizationError):
    """Not a kustomization this module can read: not UTF-8, invalid YAML (tabs included), several documents,
    not a mapping, a duplicate key, no ``images:`` list, or an ``images:`` entry that is not a mapping of strings."""


class ImageNotInFile(KustomizationError):
    """No ``images:`` entry matches the image. Never fixed by appending an entry: the operator adds it."""

    def __init__(self, path: str, image: str, names: tuple[str, ...]) -> None:
        self.image = image
        self.names = names
        listed = ", ".join(names) if names else "none"
        super().__init__(path, f"no images: entry matches {image} (entries: {listed})")


class AmbiguousImage(KustomizationError):
    """Several entries match the image at the same precedence level; nothing is changed."""

    def __init__(self, path: str, image: str, lines: tuple[int, ...]) -> None:
        self.image = image
        self.lines = lines
        at = ", ".join(str(line) for line in lines)
        super().__init__(path, f"several images: entries match {image} (lines {at}); write the exact name")


class UnsafeEdit(KustomizationError):
    """The entry uses YAML this module will not rewrite (anchors, aliases, merge keys, explicit tags, block
    scalars), or the edited text failed the re-parse check. Refusing beats writing something wrong."""


@dataclass(frozen=True)
class ImageRef:
    """An ``images:`` entry's fields as written (``None`` when absent or null)."""

    name: str | None
    new_name: str | None = None
    tag: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class ImageEdit:
    """The outcome of :func:`set_image`: the new text, and the entry before and after."""

    path: str
    image: str  # the image asked for
    old: ImageRef
    new: ImageRef
    text: str  # the whole new document (identical to the input when nothing changed)
    changed: bool
    lines: tuple[int, int]  # first and last line (1-based) of the entry in the new text

    @property
    def content(self) -> bytes:
        return self.text.encode("utf-8")

    def describe(self) -> str:
        """One line for commit messages and reports, e.g. ``app newTag 1.0 -> 1.1``."""
        parts = [
            f"{label} {_show(before)} -> {_show(after)}"
            for label, before, after in (
                ("newTag", self.old.tag, self.new.tag),
                ("digest", self.old.digest, self.new.digest),
            )
            if before != after
        ]
        return f"{self.image} " + (", ".join(parts) if parts else "unchanged")


def _show(value: str | None) -> str:
    return "-" if value is None else value


# --- image names ----------------------------------------------------------------------------------------------


def _split_image(image: str) -> tuple[str | None, str]:
    """(registry host or None, repository path), without ``:tag`` or ``@digest``."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:  # a tag, not a registry port
        name = name[:colon]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.lower(), rest
    return None, name


def _match_level(written: str, image: str) -> int | None:
    """0 when ``written`` names the image exactly, 1 when equal up to an ECR registry prefix, else None."""
    a_host, a_path = _split_image(written)
    b_host, b_path = _split_image(image)
    if a_path != b_path:
        return None
    if a_host == b_host:
        return 0
    # An ECR prefix on one side only: `app` in the file stands for the account's repository. Two different
    # registries (two accounts) are two different images.
    if a_host is None or b_host is None:
        host = a_host or b_host or ""
        return 1 if ECR_HOST_RE.fullmatch(host) else None
    return None


def same_image(a: str, b: str) -> bool:
    """Whether two image names denote the same repository (an ECR registry prefix may be written on one side)."""
    return _match_level(a, b) is not None


# --- parsing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    key: Any  # ruamel ScalarNode
    value: Any  # ruamel Node
    end: int  # end of the value's text; just after the ':' when the value is empty

    @property
    def name(self) -> str:
        return str(self.key.value)

    @property
    def start(self) -> int:
        return int(self.key.start_mark.index)


@dataclass(frozen=True)
class _Entry:
    index: int  # position in the images: list
    node: Any  # ruamel MappingNode
    pairs: tuple[_Pair, ...]
    aliased: bool = False  # `- *name`: the mapping is written elsewhere

    @property
    def flow(self) -> bool:
        return bool(self.node.flow_style)

    @property
    def start(self) -> int:
        return int(self.node.start_mark.index)

    @property
    def end(self) -> int:
        return max(pair.end for pair in self.pairs)

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def pair(self, key: str) -> _Pair | None:
        return next((pair for pair in self.pairs if pair.name == key), None)

    def value(self, key: str) -> str | None:
        pair = self.pair(key)
        return None if pair is None else _scalar_text(pair.value)

    def ref(self) -> ImageRef:
        return ImageRef(self.value("name"), self.value("newName"), self.value("newTag"), self.value("digest"))


@dataclass(frozen=True)
class _Doc:
    text: str
    path: str
    data: Any  # the round-trip data, for the re-parse check
    entries: tuple[_Entry, ...]
    images_node: Any
    images_key: Any
    marked: tuple[tuple[int, str], ...]  # (position, what) of every anchor, alias and explicit tag


def _resolves_to(value: str, tag: str) -> bool:
    """Whether a plain scalar reads as ``tag`` under both YAML 1.1 and 1.2 resolution."""
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    return all(
        str(VersionedResolver(version=version).resolve(ScalarNode, value, (True, False))) == tag
        for version in ((1, 1), (1, 2))
    )


def _scalar_text(node: Any) -> str | None:
    """A field's value as kustomize reads it: the text as written, or None for a null or an empty string (kustomize
    treats ``newTag: ""`` as no newTag)."""
    if node.value == "" or (node.style is None and _resolves_to(node.value, _NULL)):
        return None
    return str(node.value)


def _read(text: str, path: str) -> tuple[Any, Any, tuple[tuple[int, str], ...]]:
    """(root node, round-trip data, marked positions), or InvalidKustomization."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent, DocumentStartEvent

    yaml = YAML(typ="rt")
    try:
        events = list(yaml.parse(text))
    except YAMLError as exc:
        raise InvalidKustomization(path, f"invalid YAML: {' '.join(str(exc).split())}") from exc
    documents = sum(isinstance(event, DocumentStartEvent) for event in events)
    if documents != 1:
        problem = "empty" if documents == 0 else f"{documents} YAML documents, a kustomization is one"
        raise InvalidKustomization(path, problem)
    try:
        data = yaml.load(text)  # also refuses duplicate keys anywhere, as kustomize does
        root = yaml.compose(text)
    except YAMLError as exc:
        raise InvalidKustomization(path, f"invalid YAML: {' '.join(str(exc).split())}") from exc
    except Exception as exc:  # ruamel fails on some odd YAML (a mapping as a key) with a TypeError, not a YAMLError
        raise InvalidKustomization(path, f"ruamel.yaml cannot read it ({type(exc).__name__}: {exc})") from exc
    marked: list[tuple[int, str]] = []
    for event in events:
        if isinstance(event, AliasEvent):
            marked.append((event.start_mark.index, f"alias *{event.anchor}"))
        elif getattr(event, "anchor", None):
            marked.append((event.start_mark.index, f"anchor &{event.anchor}"))
        elif getattr(event, "tag", None):
            marked.append((event.start_mark.index, f"explicit tag {event.tag}"))
    return root, data, tuple(marked)


def _analyse(text: str, path: str) -> _Doc:
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    root, data, marked = _read(text, path)
    if not isinstance(root, MappingNode):
        raise InvalidKustomization(path, "not a kustomization: the document is not a mapping")
    top = {str(key.value): (key, value) for key, value in root.value if isinstance(key, ScalarNode)}
    kind = top["kind"][1] if "kind" in top else None
    if kind is not None and not (isinstance(kind, ScalarNode) and kind.value in KUSTOMIZE_KINDS):
        shown = kind.value if isinstance(kind, ScalarNode) else "not a string"
        raise InvalidKustomization(path, f"not a kustomization: kind is {shown}")
    if "images" not in top:
        raise InvalidKustomization(path, "no images: list")
    key, images = top["images"]
    if not isinstance(images, SequenceNode):
        raise InvalidKustomization(path, "images: is not a list")
    entries = []
    cursor = images.start_mark.index
    for index, item in enumerate(images.value):
        where = f"images[{index}] (line {item.start_mark.line + 1})"
        if not isinstance(item, MappingNode):
            raise InvalidKustomization(path, f"{where} is not a mapping")
        # The composer hands an alias the anchored node itself, whose marks point where the anchor is written.
        aliased = item.start_mark.index < cursor
        cursor = max(cursor, item.end_mark.index)
        pairs = []
        for k, v in item.value:
            if not isinstance(k, ScalarNode) or not (isinstance(v, ScalarNode) or k.value == "<<"):
                raise InvalidKustomization(path, f"{where} holds a value that is not a string")
            pairs.append(_Pair(k, v, _value_end(text, k, v)))
        if not pairs:
            raise InvalidKustomization(path, f"{where} is empty")
        entries.append(_Entry(index, item, tuple(pairs), aliased))
    return _Doc(text, path, data, tuple(entries), images, key, marked)


def _value_end(text: str, key: Any, value: Any) -> int:
    """Where a pair's text ends. An empty value has no span of its own: ruamel places it at the next token; an
    alias's marks are those of its anchor."""
    if value.end_mark.index > value.start_mark.index >= key.end_mark.index:
        return int(value.end_mark.index)
    colon = key.end_mark.index
    while colon < len(text) and text[colon] == " ":
        colon += 1
    return int(colon) + 1 if text[colon : colon + 1] == ":" else int(key.end_mark.index)


def _find(doc: _Doc, image: str) -> _Entry | None:
    best: list[_Entry] = []
    best_level = 4
    for entry in doc.entries:
        for offset, field in ((0, "name"), (2, "newName")):
            written = entry.value(field)
            level = None if written is None else _match_level(written, image)
            if level is None:
                continue
            level += offset
            if level < best_level:
                best, best_level = [entry], level
            elif level == best_level and entry not in best:
                best.append(entry)
            break  # an entry counts once, at its best level (name before newName)
    if len(best) > 1:
        raise AmbiguousImage(doc.path, image, tuple(entry.line for entry in best))
    return best[0] if best else None


def _entry_names(doc: _Doc) -> tuple[str, ...]:
    return tuple(entry.value("name") or entry.value("newName") or "?" for entry in doc.entries)


# --- public API -------------------------------------------------------------------------------------------------


def current(text: str, image: str, *, path: str = DEFAULT_PATH) -> ImageRef | None:
    """The entry for ``image`` as written, or None when no entry matches (an invalid file raises)."""
    entry = _find(_analyse(text, path), image)
    return None if entry is None else entry.ref()


def current_bytes(content: bytes, image: str, *, path: str = DEFAULT_PATH) -> ImageRef | None:
    return current(_decode(content, path), image, path=path)


def set_image(
    text: str,
    image: str,
    *,
    tag: str | None,
    digest: str | None = None,
    path: str = DEFAULT_PATH,
) -> ImageEdit:
    """Set the ``newTag`` and ``digest`` of ``image``'s entry to exactly ``tag`` and ``digest`` (``None`` removes
    the key), changing no byte outside that entry. Nothing to change: the text comes back identical."""
    if tag is None and digest is None:
        raise ValueError("set_image needs a tag, a digest, or both")
    if tag is not None and not TAG_RE.fullmatch(tag):
        raise ValueError(f"not an image tag: {tag!r}")
    if digest is not None and not DIGEST_RE.fullmatch(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    doc = _analyse(text, path)
    entry = _find(doc, image)
    if entry is None:
        raise ImageNotInFile(path, image, _entry_names(doc))
    want = {"newTag": tag, "digest": digest}
    splices = _plan(doc, entry, want)
    old = entry.ref()
    if not splices:
        return ImageEdit(path, image, old, old, text, False, _lines(doc.text, entry))
    new_text = _apply(text, splices)
    new_doc, new_entry = _verify(doc, entry, new_text, image, want)
    return ImageEdit(path, image, old, new_entry.ref(), new_text, True, _lines(new_doc.text, new_entry))


def set_image_bytes(
    content: bytes,
    image: str,
    *,
    tag: str | None,
    digest: str | None = None,
    path: str = DEFAULT_PATH,
) -> ImageEdit:
    """:func:`set_image` on a file's bytes (UTF-8, a BOM kept); ``ImageEdit.content`` holds the new bytes."""
    return set_image(_decode(content, path), image, tag=tag, digest=digest, path=path)


def _decode(content: bytes, path: str) -> str:
    # Plain "utf-8" (not "utf-8-sig") keeps a BOM as U+FEFF, so encoding the text back gives it back byte for byte;
    # line endings are left alone (no universal newlines).
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidKustomization(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


# --- the edit ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Splice:
    start: int
    end: int
    text: str


def _apply(text: str, splices: list[_Splice]) -> str:
    ordered = sorted(splices, key=lambda s: (s.start, s.end))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:  # never expected: the plan touches each pair once
            raise AssertionError(f"overlapping edits {before} and {after}")
    # Back to front, so earlier positions stay valid; at one position the removal goes before the insertion.
    for splice in reversed(ordered):
        text = text[: splice.start] + splice.text + text[splice.end :]
    return text


def _plan(doc: _Doc, entry: _Entry, want: dict[str, str | None]) -> list[_Splice]:
    changes = {
        key: value
        for key, value in want.items()
        if not _already(entry.pair(key), value)  # a pair already right, or a key already absent, stays as is
    }
    if not changes:
        return []
    _check_safe(doc, entry)
    text = doc.text
    removed = [key for key, value in changes.items() if value is None]
    added = [key for key, value in changes.items() if value is not None and entry.pair(key) is None]
    if len(removed) == 1 and len(added) == 1:
        # newTag swapped for digest (or back): one pair rewritten in place, the smallest diff, and no line-level
        # removal and insertion meeting at the same line break.
        pair = entry.pair(removed[0])
        assert pair is not None
        return [_Splice(pair.start, pair.end, _render_pair(entry, added[0], str(changes[added[0]]), pair))]
    splices: list[_Splice] = []
    for key in removed:
        pair = entry.pair(key)
        assert pair is not None
        splices.append(_remove(text, entry, pair))
    for key, value in changes.items():
        pair = entry.pair(key)
        if pair is not None and value is not None:
            splices.append(_replace(doc, entry, pair, value))
    inserts: dict[int, list[tuple[str, str]]] = {}  # index of the pair to insert after -> new pairs, in FIELD_ORDER
    for key in FIELD_ORDER:
        if key in added:
            inserts.setdefault(_anchor(entry, key, set(removed)), []).append((key, str(changes[key])))
    for after, items in inserts.items():
        splices.append(_insert(text, entry, entry.pairs[after], items))
    return splices


def _already(pair: _Pair | None, value: str | None) -> bool:
    if pair is None:
        return value is None
    if value is None:  # `digest:` left empty reads as no digest: nothing to remove
        return _scalar_text(pair.value) is None
    if pair.value.value != value:
        return False
    # A plain `newTag: 1.10` is a number to kustomize (its build fails): the same text, quoted, is a change.
    return pair.value.style is not None or _resolves_to(value, _STR)


def _check_safe(doc: _Doc, entry: _Entry) -> None:
    images = doc.images_node
    if images.start_mark.index < doc.images_key.end_mark.index:
        raise UnsafeEdit(doc.path, "images: is an alias of a list written elsewhere; edit by hand")
    if entry.aliased:
        raise UnsafeEdit(doc.path, f"images[{entry.index}] is an alias of a mapping written elsewhere; edit by hand")
    for position, what in doc.marked:
        if position in (images.start_mark.index, doc.images_key.start_mark.index):
            raise UnsafeEdit(doc.path, f"images: is written with an {what}; edit by hand")
        if entry.start <= position < entry.node.end_mark.index:
            raise UnsafeEdit(doc.path, f"images: entry at line {entry.line} is written with an {what}; edit by hand")
    for pair in entry.pairs:
        if pair.name == "<<":
            raise UnsafeEdit(doc.path, f"images: entry at line {entry.line} uses a merge key; edit by hand")
        if getattr(pair.value, "style", None) in ("|", ">"):
            raise UnsafeEdit(doc.path, f"images: entry at line {entry.line} holds a block scalar; edit by hand")
    # ruamel breaks lines at NEL/LS/PS too, Go's YAML does not: positions in such an entry mean different things.
    if any(ch in doc.text[entry.start : entry.end] for ch in "\x85\u2028\u2029"):
        raise UnsafeEdit(doc.path, f"images: entry at line {entry.line} holds a Unicode line separator")


def _quote_of(entry: _Entry) -> str:
    """The quote a value that cannot stay plain gets: double as kustomize writes, single if the entry uses them."""
    styles = {pair.value.style for pair in entry.pairs}
    return "'" if "'" in styles and '"' not in styles else '"'


def _render(value: str, style: str | None, entry: _Entry) -> str:
    if style is None and not _resolves_to(value, _STR):
        style = _quote_of(entry)
    return f"{style}{value}{style}" if style else value


def _replace(doc: _Doc, entry: _Entry, pair: _Pair, value: str) -> _Splice:
    node = pair.value
    if node.end_mark.index == node.start_mark.index:  # `newTag:` with nothing after: fill it in
        if doc.text[pair.end - 1] == ":":
            return _Splice(pair.end, pair.end, " " + _render(value, None, entry))
        if entry.flow and doc.text[entry.start : pair.start].rstrip()[-1:] in ("{", ","):
            return _Splice(pair.end, pair.end, ": " + _render(value, None, entry))  # `{name: app, newTag}`
        raise UnsafeEdit(doc.path, f"images: entry at line {entry.line} writes {pair.name} as an explicit key")
    return _Splice(node.start_mark.index, node.end_mark.index, _render(value, node.style, entry))


def _anchor(entry: _Entry, key: str, removed: set[str]) -> int:
    """Index of the pair a new ``key`` goes after: the kept field nearest before it in kustomize's order."""
    rank = FIELD_ORDER.index(key)
    best, best_rank = len(entry.pairs) - 1, -1
    for index, pair in enumerate(entry.pairs):
        if pair.name in FIELD_ORDER and pair.name not in removed:
            pair_rank = FIELD_ORDER.index(pair.name)
            if best_rank < pair_rank < rank:
                best, best_rank = index, pair_rank
    return best


def _line_break(text: str, position: int) -> tuple[int, str]:
    """The first line break at or after ``position`` and the break itself; (len(text), "") at the end."""
    found = _BREAK_RE.search(text, position)
    return (found.start(), found.group()) if found else (len(text), "")


def _line_start(text: str, position: int) -> int:
    return max(text.rfind("\n", 0, position), text.rfind("\r", 0, position)) + 1


def _document_break(text: str) -> str:
    found = _BREAK_RE.search(text)
    return found.group() if found else "\n"


def _render_pair(entry: _Entry, key: str, value: str, like: _Pair | None = None) -> str:
    """``key: value`` quoted like ``like`` (the pair it replaces), else like a sibling: the other version field
    first, then newName, then name."""
    if like is None:
        like = entry.pair("newTag") or entry.pair("digest") or entry.pair("newName") or entry.pair("name")
    key_quote = (like.key.style if like else None) or ""
    value_style = like.value.style if like else None
    return f"{key_quote}{key}{key_quote}: {_render(value, value_style, entry)}"


def _insert(text: str, entry: _Entry, after: _Pair, items: list[tuple[str, str]]) -> _Splice:
    rendered = [_render_pair(entry, key, value) for key, value in items]
    if entry.flow:
        separator = _flow_separator(text, entry)
        if text[after.end - 1] == ":":  # `newTag:` left empty: `newTag:,` would read as one plain scalar
            separator = " " + separator
        return _Splice(after.end, after.end, "".join(separator + pair for pair in rendered))
    indent = " " * (entry.pairs[-1].start - _line_start(text, entry.pairs[-1].start))
    position, eol = _line_break(text, after.end)
    if eol:  # a line of its own after the anchor's line, ending like it
        return _Splice(position + len(eol), position + len(eol), "".join(f"{indent}{p}{eol}" for p in rendered))
    eol = _document_break(text)  # the anchor ends the file: keep it ending without a newline
    return _Splice(position, position, "".join(f"{eol}{indent}{p}" for p in rendered))


def _flow_separator(text: str, entry: _Entry) -> str:
    """What separates two pairs of this flow mapping (", " or ",\\n    "), when it is only a comma and spaces."""
    for before, after in itertools.pairwise(entry.pairs):
        between = text[before.end : after.start]
        if re.fullmatch(r"[ \r\n]*,[ \r\n]*", between):
            return between
    return ", "


def _remove(text: str, entry: _Entry, pair: _Pair) -> _Splice:
    index = entry.pairs.index(pair)
    following = entry.pairs[index + 1] if index + 1 < len(entry.pairs) else None
    if entry.flow:
        if index > 0:  # ", digest: x" goes with the comma before it
            return _Splice(entry.pairs[index - 1].end, pair.end, "")
        if following is None:  # never: the entry keeps its name
            raise AssertionError("removing the only pair of an entry")
        return _Splice(pair.start, following.start, "")
    line_start = _line_start(text, pair.start)
    if text[line_start : pair.start].strip(" "):  # `- newTag: 1` first on the item's line: the next key moves up
        if following is None:
            raise AssertionError("removing the only pair of an entry")
        return _Splice(pair.start, following.start, "")
    position, eol = _line_break(text, pair.end)
    if eol:
        return _Splice(line_start, position + len(eol), "")
    # The pair ends the file without a newline: take the break before it, so the file still ends without one.
    previous = line_start - 2 if text[line_start - 2 : line_start] == "\r\n" else line_start - 1
    return _Splice(previous, len(text), "")


def _lines(text: str, entry: _Entry) -> tuple[int, int]:
    """First and last line (1-based) of the entry; CRLF, LF and a lone CR each end one line."""
    return _line_number(text, entry.start), _line_number(text, entry.end)


def _line_number(text: str, position: int) -> int:
    return len(_BREAK_RE.findall(text, 0, position)) + 1


# --- the re-parse check -----------------------------------------------------------------------------------------


def _verify(doc: _Doc, entry: _Entry, new_text: str, image: str, want: dict[str, str | None]) -> tuple[_Doc, _Entry]:
    """Parse the edited text again: it must be the old document with exactly the wanted fields changed."""

    def fail(why: str) -> UnsafeEdit:
        return UnsafeEdit(doc.path, f"the edited file did not read back as intended ({why}); nothing written")

    try:
        new_doc = _analyse(new_text, doc.path)
        new_entry = _find(new_doc, image)
    except KustomizationError as exc:
        raise fail(exc.problem) from exc
    if new_entry is None or new_entry.index != entry.index:
        raise fail("the entry moved")
    expected = _plain(doc.data)
    try:
        fields = expected["images"][entry.index]
    except (KeyError, IndexError, TypeError) as exc:
        raise fail("the images: list is not where it was parsed") from exc
    for key, value in want.items():
        if value is not None:
            fields[key] = value
        elif fields.get(key) not in (None, ""):  # an empty `digest:` is left as it is
            del fields[key]
    if _plain(new_doc.data) != expected:
        raise fail("the document differs")
    return new_doc, new_entry


def _plain(value: Any) -> Any:
    """Round-trip data as plain, comparable values (NaN and tagged scalars compared by their text)."""
    import datetime

    if isinstance(value, dict):
        return {(k if isinstance(k, str) else (type(k).__name__, repr(k))): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bool | int | str | datetime.date) or value is None:
        return value
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, repr(value))
