"""Typed views of the events eksops functions receive, parsed once at the edge.

A parse failure is :class:`InvalidEvent` naming the field that was wrong; domain code never reads raw dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from eksops.errors import InvalidEvent, UnsupportedEvent

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
SCHEDULED_DETAIL_TYPE = "Scheduled Event"
CONTINUATION_SOURCE = "eksops"
CONTINUATION_DETAIL_TYPE = "eksops sweep continuation"


@dataclass(frozen=True)
class CloudTrailCall:
    """An AWS API call recorded by CloudTrail and delivered by EventBridge."""

    id: str
    source: str
    event_name: str
    event_source: str
    request_parameters: Mapping[str, Any]
    error_code: str | None
    account: str
    region: str


@dataclass(frozen=True)
class ScheduledRun:
    """A schedule fired: sweep everything."""

    id: str
    rule: str


@dataclass(frozen=True)
class Continuation:
    """A sweep that checkpointed in an earlier invocation and continues here."""

    id: str
    function: str
    run_id: str
    part: int
    checkpoint: Mapping[str, Any]


AnyEvent = CloudTrailCall | ScheduledRun | Continuation


def _require_str(data: Mapping[str, Any], key: str, field: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("missing or empty", field=field)
    return value


def parse_eventbridge(event: Any) -> AnyEvent:
    """Classify an EventBridge event as a CloudTrail call, a scheduled run or a sweep continuation."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"an EventBridge event must be a JSON object, got {type(event).__name__}")
    for key in ("source", "detail-type", "detail"):
        if key not in event:
            raise InvalidEvent("not an EventBridge event: key is missing", field=key)
    if not isinstance(event["detail"], Mapping):
        raise InvalidEvent("must be a JSON object", field="detail")
    eb = EventBridgeEvent(dict(event))
    event_id = str(event.get("id", ""))
    if eb.detail_type == SCHEDULED_DETAIL_TYPE and eb.source == "aws.events":
        resources = event.get("resources") or ["schedule"]
        return ScheduledRun(id=event_id, rule=str(resources[0]).rsplit("/", 1)[-1])
    if eb.detail_type == CONTINUATION_DETAIL_TYPE and eb.source == CONTINUATION_SOURCE:
        return _continuation(event_id, eb.detail)
    if eb.detail_type == CLOUDTRAIL_DETAIL_TYPE:
        return _cloudtrail(event_id, event, eb)
    raise UnsupportedEvent(f"unsupported event: source {eb.source!r}, detail-type {eb.detail_type!r}")


def _continuation(event_id: str, detail: Mapping[str, Any]) -> Continuation:
    part = detail.get("part")
    if isinstance(part, bool) or not isinstance(part, int) or part < 1:
        raise InvalidEvent("must be a positive integer", field="detail.part")
    checkpoint = detail.get("checkpoint")
    if not isinstance(checkpoint, Mapping):
        raise InvalidEvent("must be a JSON object", field="detail.checkpoint")
    return Continuation(
        id=event_id,
        function=_require_str(detail, "function", "detail.function"),
        run_id=_require_str(detail, "run_id", "detail.run_id"),
        part=part,
        checkpoint=checkpoint,
    )


def _cloudtrail(event_id: str, event: Mapping[str, Any], eb: EventBridgeEvent) -> CloudTrailCall:
    detail = eb.detail
    params = detail.get("requestParameters")
    if params is not None and not isinstance(params, Mapping):
        raise InvalidEvent("must be a JSON object or null", field="detail.requestParameters")
    error_code = detail.get("errorCode")
    return CloudTrailCall(
        id=event_id,
        source=eb.source,
        event_name=_require_str(detail, "eventName", "detail.eventName"),
        event_source=_require_str(detail, "eventSource", "detail.eventSource"),
        request_parameters=params or {},
        error_code=str(error_code) if error_code else None,
        account=str(event.get("account", "")),
        region=str(event.get("region", "")),
    )
