from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops.events import CloudTrailCall, Continuation, ScheduledRun, parse_eventbridge

LoadEvent = Callable[[str, str], dict[str, Any]]


def test_cloudtrail_event_parses(load_event: LoadEvent) -> None:
    call = parse_eventbridge(load_event("log_retention", "create_log_group"))
    assert isinstance(call, CloudTrailCall)
    assert call.event_name == "CreateLogGroup"
    assert call.request_parameters["logGroupName"] == "/aws/containerinsights/prod-eu/application"
    assert call.error_code is None


def test_scheduled_event_parses(load_event: LoadEvent) -> None:
    run = parse_eventbridge(load_event("log_retention", "scheduled_sweep"))
    assert isinstance(run, ScheduledRun)
    assert run.rule == "eksops-LogRetentionFunctionDailySweep-1A2B3C4D5E6F"


def test_continuation_parses(load_event: LoadEvent) -> None:
    cont = parse_eventbridge(load_event("log_retention", "sweep_continuation"))
    assert isinstance(cont, Continuation)
    assert (cont.function, cont.part) == ("log_retention", 2)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("detail"), "detail"),
        (lambda e: e.pop("source"), "source"),
        (lambda e: e.update(detail="text"), "detail"),
        (lambda e: e["detail"].pop("eventName"), "detail.eventName"),
        (lambda e: e["detail"].update(eventSource=""), "detail.eventSource"),
        (lambda e: e["detail"].update(requestParameters=["x"]), "detail.requestParameters"),
    ],
)
def test_malformed_events_name_the_field(
    load_event: LoadEvent, mutate: Callable[[dict[str, Any]], Any], field: str
) -> None:
    event = load_event("log_retention", "create_log_group")
    mutate(event)
    with pytest.raises(InvalidEvent) as info:
        parse_eventbridge(event)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e["detail"].update(part=0), "detail.part"),
        (lambda e: e["detail"].update(checkpoint=None), "detail.checkpoint"),
        (lambda e: e["detail"].pop("run_id"), "detail.run_id"),
    ],
)
def test_malformed_continuations_name_the_field(
    load_event: LoadEvent, mutate: Callable[[dict[str, Any]], Any], field: str
) -> None:
    event = load_event("log_retention", "sweep_continuation")
    mutate(event)
    with pytest.raises(InvalidEvent) as info:
        parse_eventbridge(event)
    assert info.value.field == field


def test_non_object_and_unknown_events() -> None:
    with pytest.raises(InvalidEvent, match="must be a JSON object"):
        parse_eventbridge(["not", "an", "event"])
    with pytest.raises(UnsupportedEvent, match=r"aws\.health"):
        parse_eventbridge({"source": "aws.health", "detail-type": "AWS Health Event", "detail": {}})
