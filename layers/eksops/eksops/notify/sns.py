"""The one SNS record of a Lambda SNS event, parsed at the edge, with the key a repeated delivery is known by.

Shared by every function SNS invokes (the notifier, node_scaler): Powertools idempotency keys on
``idempotency_key``, the MessageId, or a hash of the content when SNS (or a hand-made event) left it empty.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import InvalidEvent
from eksops.notify.blocks import clip

MESSAGE_ID_LIMIT = 256  # SNS message ids are UUIDs: a longer one did not come from SNS
SUBJECT_LIMIT = 1_000  # SNS allows 100 characters; more is shown, cut, whatever published it


@dataclass(frozen=True)
class SnsRecord:
    message_id: str
    topic_arn: str
    subject: str | None
    message: str
    timestamp: str = ""
    # What a repeated delivery is recognised by: the MessageId, or a hash of the content when it is empty
    # (without a key, Powertools' idempotency would let every delivery through).
    idempotency_key: str = ""

    @classmethod
    def parse(cls, event: Any) -> SnsRecord:
        """The one SNS record of a Lambda SNS event (SNS invokes with exactly one).

        Malformed when it is not an SNS record (InvalidEvent); its Subject and Message may hold anything.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list) or not event["Records"]:
            raise InvalidEvent("not an SNS event: no Records", field="Records")
        if len(event["Records"]) != 1:
            raise InvalidEvent(f"SNS delivers one record per invocation, got {len(event['Records'])}", field="Records")
        sns = event["Records"][0].get("Sns") if isinstance(event["Records"][0], Mapping) else None
        if not isinstance(sns, Mapping):
            raise InvalidEvent("not an SNS record", field="Records[0].Sns")
        return cls.from_notification(sns, "Records[0].Sns")

    @classmethod
    def from_notification(cls, sns: Mapping[str, Any], where: str) -> SnsRecord:
        """An SNS notification: the ``Sns`` of a Lambda SNS record, or the JSON body SNS gives an SQS queue (raw
        message delivery off). ``where`` names it in an InvalidEvent."""
        for key in ("MessageId", "TopicArn", "Message"):
            if not isinstance(sns.get(key), str):
                raise InvalidEvent("missing or not a string", field=f"{where}.{key}")
        if len(sns["MessageId"]) > MESSAGE_ID_LIMIT:
            raise InvalidEvent(f"longer than {MESSAGE_ID_LIMIT} characters", field=f"{where}.MessageId")
        subject = _subject(sns.get("Subject"))
        message_id: str = sns["MessageId"]
        topic_arn: str = sns["TopicArn"]
        message: str = sns["Message"]
        timestamp = sns.get("Timestamp")
        timestamp = timestamp if isinstance(timestamp, str) else ""
        key = message_id or content_key(topic_arn, subject, message, timestamp)
        return cls(message_id, topic_arn, subject, message, timestamp, key)


def content_key(topic_arn: str, subject: str | None, message: str, timestamp: str) -> str:
    """A key for a message without a MessageId: the same content published at the same time is the same."""
    content = json.dumps([topic_arn, subject, message, timestamp])  # ASCII: a lone surrogate hashes too
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def _subject(value: Any) -> str | None:
    """The Subject as text: SNS sends a string or null; any other value is shown as its JSON."""
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            value = type(value).__name__
    return clip(value, SUBJECT_LIMIT)
