"""Block Kit payloads for every message kind: pinned by snapshots and validated with Slack's own models.

Run with UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change, then review the diff.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from eksops.notify.blocks import MAX_BLOCKS, SECTION_TEXT_LIMIT, TRUNCATED, section
from eksops.notify.formats import SlackMessage, format_sns
from eksops.notify.publish import Message, Severity

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOTS = Path(__file__).parent / "snapshots"
# SNS samples (alerts, and reports as SNS delivers them); SQS batches of reports are tested in tests/integration/notify
SAMPLES = sorted(
    p for p in (ROOT / "events/notifier").glob("*.json") if "Sns" in json.loads(p.read_text())["Records"][0]
)
EXPECTED_KINDS = {
    "cloudwatch_alarm": ("cloudwatch-alarm", "critical"),
    # one per envelope kind eksops publishes (grep `kind=` in layers/eksops/eksops), as the publisher builds it
    "eksops_retention_changes": ("eksops:retention.changes", "info"),
    "eksops_error_alarms_changes": ("eksops:error_alarms.changes", "warning"),
    "eksops_bootstrap_changes": ("eksops:bootstrap.changes", "warning"),
    "eksops_bootstrap_access_denied": ("eksops:bootstrap.access-denied", "critical"),
    "eksops_compliance_sweep": ("eksops:compliance.sweep", "warning"),
    # an envelope kind nothing publishes yet: shown through the generic renderer, never dropped
    "eksops_unknown_kind": ("eksops:example.unknown-kind", "critical"),
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
    assert (message.kind, message.severity) == ("other", "unknown")
    assert payload["text"] == "Subject line"
    code_block = payload["attachments"][0]["blocks"][1]  # header, the message as it came, context
    shown = html.unescape(code_block["text"]["text"]).removeprefix("```\n").removesuffix("\n```")
    if not raw:
        assert shown == "-"
    elif raw.startswith(("[", "{")):
        assert json.loads(shown) == json.loads(raw)  # the original message, pretty-printed
    else:
        assert shown == raw


def test_more_than_50_blocks_are_cut_to_50_with_a_visible_marker() -> None:
    blocks = [section(f"block {i}") for i in range(80)]
    payload = SlackMessage("other", "unknown", "many blocks", blocks).payload()
    kept = payload["attachments"][0]["blocks"]
    assert len(kept) == MAX_BLOCKS
    assert kept[-2]["text"]["text"] == "block 48"
    assert kept[-1]["type"] == "context" and "31 more blocks truncated" in kept[-1]["elements"][0]["text"]
    assert_valid_block_kit(payload)


def envelope(kind: str, **fields: Any) -> str:
    return json.dumps({"source": "eksops", "kind": kind, "severity": "warning", "title": "t", "summary": "s", **fields})


REPORTS = "arn:aws:sns:us-east-1:123456789012:eksops-reports"


def test_payload_text_cannot_ping_a_channel_or_fake_a_link() -> None:
    evil = "<!channel> & <https://evil.example|click>"
    texts = []
    body = json.dumps(
        {
            "source": "eksops",
            "kind": "example.unknown-kind",
            "severity": "critical",
            "title": evil,
            "summary": evil,
            "details": {"who": evil, "nested": {"x": evil}},
            "cluster": evil,
            "links": {"Runbook": "https://docs.aws.amazon.com/eks/latest/userguide/?a=1&b=2"},
        }
    )
    texts.append(format_sns(body, None, REPORTS).payload())
    texts.append(
        format_sns(
            envelope("retention.changes", details={"changed": [{"group": evil, "to": 7}]}), None, REPORTS
        ).payload()
    )
    texts.append(
        format_sns(envelope("error_alarms.changes", details={"changed": [{"cluster": evil}]}), None, REPORTS).payload()
    )
    texts.append(format_sns(envelope("x.y", lines=[evil]), None, REPORTS).payload())
    for name, mutate in SAMPLE_MUTATIONS.items():
        sns = json.loads((ROOT / "events/notifier" / f"{name}.json").read_text())["Records"][0]["Sns"]
        event = json.loads(sns["Message"])
        mutate(event, evil)
        texts.append(format_sns(json.dumps(event), None, sns["TopicArn"]).payload())
    texts.append(format_sns(evil, evil, REPORTS).payload())
    for payload in texts:
        assert_valid_block_kit(payload)
        mrkdwn = _mrkdwn_texts(payload)
        for text in mrkdwn:
            assert "<!channel>" not in text and "<https://evil" not in text, text
        assert any("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in t for t in mrkdwn)
    # eksops' own links still work
    assert "<https://docs.aws.amazon.com/eks/latest/userguide/?a=1&b=2|Runbook>" in _mrkdwn_texts(texts[0])
    assert any(t.startswith("<https://") for t in _mrkdwn_texts(texts[4]))


def _mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """Every piece of text Slack parses as mrkdwn: the top-level text and each mrkdwn element."""
    found = [payload["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["attachments"])
    return found


def _set_dimension(event: dict[str, Any], evil: str) -> None:
    event["Trigger"]["Dimensions"] = [{"name": "ClusterName", "value": evil}]
    event["AlarmName"] = evil


def _set_guardduty_user(event: dict[str, Any], evil: str) -> None:
    event["detail"]["resource"]["kubernetesDetails"]["kubernetesUserDetails"]["username"] = evil
    event["detail"]["title"] = evil


def _set_ecr_tag(event: dict[str, Any], evil: str) -> None:
    event["detail"]["image-tags"] = [evil]
    event["detail"]["repository-name"] = evil


def _set_health_entity(event: dict[str, Any], evil: str) -> None:
    event["detail"]["affectedEntities"] = [{"entityValue": evil}]
    event["detail"]["eventTypeCode"] = evil


SAMPLE_MUTATIONS = {
    "cloudwatch_alarm": _set_dimension,
    "guardduty_eks_finding": _set_guardduty_user,
    "ecr_image_scan": _set_ecr_tag,
    "health_eks_event": _set_health_entity,
}


def _event(name: str) -> tuple[dict[str, Any], str]:
    sns = json.loads((ROOT / "events/notifier" / f"{name}.json").read_text())["Records"][0]["Sns"]
    return json.loads(sns["Message"]), sns["TopicArn"]


def _link_of(event: dict[str, Any], topic: str) -> str:
    texts = " ".join(_mrkdwn_texts(format_sns(json.dumps(event), None, topic).payload()))
    match = re.search(r"<(https://[^|>]+)\|", texts)
    assert match, texts
    return match.group(1)


@pytest.mark.parametrize(
    ("partition", "region", "host"),
    [
        ("aws", "eu-west-1", "eu-west-1.console.aws.amazon.com"),
        ("aws-cn", "cn-north-1", "cn-north-1.console.amazonaws.cn"),
        ("aws-us-gov", "us-gov-west-1", "us-gov-west-1.console.amazonaws-us-gov.com"),
    ],
)
def test_console_links_fit_the_partition(partition: str, region: str, host: str) -> None:
    account = "123456789012"
    ecr, topic = _event("ecr_image_scan")
    ecr["region"] = region
    ecr["resources"] = [f"arn:{partition}:ecr:{region}:{account}:repository/payments-api"]
    assert _link_of(ecr, topic).startswith(f"https://{host}/ecr/repositories/private/{account}/payments-api/")

    guardduty, topic = _event("guardduty_eks_finding")
    guardduty["region"] = guardduty["detail"]["region"] = region
    guardduty["detail"]["partition"] = partition
    assert _link_of(guardduty, topic).startswith(f"https://{host}/guardduty/home?region={region}#/findings")
    del guardduty["detail"]["partition"]  # then from the ARN in resources[0] or the finding's ARN
    guardduty["resources"] = []
    guardduty["detail"]["arn"] = f"arn:{partition}:guardduty:{region}:{account}:detector/d/finding/f"
    assert _link_of(guardduty, topic).startswith(f"https://{host}/guardduty/")

    health, topic = _event("health_eks_event")
    health["region"] = region
    health["resources"] = [f"arn:{partition}:eks:{region}:{account}:cluster/prod-eu"]
    assert _link_of(health, topic).startswith(f"https://{host}/health/home?region={region}#/account/event-log")


def test_envelope_lines_render_for_kinds_without_a_renderer() -> None:
    message = Message(
        kind="example.new-kind",
        severity=Severity.WARNING,
        title="New",
        summary="two things",
        details={"count": 2, "items": [{"a": 1}, {"a": 2}]},
        lines=("first thing <done>", "second thing"),
    )
    payload = format_sns(json.dumps(message.envelope()), None, REPORTS).payload()
    assert_valid_block_kit(payload)
    text = json.dumps(payload, ensure_ascii=False)
    assert "• first thing &lt;done&gt;\\n• second thing" in text and "*count*\\n2" in text
    assert '\\"items\\"' not in text  # the lines say it readably: no JSON dump of the nested details


def test_old_envelopes_without_lines_still_render() -> None:
    event, topic = _event("eksops_retention_changes")
    event.pop("lines")
    for key in ("changed_count", "gone_count", "errors_count"):
        event["details"].pop(key)
    message = format_sns(json.dumps(event), None, topic)
    assert message.kind == "eksops:retention.changes"
    assert "/aws/lambda/payments-api`: never expire → 365 days" in json.dumps(message.payload(), ensure_ascii=False)


def test_items_the_publisher_cut_are_counted_and_the_trim_marker_shows() -> None:
    details = {"changed": [{"group": "/g/1", "from": None, "to": 7}], "changed_count": 41, "truncated": "trimmed!"}
    payload = format_sns(envelope("retention.changes", details=details), None, REPORTS).payload()
    text = json.dumps(payload, ensure_ascii=False)
    assert "… and 40 more not in this message" in text and ":scissors: trimmed!" in text


def test_error_alarms_changes_the_publisher_cut_are_counted() -> None:
    change = {"cluster": "prod", "kind": "alarm", "action": "create", "name": "eksops-prod-application-errors"}
    details = {"changed": [change], "changed_count": 30, "clusters": ["prod"], "truncated": "trimmed!"}
    text = json.dumps(format_sns(envelope("error_alarms.changes", details=details), None, REPORTS).payload())
    assert "and 29 more not in this message" in text


def test_one_clusters_own_compliance_report_shows_its_lines() -> None:
    """Review of issue 13: a cluster reporting on its own (swept alone, beyond the gather, no state table) has the
    same kind as a sweep's one report but no ``clusters``: its findings must still show."""
    body = {
        "source": "eksops",
        "kind": "compliance.sweep",
        "severity": "warning",
        "title": "Compliance sweep of prod-eu: 2 open, 2 new, 0 resolved",
        "summary": "2 open finding(s)",
        "cluster": "prod-eu",
        "details": {"cluster": "prod-eu", "run_id": "r", "findings": [{"rule": "pod-privileged"}]},
        "lines": ["[high] open NEW pod-privileged deployment/shop/api: privileged: true"],
    }
    payload = format_sns(json.dumps(body), "s", "arn:aws:sns:us-east-1:1:r").payload()
    assert_valid_block_kit(payload)
    text = json.dumps(payload)
    assert "pod-privileged deployment/shop/api" in text and "```" not in text  # the lines, not a JSON dump


def test_a_live_chain_finished_under_dry_run_is_not_headed_would_change() -> None:
    body = {
        "source": "eksops",
        "kind": "retention.changes",
        "severity": "info",
        "title": "Log retention: changed 2 and would change 1 log group(s)",
        "summary": "-",
        "details": {"dry_run": True, "applied": 2, "changed": [{"group": "/a", "from": None, "to": 30}]},
    }
    text = json.dumps(format_sns(json.dumps(body), "s", "arn:aws:sns:us-east-1:1:r").payload())
    assert "Changed, then would change (dry run)" in text
