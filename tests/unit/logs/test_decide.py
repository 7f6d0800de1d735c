from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eksops.logs import Mode, RetentionConfig, RetentionRule, Scope, decide
from eksops.logs.retention_config import VALID_DAYS


def config(mode: Mode, default: int | None = 30, scope: Scope = Scope.REGION) -> RetentionConfig:
    return RetentionConfig(
        rules=(RetentionRule("/aws/containerinsights/*/performance", 7),),
        default_days=default,
        mode=mode,
        exclude=("/audit/*",),
        scope=scope,
        stack_log_groups=("/aws/lambda/eksops-notifier",),
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


def test_scope_eks_keeps_the_default_to_eks_groups() -> None:
    cases = [
        # name, current -> (target, reason) under scope "eks", default 30
        ("/aws/lambda/someone-else", None, (None, "out-of-scope")),
        ("/app/a", None, (None, "out-of-scope")),
        ("/aws/eks/prod/cluster", None, (30, "set")),
        ("/aws/containerinsights/prod/application", None, (30, "set")),
        ("/aws/containerinsights/prod/performance", None, (7, "set")),  # the rule, as in every scope
        ("/aws/eks/prod/cluster", 30, (None, "compliant")),
        ("/audit/trail", None, (None, "excluded")),  # excluded first, out of scope or not
    ]
    for name, current, expected in cases:
        d = decide(config(Mode.MISSING, scope=Scope.EKS), name, current)
        assert (d.target, d.reason) == expected, (name, current)
    # no default: nothing is out of scope, there is simply no rule
    assert decide(config(Mode.MISSING, default=None, scope=Scope.EKS), "/app/a", None).reason == "no-rule"
    # the stack's own groups are in scope (and excluded by from_env, which also lists them in exclude)
    assert config(Mode.MISSING, scope=Scope.EKS).in_scope("/aws/lambda/eksops-notifier")


def test_scope_region_sets_the_default_everywhere() -> None:
    for name in ("/aws/lambda/someone-else", "/app/a", "/aws/eks/prod/cluster"):
        d = decide(config(Mode.MISSING, scope=Scope.REGION), name, None)
        assert (d.target, d.reason) == (30, "set"), name


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


@given(names, currents, st.booleans())
def test_scope_eks_changes_a_subset_of_what_region_changes(name: str, current: int | None, tagged: bool) -> None:
    eks = decide(config(Mode.EXACT, scope=Scope.EKS), name, current, tagged_skip=tagged)
    region = decide(config(Mode.EXACT, scope=Scope.REGION), name, current, tagged_skip=tagged)
    assert not eks.change or eks == region
    if eks.reason == "out-of-scope":
        assert region.change or region.reason == "compliant"
