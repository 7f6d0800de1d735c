"""Typed views of the events eksops functions receive, parsed once at the edge.

A parse failure is :class:`InvalidEvent` naming the field that was wrong; domain code never reads raw dicts.
The envelope is read by hand rather than through Powertools' ``EventBridgeEvent``: importing any class of
``aws_lambda_powertools.utilities.data_classes`` (even its own module) runs that package's ``__init__``, which
imports every event class it has (33 modules) on each cold start, for three keys read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops.names import is_cluster_name

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

# Values quoted back in a reason are cut to this: an event may carry a string of any length.
_QUOTED = 80


def cluster_name(value: Any, field: str) -> str:
    """``value`` if it is an EKS cluster name, else InvalidEvent naming ``field`` (before any API is called)."""
    if not isinstance(value, str) or not is_cluster_name(value):
        raise InvalidEvent(
            "must be an EKS cluster name (1-100 letters, digits, - and _, starting with a letter or digit)",
            field=field,
        )
    return value


def _require_str(data: Mapping[str, Any], key: str, field: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("missing, empty or not a string", field=field)
    return value


def _optional_str(data: Mapping[str, Any], key: str, field: str) -> str:
    """A string key that may be absent (read as ""); any other type is malformed."""
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(f"must be a string, got {type(value).__name__}", field=field)
    return value


def _rule_name(resources: Any) -> str:
    """The schedule's rule name, from the first ARN of ``resources`` ("schedule" when there is none)."""
    if resources is None or resources == []:
        return "schedule"
    if not isinstance(resources, list):
        raise InvalidEvent(f"must be a list of ARNs, got {type(resources).__name__}", field="resources")
    first = resources[0]
    if not isinstance(first, str) or not first:
        raise InvalidEvent("must be a rule ARN", field="resources[0]")
    return first.rsplit("/", 1)[-1]


def _quoted(value: str) -> str:
    return repr(value if len(value) <= _QUOTED else value[:_QUOTED] + "...")


def parse_eventbridge(event: Any) -> AnyEvent:
    """Classify an EventBridge event as a CloudTrail call, a scheduled run or a sweep continuation."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"an EventBridge event must be a JSON object, got {type(event).__name__}")
    for key in ("source", "detail-type", "detail"):
        if key not in event:
            raise InvalidEvent("not an EventBridge event: key is missing", field=key)
    source = _require_str(event, "source", "source")
    detail_type = _require_str(event, "detail-type", "detail-type")
    detail = event["detail"]
    if not isinstance(detail, Mapping):
        raise InvalidEvent("must be a JSON object", field="detail")
    event_id = _optional_str(event, "id", "id")
    account = _optional_str(event, "account", "account")
    region = _optional_str(event, "region", "region")
    if detail_type == SCHEDULED_DETAIL_TYPE and source == "aws.events":
        return ScheduledRun(id=event_id, rule=_rule_name(event.get("resources")))
    if detail_type == CONTINUATION_DETAIL_TYPE and source == CONTINUATION_SOURCE:
        return _continuation(event_id, detail)
    if detail_type == CLOUDTRAIL_DETAIL_TYPE:
        return _cloudtrail(event_id, source, detail, account=account, region=region)
    raise UnsupportedEvent(f"unsupported event: source {_quoted(source)}, detail-type {_quoted(detail_type)}")


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


def _cloudtrail(event_id: str, source: str, detail: Mapping[str, Any], *, account: str, region: str) -> CloudTrailCall:
    params = detail.get("requestParameters")
    if params is not None and not isinstance(params, Mapping):
        raise InvalidEvent("must be a JSON object or null", field="detail.requestParameters")
    return CloudTrailCall(
        id=event_id,
        source=source,
        event_name=_require_str(detail, "eventName", "detail.eventName"),
        event_source=_require_str(detail, "eventSource", "detail.eventSource"),
        request_parameters=params or {},
        error_code=_optional_str(detail, "errorCode", "detail.errorCode") or None,
        account=account,
        region=region,
    )
