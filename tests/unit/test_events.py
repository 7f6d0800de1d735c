from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops.events import CloudTrailCall, Continuation, ScheduledRun, cluster_name, parse_eventbridge

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


def scheduled(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "0",
        "id": "9b1f0c52-4d3e-4f6a-8b7c-1d2e3f4a5b6c",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/eksops-Sweep"],
        "detail": {},
    }
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"rule": "arn:aws:events:us-east-1:123456789012:rule/x"}, "resources"),  # was KeyError
        ({"0": "x"}, "resources"),
        (5, "resources"),  # was TypeError
        ("arn:aws:events:us-east-1:123456789012:rule/x", "resources"),  # was silently the rule "a"
        ([5], "resources[0]"),
        ([None], "resources[0]"),
        ([""], "resources[0]"),
        ([["arn"]], "resources[0]"),
    ],
)
def test_a_scheduled_event_whose_resources_are_not_a_list_of_arns_is_invalid(resources: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_eventbridge(scheduled(resources=resources))
    assert info.value.field == field and not isinstance(info.value, UnsupportedEvent)


@pytest.mark.parametrize("resources", [None, []])
def test_a_scheduled_event_without_resources_names_no_rule(resources: Any) -> None:
    run = parse_eventbridge(scheduled(resources=resources))
    assert isinstance(run, ScheduledRun) and run.rule == "schedule"


@pytest.mark.parametrize("key", ["id", "account", "region"])
@pytest.mark.parametrize("value", [5, 1.5, True, ["x"], {"x": 1}])
def test_envelope_strings_of_another_type_are_invalid(load_event: LoadEvent, key: str, value: Any) -> None:
    for case in (("log_retention", "create_log_group"), ("log_retention", "scheduled_sweep")):
        event = load_event(*case)
        event[key] = value
        with pytest.raises(InvalidEvent) as info:
            parse_eventbridge(event)
        assert info.value.field == key and not isinstance(info.value, UnsupportedEvent)


@pytest.mark.parametrize("key", ["source", "detail-type"])
@pytest.mark.parametrize("value", [5, None, "", ["aws.events"], {"aws.events": 1}])
def test_source_and_detail_type_must_be_strings(load_event: LoadEvent, key: str, value: Any) -> None:
    event = load_event("log_retention", "scheduled_sweep")
    event[key] = value
    with pytest.raises(InvalidEvent) as info:
        parse_eventbridge(event)
    assert info.value.field == key and not isinstance(info.value, UnsupportedEvent)


@pytest.mark.parametrize("value", [5, ["AccessDenied"], {"code": "AccessDenied"}, True])
def test_a_cloudtrail_error_code_of_another_type_is_invalid(load_event: LoadEvent, value: Any) -> None:
    event = load_event("log_retention", "create_log_group")
    event["detail"]["errorCode"] = value
    with pytest.raises(InvalidEvent) as info:
        parse_eventbridge(event)
    assert info.value.field == "detail.errorCode"


@pytest.mark.parametrize("name", ["prod-eu", "a", "A_1-b", "0" * 100, "x" + "-" * 99])
def test_cluster_names_of_the_eks_pattern_are_accepted(name: str) -> None:
    assert cluster_name(name, "detail.requestParameters.name") == name


@pytest.mark.parametrize(
    "name",
    ["", "-prod", "_prod", "prod eu", "prod.eu", "prod/eu", "prod-eu\n", "é", "x" * 101, "x" * 300_000, 5, None, ["a"]],
)
def test_other_cluster_names_are_invalid_naming_the_field(name: Any) -> None:
    with pytest.raises(InvalidEvent) as info:
        cluster_name(name, "detail.requestParameters.clusterName")
    assert info.value.field == "detail.requestParameters.clusterName"
    assert len(str(info.value)) < 300  # the reason never repeats what it was given
