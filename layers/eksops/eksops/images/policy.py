"""Which tag an IMAGE_MAP entry moves to: the semver, latest and regex policies, on a registry listing or one push.

Two paths share the rules:

- :func:`select` (reconcile): from every tag in the repository, the one the policy picks, compared with what the
  config repository holds now.
- :func:`judge` (event): is this one pushed tag acceptable for the entry, and newer than what the file holds?

Both return a :class:`Decision`: ``UPDATE`` (with the target), ``UNCHANGED``, or ``REFUSED`` with a
:class:`Refusal` code and a reason for the report. Nothing here reads AWS or a file; ``semver`` is imported where
versions are parsed (it is in image_updater's requirements, not in the layer).

**Tags as versions** (policy ``semver``). A tag is a version when it is a full SemVer 2.0 version, optionally with
a ``v`` prefix: ``1.4.2``, ``v1.4.2``, ``1.4.2-rc.1``. OCI tags cannot hold ``+``, so build metadata is written
``_`` (Helm's convention for charts in OCI registries): ``1.4.2_build.7`` is ``1.4.2+build.7``; build metadata
never orders versions. Partial tags such as ``1.4`` or ``1`` are not versions: by Docker convention they are
floating aliases that move with each patch release, so writing one would hide which build runs and a later
``1.4.3`` could not be told apart from it. Pre-releases are candidates only when the entry says
``"prerelease": true``.

**Constraints** (``"constraint"``): clauses separated by commas, all of which must hold (``>=1.4,<2``). ``*`` or an
empty string allows every version. A clause is an operator and a version that may be partial (``1``, ``1.4``;
``x`` or ``*`` stand for a missing minor or patch: ``1.4.x``, never for the major); a leading ``v`` is allowed:

======== ==================================================================================================
``=V``   exactly V (``==`` and a bare ``V`` too); a partial V means the whole series: ``=1.4`` is 1.4.x
``!=V``  anything but V (a partial V excludes the series)
``>V``   above V; a partial V excludes its series: ``>1.4`` is ``>=1.5.0``
``>=V``  V or above (a partial V is filled with zeros: ``>=1.4`` is ``>=1.4.0``)
``<V``   below V, and below V's pre-releases too: ``<2`` excludes ``2.0.0-rc.1`` (as npm's ``<2.0.0-0``)
``<=V``  V or below; a partial V includes its series: ``<=1.4`` allows 1.4.9 but not 1.5.0-rc.1
``~V``   patch updates: ``~1.4.2`` is ``>=1.4.2,<1.5``; ``~1.4`` is 1.4.x; ``~1`` is 1.x
``^V``   updates that keep the leftmost non-zero part: ``^1.4.2`` is ``>=1.4.2,<2``; ``^0.4.2`` is ``<0.5``
======== ==================================================================================================

An upper bound written with a pre-release (``<2.0.0-rc.3``) compares by SemVer precedence.

**Never down.** The version in the file is the floor: a higher allowed version is an update, the same version is
no change, and when the best allowed version is below it (the file was moved by hand, or the constraint was
narrowed) the decision is a refusal, not a downgrade. A file whose tag is not a version (``latest``) has no floor.

**latest / regex.** The newest pushed image (``pushed_at``) wins; for ``regex`` only tags that ``fullmatch`` the
entry's pattern are candidates. Tags of the same push tie: the one the file already holds wins (no churn), then
the highest tag string, so the choice is deterministic. Signature and attestation tags (cosign's
``sha256-<digest>.sig|.att|.sbom``) are never candidates, whatever the policy.

**Digests.** With ``"digest": true`` a tag that now points at another digest than the file pins is an update of
the digest (the tag was pushed again).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksops.images.config import ImageEntry

__all__ = [
    "Candidate",
    "Current",
    "Decision",
    "Outcome",
    "Policy",
    "Range",
    "Refusal",
    "compile_tag_pattern",
    "is_artifact_tag",
    "judge",
    "parse_range",
    "parse_tag_version",
    "resolve_current",
    "select",
]

MAX_CONSTRAINT_LENGTH = 200
MAX_PATTERN_LENGTH = 256

_ARTIFACT_TAG = re.compile(r"sha256-[0-9a-f]{64}\.(?:sig|att|sbom)")
_TAG_VERSION = re.compile(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(?:[_+]([0-9A-Za-z.-]+))?")
_CLAUSE = re.compile(r"(==|!=|>=|<=|=|>|<|~|\^)?\s*v?([0-9xX*]\S*)")
_NUMBER = r"(?:0|[1-9]\d*|[xX*])"
_PARTIAL = re.compile(
    rf"(?P<major>{_NUMBER})(?:\.(?P<minor>{_NUMBER})(?:\.(?P<patch>{_NUMBER})(?P<rest>[-+][0-9A-Za-z.+-]+)?)?)?"
)
_ANY = frozenset({"", "*", "x", "X"})


class Policy(StrEnum):
    SEMVER = "semver"
    LATEST = "latest"
    REGEX = "regex"


class Outcome(StrEnum):
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


class Refusal(StrEnum):
    NO_CANDIDATES = "no-candidates"  # the repository holds no usable tag (reconcile)
    NOT_SEMVER = "not-semver"  # the pushed tag is not a version (semver)
    PRERELEASE = "prerelease"  # a pre-release, and the entry does not allow them
    OUT_OF_RANGE = "out-of-range"  # outside the entry's constraint
    NO_MATCH = "no-match"  # does not fullmatch tag_pattern (regex), or nothing does (reconcile)
    DOWNGRADE = "downgrade"  # below the version the file holds (semver)
    OLDER = "older"  # pushed before the image the file holds (latest, regex)
    ARTIFACT = "artifact"  # a signature or attestation tag, not an image


@dataclass(frozen=True)
class Candidate:
    """One tag in the registry: the image it points at and when that image was pushed."""

    tag: str
    digest: str
    pushed_at: datetime


@dataclass(frozen=True)
class Current:
    """What the config repository holds for the image now (``tag`` and ``digest`` as the file writes them), and
    what the registry says about it when known (:func:`resolve_current` fills those in)."""

    tag: str | None = None  # newTag in the file
    digest: str | None = None  # digest in the file
    pushed_at: datetime | None = None  # when the image the file names was pushed
    registry_digest: str | None = None  # the digest the file's tag points at in the registry now
    inferred_tag: str | None = None  # for a digest-only pin: a tag of that digest, to read the version from

    @property
    def version_tag(self) -> str | None:
        return self.tag or self.inferred_tag


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    target: Candidate | None = None  # set when outcome is UPDATE or UNCHANGED
    refusal: Refusal | None = None  # set when outcome is REFUSED

    @property
    def changes(self) -> bool:
        return self.outcome is Outcome.UPDATE


# --- versions and ranges ----------------------------------------------------------------------------------------


def parse_tag_version(tag: str) -> Any | None:
    """The ``semver.Version`` a tag names (``1.4.2``, ``v1.4.2``, ``1.4.2-rc.1``, ``1.4.2_build.7``), or None."""
    match = _TAG_VERSION.fullmatch(tag)
    if match is None:
        return None
    import semver

    text = match[1] + (f"+{match[2]}" if match[2] else "")
    try:
        return semver.Version.parse(text)
    except ValueError:
        return None


def _release(version: Any) -> tuple[int, int, int]:
    return (version.major, version.minor, version.patch)


Clause = Callable[[Any], bool]  # one clause of a constraint: does it allow this semver.Version?


@dataclass(frozen=True)
class Range:
    """A parsed constraint: every clause must hold."""

    text: str
    clauses: tuple[Clause, ...] = field(default=(), compare=False, repr=False)

    def allows(self, version: Any) -> bool:
        return all(clause(version) for clause in self.clauses)

    def __str__(self) -> str:
        return self.text or "*"


def parse_range(text: str) -> Range:
    """Parse a constraint such as ``>=1.4,<2`` (see the module docstring); ValueError says what is wrong."""
    text = text.strip()
    if len(text) > MAX_CONSTRAINT_LENGTH:
        raise ValueError(f"is longer than {MAX_CONSTRAINT_LENGTH} characters")
    if text in _ANY:
        return Range(text)
    clauses = []
    for raw in text.split(","):
        part = raw.strip()
        match = _CLAUSE.fullmatch(part)
        if match is None:
            raise ValueError(f"{text!r} is not a semver range (clause {part!r}; e.g. '>=1.4,<2')")
        clauses.append(_clause(match[1] or "=", match[2], text))
    return Range(text, tuple(clauses))


def _clause(op: str, version_text: str, whole: str) -> Clause:
    import semver

    bad = ValueError(f"{whole!r} is not a semver range ({version_text!r} is not a version; e.g. '>=1.4,<2')")
    match = _PARTIAL.fullmatch(version_text)
    if match is None:
        raise bad
    parts = [match["major"], match["minor"], match["patch"]]
    numbers: list[int] = []
    for part in parts:
        if part is None or part in _ANY:
            break
        numbers.append(int(part))
    if any(part is not None and part not in _ANY for part in parts[len(numbers) :]):
        raise bad  # a number after a wildcard: 1.x.3
    if not numbers:  # a wildcard stands for a missing part, never for the major version: '*' alone means any
        raise ValueError(f"{whole!r} is not a semver range ({version_text!r} needs a major version; any is '*')")
    if len(numbers) == 3:
        try:
            exact = semver.Version.parse(version_text)
        except ValueError:
            raise bad from None
        return _full(op, exact)
    if match["rest"]:
        raise bad  # a pre-release or build on a partial version: 1.4-rc.1
    return _partial(op, numbers)


def _full(op: str, exact: Any) -> Clause:
    bound = _release(exact)
    tilde_top = (exact.major, exact.minor + 1, 0)
    caret_top = _caret_top(bound)
    tests: dict[str, Clause] = {
        "=": lambda v: v.compare(exact) == 0,
        "==": lambda v: v.compare(exact) == 0,
        "!=": lambda v: v.compare(exact) != 0,
        ">": lambda v: v.compare(exact) > 0,
        ">=": lambda v: v.compare(exact) >= 0,
        "<=": lambda v: v.compare(exact) <= 0,
        # Below a release excludes its pre-releases; a bound written with a pre-release compares by precedence.
        "<": (lambda v: v.compare(exact) < 0) if exact.prerelease else (lambda v: _release(v) < bound),
        "~": lambda v: v.compare(exact) >= 0 and _release(v) < tilde_top,
        "^": lambda v: v.compare(exact) >= 0 and _release(v) < caret_top,
    }
    return tests[op]


def _caret_top(bound: tuple[int, int, int]) -> tuple[int, int, int]:
    major, minor, patch = bound
    if major:
        return (major + 1, 0, 0)
    if minor:
        return (0, minor + 1, 0)
    return (0, 0, patch + 1)


def _partial(op: str, numbers: list[int]) -> Clause:
    low = [*numbers, 0, 0][:3]
    bottom = (low[0], low[1], low[2])
    # The first release after the series: 1.4 -> 1.5.0, 1 -> 2.0.0.
    top = (numbers[0] + 1, 0, 0) if len(numbers) == 1 else (numbers[0], numbers[1] + 1, 0)

    def in_series(v: Any) -> bool:
        return bool(bottom <= _release(v) < top) and not (v.prerelease and _release(v) == bottom)

    def at_least(v: Any) -> bool:  # >= bottom by precedence: 1.4.0-rc.1 is below >=1.4
        return _release(v) > bottom or (_release(v) == bottom and not v.prerelease)

    caret_top = top if numbers[0] == 0 else (numbers[0] + 1, 0, 0)
    tests: dict[str, Clause] = {
        "=": in_series,
        "==": in_series,
        "!=": lambda v: not in_series(v),
        ">": lambda v: _release(v) >= top and not (v.prerelease and _release(v) == top),
        ">=": at_least,
        "<": lambda v: _release(v) < bottom,
        "<=": lambda v: _release(v) < top,
        "~": lambda v: at_least(v) and _release(v) < top,
        "^": lambda v: at_least(v) and _release(v) < caret_top,
    }
    return tests[op]


# --- tag patterns -----------------------------------------------------------------------------------------------


def compile_tag_pattern(pattern: str) -> re.Pattern[str]:
    r"""Compile a regex policy's tag_pattern, refusing what could backtrack for ever; ValueError says why.

    Tags are short (ECR: at most 300 characters), but Python's ``re`` backtracks, so a pattern such as ``(a+)+``
    takes exponential time on a tag that almost matches. Refused: patterns longer than 256 characters,
    backreferences, and a repetition inside a repetition (``(\d+)+``) or an alternation inside a repetition
    (``(a|ab)*``), unless each round of the outer repetition starts or ends with a literal character its inner
    repetitions cannot match (``(\.\d+)*`` and ``(\d+\.)+`` are fine: the rounds are delimited). The check is
    conservative (a safe pattern it refuses can be written another way) and not complete: adjacent repetitions
    of the same characters (``\d*\d*\d*\d*``) cost polynomial time, bounded by the tag length.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re.compile(pattern)
        tree = list(_sre("_parser").parse(pattern))
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValueError(f"{pattern!r} does not compile ({exc})") from None
    problem = _backtracking_risk(tree)
    if problem:
        raise ValueError(f"{pattern!r} {problem}: it could backtrack for minutes on a long tag")
    return compiled


@functools.cache
def _sre(name: str) -> Any:
    """re's own parser (``_parser``) and its constants (``_constants``): the parse tree shows nested repetition."""
    return importlib.import_module(f"re.{name}")


def _backtracking_risk(items: list[Any]) -> str | None:
    c = _sre("_constants")

    for op, arg in items:
        if op in (c.GROUPREF, c.GROUPREF_EXISTS):
            return "uses a backreference"
        children = _children(op, arg)
        if op in (c.MAX_REPEAT, c.MIN_REPEAT) and arg[1] > 1:
            body = children[0]
            if _has_nested(body) and not _delimited(body):
                return "repeats a part that itself repeats or alternates"
        for sub in children:
            problem = _backtracking_risk(sub)
            if problem:
                return problem
    return None


def _children(op: Any, arg: Any) -> list[list[Any]]:
    c = _sre("_constants")

    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        return [list(arg[2])]
    if op is c.SUBPATTERN:
        return [list(arg[-1])]
    if op is c.BRANCH:
        return [list(branch) for branch in arg[1]]
    if op in (c.ASSERT, c.ASSERT_NOT):
        return [list(arg[1])]
    if op is c.ATOMIC_GROUP:
        return [list(arg)]
    return []


def _walk(items: list[Any]) -> Iterator[tuple[Any, Any]]:
    for op, arg in items:
        yield op, arg
        for sub in _children(op, arg):
            yield from _walk(sub)


def _has_nested(body: list[Any]) -> bool:
    """Whether a repeated body repeats or alternates inside (a possessive repetition never backtracks)."""
    c = _sre("_constants")

    return any((op in (c.MAX_REPEAT, c.MIN_REPEAT) and arg[1] > 1) or op is c.BRANCH for op, arg in _walk(body))


def _delimited(body: list[Any]) -> bool:
    """Whether each round of ``body`` starts or ends with one literal character no inner repetition can match."""
    c = _sre("_constants")

    flat = body
    while len(flat) == 1 and flat[0][0] is c.SUBPATTERN:
        flat = list(flat[0][1][-1])
    nodes = list(_walk(flat))
    if not flat or any(op is c.BRANCH for op, _ in nodes):
        return False
    inner = [list(arg[2]) for op, arg in nodes if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT)]
    for op, arg in (flat[0], flat[-1]):
        if op is c.LITERAL and not any(_may_match(sub, chr(arg)) for sub in inner):
            return True
    return False


def _may_match(body: list[Any], char: str) -> bool:
    """Whether a repetition's body can match ``char`` (True when unsure)."""
    c = _sre("_constants")

    if len(body) != 1:
        return True
    op, arg = body[0]
    if op is c.LITERAL:
        return bool(chr(arg) == char)
    if op is c.NOT_LITERAL:
        return bool(chr(arg) != char)
    if op is c.IN:
        return _in_set(list(arg), char)
    return True


_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
}


def _in_set(items: list[Any], char: str) -> bool:
    c = _sre("_constants")

    negate = hit = False
    for op, arg in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            hit = hit or chr(arg) == char
        elif op is c.RANGE:
            hit = hit or arg[0] <= ord(char) <= arg[1]
        elif op is c.CATEGORY and str(arg) in _CATEGORIES:
            hit = hit or re.fullmatch(_CATEGORIES[str(arg)], char) is not None
        else:
            return True  # unsure: count it as a match
    return hit != negate


def is_artifact_tag(tag: str) -> bool:
    """Whether a tag names a signature or attestation (cosign's ``sha256-<hex>.sig|.att|.sbom``), not an image."""
    return _ARTIFACT_TAG.fullmatch(tag) is not None


# --- decisions --------------------------------------------------------------------------------------------------


def resolve_current(current: Current, candidates: Iterable[Candidate]) -> Current:
    """``current`` with what the registry's ``candidates`` tell about it: when the image the file names was
    pushed, which digest the file's tag points at now, and for a digest-only pin the tag to read its version from
    (the highest version among the digest's tags, else its newest tag). Values already set are kept."""
    pool = list(candidates)
    by_tag = next((c for c in pool if c.tag == current.tag), None) if current.tag else None
    pinned = [c for c in pool if c.digest == current.digest] if current.digest else []
    deployed = pinned or ([by_tag] if by_tag else [])
    inferred = current.inferred_tag
    if current.tag is None and pinned and inferred is None:
        versions = [(v, c.tag) for c in pinned if (v := parse_tag_version(c.tag)) is not None]
        inferred = max(versions)[1] if versions else max(pinned, key=lambda c: (c.pushed_at, c.tag)).tag
    return replace(
        current,
        pushed_at=current.pushed_at or (min(c.pushed_at for c in deployed) if deployed else None),
        registry_digest=current.registry_digest or (by_tag.digest if by_tag else None),
        inferred_tag=inferred,
    )


def select(entry: ImageEntry, candidates: Iterable[Candidate], current: Current) -> Decision:
    """The tag the entry's policy picks from the registry's ``candidates``, compared with ``current``."""
    pool = [c for c in candidates if not is_artifact_tag(c.tag)]
    current = resolve_current(current, pool)
    if not pool:
        return _refused(Refusal.NO_CANDIDATES, "the repository holds no tagged image")
    if entry.policy is Policy.SEMVER:
        return _select_semver(entry, pool, current)
    if entry.policy is Policy.REGEX:
        pattern = _pattern(entry)
        pool = [c for c in pool if pattern.fullmatch(c.tag)]
        if not pool:
            return _refused(Refusal.NO_MATCH, f"no tag matches {pattern.pattern!r}")
    # The newest push; among the tags of one push the file's own tag, then the highest tag string.
    best = max(pool, key=lambda c: (c.pushed_at, c.tag == current.tag, c.tag))
    return _compare_pushed(entry, best, current)


def judge(entry: ImageEntry, pushed: Candidate, current: Current) -> Decision:
    """Whether one pushed tag is acceptable for the entry and newer than ``current`` (the event path).

    For ``latest`` and ``regex`` a push is compared with the current image by push time, and a tag of the image
    the file already names is no change: both need :func:`resolve_current` on the registry's view of the current
    tag (or digest) first, or a late event could move the file back.
    """
    if is_artifact_tag(pushed.tag):
        return _refused(Refusal.ARTIFACT, f"{pushed.tag} is a signature or attestation, not an image")
    if entry.policy is Policy.SEMVER:
        version = parse_tag_version(pushed.tag)
        if version is None:
            return _refused(Refusal.NOT_SEMVER, f"{pushed.tag} is not a semver version")
        if version.prerelease and not entry.prerelease:
            return _refused(Refusal.PRERELEASE, f"{pushed.tag} is a pre-release and the entry does not allow them")
        if not entry.range.allows(version):
            return _refused(Refusal.OUT_OF_RANGE, f"{pushed.tag} is outside the constraint {entry.range}")
        return _compare_versions(entry, pushed, version, current)
    if entry.policy is Policy.REGEX and not _pattern(entry).fullmatch(pushed.tag):
        return _refused(Refusal.NO_MATCH, f"{pushed.tag} does not match {_pattern(entry).pattern!r}")
    return _compare_pushed(entry, pushed, current)


def _pattern(entry: ImageEntry) -> re.Pattern[str]:
    if entry.pattern is None:  # config.py refuses a regex entry without tag_pattern
        raise ValueError(f"IMAGE_MAP[{entry.index}] has policy regex and no tag_pattern")
    return entry.pattern


def _select_semver(entry: ImageEntry, pool: list[Candidate], current: Current) -> Decision:
    not_semver = prerelease = out_of_range = 0
    allowed: list[tuple[Any, Candidate]] = []
    for candidate in pool:
        version = parse_tag_version(candidate.tag)
        if version is None:
            not_semver += 1
        elif version.prerelease and not entry.prerelease:
            prerelease += 1
        elif not entry.range.allows(version):
            out_of_range += 1
        else:
            allowed.append((version, candidate))
    if not allowed:
        return _refused(
            Refusal.OUT_OF_RANGE if out_of_range else Refusal.NO_MATCH,
            f"no tag within {entry.range} ({len(pool)} checked: {not_semver} not semver, "
            f"{prerelease} pre-releases not allowed, {out_of_range} outside the constraint)",
        )
    top = max(version for version, _ in allowed)
    # Tags of one version (1.4.2 and v1.4.2, or builds _b1 and _b2): the file's own tag, then the newest push,
    # then the highest tag string.
    ties = [c for v, c in allowed if v.compare(top) == 0]
    best = max(ties, key=lambda c: (c.tag == current.tag, c.pushed_at, c.tag))
    return _compare_versions(entry, best, top, current)


def _compare_versions(entry: ImageEntry, target: Candidate, version: Any, current: Current) -> Decision:
    tag = current.version_tag
    floor = parse_tag_version(tag) if tag is not None else None
    if tag is None or floor is None:
        note = f" (the current tag {tag} is not a version)" if tag else ""
        if _same_image(entry, target, current):
            return Decision(Outcome.UNCHANGED, f"{target.tag} is current", target)
        return Decision(Outcome.UPDATE, f"{target.tag} is the highest allowed version{note}", target)
    order = version.compare(floor)
    if order < 0:
        return _refused(Refusal.DOWNGRADE, f"{target.tag} is below the current {tag}: never moving down", target)
    if order > 0:
        return Decision(Outcome.UPDATE, f"{tag} -> {target.tag}", target)
    # The same version: no change, unless the entry pins digests and the tag now points at another image.
    if not entry.digest or _same_image(entry, target, current):
        return Decision(Outcome.UNCHANGED, f"{target.tag} is the current version", target)
    return Decision(Outcome.UPDATE, f"{target.tag} now points at {target.digest}", target)


def _compare_pushed(entry: ImageEntry, target: Candidate, current: Current) -> Decision:
    if current.tag and target.tag != current.tag and target.digest == current.registry_digest:
        target = replace(target, tag=current.tag)  # the file's tag names this very image: no churn between tags
    if _same_image(entry, target, current):
        return Decision(Outcome.UNCHANGED, f"{target.tag} is current", target)
    if current.pushed_at is not None and target.pushed_at < current.pushed_at:
        return _refused(
            Refusal.OLDER,
            f"{target.tag} was pushed at {target.pushed_at.isoformat()}, before the current "
            f"{current.version_tag or current.digest} ({current.pushed_at.isoformat()})",
            target,
        )
    was = current.version_tag or current.digest or "nothing"
    return Decision(Outcome.UPDATE, f"{was} -> {target.tag}", target)


def _same_image(entry: ImageEntry, target: Candidate, current: Current) -> bool:
    """Whether writing ``target`` would leave the file as it is."""
    same_tag = target.tag == current.tag
    same_digest = target.digest == current.digest
    if not entry.digest:
        return same_tag
    if not entry.keep_tag:
        return same_digest
    return same_tag and same_digest


def _refused(refusal: Refusal, reason: str, target: Candidate | None = None) -> Decision:
    return Decision(Outcome.REFUSED, reason, target, refusal)
