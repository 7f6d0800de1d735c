"""Block Kit payloads for every message kind: pinned by snapshots and validated with Slack's own models.

Run with UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from eksops.notify.blocks import MAX_BLOCKS, SECTION_TEXT_LIMIT, TRUNCATED
from eksops.notify.formats import format_sns

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOTS = Path(__file__).parent / "snapshots"
SAMPLES = sorted((ROOT / "events/notifier").glob("*.json"))
EXPECTED_KINDS = {
    "cloudwatch_alarm": ("cloudwatch-alarm", "critical"),
    "eksops_retention_changes": ("eksops:retention.changes", "info"),
    "eksops_generic_envelope": ("eksops:compliance.finding", "critical"),
    "ecr_image_scan": ("ecr-image-scan", "critical"),
    "guardduty_eks_finding": ("guardduty-finding", "warning"),
    "health_eks_event": ("aws-health", "warning"),
    "other_message": ("other", "unknown"),
}


def payload_of(path: Path) -> tuple[Any, dict[str, Any]]:
    sns = json.loads(path.read_text())["Records"][0]["Sns"]
    message = format_sns(sns["Message"], sns.get("Subject"), sns["TopicArn"])
    return message, message.payload()


def assert_valid_block_kit(payload: dict[str, Any]) -> None:
    assert isinstance(payload["text"], str) and payload["text"]
    for attachment in payload["attachments"]:
        assert re.fullmatch(r"#[0-9A-F]{6}", attachment["color"])
        blocks = attachment["blocks"]
        assert 0 < len(blocks) <= MAX_BLOCKS
        for block in blocks:
            parsed = Block.parse(block)
            assert parsed is not None, block
            parsed.validate_json()  # raises SlackObjectFormationError on a broken block or a limit exceeded
            if block["type"] == "section" and "text" in block:
                assert len(block["text"]["text"]) <= SECTION_TEXT_LIMIT


def test_every_kind_has_a_sample() -> None:
    assert {p.stem for p in SAMPLES} == set(EXPECTED_KINDS)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_payload_matches_snapshot_and_is_valid(path: Path) -> None:
    message, payload = payload_of(path)
    assert (message.kind, message.severity) == EXPECTED_KINDS[path.stem]
    assert_valid_block_kit(payload)
    snapshot = SNAPSHOTS / f"{path.stem}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    assert snapshot.exists(), f"no snapshot {snapshot.name}: run with UPDATE_SNAPSHOTS=1 and review it"
    assert payload == json.loads(snapshot.read_text())


def test_alarm_console_link_fits_partition_and_region() -> None:
    sns = json.loads((ROOT / "events/notifier/cloudwatch_alarm.json").read_text())["Records"][0]["Sns"]
    body = json.loads(sns["Message"])
    body["AlarmArn"] = "arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:eksops-x"
    text = json.dumps(format_sns(json.dumps(body), None, sns["TopicArn"]).payload())
    assert "https://cn-north-1.console.amazonaws.cn/cloudwatch/home?region=cn-north-1#alarmsV2:alarm/" in text
    body["AlarmArn"] = "arn:aws-us-gov:cloudwatch:us-gov-west-1:123456789012:alarm:eksops-x"
    text = json.dumps(format_sns(json.dumps(body), None, sns["TopicArn"]).payload())
    assert "https://us-gov-west-1.console.amazonaws-us-gov.com/cloudwatch/" in text


def test_ok_state_is_green() -> None:
    sns = json.loads((ROOT / "events/notifier/cloudwatch_alarm.json").read_text())["Records"][0]["Sns"]
    body = {**json.loads(sns["Message"]), "NewStateValue": "OK", "OldStateValue": "ALARM"}
    message = format_sns(json.dumps(body), None, sns["TopicArn"])
    assert message.severity == "ok" and message.payload()["attachments"][0]["color"] == "#2EA44F"


def test_huge_reports_are_truncated_with_a_visible_marker() -> None:
    envelope = {
        "source": "eksops",
        "kind": "retention.changes",
        "severity": "info",
        "title": "t" * 400,
        "summary": "s" * 5000,
        "details": {"changed": [{"group": f"/aws/lambda/fn-{i:05}", "from": None, "to": 30} for i in range(2000)]},
    }
    payload = format_sns(json.dumps(envelope), None, "arn:aws:sns:us-east-1:123456789012:eksops-reports").payload()
    assert_valid_block_kit(payload)
    text = json.dumps(payload, ensure_ascii=False)
    assert TRUNCATED in text and "more (truncated)" in text


def test_many_fields_and_blocks_stay_within_limits() -> None:
    envelope = {
        "source": "eksops",
        "kind": "something.new",
        "severity": "warning",
        "title": "many",
        "summary": "x",
        "details": {f"k{i}": i for i in range(40)},
    }
    payload = format_sns(json.dumps(envelope), None, "arn:aws:sns:us-east-1:123456789012:eksops-alerts").payload()
    assert_valid_block_kit(payload)
    assert "more fields" in json.dumps(payload)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json at all",
        "[1, 2, 3]",
        '{"AlarmName": "x", "NewStateValue": 5, "Trigger": "broken"}',
        '{"source": "aws.ecr", "detail-type": "ECR Image Scan", "detail": "oops"}',
    ],
)
def test_anything_else_falls_back_to_readable_text(raw: str) -> None:
    message = format_sns(raw, "Subject line", "arn:aws:sns:us-east-1:123456789012:eksops-alerts")
    payload = message.payload()
    assert_valid_block_kit(payload)
    assert payload["text"]
