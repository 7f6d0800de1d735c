"""What starts compliance_sweep, parsed once at the edge: the schedule, a cluster's continuation, or an on-demand run.

* The daily schedule (EventBridge "Scheduled Event") -> :class:`FanOut`: list the clusters, one continuation each.
* An eksops continuation for compliance_sweep whose checkpoint is ``{"cluster": "<name>"}`` -> :class:`ClusterSweep`:
  one cluster's sweep, in its own invocation (retried and dead-lettered on its own).
* An on-demand direct invocation (``aws lambda invoke --payload``): ``{"sweep": "all"}`` -> :class:`FanOut`, or
  ``{"sweep": {"cluster": "<name>"}}`` -> :class:`ClusterSweep` (that cluster now, in this invocation).

Anything else is InvalidEvent (malformed, naming the field) or UnsupportedEvent (another function's event); nothing
is read or changed before the event has parsed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops.events import CloudTrailCall, ScheduledRun, cluster_name, parse_eventbridge

__all__ = ["FUNCTION", "ClusterSweep", "FanOut", "Trigger", "parse_trigger"]

FUNCTION = "compliance_sweep"
ON_DEMAND_KEY = "sweep"


@dataclass(frozen=True)
class FanOut:
    """Sweep every cluster (COMPLIANCE_CLUSTERS): put one continuation per cluster."""

    run_id: str
    origin: str  # "schedule <rule name>" or "on demand"


@dataclass(frozen=True)
class ClusterSweep:
    """Sweep one cluster in this invocation."""

    cluster: str
    run_id: str
    origin: str = "on demand"  # or "continuation" (from a fan-out)


Trigger = FanOut | ClusterSweep


def parse_trigger(event: Any) -> Trigger:
    """The trigger an event asks for (see the module docstring for the shapes)."""
    if isinstance(event, Mapping) and ON_DEMAND_KEY in event and "detail-type" not in event:
        return _on_demand(event)
    parsed = parse_eventbridge(event)
    if isinstance(parsed, ScheduledRun):
        return FanOut(run_id=parsed.id or uuid.uuid4().hex, origin=f"schedule {parsed.rule}")
    if isinstance(parsed, CloudTrailCall):
        raise UnsupportedEvent(
            f"{FUNCTION} acts on its schedule, its continuations and on-demand runs, not on CloudTrail calls"
        )
    if parsed.function != FUNCTION:
        raise UnsupportedEvent(f"continuation for {parsed.function[:80]!r} reached {FUNCTION}")
    cluster = cluster_name(parsed.checkpoint.get("cluster"), "detail.checkpoint.cluster")
    return ClusterSweep(cluster=cluster, run_id=parsed.run_id, origin="continuation")


def _on_demand(event: Mapping[str, Any]) -> Trigger:
    extra = sorted(str(k)[:40] for k in event if k != ON_DEMAND_KEY)
    if extra:
        raise InvalidEvent(f"an on-demand run takes only the key {ON_DEMAND_KEY!r}; unknown: {', '.join(extra)}")
    what = event[ON_DEMAND_KEY]
    run_id = uuid.uuid4().hex
    if what == "all":
        return FanOut(run_id=run_id, origin="on demand")
    if isinstance(what, Mapping) and set(what) == {"cluster"}:
        return ClusterSweep(cluster=cluster_name(what["cluster"], "sweep.cluster"), run_id=run_id)
    raise InvalidEvent('must be "all" or {"cluster": "<name>"}', field=ON_DEMAND_KEY)
