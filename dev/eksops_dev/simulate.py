"""`eksops simulate`: a discrete-time simulation of one node group under several scaling policies.

Every policy runs on the same demand trace and the same node group, and is scored on

- ``pending_core_seconds``: requested CPU that could not be placed, integrated over time (cores x seconds);
- ``max_pending_seconds``: the longest stretch with any pending demand;
- ``node_hours``: instances x hours, booting ones included (EC2 bills from launch).

Modelling choices (the figures depend on them, so they are stated):

- Time advances in steps of ``step`` seconds (5 s by default). A trace gives the cluster-wide CPU requested by
  pods (running + pending, millicores) at each step; a CSV trace is interpolated linearly between its rows.
- Placement is fluid: requests are placed while the ready nodes' allocatable CPU lasts (100 % packing); the rest
  is pending. Real bin-packing loses some capacity for every policy alike; the Lambda's SCALER_TARGET_PERCENT
  (90 by default) exists for that loss, which is why the simulator runs predictive (and the oracle, so that the
  two compare like for like) at ``--target-percent 100`` unless told otherwise.
- A node's allocatable CPU is its cores less the kubelet reservation of the EKS AMIs (6 % of the first core,
  1 % of the second, 0.5 % of the third and fourth, 0.25 % of the rest): 3920 m on a 4-core node. A launched
  node is ready ``ready_seconds`` later (EC2 boot + kubelet join). Scaling in removes booting nodes first, then
  ready ones; pods on a removed node go back to pending if the others cannot hold them.
- ``reactive`` is Cluster Autoscaler with its defaults: every 10 s, if pods are pending beyond what booting
  nodes will hold, it adds the nodes they need; a node unneeded for 10 minutes (scale-down-unneeded-time) is
  removed, at most 10 at a time, and never within 10 minutes of a scale-up (scale-down-delay-after-add). With
  fluid packing every surplus node counts as unneeded, which is generous to it.
- ``karpenter`` provisions exactly the pending demand at every step (its batching window is 1 to 10 s) and still
  waits the ready delay; it consolidates nodes unneeded for 15 s (its validation delay), 10 % of the nodes at a
  time (the default disruption budget), and not while pods are pending or nodes are booting.
- ``threshold`` is a CloudWatch alarm on Container Insights' ``node_cpu_reserved_capacity`` (requests of placed
  pods / node *cores*, so it never reaches 100 % and cannot see pending pods), read one minute late: above 70 %
  it adds 2 nodes, below 40 % for 15 minutes it removes 1, with the Auto Scaling group's 300 s cooldown.
- ``predictive`` is eksops: every ``interval`` seconds (60 s, the function's schedule) it appends the demand
  (running + pending requests, what the Kubernetes API shows) to its history and calls
  :func:`eksops.scaling.decide`, the very function the node_scaler Lambda runs, with the asg actuator.
- ``oracle`` knows the future: exactly the nodes the demand needs at each step, each launched ``ready_seconds``
  ahead and kept while a later need would otherwise have to relaunch it. It bounds what any policy can do.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import json
import math
import random
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eksops.scaling import Action, GroupState, Sample, ScalerConfig, decide

POLICIES = ("reactive", "karpenter", "threshold", "predictive", "oracle")
TRACES = ("diurnal", "ramp", "sawtooth", "spike")
ACCEPTANCE_TRACES = ("diurnal", "ramp", "sawtooth")
DEFAULT_READY_SECONDS = 150.0
DEFAULT_NODE_CPU = 4.0
PENDING_EPSILON = 0.5  # millicores: below this, float rounding, not a pod


class TraceError(ValueError):
    """A trace file that cannot be read as `seconds,cpu_millicores` rows."""


# ---------------------------------------------------------------------------------------------------- the model


def allocatable_millicores(cores: float) -> int:
    """Allocatable CPU of a node with ``cores`` cores, after the EKS AMIs' kubelet CPU reservation."""
    millicores = cores * 1000
    reserved = 0.0
    for size, share in ((1000, 0.06), (1000, 0.01), (2000, 0.005), (math.inf, 0.0025)):
        part = min(size, max(0.0, millicores))
        reserved += part * share
        millicores -= part
    return int(cores * 1000 - reserved)


@dataclass(frozen=True)
class Cluster:
    node_cpu: float = DEFAULT_NODE_CPU
    ready_seconds: float = DEFAULT_READY_SECONDS
    min_nodes: int = 2
    max_nodes: int = 100

    @property
    def allocatable(self) -> int:
        return allocatable_millicores(self.node_cpu)

    def nodes_for(self, millicores: float, fraction: float = 1.0) -> int:
        """Nodes that hold ``millicores`` at ``fraction`` of their allocatable CPU, within min..max."""
        needed = math.ceil(millicores / (self.allocatable * fraction) - 1e-9)
        return min(max(needed, self.min_nodes), self.max_nodes)


@dataclass(frozen=True)
class Trace:
    """Cluster-wide CPU requested (millicores) over ``duration`` seconds."""

    name: str
    duration: float
    demand: Callable[[float], float]
    description: str = ""


class NodeGroup:
    """An Auto Scaling group's instances: ready ones, and booting ones with the time they become ready."""

    def __init__(self, cluster: Cluster, ready: int) -> None:
        self.cluster = cluster
        self.ready = ready
        self.booting: list[float] = []

    @property
    def total(self) -> int:
        return self.ready + len(self.booting)

    def tick(self, now: float) -> None:
        while self.booting and self.booting[0] <= now:
            self.booting.pop(0)
            self.ready += 1

    def launch(self, count: int, now: float) -> int:
        count = max(0, min(count, self.cluster.max_nodes - self.total))
        self.booting.extend([now + self.cluster.ready_seconds] * count)
        return count

    def terminate(self, count: int) -> int:
        count = max(0, min(count, self.total - self.cluster.min_nodes))
        for _ in range(count):
            if self.booting:
                self.booting.pop()  # the newest first: it holds no pods yet
            else:
                self.ready -= 1
        return count

    def set_desired(self, desired: int, now: float) -> None:
        if desired > self.total:
            self.launch(desired - self.total, now)
        elif desired < self.total:
            self.terminate(self.total - desired)


@dataclass
class Observation:
    now: float
    demand: float  # millicores requested (running + pending)
    pending: float  # millicores that do not fit on ready nodes


class Policy(Protocol):
    name: str

    def act(self, obs: Observation, group: NodeGroup) -> None: ...


# ------------------------------------------------------------------------------------------------- the policies


class Reactive:
    """Cluster Autoscaler with its default timings (see the module docstring)."""

    name = "reactive"

    def __init__(self, cluster: Cluster, scan: float = 10.0, unneeded: float = 600.0, delay_after_add: float = 600.0):
        self.cluster, self.scan, self.unneeded, self.delay_after_add = cluster, scan, unneeded, delay_after_add
        self.next_scan = 0.0
        self.last_add = -math.inf
        self.surplus: deque[tuple[float, int]] = deque()

    def act(self, obs: Observation, group: NodeGroup) -> None:
        if obs.now < self.next_scan:
            return
        self.next_scan = obs.now + self.scan
        alloc = self.cluster.allocatable
        upcoming = len(group.booting) * alloc
        if obs.pending > upcoming + PENDING_EPSILON and group.launch(
            math.ceil((obs.pending - upcoming) / alloc), obs.now
        ):
            self.last_add = obs.now
        # Nodes the placed pods do not need, tracked per scan; a count that held for the whole unneeded time goes.
        surplus = max(0, min(group.ready - math.ceil(obs.demand / alloc - 1e-9), group.total - self.cluster.min_nodes))
        self.surplus.append((obs.now, surplus))
        while self.surplus and self.surplus[0][0] < obs.now - self.unneeded:
            self.surplus.popleft()
        if obs.now - self.last_add < self.delay_after_add or self.surplus[0][0] > obs.now - self.unneeded + self.scan:
            return
        removable = min(count for _, count in self.surplus)
        removed = group.terminate(min(removable, 10))
        if removed:
            self.surplus = deque((at, max(0, count - removed)) for at, count in self.surplus)


class Karpenter:
    """Karpenter: provisions the pending demand at once, consolidates quickly (see the module docstring)."""

    name = "karpenter"

    def __init__(self, cluster: Cluster, validation: float = 15.0, budget: float = 0.10):
        self.cluster, self.validation, self.budget = cluster, validation, budget
        self.unneeded_since: float | None = None

    def act(self, obs: Observation, group: NodeGroup) -> None:
        alloc = self.cluster.allocatable
        upcoming = len(group.booting) * alloc
        if obs.pending > upcoming + PENDING_EPSILON:
            group.launch(math.ceil((obs.pending - upcoming) / alloc), obs.now)
        surplus = min(group.ready - math.ceil(obs.demand / alloc - 1e-9), group.total - self.cluster.min_nodes)
        if surplus <= 0 or obs.pending > PENDING_EPSILON or group.booting:
            self.unneeded_since = None
            return
        if self.unneeded_since is None:
            self.unneeded_since = obs.now
        elif obs.now - self.unneeded_since >= self.validation:
            group.terminate(min(surplus, max(1, math.floor(group.total * self.budget))))
            self.unneeded_since = obs.now


class Threshold:
    """A CloudWatch alarm on node_cpu_reserved_capacity with simple step scaling (see the module docstring)."""

    name = "threshold"

    def __init__(
        self,
        cluster: Cluster,
        *,
        high: float = 70.0,
        low: float = 40.0,
        step: int = 2,
        cooldown: float = 300.0,
        low_periods: int = 15,
        lag: float = 60.0,
    ):
        self.cluster, self.high, self.low, self.step = cluster, high, low, step
        self.cooldown, self.low_periods, self.lag = cooldown, low_periods, lag
        self.metric: deque[tuple[float, float]] = deque()
        self.next_eval = 0.0
        self.last_action = -math.inf
        self.low_count = 0

    def act(self, obs: Observation, group: NodeGroup) -> None:
        placed = obs.demand - obs.pending
        reserved = 100 * placed / (group.ready * self.cluster.node_cpu * 1000) if group.ready else 100.0
        self.metric.append((obs.now, reserved))
        if obs.now < self.next_eval:
            return
        self.next_eval = obs.now + 60
        while len(self.metric) > 1 and self.metric[1][0] <= obs.now - self.lag:
            self.metric.popleft()
        seen = self.metric[0][1]  # the datapoint the alarm evaluates: one minute old
        self.low_count = self.low_count + 1 if seen < self.low else 0
        if obs.now - self.last_action < self.cooldown:
            return
        if seen > self.high and group.launch(self.step, obs.now):
            self.last_action = obs.now
        elif self.low_count >= self.low_periods and group.terminate(1):
            self.last_action, self.low_count = obs.now, 0


class Predictive:
    """eksops: the node_scaler's own decision, fed the simulated demand history every ``interval`` seconds."""

    name = "predictive"

    def __init__(self, cluster: Cluster, cfg: ScalerConfig, interval: float = 60.0):
        self.cluster, self.cfg, self.interval = cluster, cfg, interval
        self.history: deque[Sample] = deque()
        self.next_eval = 0.0
        self.last_scale_out: float | None = None
        self.last_scale_in: float | None = None
        self.decisions = 0

    def act(self, obs: Observation, group: NodeGroup) -> None:
        if obs.now < self.next_eval:
            return
        self.next_eval = obs.now + self.interval
        self.history.append(Sample(obs.now, obs.demand))
        while self.history[0].at < obs.now - self.cfg.history_seconds:
            self.history.popleft()
        state = GroupState(
            name="simulated",
            min_size=self.cluster.min_nodes,
            max_size=self.cluster.max_nodes,
            desired=group.total,
            nodes=group.ready,
            node_millicores=self.cluster.allocatable,
            pending_millicores=obs.pending,
            history=tuple(self.history),
            last_scale_out=self.last_scale_out,
            last_scale_in=self.last_scale_in,
        )
        decision = decide(state, self.cfg, now=obs.now)
        self.decisions += 1
        if decision.action is Action.SCALE_OUT:
            group.set_desired(decision.desired, obs.now)
            self.last_scale_out = obs.now
        elif decision.action is Action.SCALE_IN:
            group.set_desired(decision.desired, obs.now)
            self.last_scale_in = obs.now


# ------------------------------------------------------------------------------------------------------ running


@dataclass
class Result:
    policy: str
    pending_core_seconds: float
    max_pending_seconds: float
    node_hours: float
    times: list[float] = field(default_factory=list, repr=False)
    capacity: list[float] = field(default_factory=list, repr=False)  # ready allocatable CPU, millicores
    pending: list[float] = field(default_factory=list, repr=False)

    def figures(self) -> dict[str, float]:
        return {
            "pending_core_seconds": round(self.pending_core_seconds, 1),
            "max_pending_seconds": round(self.max_pending_seconds),
            "node_hours": round(self.node_hours, 2),
        }


class _Score:
    def __init__(self, policy: str, step: float) -> None:
        self.result = Result(policy, 0.0, 0.0, 0.0)
        self.step = step
        self.stretch = 0.0

    def add(self, now: float, pending: float, capacity: float, instances: int) -> None:
        r = self.result
        r.pending_core_seconds += pending / 1000 * self.step
        r.node_hours += instances * self.step / 3600
        self.stretch = self.stretch + self.step if pending > PENDING_EPSILON else 0.0
        r.max_pending_seconds = max(r.max_pending_seconds, self.stretch)
        r.times.append(now)
        r.capacity.append(capacity)
        r.pending.append(pending)


def _grid(trace: Trace, step: float) -> list[float]:
    return [i * step for i in range(int(trace.duration // step) + 1)]


def run_policy(trace: Trace, policy: Policy, cluster: Cluster, step: float = 5.0) -> Result:
    """Run one policy over the trace; every policy starts with the nodes the initial demand needs, all ready."""
    alloc = cluster.allocatable
    group = NodeGroup(cluster, cluster.nodes_for(trace.demand(0.0)))
    score = _Score(policy.name, step)
    for now in _grid(trace, step):
        demand = trace.demand(now)
        group.tick(now)
        policy.act(Observation(now, demand, max(0.0, demand - group.ready * alloc)), group)
        pending = max(0.0, demand - group.ready * alloc)
        score.add(now, pending, group.ready * alloc, group.total)
    return score.result


def run_oracle(trace: Trace, cluster: Cluster, step: float = 5.0, fraction: float = 1.0) -> Result:
    """The lower bound: ready nodes exactly as needed; an instance exists from ready_seconds before its need."""
    alloc = cluster.allocatable
    times = _grid(trace, step)
    demand = [trace.demand(t) for t in times]
    needed = [cluster.nodes_for(d, fraction) for d in demand]
    ahead = max(0, round(cluster.ready_seconds / step))
    score = _Score("oracle", step)
    window: deque[int] = deque()  # indices of a sliding maximum of needed over [i, i + ahead]
    for i in range(len(times) + ahead):
        if i < len(times):
            while window and needed[window[-1]] <= needed[i]:
                window.pop()
            window.append(i)
        start = i - ahead
        if start < 0:
            continue
        while window[0] < start:
            window.popleft()
        capacity = needed[start] * alloc
        score.add(times[start], max(0.0, demand[start] - capacity), capacity, needed[window[0]])
    return score.result


def simulate(
    trace: Trace,
    cluster: Cluster,
    *,
    policies: Sequence[str] = POLICIES,
    cfg: ScalerConfig | None = None,
    interval: float = 60.0,
    step: float = 5.0,
) -> dict[str, Result]:
    """Run the named policies on the trace. ``cfg`` configures predictive (and the oracle's target)."""
    cfg = cfg or scaler_config(cluster, interval)
    makers: dict[str, Callable[[], Policy]] = {
        "reactive": lambda: Reactive(cluster),
        "karpenter": lambda: Karpenter(cluster),
        "threshold": lambda: Threshold(cluster),
        "predictive": lambda: Predictive(cluster, cfg, interval),
    }
    results: dict[str, Result] = {}
    for name in policies:
        if name == "oracle":
            results[name] = run_oracle(trace, cluster, step, cfg.target_percent / 100)
        elif name in makers:
            results[name] = run_policy(trace, makers[name](), cluster, step)
        else:
            raise ValueError(f"unknown policy {name!r}; use: {', '.join(POLICIES)}")
    return results


def scaler_config(
    cluster: Cluster,
    interval: float = 60.0,
    *,
    target_percent: int = 100,
    lead_seconds: int | None = None,
    max_step: int | None = None,
) -> ScalerConfig:
    """The node_scaler's defaults, with the lead time of this cluster (ready time + interval) and fluid packing."""
    defaults = ScalerConfig()
    return ScalerConfig(
        target_percent=target_percent,
        lead_seconds=lead_seconds or round(cluster.ready_seconds + interval),
        max_step=max_step or defaults.max_step,
    )


def acceptance(results: dict[str, Result]) -> dict[str, Any]:
    """Acceptance 1 of issue 10 on one trace's results: predictive's pending vs reactive and karpenter, and its
    node hours vs the oracle's."""
    predictive = results["predictive"]

    def reduction(other: str) -> float:
        base = results[other].pending_core_seconds
        return 1.0 if base == 0 else 1 - predictive.pending_core_seconds / base

    vs_reactive, vs_karpenter = reduction("reactive"), reduction("karpenter")
    node_ratio = predictive.node_hours / results["oracle"].node_hours
    return {
        "pending_reduction_vs_reactive": round(vs_reactive, 4),
        "pending_reduction_vs_karpenter": round(vs_karpenter, 4),
        "node_hours_vs_oracle": round(node_ratio, 4),
        "holds": vs_reactive >= 0.90 and vs_karpenter >= 0.75 and node_ratio <= 1.15,
    }


# ------------------------------------------------------------------------------------------------------- traces


class _Noise:
    """Deterministic, mean-reverting relative noise (HPA replica churn), changing every ``every`` seconds."""

    def __init__(self, seed: int, duration: float, sd: float, every: float = 15.0, memory: float = 300.0):
        rng = random.Random(seed)  # noqa: S311 - reproducible simulation noise, not security
        keep = math.exp(-every / memory)
        value, self.values, self.every = 0.0, [], every
        for _ in range(int(duration // every) + 2):
            value = keep * value + math.sqrt(1 - keep * keep) * rng.gauss(0, sd)
            self.values.append(value)

    def __call__(self, t: float) -> float:
        return self.values[min(int(t // self.every), len(self.values) - 1)]


def _pods(millicores: float, size: float = 100.0) -> float:
    """Requests come in whole pods: round to ``size`` millicores."""
    return max(0.0, round(millicores / size) * size)


def diurnal(seed: int = 1) -> Trace:
    """A web service's day, 24 hours: 40 cores at 04:00, a morning climb, 200 cores in the late afternoon, an
    evening decline; 2 % HPA churn on top."""
    noise = _Noise(seed, 86400, 0.02)

    def demand(t: float) -> float:
        phase = 2 * math.pi * (t / 3600 - 4) / 24
        shape = 0.5 - 0.5 * math.cos(phase) + 0.12 * math.sin(2 * phase) * (1 - math.cos(phase)) / 2
        return _pods((40_000 + 160_000 * min(1.0, max(0.0, shape))) * (1 + noise(t)))

    return Trace("diurnal", 86400, demand, "24 h day: 40 cores at night, 200 in the afternoon, 2 % churn")


def ramp(seed: int = 2) -> Trace:
    """A launch: 24 cores for 45 minutes, then adoption along a logistic curve to 200 cores (10 % to 90 % in about
    50 minutes), then the plateau, 3 hours in all; 2 % churn."""
    noise = _Noise(seed, 10800, 0.02)

    def demand(t: float) -> float:
        growth = 1 / (1 + math.exp(-(t - 5100) / 570))
        return _pods((24_000 + 176_000 * growth) * (1 + noise(t)))

    return Trace("ramp", 10800, demand, "launch: 24 -> 200 cores, logistic over ~50 min, 3 h")


def sawtooth(seed: int = 3) -> Trace:
    """Hourly batch on top of 48 cores of services, 4 hours: each hour a pipeline's workers grow with its backlog
    from 0 to 64 cores over 45 minutes, finish together and leave the cluster idle for 15 minutes; 2 % churn."""
    noise = _Noise(seed, 14400, 0.02)

    def demand(t: float) -> float:
        into = t % 3600
        batch = 64_000 * into / 2700 if into < 2700 else 0.0
        return _pods((48_000 + batch) * (1 + noise(t)))

    return Trace("sawtooth", 14400, demand, "hourly batch: 48 cores + 0 -> 64 over 45 min, then a drop, 4 h")


def spike(seed: int = 4) -> Trace:
    """A flash sale: 40 cores for an hour, a push notification takes it to 160 cores within 30 s with no
    precursor, 45 minutes at the top, 15 minutes back down, 3 hours in all; 2 % churn."""
    noise = _Noise(seed, 10800, 0.02)

    def demand(t: float) -> float:
        if t < 3600:
            level = 40_000.0
        elif t < 3630:
            level = 40_000 + 120_000 * (t - 3600) / 30
        elif t < 6300:
            level = 160_000.0
        elif t < 7200:
            level = 160_000 - 120_000 * (t - 6300) / 900
        else:
            level = 40_000.0
        return _pods(level * (1 + noise(t)))

    return Trace("spike", 10800, demand, "step 40 -> 160 cores in 30 s with no precursor, 3 h")


BUILT_IN: dict[str, Callable[[], Trace]] = {"diurnal": diurnal, "ramp": ramp, "sawtooth": sawtooth, "spike": spike}


def load_trace(path: Path) -> Trace:
    """A CSV trace with header ``seconds,cpu_millicores``, rows in time order at any step, linear in between."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM (spreadsheet exports) is not data
            reader = csv.reader(handle)
            header = [cell.strip() for cell in next(reader, [])]
            if header != ["seconds", "cpu_millicores"]:
                raise TraceError(f"{path}: the header must be seconds,cpu_millicores (found {','.join(header)!r})")
            rows = [(float(a), float(b)) for a, b in _rows(reader, path)]
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror}") from None
    if len(rows) < 2:
        raise TraceError(f"{path}: needs at least two rows")
    times = [t for t, _ in rows]
    if times[0] != 0 or any(b <= a for a, b in itertools.pairwise(times)):
        raise TraceError(f"{path}: seconds must start at 0 and increase from row to row")
    if any(v < 0 for _, v in rows):
        raise TraceError(f"{path}: cpu_millicores must not be negative")

    def demand(t: float) -> float:
        i = min(max(bisect.bisect_right(times, t), 1), len(times) - 1)
        (t0, v0), (t1, v1) = rows[i - 1], rows[i]
        return v0 + (v1 - v0) * min(max((t - t0) / (t1 - t0), 0.0), 1.0)

    return Trace(path.stem, times[-1], demand, f"from {path}")


def _rows(reader: Any, path: Path) -> list[tuple[str, str]]:
    rows = []
    for number, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise TraceError(f"{path}:{number}: expected 2 columns, found {len(row)}")
        try:
            float(row[0]), float(row[1])
        except ValueError:
            raise TraceError(f"{path}:{number}: not numbers: {','.join(row)!r}") from None
        rows.append((row[0], row[1]))
    return rows


# ------------------------------------------------------------------------------------------------------- output


def table(trace: Trace, cluster: Cluster, results: dict[str, Result]) -> str:
    lines = [
        f"trace {trace.name}: {trace.description or f'{trace.duration / 3600:.1f} h'}",
        f"nodes {cluster.min_nodes}..{cluster.max_nodes} of {cluster.node_cpu:g} cores "
        f"({cluster.allocatable} m allocatable), ready {cluster.ready_seconds:g} s after launch",
        f"{'policy':<12}{'pending_core_seconds':>22}{'max_pending_seconds':>21}{'node_hours':>12}",
    ]
    for name, result in results.items():
        f = result.figures()
        lines.append(
            f"{name:<12}{f['pending_core_seconds']:>22,.1f}{f['max_pending_seconds']:>21,.0f}{f['node_hours']:>12,.2f}"
        )
    return "\n".join(lines)


_COLOURS = {"reactive": "C3", "karpenter": "C1", "threshold": "C4", "predictive": "C0", "oracle": "C2"}
_DRAW_ORDER = ("threshold", "karpenter", "reactive", "oracle", "predictive")  # predictive on top


def _busiest_rise(times: list[float], demand: list[float], width: float) -> tuple[float, float]:
    """The stretch of ``width`` seconds over which demand rises the most: where scaling policies differ."""
    best, start, j = -math.inf, 0.0, 0
    for i, t in enumerate(times):
        while j < len(times) - 1 and times[j] < t + width:
            j += 1
        if demand[j] - demand[i] > best:
            best, start = demand[j] - demand[i], t
    start = max(0.0, min(start - width / 4, times[-1] - width))
    return start, start + width


def plot(trace: Trace, results: dict[str, Result], path: Path) -> None:
    """Demand and each policy's ready capacity over the whole trace, a close-up of the steepest rise, and the
    pending CPU (matplotlib: a dev-only dependency, imported here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = next(iter(results.values())).times
    hours = [t / 3600 for t in times]
    demand = [trace.demand(t) / 1000 for t in times]
    low, high = _busiest_rise(times, demand, max(1800.0, trace.duration / 12))
    fig, (whole, close, pending) = plt.subplots(
        3, 1, figsize=(11, 9.5), gridspec_kw={"height_ratios": [2.2, 2.2, 1.3]}, constrained_layout=True
    )
    ordered = sorted(results, key=lambda n: _DRAW_ORDER.index(n) if n in _DRAW_ORDER else -1)
    inside = [i for i, t in enumerate(times) if low <= t <= high]
    for axis, index in ((whole, range(len(times))), (close, inside)):
        axis.plot([hours[i] for i in index], [demand[i] for i in index], color="black", lw=1.6, label="demand")
        for name in ordered:
            capacity = results[name].capacity
            axis.step(
                [hours[i] for i in index],
                [capacity[i] / 1000 for i in index],
                where="post",
                lw=1.8 if name == "predictive" else 1.0,
                color=_COLOURS.get(name),
                label=f"{name} capacity",
                alpha=0.9,
            )
        axis.set_ylabel("CPU cores")
        axis.grid(alpha=0.3)
    window = [demand[i] for i in inside]
    close.set_ylim(0.92 * min(window), 1.12 * max(window))  # around demand: a policy far above runs off the top
    whole.axvspan(low / 3600, high / 3600, color="grey", alpha=0.12, lw=0)
    whole.set_title(f"{trace.name}: requested CPU and each policy's ready allocatable CPU")
    whole.legend(loc="upper left", ncol=3, fontsize=8)
    close.set_title(f"close-up of the steepest rise ({low / 3600:.1f} h to {high / 3600:.1f} h)", fontsize=10)
    for name in ordered:
        figures = results[name].figures()
        pending.plot(
            hours,
            [p / 1000 for p in results[name].pending],
            lw=1.4 if name == "predictive" else 0.8,
            color=_COLOURS.get(name),
            alpha=0.9,
            label=f"{name}: {figures['pending_core_seconds']:,.0f} core-s",
        )
    pending.set_ylabel("pending cores")
    pending.set_xlabel("hours")
    pending.grid(alpha=0.3)
    pending.legend(loc="upper left", ncol=3, fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", choices=TRACES, default="diurnal", help="built-in trace (default diurnal)")
    parser.add_argument("--trace", type=Path, metavar="FILE", help="CSV trace: header seconds,cpu_millicores")
    parser.add_argument("--node-cpu", type=float, default=DEFAULT_NODE_CPU, help="cores per node (default 4)")
    parser.add_argument("--ready-seconds", type=float, default=DEFAULT_READY_SECONDS, help="launch to ready (150)")
    parser.add_argument("--min-nodes", type=int, default=2)
    parser.add_argument("--max-nodes", type=int, default=100)
    parser.add_argument("--policies", default=",".join(POLICIES), help=f"comma-separated subset of {POLICIES}")
    parser.add_argument("--interval", type=float, default=60.0, help="predictive's evaluation interval (60 s)")
    parser.add_argument("--target-percent", type=int, default=100, help="predictive's and the oracle's target")
    parser.add_argument("--lead-seconds", type=int, help="predictive's lead (default: ready seconds + interval)")
    parser.add_argument("--max-step", type=int, help="predictive's SCALER_MAX_STEP (default the function's)")
    parser.add_argument("--step", type=float, default=5.0, help="simulation step in seconds (5)")
    parser.add_argument("--json", action="store_true", help="print only the figures as JSON")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="draw demand and capacity over time")


def run(args: argparse.Namespace) -> int:
    """The `eksops simulate` command."""
    try:
        trace = load_trace(args.trace) if args.trace else BUILT_IN[args.name]()
        cluster = Cluster(args.node_cpu, args.ready_seconds, args.min_nodes, args.max_nodes)
        if not (args.node_cpu > 0 and args.ready_seconds >= 0 and 0 <= args.min_nodes <= args.max_nodes):
            raise ValueError("needs --node-cpu > 0, --ready-seconds >= 0 and 0 <= --min-nodes <= --max-nodes")
        if not (0 < args.step <= args.interval and 10 <= args.target_percent <= 100):
            raise ValueError("needs 0 < --step <= --interval and --target-percent in 10..100")
        cfg = scaler_config(
            cluster, args.interval, target_percent=args.target_percent, lead_seconds=args.lead_seconds,
            max_step=args.max_step,
        )  # fmt: skip
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
        results = simulate(trace, cluster, policies=policies, cfg=cfg, interval=args.interval, step=args.step)
    except (TraceError, ValueError) as exc:
        print(f"eksops simulate: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        plot(trace, results, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps({"policies": {name: r.figures() for name, r in results.items()}}))
    else:
        print(table(trace, cluster, results))
    return 0
