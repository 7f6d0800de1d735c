"""What starts the node scaler, parsed once at the edge: the schedule, or a reserved-CPU alarm delivered by SNS.

A malformed event is InvalidEvent naming the field; nothing is read or changed before the event has parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops.events import ScheduledRun, cluster_name, parse_eventbridge
from eksops.notify.sns import SnsRecord

__all__ = ["ALARM_STATES", "AlarmTrigger", "Trigger", "parse_trigger"]

ALARM_STATES = frozenset({"ALARM", "OK", "INSUFFICIENT_DATA"})
_MESSAGE = "Records[0].Sns.Message"
_NAME_LIMIT = 255  # CloudWatch's limit on alarm names


@dataclass(frozen=True)
class AlarmTrigger:
    """A CloudWatch alarm notification (CloudWatch's own JSON, delivered by SNS) for one cluster's reserved CPU.

    ``idempotency_key`` is the SNS record's: the MessageId, or a hash of the content without one. Powertools
    idempotency keys on it, so the same delivery twice acts once.
    """

    idempotency_key: str
    message_id: str
    alarm_name: str
    state: str
    previous_state: str
    reason: str
    cluster: str
    namespace: str
    metric: str
    changed_at: str

    @property
    def acts(self) -> bool:
        """Whether the scaler acts on it: the alarm went into ALARM (OK and INSUFFICIENT_DATA are no reason to)."""
        return self.state == "ALARM"

    @classmethod
    def parse(cls, event: Any) -> AlarmTrigger:
        record = SnsRecord.parse(event)
        try:
            body = json.loads(record.message)
        except (ValueError, RecursionError):
            raise InvalidEvent("not a CloudWatch alarm notification: the message is not JSON", field=_MESSAGE) from None
        if not isinstance(body, Mapping):
            raise InvalidEvent("not a CloudWatch alarm notification: the message is not a JSON object", field=_MESSAGE)
        name = _text(body, "AlarmName", required=True)
        if len(name) > _NAME_LIMIT:
            raise InvalidEvent(f"longer than {_NAME_LIMIT} characters", field=f"{_MESSAGE}.AlarmName")
        state = _text(body, "NewStateValue", required=True)
        if state not in ALARM_STATES:
            raise InvalidEvent(f"must be one of {', '.join(sorted(ALARM_STATES))}", field=f"{_MESSAGE}.NewStateValue")
        trigger = body.get("Trigger")
        if not isinstance(trigger, Mapping):
            raise InvalidEvent("missing or not a JSON object", field=f"{_MESSAGE}.Trigger")
        return cls(
            idempotency_key=record.idempotency_key,
            message_id=record.message_id,
            alarm_name=name,
            state=state,
            previous_state=_text(body, "OldStateValue"),
            reason=_text(body, "NewStateReason")[:1000],
            cluster=_cluster(trigger),
            namespace=_text(trigger, "Namespace", where="Trigger."),
            metric=_text(trigger, "MetricName", where="Trigger."),
            changed_at=_text(body, "StateChangeTime"),
        )


Trigger = ScheduledRun | AlarmTrigger


def parse_trigger(event: Any) -> Trigger:
    """A Lambda SNS event (``Records``) is an alarm; otherwise an EventBridge event, of which only the schedule."""
    if isinstance(event, Mapping) and "Records" in event:
        return AlarmTrigger.parse(event)
    parsed = parse_eventbridge(event)
    if not isinstance(parsed, ScheduledRun):
        raise UnsupportedEvent(f"node_scaler acts on its schedule and its alarm topic, not on {type(parsed).__name__}")
    return parsed


def _text(data: Mapping[str, Any], key: str, *, required: bool = False, where: str = "") -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidEvent(
            "missing, empty or not a string" if required else "not a string", field=f"{_MESSAGE}.{where}{key}"
        )
    return value


def _cluster(trigger: Mapping[str, Any]) -> str:
    field = f"{_MESSAGE}.Trigger.Dimensions"
    dimensions = trigger.get("Dimensions")
    if not isinstance(dimensions, list):
        raise InvalidEvent("missing or not a list", field=field)
    for index, dimension in enumerate(dimensions):
        if not isinstance(dimension, Mapping):
            raise InvalidEvent("not a JSON object", field=f"{field}[{index}]")
        if dimension.get("name") == "ClusterName":
            return cluster_name(dimension.get("value"), f"{field}[{index}].value")
    raise InvalidEvent("no ClusterName dimension: not a per-cluster reserved-CPU alarm", field=field)
