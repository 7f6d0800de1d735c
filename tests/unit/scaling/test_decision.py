from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from eksops.scaling import (
    Action,
    Actuator,
    Autoscaler,
    GroupState,
    Sample,
    ScalerConfig,
    autoscaler_from_tags,
    decide,
)

NOW = 1_700_000_000.0
ALLOC = 3920  # a 4-core node
CFG = ScalerConfig(target_percent=100)


def _history(values: list[float], step: float = 60.0) -> tuple[Sample, ...]:
    return tuple(Sample(NOW - step * (len(values) - 1 - i), v) for i, v in enumerate(values))


def _state(values: list[float], **overrides: Any) -> GroupState:
    fields: dict[str, Any] = {
        "name": "ng-1",
        "cluster": "prod",
        "min_size": 2,
        "max_size": 50,
        "desired": 10,
        "nodes": 10,
        "node_millicores": ALLOC,
        "pending_millicores": 0.0,
        "history": _history(values),
    }
    fields.update(overrides)
    return GroupState(**fields)


RISING = [20_000 + 2_000 * i for i in range(40)]  # +2 cores a minute, 98 cores now: 25 nodes hold that
STEADY = [30_000.0] * 40  # 30 cores: 8 nodes hold it


def test_a_rising_demand_scales_out_ahead_of_it() -> None:
    state = _state(RISING, desired=20, nodes=20)
    decision = decide(state, CFG, now=NOW)
    assert decision.action is Action.SCALE_OUT and decision.changed
    fc = decision.forecast
    assert fc is not None and fc.trend > 0 and fc.millicores > RISING[-1]
    assert decision.wanted_nodes * ALLOC >= fc.millicores + fc.headroom > (decision.wanted_nodes - 1) * ALLOC
    assert decision.desired == decision.proposed == decision.wanted_nodes < 20 + CFG.max_step
    assert decision.desired > 25  # ahead of the demand it sees
    assert "nodes 20 -> " in decision.reason
    assert decision.history == state.history


def test_the_step_and_the_maximum_bound_a_scale_out() -> None:
    tight = dataclasses.replace(CFG, max_step=2)
    assert decide(_state(RISING, desired=10, nodes=10), tight, now=NOW).desired == 12
    capped = decide(_state(RISING, desired=20, nodes=20, max_size=26), CFG, now=NOW)
    assert capped.desired == 26 and capped.at_max
    at_max = decide(_state(RISING, desired=26, nodes=26, max_size=26), CFG, now=NOW)
    assert at_max.action is Action.HOLD and at_max.at_max and "at the maximum" in at_max.reason


def test_the_target_percent_leaves_room() -> None:
    full = decide(_state(STEADY, desired=2, nodes=2), CFG, now=NOW)
    half = decide(_state(STEADY, desired=2, nodes=2), dataclasses.replace(CFG, target_percent=50), now=NOW)
    assert full.wanted_nodes == 8 and half.wanted_nodes == 16


def test_scale_out_cooldown() -> None:
    state = _state(RISING, desired=15, nodes=15, last_scale_out=NOW - 30)
    decision = decide(state, CFG, now=NOW)
    assert decision.action is Action.HOLD and "cooldown" in decision.reason and decision.desired == 15
    later = dataclasses.replace(state, last_scale_out=NOW - CFG.scale_out_cooldown)
    assert decide(later, CFG, now=NOW).action is Action.SCALE_OUT


def test_a_schedule_firing_a_few_seconds_early_does_not_hold_the_follow_up_scale_out() -> None:
    # The schedule runs every 60 s, give or take a few seconds: with the default cooldown a scale-out 57 s ago
    # (this run fired 3 s early) does not hold the next step for another minute; one 30 s ago (an alarm's run
    # between two scheduled ones) still does.
    cfg = dataclasses.replace(CFG, scale_out_cooldown=ScalerConfig().scale_out_cooldown)
    early = _state(RISING, desired=15, nodes=15, last_scale_out=NOW - 57)
    assert decide(early, cfg, now=NOW).action is Action.SCALE_OUT
    between = dataclasses.replace(early, last_scale_out=NOW - 30)
    assert decide(between, cfg, now=NOW).action is Action.HOLD


def test_no_scale_in_when_pending_pods_cannot_be_seen() -> None:
    # Container Insights (no Kubernetes API): low reserved CPU says nothing about pods waiting on no node.
    state = _state(STEADY, desired=20, nodes=20, last_scale_out=NOW - 3600)
    assert decide(state, CFG, now=NOW).action is Action.SCALE_IN
    blind = decide(dataclasses.replace(state, pending_visible=False), CFG, now=NOW)
    assert blind.action is Action.HOLD and "cannot see pending pods" in blind.reason and blind.desired == 20
    # Scaling out still works from the metric.
    rising = _state(RISING, desired=2, nodes=2, pending_visible=False)
    assert decide(rising, CFG, now=NOW).action is Action.SCALE_OUT


def test_scale_in_after_the_window_down_to_the_window_s_peak() -> None:
    values = [*STEADY[:30], 50_000.0, *STEADY[:9]]  # a 50-core blip 9 minutes ago, inside the history
    state = _state(values, desired=20, nodes=20, last_scale_out=NOW - 3600)
    decision = decide(state, CFG, now=NOW)
    assert decision.action is Action.SCALE_IN
    # Down to what the forecast and its headroom need (the blip was a miss: it sizes the headroom), at most
    # max_step at a time.
    assert decision.desired == max(decision.wanted_nodes, 20 - CFG.max_step) < 20
    # The same blip 3 minutes ago is inside the 5-minute window: the group keeps what that peak needed.
    recent = _state([*STEADY[:36], 50_000.0, *STEADY[:3]], desired=20, nodes=20, last_scale_out=NOW - 3600)
    assert decide(recent, CFG, now=NOW).desired == 13  # ceil(50 000 / 3 920)


def test_no_scale_in_with_pending_pods_inside_the_window_or_on_a_short_history() -> None:
    calm = {"desired": 20, "nodes": 20, "last_scale_out": NOW - 3600}
    pending = decide(_state(STEADY, pending_millicores=500, **calm), CFG, now=NOW)
    assert pending.action is Action.HOLD and "pending" in pending.reason
    inside = decide(_state(STEADY, **{**calm, "last_scale_out": NOW - 120}), CFG, now=NOW)
    assert inside.action is Action.HOLD and "stabilisation window" in inside.reason
    short = decide(_state(STEADY[:4], **calm), CFG, now=NOW)
    assert short.action is Action.HOLD and "does not cover" in short.reason
    assert decide(_state(STEADY, **calm), CFG, now=NOW).action is Action.SCALE_IN


def test_never_below_min() -> None:
    decision = decide(_state([1_000.0] * 40, desired=4, nodes=4, min_size=3), CFG, now=NOW)
    assert decision.action is Action.SCALE_IN and decision.desired == 3


def test_kill_switch_and_dry_run_refuse_and_report_what_they_would_do() -> None:
    state = _state(RISING, desired=15, nodes=15)
    killed = decide(state, CFG, now=NOW, kill_switch=True)
    assert killed.action is Action.REFUSED and not killed.changed
    assert killed.desired == 15 and killed.proposed > 15
    assert CFG.kill_switch_parameter in killed.reason and f"nodes 15 -> {killed.proposed}" in killed.reason
    dry = decide(state, CFG, now=NOW, dry_run=True)
    assert dry.action is Action.REFUSED and dry.desired == 15 and dry.reason.startswith("dry run")
    assert dry.proposed == decide(state, CFG, now=NOW).desired
    # Nothing to change: nothing is refused.
    assert decide(_state(STEADY, desired=8, nodes=8), CFG, now=NOW, dry_run=True).action is Action.HOLD


@pytest.mark.parametrize("autoscaler", [Autoscaler.CLUSTER_AUTOSCALER, Autoscaler.KARPENTER])
def test_a_group_another_autoscaler_manages_keeps_its_desired_capacity(autoscaler: Autoscaler) -> None:
    state = _state(RISING, desired=15, nodes=15, autoscaler=autoscaler)
    refused = decide(state, CFG, now=NOW)
    assert refused.action is Action.REFUSED and refused.desired == 15
    assert autoscaler.value in refused.reason and "headroom" in refused.reason

    headroom_cfg = dataclasses.replace(CFG, actuators=(("prod", Actuator.HEADROOM),))
    decision = decide(state, headroom_cfg, now=NOW)
    assert decision.actuator is Actuator.HEADROOM and decision.action is Action.SCALE_OUT
    assert decision.desired == 15  # untouched: Cluster Autoscaler or Karpenter adds the nodes
    fc = decision.forecast
    assert fc is not None
    gap = max(fc.millicores, RISING[-1]) + fc.headroom - RISING[-1]
    assert decision.replicas == decision.proposed == -(-gap // headroom_cfg.headroom_pod_millicores)
    assert decision.pod_millicores == headroom_cfg.headroom_pod_millicores
    assert "pause pods 0 -> " in decision.reason


def test_headroom_is_bounded_and_shrinks_under_the_same_guardrails() -> None:
    cfg = dataclasses.replace(CFG, actuators=(("*", Actuator.HEADROOM),), max_step=1, headroom_pod_millicores=980)
    managed = {"autoscaler": Autoscaler.CLUSTER_AUTOSCALER, "desired": 15, "nodes": 15}
    grow = decide(_state(RISING, **managed), cfg, now=NOW)
    assert grow.replicas == 4  # one node's worth (3920 m) of 980 m pods per action
    ceiling = decide(_state(RISING, **{**managed, "max_size": 27}), dataclasses.replace(cfg, max_step=10), now=NOW)
    assert ceiling.replicas == (27 * ALLOC - RISING[-1]) // 980 == 8  # never more than max_size can hold
    shrink = _state(STEADY, **managed, headroom_replicas=12, last_scale_out=NOW - 3600)
    assert decide(shrink, cfg, now=NOW).replicas == 8
    assert decide(dataclasses.replace(shrink, pending_millicores=1), cfg, now=NOW).replicas == 12
    assert decide(shrink, cfg, now=NOW, kill_switch=True).replicas == 12


def test_headroom_needs_an_autoscaler_to_act_on_the_pause_pods() -> None:
    cfg = dataclasses.replace(CFG, actuators=(("*", Actuator.HEADROOM),))
    decision = decide(_state(RISING, desired=15, nodes=15), cfg, now=NOW)
    assert decision.action is Action.REFUSED and decision.replicas == 0 and "use asg" in decision.reason


def test_no_history_holds() -> None:
    decision = decide(_state([]), CFG, now=NOW)
    assert decision.action is Action.HOLD and decision.forecast is None and decision.desired == 10
    stale = decide(_state(STEADY), CFG, now=NOW + 2 * CFG.history_seconds)
    assert stale.action is Action.HOLD and stale.forecast is None


def test_a_history_that_stopped_before_the_window_keeps_the_history_s_peak() -> None:
    """Runs failed for a while: the newest sample is older than the scale-in window (it was a ValueError). Nothing is
    known of the window, so a scale-in keeps the whole history's peak (60 cores: 16 nodes), not the last value's 6."""
    falling = [60_000.0] * 30 + [20_000.0] * 10
    decision = decide(_state(falling, desired=20, nodes=20), CFG, now=NOW + CFG.scale_in_window + 120)
    assert decision.desired == 16
    # As the Lambda runs it: the sample taken now is appended to the stored history, which stopped 8 minutes ago.
    later = NOW + 480
    stored = _history([60_000.0] * 50)
    now_sample = dataclasses.replace(stored[-1], at=later, millicores=20_000.0)
    state = _state([], desired=20, nodes=20, history=(*stored, now_sample))
    assert decide(state, CFG, now=later).desired == 16  # was a scale-in to 6: the window held only this run
    # The runs after it: their own samples are no window either until a whole window of them has been recorded.
    history = state.history
    for minute in range(1, 8):
        at = later + 60 * minute
        history = (*history, dataclasses.replace(stored[-1], at=at, millicores=20_000.0))
        decision = decide(dataclasses.replace(state, history=history), CFG, now=at)
        assert decision.desired == 16 if at - later <= CFG.scale_in_window else decision.desired < 16, minute


def test_the_report_is_json() -> None:
    decision = decide(_state(RISING, desired=15, nodes=15), CFG, now=NOW, dry_run=True)
    report = json.loads(json.dumps(decision.as_dict()))
    assert report["action"] == "refused" and report["actuator"] == "asg" and report["desired"] == 15
    assert report["forecast"]["headroom_millicores"] >= 0 and report["forecast"]["basis"] == "errors"
    assert len(report["history"]) == len(RISING) and report["history"][-1] == [NOW, RISING[-1]]


def test_state_is_validated() -> None:
    with pytest.raises(ValueError, match="min"):
        _state(STEADY, desired=1)
    with pytest.raises(ValueError, match="node_millicores"):
        _state(STEADY, node_millicores=0)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, Autoscaler.NONE),
        ({"k8s.io/cluster-autoscaler/enabled": "true", "k8s.io/cluster-autoscaler/prod": "owned"}, "ca"),
        ({"k8s.io/cluster-autoscaler/enabled": "false"}, Autoscaler.NONE),
        ({"karpenter.sh/nodepool": "default"}, Autoscaler.KARPENTER),
        ({"karpenter.sh/provisioner-name": "default"}, Autoscaler.KARPENTER),
        ({"k8s.io/cluster-autoscaler/enabled": "true", "eksops:scaling-autoscaler": "none"}, Autoscaler.NONE),
        ({"eksops:scaling-autoscaler": "Karpenter"}, Autoscaler.KARPENTER),
        ({"k8s.io/cluster-autoscaler/enabled": "true", "eksops:scaling-autoscaler": "maybe"}, "ca"),
    ],
)
def test_autoscaler_from_tags(tags: dict[str, str], expected: Autoscaler | str) -> None:
    want = Autoscaler.CLUSTER_AUTOSCALER if expected == "ca" else expected
    assert autoscaler_from_tags(tags) is want
