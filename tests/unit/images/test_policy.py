"""Tag policies: semver within a constraint and never down, latest and regex by push time, the event path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import semver
from hypothesis import given, settings
from hypothesis import strategies as st

from eksops.images.config import ImageEntry, parse_image_map
from eksops.images.policy import (
    Candidate,
    Current,
    Outcome,
    Refusal,
    compile_tag_pattern,
    is_artifact_tag,
    judge,
    parse_range,
    parse_tag_version,
    resolve_current,
    select,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SIGNATURE = "sha256-" + "ab" * 32 + ".sig"


def entry(policy: str = "semver", **fields: Any) -> ImageEntry:
    raw = {"repository": "web", "image": "web", "files": ["apps/web/kustomization.yaml"], "policy": policy, **fields}
    return parse_image_map(json.dumps([raw]))[0]


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def pushed(tag: str, minute: int, image: int | None = None) -> Candidate:
    """A tag of image ``image`` (default: one image per minute) pushed ``minute`` minutes after T0."""
    return Candidate(tag, digest(minute if image is None else image), T0 + timedelta(minutes=minute))


REGISTRY = [
    pushed("1.3.0", 1),
    pushed("1.4.2", 2),
    pushed("v1.5.0", 3),
    pushed("1.6.0-rc.1", 4),
    pushed("2.0.0-rc.1", 5),
    pushed("2.0.0", 6),
    pushed("1.7", 7),  # a floating alias, never a version
    pushed("latest", 8),
    pushed("main-abc1234", 9),
]


# --- semver ---------------------------------------------------------------------------------------------------


def test_semver_picks_the_highest_version_within_the_constraint() -> None:
    decision = select(entry(constraint=">=1.4,<2"), REGISTRY, Current(tag="1.4.2"))
    assert decision.outcome is Outcome.UPDATE
    assert decision.target == pushed("v1.5.0", 3)
    assert decision.reason == "1.4.2 -> v1.5.0"


def test_semver_without_a_constraint_takes_the_highest_release() -> None:
    assert select(entry(), REGISTRY, Current(tag="1.4.2")).target == pushed("2.0.0", 6)


def test_pre_releases_only_when_the_entry_asks_for_them() -> None:
    assert select(entry(constraint="<2"), REGISTRY, Current(tag="1.4.2")).target == pushed("v1.5.0", 3)
    chosen = select(entry(constraint="<2", prerelease=True), REGISTRY, Current(tag="1.4.2"))
    assert chosen.target == pushed("1.6.0-rc.1", 4)
    # "<2" keeps 2.0.0's own pre-releases out, as npm's <2.0.0-0 does
    assert chosen.target is not None and chosen.target.tag != "2.0.0-rc.1"


def test_a_pushed_pre_release_is_refused_unless_asked() -> None:
    refused = judge(entry(), pushed("1.6.0-rc.1", 4), Current(tag="1.4.2"))
    assert (refused.outcome, refused.refusal) == (Outcome.REFUSED, Refusal.PRERELEASE)
    allowed = judge(entry(prerelease=True), pushed("1.6.0-rc.1", 4), Current(tag="1.4.2"))
    assert allowed.outcome is Outcome.UPDATE


def test_semver_never_moves_down() -> None:
    decision = select(entry(constraint="<2"), REGISTRY, Current(tag="2.1.0"))
    assert (decision.outcome, decision.refusal) == (Outcome.REFUSED, Refusal.DOWNGRADE)
    assert decision.target == pushed("v1.5.0", 3)
    assert "never moving down" in decision.reason


def test_a_pushed_tag_below_the_current_version_is_refused() -> None:
    decision = judge(entry(), pushed("1.3.0", 10), Current(tag="1.4.2"))
    assert (decision.outcome, decision.refusal) == (Outcome.REFUSED, Refusal.DOWNGRADE)
    assert decision.reason == "1.3.0 is below the current 1.4.2: never moving down"


def test_a_pushed_tag_outside_the_constraint_is_refused() -> None:
    decision = judge(entry(constraint=">=1.4,<2"), pushed("2.0.0", 10), Current(tag="1.4.2"))
    assert (decision.outcome, decision.refusal) == (Outcome.REFUSED, Refusal.OUT_OF_RANGE)
    assert decision.reason == "2.0.0 is outside the constraint >=1.4,<2"


def test_a_pushed_tag_that_is_no_version_is_refused() -> None:
    for tag in ("latest", "1.7", "main-abc1234", "1.4.2.1"):
        decision = judge(entry(), pushed(tag, 10), Current(tag="1.4.2"))
        assert (decision.outcome, decision.refusal) == (Outcome.REFUSED, Refusal.NOT_SEMVER), tag


def test_a_higher_pushed_version_within_range_is_an_update() -> None:
    decision = judge(entry(constraint="^1.4"), pushed("v1.9.3", 10), Current(tag="1.4.2"))
    assert decision.outcome is Outcome.UPDATE and decision.target == pushed("v1.9.3", 10)


def test_the_same_version_is_no_change_even_under_another_spelling() -> None:
    assert select(entry(constraint="<1.5"), REGISTRY, Current(tag="1.4.2")).outcome is Outcome.UNCHANGED
    same = judge(entry(), pushed("v1.4.2", 10), Current(tag="1.4.2"))
    assert same.outcome is Outcome.UNCHANGED


def test_the_files_own_spelling_wins_among_tags_of_one_version() -> None:
    registry = [pushed("1.5.0", 1), pushed("v1.5.0", 2)]
    assert select(entry(), registry, Current(tag="1.5.0")).outcome is Outcome.UNCHANGED
    # otherwise the newest push of that version
    assert select(entry(), registry, Current(tag="1.4.0")).target == pushed("v1.5.0", 2)


def test_build_metadata_is_written_with_an_underscore_and_never_orders() -> None:
    version = parse_tag_version("1.4.2_build.7")
    assert version is not None and (str(version), version.build) == ("1.4.2+build.7", "build.7")
    registry = [pushed("1.4.2_build.7", 1), pushed("1.4.2_build.8", 2)]
    decision = select(entry(), registry, Current(tag="1.4.2_build.7"))
    assert decision.outcome is Outcome.UNCHANGED  # same version: build metadata does not make it newer


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        ("1.4.2", "1.4.2"),
        ("v1.4.2", "1.4.2"),
        ("1.4.2-rc.1", "1.4.2-rc.1"),
        ("v2.0.0-alpha.1_sha.5114f85", "2.0.0-alpha.1+sha.5114f85"),
        ("1.4", None),  # a floating alias
        ("1", None),
        ("V1.4.2", None),
        ("01.4.2", None),  # leading zero: not SemVer
        ("1.4.2-", None),
        ("latest", None),
        ("1.4.2.3", None),
    ],
)
def test_which_tags_are_versions(tag: str, text: str | None) -> None:
    version = parse_tag_version(tag)
    assert (str(version) if version is not None else None) == text


def test_no_allowed_tag_is_a_refusal_with_the_counts() -> None:
    decision = select(entry(constraint=">=3"), REGISTRY, Current(tag="1.4.2"))
    assert (decision.outcome, decision.refusal) == (Outcome.REFUSED, Refusal.OUT_OF_RANGE)
    assert decision.reason == (
        "no tag within >=3 (9 checked: 3 not semver, 2 pre-releases not allowed, 4 outside the constraint)"
    )
    nothing = select(entry(), [pushed("latest", 1)], Current(tag="1.4.2"))
    assert (nothing.outcome, nothing.refusal) == (Outcome.REFUSED, Refusal.NO_MATCH)
    empty = select(entry(), [], Current(tag="1.4.2"))
    assert (empty.outcome, empty.refusal) == (Outcome.REFUSED, Refusal.NO_CANDIDATES)


def test_a_current_tag_that_is_no_version_has_no_floor() -> None:
    decision = select(entry(), REGISTRY, Current(tag="latest"))
    assert decision.outcome is Outcome.UPDATE and decision.target == pushed("2.0.0", 6)
    assert "the current tag latest is not a version" in decision.reason


# --- constraints ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "allowed", "refused"),
    [
        ("*", ["0.0.1", "9.9.9"], []),
        ("", ["1.0.0"], []),
        (">=1.4,<2", ["1.4.0", "1.9.9"], ["1.3.9", "2.0.0", "2.0.0-rc.1", "1.4.0-rc.1"]),
        ("1.4", ["1.4.0", "1.4.99"], ["1.3.9", "1.5.0", "1.4.0-rc.1"]),
        ("=1.4.x", ["1.4.7"], ["1.5.0"]),
        ("==1.4.2", ["1.4.2"], ["1.4.3", "1.4.2-rc.1"]),
        ("1.4.2", ["1.4.2"], ["1.4.3"]),
        ("!=1.4.3", ["1.4.2", "1.4.4"], ["1.4.3"]),
        ("!=1.4", ["1.3.0", "1.5.0"], ["1.4.0", "1.4.8"]),
        (">1.4.2", ["1.4.3", "1.4.3-rc.1"], ["1.4.2", "1.4.2-rc.1"]),
        (">1.4", ["1.5.0", "2.0.0"], ["1.4.9", "1.5.0-rc.1"]),
        (">=1.4", ["1.4.0", "1.4.1-rc.1"], ["1.3.9", "1.4.0-rc.1"]),
        ("<2", ["1.99.0", "1.99.0-rc.1"], ["2.0.0", "2.0.0-rc.1"]),
        ("<2.0.0", ["1.99.0"], ["2.0.0-rc.1"]),
        ("<2.0.0-rc.3", ["2.0.0-rc.2", "1.0.0"], ["2.0.0-rc.3", "2.0.0"]),
        ("<=1.4", ["1.4.9", "1.0.0"], ["1.5.0", "1.5.0-rc.1"]),
        ("<=1.4.2", ["1.4.2", "1.4.2-rc.1"], ["1.4.3"]),
        ("~1.4.2", ["1.4.2", "1.4.9"], ["1.4.1", "1.5.0", "1.5.0-rc.1"]),
        ("~1.4", ["1.4.0", "1.4.9"], ["1.3.0", "1.5.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["0.9.0", "2.0.0"]),
        ("^1.4.2", ["1.4.2", "1.99.0"], ["1.4.1", "2.0.0", "2.0.0-rc.1"]),
        ("^0.4.2", ["0.4.2", "0.4.9"], ["0.5.0", "0.4.1"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("^1.4", ["1.4.0", "1.9.0"], ["2.0.0", "1.3.0"]),
        ("^0.4", ["0.4.0", "0.4.9"], ["0.5.0"]),
        ("^0", ["0.0.1", "0.9.0"], ["1.0.0"]),
        (" >= v1.4 , < v2 ", ["1.4.0"], ["2.0.0"]),
        (">=1.4.0-rc.2,<1.5", ["1.4.0-rc.2", "1.4.0"], ["1.4.0-rc.1"]),
    ],
)
def test_constraint_semantics(constraint: str, allowed: list[str], refused: list[str]) -> None:
    value_range = parse_range(constraint)
    for text in allowed:
        assert value_range.allows(semver.Version.parse(text)), f"{constraint} should allow {text}"
    for text in refused:
        assert not value_range.allows(semver.Version.parse(text)), f"{constraint} should refuse {text}"


@pytest.mark.parametrize(
    "constraint",
    [">=x", ">*", "=>1.4", ">=1.4 <2", "1.x.3", "^01.2", "1.4-rc.1", ">=1.4,", "~>1.4", "1.4.2.1", "abc", "<" * 201],
)
def test_invalid_constraints_are_refused(constraint: str) -> None:
    with pytest.raises(ValueError, match=r"semver range|longer than"):
        parse_range(constraint)


versions = st.builds(
    semver.Version,
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from([None, "rc.1", "rc.2", "alpha"]),
)


@given(a=versions, b=versions, op=st.sampled_from([">=", ">", "<=", "==", "!="]))
def test_full_version_clauses_agree_with_semver_precedence(a: semver.Version, b: semver.Version, op: str) -> None:
    assert parse_range(f"{op}{b}").allows(a) == a.match(f"{op}{b}")


@given(a=versions, b=versions)
def test_below_a_release_also_excludes_its_pre_releases(a: semver.Version, b: semver.Version) -> None:
    expected = a.compare(b) < 0 if b.prerelease else (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    assert parse_range(f"<{b}").allows(a) == expected


@settings(max_examples=200)
@given(
    tags=st.lists(st.tuples(versions, st.booleans(), st.integers(0, 50)), max_size=12),
    current=versions,
    constraint=st.sampled_from(["*", ">=1", "<2", "^1.1", "~0.2", ">=1.1,<3", "!=2.2.2"]),
    prerelease=st.booleans(),
)
def test_semver_never_picks_below_the_floor_outside_the_range_or_an_unasked_pre_release(
    tags: list[tuple[semver.Version, bool, int]], current: semver.Version, constraint: str, prerelease: bool
) -> None:
    candidates = [pushed(("v" if v_prefix else "") + str(v), minute) for v, v_prefix, minute in tags]
    the_entry = entry(constraint=constraint, prerelease=prerelease)
    decision = select(the_entry, candidates, Current(tag=str(current)))
    if decision.outcome is Outcome.UPDATE:
        assert decision.target is not None
        chosen = parse_tag_version(decision.target.tag)
        assert chosen is not None and chosen.compare(current) > 0
        assert the_entry.range.allows(chosen)
        assert prerelease or not chosen.prerelease
        best = max(
            v
            for c in candidates
            if (v := parse_tag_version(c.tag)) is not None
            and the_entry.range.allows(v)
            and (prerelease or not v.prerelease)
        )
        assert chosen.compare(best) == 0


# --- latest and regex -----------------------------------------------------------------------------------------


def test_latest_picks_the_newest_push() -> None:
    decision = select(entry("latest"), REGISTRY, Current(tag="1.4.2"))
    assert decision.outcome is Outcome.UPDATE and decision.target == pushed("main-abc1234", 9)


def test_latest_ties_keep_the_files_tag_then_take_the_highest_tag_string() -> None:
    one_push = [pushed("1.5.0", 5, image=5), pushed("latest", 5, image=5), pushed("sha-5114f85", 5, image=5)]
    assert select(entry("latest"), one_push, Current(tag="1.5.0")).outcome is Outcome.UNCHANGED
    assert select(entry("latest"), one_push, Current(tag="1.4.0")).target == pushed("sha-5114f85", 5, image=5)
    assert select(entry("latest"), list(reversed(one_push)), Current(tag="1.4.0")).target == pushed(
        "sha-5114f85", 5, image=5
    )


def test_regex_picks_the_newest_tag_that_fullmatches() -> None:
    registry = [pushed("main-aaaaaaa", 1), pushed("main-bbbbbbb", 3), pushed("dev-ccccccc", 4), pushed("main-x", 5)]
    rule = entry("regex", tag_pattern="main-[0-9a-f]{7}")
    decision = select(rule, [*registry, pushed("xmain-ddddddd", 6), pushed("main-eeeeeee-dirty", 7)], Current())
    assert decision.outcome is Outcome.UPDATE and decision.target == pushed("main-bbbbbbb", 3)
    assert decision.reason == "nothing -> main-bbbbbbb"


def test_regex_with_no_matching_tag_is_refused() -> None:
    decision = select(entry("regex", tag_pattern="release-.*"), REGISTRY, Current(tag="release-1"))
    assert (decision.outcome, decision.refusal) == (Outcome.REFUSED, Refusal.NO_MATCH)
    event = judge(entry("regex", tag_pattern="release-.*"), pushed("main-abc1234", 9), Current(tag="release-1"))
    assert (event.outcome, event.refusal) == (Outcome.REFUSED, Refusal.NO_MATCH)


def test_signature_and_attestation_tags_are_never_candidates() -> None:
    assert is_artifact_tag(SIGNATURE) and not is_artifact_tag("sha256-abc.sig")
    registry = [pushed("1.0.0", 1), pushed(SIGNATURE, 2)]
    assert select(entry("latest"), registry, Current(tag="0.9.0")).target == pushed("1.0.0", 1)
    assert select(entry("regex", tag_pattern=".*"), registry, Current()).target == pushed("1.0.0", 1)
    event = judge(entry("latest"), pushed(SIGNATURE, 3), Current(tag="1.0.0"))
    assert (event.outcome, event.refusal) == (Outcome.REFUSED, Refusal.ARTIFACT)


def test_a_late_push_event_never_moves_latest_back() -> None:
    registry = [pushed("a", 1), pushed("b", 2)]
    current = resolve_current(Current(tag="b"), registry)
    assert current.pushed_at == T0 + timedelta(minutes=2) and current.registry_digest == digest(2)
    decision = judge(entry("latest"), pushed("a", 1), current)
    assert (decision.outcome, decision.refusal) == (Outcome.REFUSED, Refusal.OLDER)
    assert judge(entry("latest"), pushed("c", 3), current).outcome is Outcome.UPDATE


def test_another_tag_of_the_current_image_is_no_change() -> None:
    registry = [pushed("1.5.0", 5, image=5), pushed("latest", 5, image=5)]
    current = resolve_current(Current(tag="1.5.0"), registry)
    decision = judge(entry("latest"), pushed("latest", 5, image=5), current)
    assert decision.outcome is Outcome.UNCHANGED
    assert decision.target is not None and decision.target.tag == "1.5.0"


# --- digests --------------------------------------------------------------------------------------------------


def test_with_digest_a_tag_pushed_again_updates_the_digest() -> None:
    moved = [pushed("1.5.0", 7, image=70)]
    with_tag = entry(digest=True)
    decision = select(with_tag, moved, Current(tag="1.5.0", digest=digest(5)))
    assert decision.outcome is Outcome.UPDATE and decision.target == moved[0]
    assert decision.reason == f"1.5.0 now points at {digest(70)}"
    # without digests the same tag is no change
    assert select(entry(), moved, Current(tag="1.5.0")).outcome is Outcome.UNCHANGED
    # and pinned to the same digest it is no change either
    assert select(with_tag, moved, Current(tag="1.5.0", digest=digest(70))).outcome is Outcome.UNCHANGED


def test_a_file_that_gains_a_digest_pin_is_updated() -> None:
    registry = [pushed("1.5.0", 5)]
    decision = select(entry(digest=True), registry, Current(tag="1.5.0"))
    assert decision.outcome is Outcome.UPDATE and decision.target == registry[0]


def test_a_digest_only_pin_reads_its_version_from_the_registry() -> None:
    digest_only = entry(digest=True, keep_tag=False)
    registry = [pushed("1.4.2", 2), pushed("v1.4.2", 2, image=2), pushed("1.5.0", 3), pushed("1.3.0", 4)]
    current = resolve_current(Current(digest=digest(2)), registry)
    assert current.version_tag in {"1.4.2", "v1.4.2"} and current.tag is None  # both tags of the pinned image
    assert select(digest_only, registry, Current(digest=digest(2))).target == pushed("1.5.0", 3)
    assert select(digest_only, registry, Current(digest=digest(3))).outcome is Outcome.UNCHANGED
    # the floor holds for a digest-only pin too
    down = judge(digest_only, pushed("1.3.0", 4), current)
    assert (down.outcome, down.refusal) == (Outcome.REFUSED, Refusal.DOWNGRADE)


def test_latest_with_digest_only_compares_digests() -> None:
    digest_only = entry("latest", digest=True, keep_tag=False)
    registry = [pushed("latest", 4, image=4)]
    assert select(digest_only, registry, Current(digest=digest(4))).outcome is Outcome.UNCHANGED
    assert select(digest_only, [pushed("latest", 9)], Current(digest=digest(4))).outcome is Outcome.UPDATE


# --- tag patterns ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        r"main-[0-9a-f]{7}",
        r"^v?\d+\.\d+\.\d+$",
        r"(\d+\.)+\d+",  # each round ends with a dot the digits cannot match
        r"\d+(\.\d+)*",  # each round starts with one
        r"(main|release)-\d{8}",
        r"(-rc\.\d+)?",  # optional, not repeated
        r"[a-z]++-\d+",  # possessive: never backtracks
        r".*",
    ],
)
def test_safe_tag_patterns_compile(pattern: str) -> None:
    assert compile_tag_pattern(pattern).pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"(a+)+$", "repeats a part that itself repeats"),
        (r"(\d+\d)+", "repeats a part that itself repeats"),
        (r"(a+a)+", "repeats a part that itself repeats"),  # the delimiter is one the inner part matches
        (r"(\w+\.?)*", "repeats a part that itself repeats"),
        (r"(a|ab)*c", "repeats a part that itself repeats or alternates"),
        (r"(?:x{1,3}){1,3}y", "repeats a part that itself repeats"),
        (r"(\w)\1", "backreference"),
        (r"(a)?(?(1)b|c)", "backreference"),
        (r"[", "does not compile"),
        (r"a{99999999999}", "does not compile"),
        ("a" * 257, "longer than 256"),
    ],
)
def test_patterns_that_could_backtrack_for_ever_are_refused(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        compile_tag_pattern(pattern)
