"""Publishes eksops messages to the alerts and reports topics with MessageStructure json.

The ``default`` body is a JSON envelope for machines (the notifier, email-json, SQS); the ``email`` body is
plain text for people. The severity and kind also travel as message attributes, so email subscriptions can
filter (for example warning-and-above only) without parsing the body.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

SUBJECT_LIMIT = 99  # SNS allows 100; keep one spare for safety with multi-byte characters counted as one.
EMAIL_DETAIL_LINES = 50


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Message:
    """The envelope: what happened, how bad, where, with details and links for follow-up."""

    kind: str  # e.g. "retention.changes", "retention.sweep"
    severity: Severity
    title: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    cluster: str | None = None
    account: str | None = None
    region: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    lines: tuple[str, ...] = ()  # readable detail lines for the email body

    def envelope(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("lines")
        body["severity"] = str(self.severity)
        body["source"] = "eksops"
        return body

    def subject(self) -> str:
        subject = f"[eksops {self.severity}] {self.title}"
        subject = " ".join(subject.split())  # SNS rejects control characters and line breaks in subjects
        return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 1] + "…"

    def email(self) -> str:
        parts = [self.title, "", self.summary]
        where = ", ".join(
            f"{k}: {v}" for k, v in (("cluster", self.cluster), ("account", self.account), ("region", self.region)) if v
        )
        if where:
            parts += ["", where]
        if self.lines:
            parts += ["", *self.lines[:EMAIL_DETAIL_LINES]]
            if len(self.lines) > EMAIL_DETAIL_LINES:
                parts.append(f"... and {len(self.lines) - EMAIL_DETAIL_LINES} more (see the JSON details)")
        if self.links:
            parts += ["", *(f"{name}: {url}" for name, url in self.links.items())]
        return "\n".join(parts)


class Publisher:
    """Sends messages to the alerts or reports topic. A topic left unset means that kind is not published."""

    def __init__(self, sns: Any, *, alerts_topic_arn: str | None, reports_topic_arn: str | None) -> None:
        self._sns = sns
        self._alerts = alerts_topic_arn
        self._reports = reports_topic_arn

    def report(self, message: Message) -> str | None:
        """Publish to the reports topic (what changed, sweep results). Returns the MessageId."""
        return self._publish(self._reports, message)

    def alert(self, message: Message) -> str | None:
        """Publish to the alerts topic (needs attention). Returns the MessageId."""
        return self._publish(self._alerts, message)

    def _publish(self, topic_arn: str | None, message: Message) -> str | None:
        if not topic_arn:
            return None
        response = self._sns.publish(
            TopicArn=topic_arn,
            Subject=message.subject(),
            MessageStructure="json",
            Message=json.dumps({"default": json.dumps(message.envelope(), default=str), "email": message.email()}),
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": str(message.severity)},
                "kind": {"DataType": "String", "StringValue": message.kind},
            },
        )
        return str(response["MessageId"])
