"""Properties of the scaling decision over arbitrary groups, histories and settings (hypothesis)."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eksops.scaling import Action, Actuator, Autoscaler, Decision, GroupState, Sample, ScalerConfig, decide

NOW = 1_700_000_000.0


@st.composite
def histories(draw: st.DrawFn, capacity: float) -> tuple[Sample, ...]:
    """Up to 90 samples ending now at uneven spacing: flat, trending up or down, noisy, with steps up or down,
    around the group's capacity (so that every branch of the decision is reached).

    Built from a few drawn parameters and a seed (drawing 90 floats one by one is slow and adds nothing)."""
    count = draw(st.integers(min_value=0, max_value=90))
    base = capacity * draw(st.floats(min_value=0, max_value=1.5))
    slope = capacity / 3600 * draw(st.floats(min_value=-1, max_value=1))  # up to the whole capacity per hour
    noise = draw(st.sampled_from([0.0, 0.01, 0.05, 0.3]))
    step_at, step = draw(st.integers(0, 90)), capacity * draw(st.floats(min_value=-1, max_value=1))
    rng = random.Random(draw(st.integers(0, 2**32)))
    samples, at = [], NOW
    for index in range(count):
        value = base + slope * (at - NOW) + (step if count - index > step_at else 0.0)
        samples.append(Sample(at, max(0.0, value * (1 + rng.gauss(0, noise)))))
        at -= rng.uniform(5, 120)
    return tuple(reversed(samples))


@st.composite
def groups(draw: st.DrawFn) -> GroupState:
    min_size = draw(st.integers(0, 20))
    max_size = draw(st.integers(max(min_size, 1), min_size + 120))
    desired = draw(st.integers(max(min_size, 1), max_size))
    alloc = draw(st.sampled_from([1930, 3920, 7910, 15_890]))
    ago = st.one_of(st.none(), st.integers(0, 7200).map(lambda seconds: NOW - seconds))
    return GroupState(
        name="ng",
        cluster=draw(st.sampled_from(["prod", "dev"])),
        min_size=min_size,
        max_size=max_size,
        desired=desired,
        nodes=draw(st.integers(0, desired)),
        node_millicores=alloc,
        pending_millicores=draw(st.sampled_from([0.0, 0.0, 1.0, 250.0, 50_000.0])),
        history=draw(histories(desired * alloc)),
        autoscaler=draw(st.sampled_from(list(Autoscaler))),
        last_scale_out=draw(ago),
        last_scale_in=draw(ago),
        headroom_replicas=draw(st.integers(0, 3 * desired)),
    )


configs = st.builds(
    ScalerConfig,
    target_percent=st.integers(10, 100),
    lead_seconds=st.integers(30, 3600),
    max_step=st.integers(1, 50),
    actuators=st.sampled_from(
        [(("*", Actuator.ASG),), (("*", Actuator.HEADROOM),), (("prod", Actuator.HEADROOM), ("*", Actuator.ASG))]
    ),
    scale_out_cooldown=st.integers(0, 3600),
    scale_in_window=st.integers(60, 7200),
    headroom_pod_millicores=st.integers(10, 4000),
    headroom_quantile=st.floats(min_value=0.5, max_value=1.0),
)

CASES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decide(state: GroupState, cfg: ScalerConfig, flags: dict[str, bool]) -> Decision:
    return decide(state, cfg, now=NOW, **flags)


def _step_bound(state: GroupState, cfg: ScalerConfig, decision: Decision) -> int:
    if decision.actuator is Actuator.ASG:
        return cfg.max_step
    return max(1, cfg.max_step * state.node_millicores // cfg.headroom_pod_millicores)


def _current(state: GroupState, decision: Decision) -> int:
    return state.desired if decision.actuator is Actuator.ASG else state.headroom_replicas


def _after(decision: Decision) -> int:
    return decision.desired if decision.actuator is Actuator.ASG else decision.replicas


flags = st.fixed_dictionaries({"kill_switch": st.booleans(), "dry_run": st.booleans()})


@CASES
@given(groups(), configs, flags)
def test_the_size_stays_within_min_max_and_the_step(state: GroupState, cfg: ScalerConfig, kw: Any) -> None:
    decision = _decide(state, cfg, kw)
    assert state.min_size <= decision.desired <= state.max_size
    assert abs(decision.desired - state.desired) <= cfg.max_step
    assert decision.replicas >= 0
    for value in (_after(decision), decision.proposed):
        assert abs(value - _current(state, decision)) <= _step_bound(state, cfg, decision)
    if decision.actuator is Actuator.ASG:
        assert state.min_size <= decision.proposed <= state.max_size


@CASES
@given(groups(), configs, flags)
def test_only_a_change_changes_anything(state: GroupState, cfg: ScalerConfig, kw: Any) -> None:
    decision = _decide(state, cfg, kw)
    if decision.action is Action.SCALE_OUT:
        assert _after(decision) > _current(state, decision)
    elif decision.action is Action.SCALE_IN:
        assert _after(decision) < _current(state, decision)
    else:
        assert (decision.desired, decision.replicas) == (state.desired, state.headroom_replicas)
    if decision.actuator is Actuator.ASG:
        assert decision.replicas == state.headroom_replicas
    else:
        assert decision.desired == state.desired


@CASES
@given(groups(), configs, flags, st.data())
def test_never_scales_in_inside_the_window(state: GroupState, cfg: ScalerConfig, kw: Any, data: st.DataObject) -> None:
    since = data.draw(st.integers(0, cfg.scale_in_window - 1), label="seconds since the last scale-out")
    state = dataclasses.replace(state, last_scale_out=NOW - since, pending_millicores=0.0)
    decision = _decide(state, cfg, kw)
    assert decision.action is not Action.SCALE_IN
    assert _after(decision) >= _current(state, decision) and decision.proposed >= _current(state, decision)


@CASES
@given(groups(), configs, flags, st.floats(min_value=0.001, max_value=500_000))
def test_never_scales_in_with_pending_pods(state: GroupState, cfg: ScalerConfig, kw: Any, pending: float) -> None:
    state = dataclasses.replace(state, pending_millicores=pending, last_scale_out=None)
    decision = _decide(state, cfg, kw)
    assert decision.action is not Action.SCALE_IN
    assert _after(decision) >= _current(state, decision) and decision.proposed >= _current(state, decision)


@CASES
@given(groups(), configs, st.data())
def test_a_scale_in_keeps_what_the_window_s_peak_needs(
    state: GroupState, cfg: ScalerConfig, data: st.DataObject
) -> None:
    """Demand fell: a scale-in may follow, but never below what the highest demand inside the window needed."""
    capacity = state.desired * state.node_millicores
    # Whole millicores: Kubernetes CPU requests have millicore resolution.
    low = data.draw(st.integers(min_value=0, max_value=capacity // 2), label="demand now")
    peak = data.draw(st.integers(min_value=low, max_value=capacity * 6 // 5), label="peak inside the window")
    since = data.draw(st.integers(0, cfg.scale_in_window - 1), label="seconds since the peak")
    span = cfg.scale_in_window + 1200
    history = sorted(
        [Sample(NOW - seconds, low) for seconds in range(0, span, 60) if seconds != since]
        + [Sample(NOW - since, peak)],
        key=lambda sample: sample.at,
    )
    state = dataclasses.replace(state, history=tuple(history), pending_millicores=0.0, last_scale_out=None)
    decision = _decide(state, cfg, {})
    if decision.action is Action.SCALE_IN and decision.actuator is Actuator.ASG:
        assert decision.desired * state.node_millicores >= peak / (cfg.target_percent / 100) * (1 - 1e-9)
    if decision.action is Action.SCALE_IN and decision.actuator is Actuator.HEADROOM:
        held = decision.replicas * cfg.headroom_pod_millicores + decision.demand
        assert held >= peak / (cfg.target_percent / 100) * (1 - 1e-9)


@CASES
@given(groups(), configs, flags, st.data())
def test_no_scale_out_inside_the_cooldown(state: GroupState, cfg: ScalerConfig, kw: Any, data: st.DataObject) -> None:
    cfg = dataclasses.replace(cfg, scale_out_cooldown=max(1, cfg.scale_out_cooldown))
    since = data.draw(st.integers(0, cfg.scale_out_cooldown - 1), label="seconds since the last scale-out")
    decision = _decide(dataclasses.replace(state, last_scale_out=NOW - since), cfg, kw)
    assert decision.action is not Action.SCALE_OUT
    assert _after(decision) <= _current(state, decision)


@CASES
@given(groups(), configs, st.sampled_from(["kill_switch", "dry_run"]))
def test_kill_switch_and_dry_run_change_nothing(state: GroupState, cfg: ScalerConfig, flag: str) -> None:
    decision = _decide(state, cfg, {flag: True})
    assert decision.action in (Action.HOLD, Action.REFUSED)
    assert (decision.desired, decision.replicas) == (state.desired, state.headroom_replicas)
    free = _decide(state, cfg, {})
    # The refusal reports the change the scaler would have made.
    if free.changed:
        assert decision.action is Action.REFUSED and decision.proposed == free.proposed
    else:
        assert decision.action is free.action


@CASES
@given(groups(), configs, flags)
def test_never_changes_the_desired_capacity_of_a_group_another_autoscaler_manages(
    state: GroupState, cfg: ScalerConfig, kw: Any
) -> None:
    decision = _decide(state, cfg, kw)
    if state.autoscaler is not Autoscaler.NONE:
        assert decision.desired == state.desired
        if decision.actuator is Actuator.ASG:
            assert not decision.changed
    elif decision.actuator is Actuator.HEADROOM:
        # Nobody would provision nodes for pause pods on a group no autoscaler manages.
        assert not decision.changed and decision.replicas == state.headroom_replicas


@st.composite
def shrinkable(draw: st.DrawFn) -> tuple[GroupState, ScalerConfig]:
    """Groups that can scale in with the asg actuator: history covering the stabilisation window, no pending pods,
    no recent scale-out, no other autoscaler, desired well above demand and min near demand (so the min clamp is
    what holds the size: the general strategy reaches this corner too rarely to catch a missing clamp)."""
    cfg = ScalerConfig(
        target_percent=draw(st.integers(50, 100)),
        lead_seconds=draw(st.integers(30, 900)),
        max_step=draw(st.integers(1, 50)),
        scale_out_cooldown=60,
        scale_in_window=draw(st.integers(60, 1800)),
        actuators=(("*", Actuator.ASG),),
    )
    alloc = draw(st.sampled_from([1930, 3920, 7910]))
    min_size = draw(st.integers(0, 20))
    desired = min_size + draw(st.integers(1, 40))
    # Demand at or below what min_size nodes hold at the target: a scale-in wants fewer nodes than min.
    level = min_size * alloc * cfg.target_percent / 100 * draw(st.floats(min_value=0.0, max_value=1.0))
    span = cfg.scale_in_window + draw(st.integers(60, 1800))
    count = draw(st.integers(3, 60))
    rng = random.Random(draw(st.integers(0, 2**32)))
    noise = draw(st.sampled_from([0.0, 0.01, 0.05]))
    history = tuple(
        Sample(NOW - span + span * i / (count - 1), max(0.0, level * (1 + rng.gauss(0, noise)))) for i in range(count)
    )
    state = GroupState(
        name="ng",
        cluster="prod",
        min_size=min_size,
        max_size=desired + draw(st.integers(0, 20)),
        desired=desired,
        nodes=desired,
        node_millicores=alloc,
        pending_millicores=0.0,
        history=history,
        autoscaler=Autoscaler.NONE,
        last_scale_out=draw(st.one_of(st.none(), st.just(NOW - span - 1))),
        last_scale_in=None,
    )
    return state, cfg


@CASES
@given(shrinkable())
def test_a_scale_in_never_goes_below_min_and_only_over_a_covered_window(case: tuple[GroupState, ScalerConfig]) -> None:
    state, cfg = case
    decision = decide(state, cfg, now=NOW)
    assert decision.action in (Action.SCALE_IN, Action.HOLD, Action.SCALE_OUT), decision.reason
    assert state.min_size <= decision.desired <= state.max_size
    assert state.min_size <= decision.proposed <= state.max_size
    if decision.action is Action.SCALE_IN:
        assert decision.history[0].at <= NOW - cfg.scale_in_window  # the history covers the window
        assert state.desired - cfg.max_step <= decision.desired < state.desired
        window = [s.millicores for s in decision.history if s.at >= NOW - cfg.scale_in_window]
        keep = max(window) / (cfg.target_percent / 100)
        assert decision.desired * state.node_millicores >= keep - 1e-6 or decision.desired == state.desired


@CASES
@given(shrinkable())
def test_shrinkable_states_do_scale_in(case: tuple[GroupState, ScalerConfig]) -> None:
    # The strategy above is worth something only if it reaches the scale-in branch: desired is above min and above
    # what the (flat, low) demand needs, so some scale-in must happen unless the forecast's headroom forbids it.
    state, cfg = case
    decision = decide(state, cfg, now=NOW)
    window = [s.millicores for s in state.history if s.at >= NOW - cfg.scale_in_window]
    keep = math.ceil(max(window) / (cfg.target_percent / 100) / state.node_millicores - 1e-9)
    if max(decision.wanted_nodes, keep) < state.desired:
        assert decision.action is Action.SCALE_IN, decision.reason
        # The min clamp holds the size whenever the window's need is below min (that is what the strategy draws).
        assert decision.desired == max(state.min_size, keep, decision.wanted_nodes, state.desired - cfg.max_step)
