"""The envelope, subject and email body the publisher builds (publishing itself runs against moto in
tests/integration/notify/test_publish_sns.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eksops.notify import Message, Severity
from eksops.notify.publish import MESSAGE_BUDGET, sns_body


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
    assert len(subject) < 100 and "\n" not in subject and subject.endswith("...")


@pytest.mark.parametrize("control", ["\t", "\r\n", "\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\u200b", "\u2028"])
def test_subject_has_no_control_characters(control: str) -> None:
    subject = message(title=f"before{control}after").subject()
    assert all(ch.isprintable() for ch in subject), repr(subject)
    assert subject.startswith("[eksops warning] before") and subject.endswith("after")


def test_envelope_carries_the_readable_lines_and_email_has_them_too() -> None:
    bodies = json.loads(sns_body(message()))
    envelope = json.loads(bodies["default"])
    assert envelope["kind"] == "retention.changes" and envelope["severity"] == "warning"
    assert envelope["details"] == {"changed": 2} and envelope["source"] == "eksops"
    assert envelope["lines"] == ["a: never -> 30", "b: never -> 14"]
    assert "a: never -> 30" in bodies["email"] and "region: eu-west-1" in bodies["email"]
    assert "lines" not in message(lines=()).envelope()  # no lines: the envelope is as before


def test_email_body_is_bounded() -> None:
    body = message(lines=tuple(f"group-{i}" for i in range(500))).email()
    assert "group-49" in body and "group-50\n" not in body and "and 450 more" in body


def test_a_small_message_is_sent_as_is() -> None:
    assert "truncated" not in json.loads(json.loads(sns_body(message()))["default"])["details"]


def test_huge_details_are_trimmed_with_a_visible_marker() -> None:
    items = [{"group": f"/aws/lambda/fn-{i:06}", "to": 30} for i in range(20_000)]
    body = sns_body(message(details={"changed": items, "mode": "all"}, lines=tuple(f"l{i}" for i in range(20_000))))
    assert len(body.encode()) <= MESSAGE_BUDGET
    bodies = json.loads(body)
    envelope = json.loads(bodies["default"])
    assert envelope["details"]["changed"] == items[:20] and envelope["details"]["changed_count"] == 20_000
    assert envelope["details"]["mode"] == "all" and "256 KB" in envelope["details"]["truncated"]
    assert envelope["lines"] == [f"l{i}" for i in range(100)]
    assert "256 KB" in bodies["email"]  # email readers see it too


def test_a_huge_summary_is_cut_when_trimming_details_is_not_enough() -> None:
    body = sns_body(message(summary="s" * 300_000, details={"blob": "b" * 10}))
    assert len(body.encode()) <= MESSAGE_BUDGET
    envelope = json.loads(json.loads(body)["default"])
    assert envelope["summary"].endswith("… (truncated)") and "256 KB" in envelope["details"]["truncated"]


def test_the_envelope_carries_the_first_lines_and_how_many_more() -> None:
    lines = tuple(f"/app/group-{i}: never expire -> 30 days" for i in range(4_350))  # one sweep invocation
    envelope = message(lines=lines).envelope()
    assert envelope["lines"][:100] == list(lines[:100])
    assert envelope["lines"][100] == "... and 4250 more (see the JSON details)" and len(envelope["lines"]) == 101
