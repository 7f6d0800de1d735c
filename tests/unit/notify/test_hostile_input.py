"""Whatever a well-formed SNS record carries reaches Slack: formatted when recognised, as text otherwise.

Hostile shapes found by the issue 9 probe (deep nesting, a Subject that is not a string, a 400-digit GuardDuty
severity, planted links, lone surrogates) and the same kinds of value put in every field of every sample.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops.errors import InvalidEvent
from eksops.notify.blocks import SECTION_TEXT_LIMIT
from eksops.notify.formats import format_sns
from eksops.notify.notifier import SnsRecord
from tests.unit.notify.test_formats import _mrkdwn_texts, assert_valid_block_kit

ROOT = Path(__file__).resolve().parents[3]
# SNS samples (alerts, and reports as SNS delivers them); SQS batches of reports are tested in tests/integration/notify
SAMPLES = sorted(
    p for p in (ROOT / "events/notifier").glob("*.json") if "Sns" in json.loads(p.read_text())["Records"][0]
)
ALERTS = "arn:aws:sns:us-east-1:123456789012:eksops-alerts"
# A Slack webhook body is at most 50 blocks of at most 3,000 characters each, plus the fallback text.
PAYLOAD_BOUND = 200_000


def sns_of(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events/notifier" / f"{name}.json").read_text())["Records"][0]["Sns"]  # type: ignore[no-any-return]


def body_of(name: str) -> dict[str, Any]:
    return json.loads(sns_of(name)["Message"])  # type: ignore[no-any-return]


def deliverable(payload: dict[str, Any]) -> str:
    """The payload as the webhook posts it, checked: valid Block Kit, strict UTF-8, bounded."""
    assert_valid_block_kit(payload)
    text = json.dumps(payload, ensure_ascii=False)
    text.encode("utf-8")  # a lone surrogate would raise here: Slack gets well-formed text only
    assert len(text) < PAYLOAD_BOUND
    return text


def shown_code(payload: dict[str, Any]) -> str:
    """The text of the fallback's code block (header, the message as it came, context)."""
    block = payload["attachments"][0]["blocks"][1]
    return html.unescape(block["text"]["text"]).removeprefix("```\n").removesuffix("\n```")


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


# -- defect 1: deep nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,  # the probe's case: never closed
        nested(5_000),  # 10 KB of [[...]]
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        '{"source": "eksops", "kind": "retention.changes", "details": ' + nested(5_000) + "}",
        '{"AlarmName": "x", "NewStateValue": "ALARM", "Trigger": ' + nested(5_000) + "}",
    ],
    ids=["unclosed", "list", "object", "envelope", "alarm"],
)
def test_deeply_nested_json_is_delivered_as_plain_text(raw: str) -> None:
    message = format_sns(raw, "Deep", ALERTS)
    payload = message.payload()
    deliverable(payload)
    assert (message.kind, message.severity) == ("other", "unknown")
    shown = shown_code(payload)
    assert raw.startswith(shown.removesuffix("… (truncated)")) and len(shown) > 100


@pytest.mark.parametrize("depth", [400, 900])
def test_nesting_that_parses_is_still_rendered(depth: int) -> None:
    """Deep enough to parse but too deep for some renderers: shown by the layout or as text, never a crash."""
    details = {"deep": json.loads(nested(depth)), "count": 3}
    envelope = {"source": "eksops", "kind": "example.deep", "severity": "warning", "title": "t", "details": details}
    deliverable(format_sns(json.dumps(envelope), None, ALERTS).payload())
    event = body_of("guardduty_eks_finding")
    event["detail"]["resource"] = json.loads(nested(depth, '{"x": 1}'))
    deliverable(format_sns(json.dumps(event), None, ALERTS).payload())


# -- defect 4: a Subject that is not a string, a huge severity --------------------------------------------------


def record_with(**sns: Any) -> dict[str, Any]:
    base = {"MessageId": "m-1", "TopicArn": ALERTS, "Message": "hello", "Timestamp": "2026-11-25T10:15:02.873Z"}
    return {"Records": [{"EventSource": "aws:sns", "Sns": {**base, **sns}}]}


@pytest.mark.parametrize(
    ("subject", "shown"),
    [
        (5, "5"),
        (1.5, "1.5"),
        (True, "true"),
        (["a", "b"], '["a", "b"]'),
        ({"k": "v"}, '{"k": "v"}'),
        ("<!here> ok", "<!here> ok"),
        (None, "Message on eksops-alerts"),
    ],
)
def test_a_subject_that_is_not_a_string_is_shown_as_text(subject: Any, shown: str) -> None:
    record = SnsRecord.parse(record_with(Subject=subject))
    assert record.subject is None or isinstance(record.subject, str)
    payload = format_sns(record.message, record.subject, record.topic_arn).payload()
    deliverable(payload)
    header = payload["attachments"][0]["blocks"][0]["text"]["text"]
    assert header.endswith(shown)


def test_a_huge_or_deep_subject_is_cut() -> None:
    for subject in ["s" * 300_000, json.loads(nested(500))]:
        record = SnsRecord.parse(record_with(Subject=subject))
        assert record.subject is not None and len(record.subject) <= 1_000
        deliverable(format_sns(record.message, record.subject, record.topic_arn).payload())


@pytest.mark.parametrize(
    ("value", "severity", "shown"),
    [
        (int("9" * 400), "unknown", "99999"),
        (-3, "unknown", "-3"),
        (1e308 * 10, "unknown", "Infinity"),
        ("8.0", "critical", "8"),
        ("high", "unknown", "high"),
        ([8], "unknown", "[8]"),
        (None, "unknown", "-"),
        (True, "unknown", "true"),
        (5.5, "warning", "5.5"),
    ],
)
def test_guardduty_severity_of_any_value_is_rendered(value: Any, severity: str, shown: str) -> None:
    event = body_of("guardduty_eks_finding")
    event["detail"]["severity"] = value
    message = format_sns(json.dumps(event), None, ALERTS)
    text = deliverable(message.payload())
    assert (message.kind, message.severity) == ("guardduty-finding", severity)
    assert f"*Severity*\\n{shown}" in text


# -- the same kinds of value in every field of every sample ------------------------------------------------------

HOSTILE: list[Any] = [
    None,
    True,
    0,
    -1,
    int("9" * 400),
    1e308,
    "",
    "x" * 300_000,
    "\ud800 lone \udfff surrogates",
    "<!channel> <https://evil.example|x>",
    [],
    {},
    [1, "a", None],
    {"k": {"k": "v"}},
    json.loads(nested(300)),
]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of a parsed JSON document (lists: their first three items)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copied = copy.deepcopy(document)
    node = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_any_value_in_any_field_is_delivered(path: Path) -> None:
    sns = json.loads(path.read_text())["Records"][0]["Sns"]
    try:
        document = json.loads(sns["Message"])
    except ValueError:
        document = sns["Message"]
    cases = [(p, v) for p in paths(document) for v in HOSTILE] + [((), v) for v in HOSTILE]
    for key_path, value in cases:
        mutated = replaced(document, key_path, value) if key_path else value
        raw = mutated if isinstance(mutated, str) else json.dumps(mutated)
        message = format_sns(raw, sns.get("Subject"), sns["TopicArn"])
        deliverable(message.payload())
        assert message.cluster is None or (isinstance(message.cluster, str) and len(message.cluster) <= 100)
        assert len(message.kind) <= 120, key_path
    assert len(cases) > 100 or not isinstance(document, dict)


def test_lone_surrogates_are_replaced_in_what_slack_gets() -> None:
    envelope = {
        "source": "eksops",
        "kind": "retention.changes\ud800",
        "severity": "warning",
        "title": "t\udfff",
        "summary": "s\ud83d",
        "cluster": "prod\ud800",
    }
    message = format_sns(json.dumps(envelope), "subject\ud800", ALERTS)
    text = deliverable(message.payload())
    assert "\ufffd" in text
    assert format_sns("raw \ud800 text", "subject\ud800", ALERTS).payload()["text"] == "subject\ufffd"


def test_numbers_slack_cannot_show_do_not_break_the_layout() -> None:
    alarm = body_of("cloudwatch_alarm")
    alarm["Trigger"]["Threshold"] = math.inf
    alarm["Trigger"]["EvaluationPeriods"] = int("9" * 400)
    ecr = body_of("ecr_image_scan")
    ecr["detail"]["finding-severity-counts"] = {"CRITICAL": int("9" * 400), "HIGH": "many", "LOW": None}
    for body in (alarm, ecr):
        message = format_sns(json.dumps(body), None, ALERTS)
        deliverable(message.payload())
        assert message.kind != "other"


# -- defect 7: links only to places eksops itself links to -------------------------------------------------------


def envelope_with_links(links: Any, region: str | None = "eu-west-1") -> str:
    body = {"source": "eksops", "kind": "example.links", "severity": "warning", "title": "t", "summary": "s"}
    return json.dumps({**body, "region": region, "links": links})


@pytest.mark.parametrize(
    ("topic", "url"),
    [
        (ALERTS, "https://eu-west-1.console.aws.amazon.com/eks/home?region=eu-west-1#/clusters/prod-eu"),
        (ALERTS, "https://console.aws.amazon.com/iam/home#/roles"),
        (ALERTS, "https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html"),
        ("arn:aws-cn:sns:cn-north-1:123456789012:eksops-alerts", "https://cn-north-1.console.amazonaws.cn/eks/home"),
        (
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:eksops-alerts",
            "https://us-gov-west-1.console.amazonaws-us-gov.com/eks/home",
        ),
    ],
)
def test_console_and_docs_links_are_links(topic: str, url: str) -> None:
    payload = format_sns(envelope_with_links({"Open": url}), None, topic).payload()
    deliverable(payload)
    assert any(f"<{url}|Open>" in text for text in _mrkdwn_texts(payload))


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/phish",
        "http://eu-west-1.console.aws.amazon.com/eks/home",  # not https
        "https://console.aws.amazon.com.evil.example/",  # a lookalike host
        "https://console.aws.amazon.com@evil.example/",  # user information before the real host
        "https://user:pw@console.aws.amazon.com/",
        "https://console.aws.amazon.com:8443/",
        "https://eu-west-1.console.aws.amazon.com\\@evil.example/",
        "https://evil.console.aws.amazon.com/",  # not a region
        "https://cn-north-1.console.amazonaws.cn/eks/home",  # another partition's console than the topic's
        "javascript:alert(1)",
        "https://console.aws.amazon.com/\n<https://evil.example|x>",
        "",
        "https://[::1/",  # does not parse
    ],
)
def test_other_links_are_shown_as_text_without_the_url(url: str) -> None:
    payload = format_sns(envelope_with_links({"Cluster in the console": url}), None, ALERTS).payload()
    deliverable(payload)
    texts = _mrkdwn_texts(payload)
    assert not any("evil.example" in t or "|Cluster in the console>" in t for t in texts), texts
    assert any("Cluster in the console (link not shown" in t for t in texts)


def test_links_of_any_shape_are_rendered() -> None:
    for links in [["https://evil.example"], "https://evil.example", {"a": ["x"]}, {"a": None}, {"": ""}, 5]:
        payload = format_sns(envelope_with_links(links), None, ALERTS).payload()
        deliverable(payload)
        assert "evil.example" not in " ".join(_mrkdwn_texts(payload))


# -- defect 8: an SNS record without a MessageId still has an idempotency key ------------------------------------


def test_the_message_id_is_the_idempotency_key() -> None:
    assert SnsRecord.parse(record_with(MessageId="m-42")).idempotency_key == "m-42"


def test_an_empty_message_id_falls_back_to_a_hash_of_the_content() -> None:
    record = SnsRecord.parse(record_with(MessageId="", Subject="s"))
    content = json.dumps([ALERTS, "s", "hello", "2026-11-25T10:15:02.873Z"])
    assert record.idempotency_key == "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    assert SnsRecord.parse(record_with(MessageId="", Subject="s")).idempotency_key == record.idempotency_key
    others = [
        record_with(MessageId="", Subject="s", Message="hello again"),
        record_with(MessageId="", Subject="t"),
        record_with(MessageId="", Subject="s", Timestamp="2026-11-25T10:15:02.874Z"),
        record_with(MessageId="", Subject="s", TopicArn=ALERTS + "-2"),
        record_with(MessageId="", Subject="\ud800"),  # hashable too
    ]
    keys = {SnsRecord.parse(event).idempotency_key for event in others}
    assert len(keys) == len(others) and record.idempotency_key not in keys


@pytest.mark.parametrize(
    ("sns", "field"),
    [
        ({"MessageId": "m" * 1_000}, "MessageId"),
        ({"MessageId": None}, "MessageId"),
        ({"Message": {"not": "a string"}}, "Message"),
        ({"TopicArn": 5}, "TopicArn"),
    ],
)
def test_a_record_sns_could_not_have_sent_is_invalid(sns: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        SnsRecord.parse(record_with(**sns))
    assert raised.value.field == f"Records[0].Sns.{field}"


def test_section_limit_is_what_the_bound_assumes() -> None:
    assert 50 * SECTION_TEXT_LIMIT < PAYLOAD_BOUND


def test_links_beyond_ten_are_counted() -> None:
    links = {f"Console {i}": "https://console.aws.amazon.com/eks/home" for i in range(25)}
    payload = format_sns(envelope_with_links(links), None, ALERTS).payload()
    deliverable(payload)
    text = " ".join(_mrkdwn_texts(payload))
    assert "|Console 9>" in text and "Console 10" not in text and "… and 15 more links" in text
