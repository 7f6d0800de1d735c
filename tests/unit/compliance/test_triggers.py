"""What starts compliance_sweep: schedule -> fan-out, continuation -> one cluster, on-demand runs, and the rest."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from eksops.compliance.triggers import ClusterSweep, FanOut, parse_trigger
from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops_dev.cloudtrail import cloudtrail_event

LoadEvent = Callable[[str, str], dict[str, Any]]


def test_the_schedule_fans_out(load_event: LoadEvent) -> None:
    event = load_event("compliance_sweep", "scheduled")
    trigger = parse_trigger(event)
    assert isinstance(trigger, FanOut)
    assert trigger.run_id == event["id"]
    assert trigger.origin.startswith("schedule ")


def test_a_continuation_sweeps_its_cluster(load_event: LoadEvent) -> None:
    event = load_event("compliance_sweep", "continuation")
    trigger = parse_trigger(event)
    assert trigger == ClusterSweep(
        cluster=event["detail"]["checkpoint"]["cluster"], run_id=event["detail"]["run_id"], origin="continuation"
    )


def test_another_functions_continuation_is_unsupported(load_event: LoadEvent) -> None:
    with pytest.raises(UnsupportedEvent, match="log_retention"):
        parse_trigger(load_event("compliance_sweep", "unmatched/log_retention_continuation"))


@pytest.mark.parametrize("cluster", [None, "", "-bad", "x" * 101, 7])
def test_a_continuation_without_a_cluster_name_is_invalid(load_event: LoadEvent, cluster: Any) -> None:
    event = copy.deepcopy(load_event("compliance_sweep", "continuation"))
    event["detail"]["checkpoint"] = {} if cluster is None else {"cluster": cluster}
    with pytest.raises(InvalidEvent) as caught:
        parse_trigger(event)
    assert caught.value.field == "detail.checkpoint.cluster"


def test_on_demand_all_fans_out() -> None:
    trigger = parse_trigger({"sweep": "all"})
    assert isinstance(trigger, FanOut)
    assert trigger.origin == "on demand"
    assert len(trigger.run_id) == 32


def test_on_demand_one_cluster() -> None:
    trigger = parse_trigger({"sweep": {"cluster": "prod-eu"}})
    assert isinstance(trigger, ClusterSweep)
    assert (trigger.cluster, trigger.origin) == ("prod-eu", "on demand")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"sweep": "everything"}, "sweep"),
        ({"sweep": {"cluster": "prod", "rules": ["x"]}}, "sweep"),
        ({"sweep": {}}, "sweep"),
        ({"sweep": {"cluster": "bad name"}}, "sweep.cluster"),
        ({"sweep": "all", "dry_run": True}, None),
    ],
)
def test_malformed_on_demand_runs_are_invalid(event: dict[str, Any], field: str | None) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_trigger(event)
    assert caught.value.field == field


def test_a_cloudtrail_call_is_unsupported() -> None:
    with pytest.raises(UnsupportedEvent):
        parse_trigger(cloudtrail_event("eks", "CreateCluster", {"name": "prod"}))


@pytest.mark.parametrize("event", [[], "sweep", {"detail-type": "Scheduled Event"}])
def test_other_shapes_are_invalid(event: Any) -> None:
    with pytest.raises(InvalidEvent):
        parse_trigger(event)
