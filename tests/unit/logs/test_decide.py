from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eksops.logs import Mode, RetentionConfig, RetentionRule, decide
from eksops.logs.retention_config import VALID_DAYS


def config(mode: Mode, default: int | None = 30) -> RetentionConfig:
    return RetentionConfig(
        rules=(RetentionRule("/aws/containerinsights/*/performance", 7),),
        default_days=default,
        mode=mode,
        exclude=("/audit/*",),
    )


def test_table() -> None:
    cases = [
        # mode, name, current, tagged, class -> (target, reason)
        (Mode.MISSING, "/app/a", None, False, None, (30, "set")),
        (Mode.MISSING, "/app/a", 3653, False, None, (None, "compliant")),
        (Mode.MISSING, "/app/a", 30, False, None, (None, "compliant")),
        (Mode.CAP, "/app/a", 3653, False, None, (30, "set")),
        (Mode.CAP, "/app/a", 7, False, None, (None, "compliant")),
        (Mode.EXACT, "/app/a", 7, False, None, (30, "set")),
        (Mode.EXACT, "/aws/containerinsights/c1/performance", None, False, None, (7, "set")),
        (Mode.EXACT, "/audit/trail", None, False, None, (None, "excluded")),
        (Mode.EXACT, "/app/a", None, True, None, (None, "tagged-skip")),
        (Mode.EXACT, "/app/a", None, False, "DELIVERY", (None, "delivery-class")),
    ]
    for mode, name, current, tagged, group_class, expected in cases:
        d = decide(config(mode), name, current, tagged_skip=tagged, group_class=group_class)
        assert (d.target, d.reason) == expected, (mode, name, current)


def test_no_rule_and_no_default_leaves_group_alone() -> None:
    assert decide(config(Mode.EXACT, default=None), "/app/a", None).reason == "no-rule"


names = st.one_of(
    st.sampled_from(["/aws/containerinsights/c/performance", "/audit/x", "/app/svc"]),
    st.text(alphabet="/abc-_", min_size=1, max_size=20),
)
currents = st.one_of(st.none(), st.sampled_from(VALID_DAYS))


@given(st.sampled_from(list(Mode)), names, currents, st.booleans())
def test_applying_the_decision_converges(mode: Mode, name: str, current: int | None, tagged: bool) -> None:
    cfg = config(mode)
    first = decide(cfg, name, current, tagged_skip=tagged)
    after = first.target if first.change else current
    assert not decide(cfg, name, after, tagged_skip=tagged).change


@given(names, st.sampled_from(VALID_DAYS))
def test_missing_never_touches_a_group_with_retention(name: str, current: int) -> None:
    assert not decide(config(Mode.MISSING), name, current).change


@given(names, currents)
def test_cap_never_lengthens(name: str, current: int | None) -> None:
    d = decide(config(Mode.CAP), name, current)
    if d.change and current is not None:
        assert d.target is not None and d.target < current
