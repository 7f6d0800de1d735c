"""Publishes eksops messages to the alerts and reports topics with MessageStructure json.

The ``default`` body is a JSON envelope for machines (the notifier, email-json, SQS); the ``email`` body is
plain text for people. The severity and kind also travel as message attributes, so email subscriptions can
filter (for example warning-and-above only) without parsing the body.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from eksops.notify.identity import next_report_id

SUBJECT_LIMIT = 99  # SNS allows 100; keep one spare for safety with multi-byte characters counted as one.
EMAIL_DETAIL_LINES = 50
ENVELOPE_LINES = 100  # a sweep may change thousands of groups: the envelope carries the first, and the count
MESSAGE_LIMIT = 256 * 1024  # SNS's limit for the message and its attributes together, in bytes
MESSAGE_BUDGET = MESSAGE_LIMIT - 4 * 1024  # room for the subject and the attributes
TRIMMED_ITEMS = 20  # items kept of each details list when a message is over the limit
TRIMMED_LINES = ENVELOPE_LINES
TRIMMED_TEXT = 2000
TRUNCATED_KEY = "truncated"  # the notifier shows this key's text as a visible marker


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
    lines: tuple[str, ...] = ()  # readable detail lines for the email body and Slack
    # A report's identity across retries: "<function>:<request id>#<subject>#<n>", set by the Publisher inside
    # reports_of(); the notifier posts each identity once (a retried invocation publishes the same ones again).
    report_id: str | None = None

    def envelope(self) -> dict[str, Any]:
        """The JSON envelope. ``lines`` is in it when set (readers that do not know the key ignore it)."""
        body = asdict(self)
        body["lines"] = list(self.lines[:ENVELOPE_LINES])
        if len(self.lines) > ENVELOPE_LINES:
            body["lines"].append(f"... and {len(self.lines) - ENVELOPE_LINES} more (see the JSON details)")
        if not self.lines:
            body.pop("lines")
        if self.report_id is None:
            body.pop("report_id")
        body["severity"] = str(self.severity)
        body["source"] = "eksops"
        return body

    def subject(self) -> str:
        subject = f"[eksops {self.severity}] {self.title}"
        # SNS rejects control characters and line breaks in subjects: every non-printable character (C0, C1,
        # zero-width and other format characters) becomes a space, then runs of whitespace collapse.
        subject = " ".join("".join(ch if ch.isprintable() else " " for ch in subject).split())
        return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3] + "..."

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
        if self.details.get(TRUNCATED_KEY):
            parts += ["", f"[{self.details[TRUNCATED_KEY]}]"]
        return "\n".join(parts)


class Publisher:
    """Sends messages to the alerts or reports topic. A topic left unset means that kind is not published."""

    def __init__(self, sns: Any, *, alerts_topic_arn: str | None, reports_topic_arn: str | None) -> None:
        self._sns = sns
        self._alerts = alerts_topic_arn
        self._reports = reports_topic_arn

    def report(self, message: Message, *, subject: str | None = None) -> str | None:
        """Publish to the reports topic (what changed, sweep results). Returns the MessageId.

        Inside reports_of(), the report gets its identity: the invocation, what it is about (``subject``, by
        default its kind and cluster: a retry's report about the same thing is the same report, whatever its
        counts say now) and its place among the invocation's reports about that."""
        if self._reports:
            report_id = next_report_id(subject or f"{message.kind}/{message.cluster or '-'}")
            if report_id is not None:
                message = replace(message, report_id=report_id)
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
            Message=sns_body(message),
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": str(message.severity)},
                "kind": {"DataType": "String", "StringValue": message.kind},
            },
        )
        return str(response["MessageId"])


def sns_body(message: Message) -> str:
    """The MessageStructure json body, within SNS's 256 KB: an oversized message is trimmed step by step (the
    lists in ``details`` and the ``lines`` first, then ``details`` as a whole, then the text), and its
    ``details`` then say so under ``truncated``, which the notifier and the email body show."""
    body = _encode(message)
    size = len(body.encode())
    if size <= MESSAGE_BUDGET:
        return body
    note = f"details trimmed to fit SNS's 256 KB message limit (the full message was {size} bytes)"
    steps = [
        replace(
            message, details={**_cut_lists(message.details), TRUNCATED_KEY: note}, lines=message.lines[:TRIMMED_LINES]
        ),
        replace(message, details={TRUNCATED_KEY: note}, lines=message.lines[:EMAIL_DETAIL_LINES]),
        replace(
            message,
            summary=_clip(message.summary),
            details={TRUNCATED_KEY: note},
            lines=tuple(_clip(line, 200) for line in message.lines[:EMAIL_DETAIL_LINES]),
            links={k: v for k, v in list(message.links.items())[:10]},
        ),
    ]
    for smaller in steps:
        body = _encode(smaller)
        if len(body.encode()) <= MESSAGE_BUDGET:
            return body
    return body  # only a title or link text over 250 KB gets here; SNS will say so


def _encode(message: Message) -> str:
    return json.dumps({"default": json.dumps(message.envelope(), default=str), "email": message.email()})


def _cut_lists(details: dict[str, Any]) -> dict[str, Any]:
    cut: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, list | tuple) and len(value) > TRIMMED_ITEMS:
            cut[key] = list(value[:TRIMMED_ITEMS])
            cut.setdefault(f"{key}_count", len(value))
        elif isinstance(value, dict) and len(value) > TRIMMED_ITEMS:
            cut[key] = dict(list(value.items())[:TRIMMED_ITEMS])
            cut.setdefault(f"{key}_count", len(value))
        elif isinstance(value, str) and len(value) > TRIMMED_TEXT:
            cut[key] = _clip(value)
        else:
            cut[key] = value
    return cut


def _clip(text: str, limit: int = TRIMMED_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 14] + "… (truncated)"
