from __future__ import annotations

import json
from typing import Any

from eksops.notify import Message, Publisher, Severity


class FakeSNS:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        return {"MessageId": "m-1"}


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "kind": "retention.changes",
        "severity": Severity.WARNING,
        "title": "Log retention",
        "summary": "changed 2",
        "details": {"changed": 2},
        "region": "eu-west-1",
        "lines": ("a: never -> 30", "b: never -> 14"),
    }
    return Message(**{**fields, **overrides})


def test_subject_stays_under_the_sns_limit_and_has_no_line_breaks() -> None:
    subject = message(title="x" * 300 + "\nsecond line").subject()
    assert len(subject) < 100 and "\n" not in subject and subject.endswith("…")


def test_publishes_json_for_machines_and_text_for_email() -> None:
    sns = FakeSNS()
    publisher = Publisher(sns, alerts_topic_arn=None, reports_topic_arn="arn:aws:sns:eu-west-1:123456789012:r")
    assert publisher.report(message()) == "m-1"
    assert publisher.alert(message()) is None  # no alerts topic configured: nothing sent
    [call] = sns.calls
    assert call["MessageStructure"] == "json"
    bodies = json.loads(call["Message"])
    envelope = json.loads(bodies["default"])
    assert envelope["kind"] == "retention.changes" and envelope["severity"] == "warning"
    assert envelope["details"] == {"changed": 2} and envelope["source"] == "eksops"
    assert "a: never -> 30" in bodies["email"] and "region: eu-west-1" in bodies["email"]
    assert call["MessageAttributes"]["severity"]["StringValue"] == "warning"


def test_email_body_is_bounded() -> None:
    body = message(lines=tuple(f"group-{i}" for i in range(500))).email()
    assert "group-49" in body and "group-50\n" not in body and "and 450 more" in body
