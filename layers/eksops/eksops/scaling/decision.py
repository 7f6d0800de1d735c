"""The scaling decision for one node group: forecast, headroom and every guardrail, as a pure function.

The node_scaler Lambda and the simulator (`eksops simulate`) both call :func:`decide`; nothing here reads a clock,
an environment variable or an API. Capacity is counted in allocatable CPU: ``desired`` nodes hold
``desired x node_millicores``, and the group is sized so that forecast demand plus headroom fills
SCALER_TARGET_PERCENT of it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from eksops.scaling.config import Actuator, ScalerConfig
from eksops.scaling.forecasting import Forecast, HoltParameters, Sample, forecast

__all__ = ["Action", "Autoscaler", "Decision", "GroupState", "autoscaler_from_tags", "decide"]

CA_ENABLED_TAG = "k8s.io/cluster-autoscaler/enabled"
KARPENTER_TAGS = ("karpenter.sh/nodepool", "karpenter.sh/provisioner-name", "karpenter.sh/managed-by")
AUTOSCALER_TAG = "eksops:scaling-autoscaler"  # an operator's statement of which autoscaler runs, if any


class Autoscaler(StrEnum):
    NONE = "none"
    CLUSTER_AUTOSCALER = "cluster-autoscaler"
    KARPENTER = "karpenter"


class Action(StrEnum):
    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    HOLD = "hold"
    REFUSED = "refused"  # a change was called for and not made: dry run, kill switch, or not ours to make


def autoscaler_from_tags(tags: Mapping[str, str]) -> Autoscaler:
    """Which autoscaler manages a group, from its tags (Auto Scaling group or the nodes' EC2 tags).

    ``eksops:scaling-autoscaler`` (none, cluster-autoscaler, karpenter) wins when an operator sets it. Otherwise
    Karpenter's own tags mean Karpenter, and Cluster Autoscaler's auto-discovery tag means Cluster Autoscaler.
    EKS puts that tag on every managed node group, whether Cluster Autoscaler runs or not: erring that way keeps
    eksops from fighting it; an operator who runs none sets ``eksops:scaling-autoscaler=none``.
    """
    stated = tags.get(AUTOSCALER_TAG, "").strip().lower()
    if stated in {a.value for a in Autoscaler}:
        return Autoscaler(stated)
    if any(key in tags for key in KARPENTER_TAGS):
        return Autoscaler.KARPENTER
    if tags.get(CA_ENABLED_TAG, "").strip().lower() == "true":
        return Autoscaler.CLUSTER_AUTOSCALER
    return Autoscaler.NONE


@dataclass(frozen=True)
class GroupState:
    """What the scaler knows about one node group at decision time.

    ``history`` is demand (CPU requested by running + pending pods, millicores; pause pods excluded), oldest
    first, its last sample being the demand now. ``desired`` includes nodes still booting; ``nodes`` are ready.
    """

    name: str
    min_size: int
    max_size: int
    desired: int
    nodes: int
    node_millicores: int  # allocatable CPU of one node
    pending_millicores: float
    history: tuple[Sample, ...]
    autoscaler: Autoscaler = Autoscaler.NONE
    cluster: str = ""
    last_scale_out: float | None = None  # epoch seconds of the last scale-out (either actuator), None: never
    last_scale_in: float | None = None
    headroom_replicas: int = 0  # pause pods the headroom Deployment holds now
    # False when demand comes from Container Insights: pending pods sit on no node, the metric cannot show them,
    # so "no pending pods" is unknown and scale-in is refused.
    pending_visible: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.desired <= self.max_size:
            raise ValueError(f"{self.name}: needs 0 <= min {self.min_size} <= desired {self.desired} <= max")
        if self.node_millicores <= 0 or self.nodes < 0 or self.headroom_replicas < 0 or self.pending_millicores < 0:
            raise ValueError(f"{self.name}: node_millicores must be positive, counts not negative")


@dataclass(frozen=True)
class Decision:
    """What to do with one group, why, and what it was based on (for the change report).

    ``desired`` and ``replicas`` are the group's desired capacity and the pause pod count *after* the decision:
    unchanged unless the action is scale_out or scale_in. ``proposed`` is what the guardrailed decision would set,
    in the actuator's unit (nodes for asg, pause pods for headroom): what a dry run or a refusal reports.
    """

    group: str
    action: Action
    actuator: Actuator
    reason: str
    desired: int
    replicas: int
    proposed: int
    wanted_nodes: int  # nodes the forecast and headroom call for, before min/max, step and timing guardrails
    demand: float  # millicores requested now
    forecast: Forecast | None
    pod_millicores: int = 0  # CPU request of one pause pod (headroom actuator)
    at_max: bool = False  # the forecast calls for more than max_size: the group cannot grow enough (alert)
    history: tuple[Sample, ...] = field(default=(), repr=False)

    @property
    def changed(self) -> bool:
        return self.action in (Action.SCALE_OUT, Action.SCALE_IN)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable report of the decision."""
        fc = self.forecast
        return {
            "group": self.group,
            "action": self.action.value,
            "actuator": self.actuator.value,
            "reason": self.reason,
            "desired": self.desired,
            "replicas": self.replicas,
            "proposed": self.proposed,
            "wanted_nodes": self.wanted_nodes,
            "at_max": self.at_max,
            "demand_millicores": round(self.demand),
            "forecast": None
            if fc is None
            else {
                "at": fc.at,
                "millicores": round(fc.millicores),
                "headroom_millicores": round(fc.headroom),
                "trend_millicores_per_minute": round(fc.trend * 60, 1),
                "errors_measured": fc.errors,
                "basis": fc.basis,
            },
            "history": [[s.at, round(s.millicores)] for s in self.history],
        }


@dataclass(frozen=True)
class _Need:
    """Sizes the forecast calls for, in millicores of capacity to provide."""

    out: float  # for scaling out: forecast (or demand now, if higher) plus headroom, over the target fraction
    keep: float  # floor for scaling in: the highest demand inside the stabilisation window, over the fraction
    covers_window: bool  # the history reaches back over the whole stabilisation window


def _window(history: tuple[Sample, ...], now: float, window_s: float) -> list[float]:
    """Demand over the scale-in window. When the window has a hole (runs failed: a gap of over two sampling
    intervals between the sample before the window and the newest), what happened in it is unknown, so a scale-in
    keeps the whole history's peak instead of trusting the few samples since."""
    inside = [s for s in history if s.at >= now - window_s]
    before = [s for s in history if s.at < now - window_s][-1:]
    steps = sorted(b.at - a.at for a, b in itertools.pairwise(history))
    limit = max(2 * steps[len(steps) // 2], 120.0) if steps else window_s
    span = [*before, *inside]
    if not inside or any(b.at - a.at > limit for a, b in itertools.pairwise(span)):
        return [s.millicores for s in history]
    return [s.millicores for s in inside]


def decide(
    state: GroupState,
    cfg: ScalerConfig,
    *,
    now: float,
    kill_switch: bool = False,
    dry_run: bool = False,
    params: HoltParameters | None = None,
) -> Decision:
    """Decide the group's size (asg actuator) or its pause pods (headroom actuator) at time ``now``.

    Guardrails, in order: no history -> hold; a group Cluster Autoscaler or Karpenter manages never has its
    desired capacity changed (asg refuses; headroom is the way), and headroom needs one of them to act on the
    pause pods; scale out at most ``max_step`` nodes, not within ``scale_out_cooldown`` of the last scale-out,
    never above max; scale in at most ``max_step`` nodes, never below min, never with pending pods, never
    within ``scale_in_window`` of the last scale-out, never below the highest demand inside that window; then
    the kill switch and dry run turn any change into a refusal.
    """
    actuator = cfg.actuator_for(state.cluster or state.name)
    current = _current(state, actuator)
    history = tuple(s for s in state.history if now - cfg.history_seconds <= s.at <= now)
    if not history:
        return Decision(
            group=state.name,
            action=Action.HOLD,
            actuator=actuator,
            reason="no demand history yet",
            desired=state.desired,
            replicas=state.headroom_replicas,
            proposed=current,
            wanted_nodes=state.desired,
            demand=0.0,
            forecast=None,
        )
    fc = forecast(history, cfg.lead_seconds, quantile=cfg.headroom_quantile, params=params)
    demand = history[-1].millicores
    fraction = cfg.target_percent / 100
    window = _window(history, now, cfg.scale_in_window)
    need = _Need(
        out=(max(fc.millicores, demand) + fc.headroom) / fraction,
        keep=max(window) / fraction,
        covers_window=history[0].at <= now - cfg.scale_in_window,
    )
    wanted = math.ceil(need.out / state.node_millicores - 1e-9)
    action, proposed, reason = _plan(state, cfg, actuator, need, demand_now=demand, now=now)

    desired, replicas = state.desired, state.headroom_replicas
    if action in (Action.SCALE_OUT, Action.SCALE_IN):
        change = f"{'nodes' if actuator is Actuator.ASG else 'pause pods'} {current} -> {proposed}"
        refusal = _refusal(state, actuator, kill_switch=kill_switch, dry_run=dry_run, cfg=cfg)
        if refusal:
            action, reason = Action.REFUSED, f"{refusal}; would set {change}"
        elif actuator is Actuator.ASG:
            desired, reason = proposed, f"{reason}: {change}"
        else:
            replicas, reason = proposed, f"{reason}: {change}"
    return Decision(
        group=state.name,
        action=action,
        actuator=actuator,
        reason=reason,
        desired=desired,
        replicas=replicas,
        proposed=proposed,
        wanted_nodes=wanted,
        demand=demand,
        forecast=fc,
        pod_millicores=cfg.headroom_pod_millicores if actuator is Actuator.HEADROOM else 0,
        at_max=wanted > state.max_size,
        history=history,
    )


def _current(state: GroupState, actuator: Actuator) -> int:
    return state.desired if actuator is Actuator.ASG else state.headroom_replicas


def _refusal(state: GroupState, actuator: Actuator, *, kill_switch: bool, dry_run: bool, cfg: ScalerConfig) -> str:
    if actuator is Actuator.ASG and state.autoscaler is not Autoscaler.NONE:
        return f"{state.autoscaler.value} manages this group: its desired capacity is left to it (use headroom)"
    if actuator is Actuator.HEADROOM and state.autoscaler is Autoscaler.NONE:
        return "headroom needs Cluster Autoscaler or Karpenter to provision nodes for the pause pods (use asg)"
    if kill_switch:
        return f"kill switch {cfg.kill_switch_parameter} is on"
    if dry_run:
        return "dry run"
    return ""


def _plan(
    state: GroupState, cfg: ScalerConfig, actuator: Actuator, need: _Need, *, demand_now: float, now: float
) -> tuple[Action, int, str]:
    """The guardrailed change (action, new size in the actuator's unit, reason), before dry run and kill switch."""
    alloc = state.node_millicores
    if actuator is Actuator.ASG:
        current, lowest, highest, step = state.desired, state.min_size, state.max_size, cfg.max_step
        target_out = math.ceil(need.out / alloc - 1e-9)
        target_keep = max(target_out, math.ceil(need.keep / alloc - 1e-9))
    else:
        # Pause pods fill the gap between demand now and the capacity wanted, CA or Karpenter adds nodes for
        # them, and real pods preempt them. Never more than the group's max size can hold.
        pod = cfg.headroom_pod_millicores
        current, lowest, step = state.headroom_replicas, 0, max(1, cfg.max_step * alloc // pod)
        highest = max(0, math.floor((state.max_size * alloc - demand_now) / pod))
        target_out = math.ceil(max(0.0, need.out - demand_now) / pod - 1e-9)
        target_keep = max(target_out, math.ceil(max(0.0, need.keep - demand_now) / pod - 1e-9))

    if target_out > current:
        if current >= highest:
            return Action.HOLD, current, f"at the maximum ({highest}); the forecast calls for {target_out}"
        if state.last_scale_out is not None and now - state.last_scale_out < cfg.scale_out_cooldown:
            return Action.HOLD, current, f"scale-out cooldown ({cfg.scale_out_cooldown} s) since the last scale-out"
        proposed = min(target_out, current + step, highest)
        return Action.SCALE_OUT, proposed, "forecast demand plus headroom exceeds the target"
    if target_keep < current and current > lowest:
        if state.pending_millicores > 0:
            return Action.HOLD, current, "pods are pending: no scale-in"
        if not state.pending_visible:
            return (
                Action.HOLD,
                current,
                ("no scale-in from Container Insights: it cannot see pending pods (give the scaler API access)"),
            )
        if state.last_scale_out is not None and now - state.last_scale_out < cfg.scale_in_window:
            return Action.HOLD, current, f"inside the stabilisation window ({cfg.scale_in_window} s) of a scale-out"
        if not need.covers_window:
            return Action.HOLD, current, "the demand history does not cover the stabilisation window yet"
        proposed = max(target_keep, current - step, lowest)
        return Action.SCALE_IN, proposed, "demand stayed below the target over the stabilisation window"
    return Action.HOLD, current, "capacity matches the forecast"
