"""The records of a Lambda SQS event from the reports queue, each holding one SNS notification.

The queue is subscribed to the reports topic with raw message delivery off, so each body is the SNS notification
as JSON (Type, MessageId, TopicArn, Subject, Message, Timestamp). A body that is not one (raw delivery switched on,
or a message sent to the queue by hand) is still delivered: as a message of its own, read as it came.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import InvalidEvent
from eksops.notify.sns import MESSAGE_ID_LIMIT, SnsRecord

SQS_SOURCE = "aws:sqs"


@dataclass(frozen=True)
class QueuedRecord:
    """One SQS record: its messageId (what a partial batch response names) and the SNS message it carries."""

    queue_message_id: str
    sns: SnsRecord


def is_sqs_batch(event: Any) -> bool:
    """Whether ``event`` says it is an SQS batch (its first record's eventSource); SNS records say aws:sns."""
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list) or not event["Records"]:
        return False
    first = event["Records"][0]
    return isinstance(first, Mapping) and first.get("eventSource") == SQS_SOURCE


def parse_sqs_batch(event: Any) -> list[QueuedRecord]:
    """Every record of a Lambda SQS event, in order. InvalidEvent when the batch itself is malformed (a record that
    is not an SQS record, a messageId or body that is missing or not a string, one messageId twice); a body may hold
    anything, and is delivered whatever it holds."""
    if not is_sqs_batch(event):
        raise InvalidEvent("not an SQS event", field="Records[0].eventSource")
    records: list[QueuedRecord] = []
    seen: set[str] = set()
    for index, raw in enumerate(event["Records"]):
        where = f"Records[{index}]"
        if not isinstance(raw, Mapping) or raw.get("eventSource") != SQS_SOURCE:
            raise InvalidEvent("not an SQS record", field=f"{where}.eventSource")
        message_id, body = raw.get("messageId"), raw.get("body")
        if not isinstance(message_id, str) or not message_id or len(message_id) > MESSAGE_ID_LIMIT:
            raise InvalidEvent(
                f"missing, empty or longer than {MESSAGE_ID_LIMIT} characters", field=f"{where}.messageId"
            )
        if message_id in seen:
            raise InvalidEvent("the same messageId twice in one batch", field=f"{where}.messageId")
        seen.add(message_id)
        if not isinstance(body, str):
            raise InvalidEvent("missing or not a string", field=f"{where}.body")
        records.append(QueuedRecord(message_id, _notification(body, raw, where)))
    return records


def _notification(body: str, raw: Mapping[str, Any], where: str) -> SnsRecord:
    try:
        notification = json.loads(body)
    except (ValueError, RecursionError):
        notification = None
    if isinstance(notification, Mapping) and notification.get("Type") == "Notification":
        try:
            return SnsRecord.from_notification(notification, f"{where}.body")
        except InvalidEvent:
            pass  # shaped like one, but not one SNS would send: delivered as it came, below
    # Not an SNS notification: the body is the message, known by the queue's messageId.
    source = raw.get("eventSourceARN")
    return SnsRecord(
        message_id=str(raw["messageId"]),
        topic_arn=source if isinstance(source, str) else "",
        subject=None,
        message=body,
        idempotency_key=f"sqs:{raw['messageId']}",
    )
