"""The notifier as Lambda runs it, posting to a local Slack receiver over HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from eksops_dev.slack import SlackReceiver

ROOT = Path(__file__).resolve().parents[3]


def sample(name: str, message_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events/notifier" / f"{name}.json").read_text())
    if message_id:
        event["Records"][0]["Sns"]["MessageId"] = message_id
    return event


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


def notifier(make_sandbox: Any, url: str, **parameters: str) -> tuple[Sandbox, Dispatcher]:
    sandbox, dispatcher = make_sandbox(parameters=parameters)
    arn = sandbox.client("secretsmanager").create_secret(Name="eksops/slack/test", SecretString=url)["ARN"]
    sandbox.set_parameters(SlackWebhookSecretArn=arn)
    return sandbox, dispatcher


def dead_letters(sandbox: Sandbox) -> list[dict[str, Any]]:
    messages = (
        sandbox.client("sqs")
        .receive_message(QueueUrl=sandbox.refs["DeadLetterQueue"], MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def test_success_posts_once(make_sandbox: Any, slack: SlackReceiver) -> None:
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    inv = dispatcher.invoke("notifier", sample("cloudwatch_alarm"), "test")
    assert inv.ok and inv.result["posted"] is True
    assert len(slack.received) == 1
    assert slack.received[0]["attachments"][0]["color"] == "#D13212"


def test_429_then_success_honours_retry_after(make_sandbox: Any, slack: SlackReceiver) -> None:
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    slack.answer(429, headers={"Retry-After": "1"}, text="rate_limited")
    inv = dispatcher.invoke("notifier", sample("ecr_image_scan"), "test")
    assert inv.ok and inv.attempts == 1
    assert slack.attempts == 2 and len(slack.received) == 1
    assert inv.duration_ms >= 1000  # it waited the second Slack asked for before the second POST


def test_429_longer_than_the_time_left_fails_for_a_retry(make_sandbox: Any, slack: SlackReceiver) -> None:
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    slack.answer(429, headers={"Retry-After": "3600"}, text="rate_limited")
    inv = dispatcher.invoke("notifier", sample("ecr_image_scan"), "test", retries=0)
    assert inv.error_type == "SlackUnavailable" and "Retry-After" in str(inv.error)
    assert slack.received == []


def test_500_raises_so_the_delivery_is_retried_then_dead_lettered(make_sandbox: Any, slack: SlackReceiver) -> None:
    sandbox, dispatcher = notifier(make_sandbox, slack.url)
    for _ in range(3):
        slack.answer(500, text="internal_error")
    inv = dispatcher.invoke("notifier", sample("guardduty_eks_finding"), "test")
    assert inv.error_type == "SlackUnavailable" and inv.attempts == 3 and inv.dead_lettered
    [record] = dead_letters(sandbox)
    assert record["responsePayload"]["errorType"] == "SlackUnavailable"


def test_500_then_the_retry_succeeds(make_sandbox: Any, slack: SlackReceiver) -> None:
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    slack.answer(503, text="unavailable")
    inv = dispatcher.invoke("notifier", sample("health_eks_event"), "test")
    assert inv.ok and inv.attempts == 2 and len(slack.received) == 1


def test_400_is_dead_lettered_without_retries(make_sandbox: Any, slack: SlackReceiver) -> None:
    sandbox, dispatcher = notifier(make_sandbox, slack.url)
    slack.answer(400, text="invalid_blocks")
    inv = dispatcher.invoke("notifier", sample("other_message"), "test")
    assert inv.ok and inv.attempts == 1  # no Lambda retry: it would fail the same way
    assert inv.result["dead_lettered"] is True and "invalid_blocks" in inv.result["reason"]
    assert slack.attempts == 1
    [record] = dead_letters(sandbox)
    assert record["reason"] == "SlackRejected" and record["slackError"] == "invalid_blocks"
    assert record["sns"]["MessageId"] == sample("other_message")["Records"][0]["Sns"]["MessageId"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, "invalid_token"),
        (403, "invalid_token"),
        (404, "no_service"),
        (410, "channel_is_archived"),
        (400, "channel_not_found"),  # the error text alone is enough (test_webhook.py has each one)
    ],
)
def test_a_dead_webhook_fails_the_invocation(make_sandbox: Any, slack: SlackReceiver, status: int, error: str) -> None:
    """Not a payload problem: every message would fail alike, so the invocation fails (error alarm), Lambda
    retries, and the on-failure destination keeps the SNS event, once, for a redrive."""
    sandbox, dispatcher = notifier(make_sandbox, slack.url)
    for _ in range(3):
        slack.answer(status, text=error)
    inv = dispatcher.invoke("notifier", sample("cloudwatch_alarm"), "test")
    assert inv.error_type == "SlackWebhookGone" and inv.attempts == 3 and inv.dead_lettered
    assert f"HTTP {status} {error}" in str(inv.error) and "eksops/slack/test" in str(inv.error)
    assert slack.attempts == 3 and slack.received == []
    [record] = dead_letters(sandbox)  # the Lambda failure record only: no second "SlackRejected" copy
    assert record["responsePayload"]["errorType"] == "SlackWebhookGone"
    assert record["requestPayload"] == sample("cloudwatch_alarm")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T0/B0/DEADSECRET\x07",
        "https://hooks.slack.com/services/T0/B0/DEAD SECRET",
        "http://127.0.0.1.evil.tld/services/T0/B0/DEADSECRET",
        "http://hooks.slack.com/services/T0/B0/DEADSECRET",
        '{"url": "ftp://hooks.slack.com/services/T0/B0/DEADSECRET"}',
        '{"webhook": "https://hooks.slack.com/services/T0/B0/DEADSECRET"}',
        '{"url": ["https://hooks.slack.com/services/T0/B0/DEADSECRET"]}',
        "{not json DEADSECRET",
    ],
)
def test_an_unusable_webhook_url_is_a_config_error_that_does_not_quote_it(make_sandbox: Any, url: str) -> None:
    sandbox, dispatcher = notifier(make_sandbox, url)
    inv = dispatcher.invoke("notifier", sample("cloudwatch_alarm"), "test", retries=0)
    assert inv.error_type == "ConfigError" and str(inv.error).startswith("SLACK_WEBHOOK_SECRET_ARN: ")
    assert "eksops/slack/test" in str(inv.error) and "DEADSECRET" not in str(inv.error)
    [record] = dead_letters(sandbox)
    assert "DEADSECRET" not in json.dumps(record["responsePayload"])


def test_dead_receiver_raises(make_sandbox: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _sandbox, dispatcher = notifier(make_sandbox, f"http://127.0.0.1:{port}/services/T0/B0/DEADSECRET")
    inv = dispatcher.invoke("notifier", sample("cloudwatch_alarm"), "test", retries=0)
    assert inv.error_type == "SlackUnavailable" and "could not reach Slack" in str(inv.error)
    assert "DEADSECRET" not in str(inv.error)


def test_duplicate_delivery_posts_once(make_sandbox: Any, slack: SlackReceiver) -> None:
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    first = dispatcher.invoke("notifier", sample("eksops_retention_changes"), "test")
    second = dispatcher.invoke("notifier", sample("eksops_retention_changes"), "test")
    assert first.ok and second.ok and second.result == first.result
    assert len(slack.received) == 1
    third = dispatcher.invoke("notifier", sample("eksops_retention_changes", message_id="another-id"), "test")
    assert third.ok and len(slack.received) == 2


def test_the_webhook_url_is_in_no_log_line(
    make_sandbox: Any, slack: SlackReceiver, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every failure path, at DEBUG: rate limit, 5xx, malformed payload, dead webhook, dead receiver, unusable
    URLs and configuration errors. No log line, result, error text or dead-letter record holds the URL."""
    secret_paths = [slack.url.split("/services/", 1)[1]]
    sandbox, dispatcher = notifier(make_sandbox, slack.url, LogLevel="DEBUG")
    slack.answer(429, headers={"Retry-After": "0"})
    slack.answer(500)
    slack.answer(400, text="invalid_payload")
    slack.answer(404, text="no_service")
    for index, name in enumerate(["cloudwatch_alarm", "ecr_image_scan", "other_message", "health_eks_event"]):
        dispatcher.invoke("notifier", sample(name, message_id=f"m-{index}"), "test", retries=0)
    assert [i.error_type for i in dispatcher.history] == ["SlackUnavailable", None, "SlackWebhookGone", None]
    dispatchers = [dispatcher]

    def cold_start(**parameters: str) -> Dispatcher:
        """A new execution environment on the same sandbox, seeing the parameters changed since."""
        sandbox.set_parameters(**parameters)
        fresh = Dispatcher(sandbox)
        dispatchers.append(fresh)
        return fresh

    with socket.socket() as s:  # a dead receiver
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad_urls = [
        (f"http://127.0.0.1:{port}/services/T1/B1/DEADRECEIVERSECRET", "SlackUnavailable"),
        ("https://hooks.slack.com/services/T2/B2/CONTROLSECRET\x00", "ConfigError"),
        ("http://127.0.0.1.evil.tld/services/T3/B3/LOOKALIKESECRET", "ConfigError"),
        ('{"url": "https://hooks.slack.com/services/T4/B4/SPACE SECRET"}', "ConfigError"),
    ]
    secrets = sandbox.client("secretsmanager")
    for index, (url, error) in enumerate(bad_urls):
        arn = secrets.create_secret(Name=f"eksops/slack/bad-{index}", SecretString=url)["ARN"]
        inv = cold_start(SlackWebhookSecretArn=arn).invoke("notifier", sample("cloudwatch_alarm"), "test", retries=0)
        assert inv.error_type == error
    secret_paths += ["T1/B1/DEADRECEIVERSECRET", "T2/B2/CONTROLSECRET", "T3/B3/LOOKALIKESECRET", "T4/B4/SPACE SECRET"]
    route = "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/team-AbCdEf"  # not eksops/slack/...
    inv = cold_start(SlackRoutes=json.dumps([{"secret_arn": route}])).invoke(
        "notifier", sample("cloudwatch_alarm"), "test", retries=0
    )
    assert inv.error_type == "ConfigError"

    for each in dispatchers:
        each.close()
    logs = (sandbox.workdir / "functions.log").read_text() + capsys.readouterr().out + caplog.text
    records: list[Any] = dead_letters(sandbox) + [i.__dict__ for d in dispatchers for i in d.history]
    assert len(records) > 10
    assert '"service":"notifier"' in logs and '"level":"ERROR"' in logs  # the logs were captured
    assert "SlackWebhookGone" in logs and "ConfigError" in logs and "SlackUnavailable" in logs
    everything = logs + json.dumps(records, default=str)
    for secret in secret_paths:
        assert secret not in everything, secret
    assert slack.url not in everything


def test_routes_send_critical_messages_to_another_webhook(make_sandbox: Any, slack: SlackReceiver) -> None:
    with SlackReceiver() as oncall:
        sandbox, dispatcher = make_sandbox()
        secrets = sandbox.client("secretsmanager")
        default = secrets.create_secret(Name="eksops/slack/team", SecretString=slack.url)["ARN"]
        pager = secrets.create_secret(Name="eksops/slack/oncall", SecretString=json.dumps({"url": oncall.url}))["ARN"]
        routes = json.dumps([{"severity": ["critical"], "cluster": "prod-*", "secret_arn": pager}])
        sandbox.set_parameters(SlackWebhookSecretArn=default, SlackRoutes=routes)
        assert dispatcher.invoke("notifier", sample("cloudwatch_alarm"), "test").ok  # critical, prod-eu
        assert dispatcher.invoke("notifier", sample("guardduty_eks_finding"), "test").ok  # warning
        assert len(oncall.received) == 1 and len(slack.received) == 1


def test_no_webhook_configured_is_reported_not_dropped_silently(make_sandbox: Any) -> None:
    _sandbox, dispatcher = make_sandbox()
    inv = dispatcher.invoke("notifier", sample("cloudwatch_alarm"), "test")
    assert inv.ok and inv.result == {**inv.result, "posted": False, "reason": "no webhook configured"}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({}, "Records"),
        ({"Records": []}, "Records"),
        ({"Records": [{"Sns": {"MessageId": "1", "TopicArn": "arn"}}]}, "Records[0].Sns.Message"),
    ],
)
def test_malformed_events_fail_specifically(make_sandbox: Any, slack: SlackReceiver, event: Any, field: str) -> None:
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    inv = dispatcher.invoke("notifier", event, "test", retries=0)
    assert inv.error_type == "InvalidEvent" and field in str(inv.error)
    assert slack.attempts == 0


@pytest.mark.parametrize(
    ("parameter", "value", "variable"),
    [
        (
            "SlackRoutes",
            '[{"severity": "loud", "secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:'
            'eksops/slack/x"}]',
            "SLACK_ROUTES[0].severity",
        ),
        ("SlackRoutes", '{"not": "a list"}', "SLACK_ROUTES"),
        (
            "SlackRoutes",
            '[{"secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-password-AbCdEf"}]',
            "SLACK_ROUTES[0].secret_arn",
        ),
        ("SlackWebhookSecretArn", "https://hooks.slack.com/services/T/B/X", "SLACK_WEBHOOK_SECRET_ARN"),
        (  # the role reads secrets of its own region only
            "SlackRoutes",
            '[{"secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:eksops/slack/eu-AbCdEf"}]',
            "SLACK_ROUTES[0].secret_arn",
        ),
        (
            "SlackWebhookSecretArn",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:eksops/slack/default-AbCdEf",
            "SLACK_WEBHOOK_SECRET_ARN",
        ),
    ],
)
def test_invalid_configuration_names_the_variable(make_sandbox: Any, parameter: str, value: str, variable: str) -> None:
    _sandbox, dispatcher = make_sandbox(parameters={parameter: value})
    inv = dispatcher.invoke("notifier", sample("cloudwatch_alarm"), "test", retries=0)
    assert inv.error_type == "ConfigError" and str(inv.error).startswith(f"{variable}: ")
    assert "hooks.slack.com" not in str(inv.error)


def with_message_id(name: str, message_id: str, **sns: Any) -> dict[str, Any]:
    event = sample(name)
    event["Records"][0]["Sns"].update(MessageId=message_id, **sns)
    return event


def idempotency_keys(sandbox: Sandbox) -> list[str]:
    items = sandbox.client("dynamodb").scan(TableName=sandbox.refs["IdempotencyTable"])["Items"]
    return [item["id"]["S"] for item in items]


def test_an_empty_message_id_still_posts_once(make_sandbox: Any, slack: SlackReceiver) -> None:
    """Without a MessageId the key is a hash of the topic, subject, message and timestamp (issue 9, defect 8)."""
    sandbox, dispatcher = notifier(make_sandbox, slack.url)
    first = dispatcher.invoke("notifier", with_message_id("eksops_retention_changes", ""), "test")
    second = dispatcher.invoke("notifier", with_message_id("eksops_retention_changes", ""), "test")
    assert first.ok and second.ok and first.result["posted"] is True and second.result == first.result
    assert len(slack.received) == 1 and len(idempotency_keys(sandbox)) == 1
    later = with_message_id("eksops_retention_changes", "", Timestamp="2026-11-25T10:20:00.000Z")
    assert dispatcher.invoke("notifier", later, "test").ok  # the same report published again later: posted
    other = with_message_id("ecr_image_scan", "")
    assert dispatcher.invoke("notifier", other, "test").ok
    assert len(slack.received) == 3 and len(idempotency_keys(sandbox)) == 3


HOSTILE_MESSAGES: dict[str, tuple[str, dict[str, Any], str]] = {
    "unclosed brackets": ("cloudwatch_alarm", {"Message": "[" * 100_000}, "other"),
    "nested 5,000 deep": ("cloudwatch_alarm", {"Message": "[" * 5_000 + "]" * 5_000}, "other"),
    "a Subject that is a number": ("other_message", {"Subject": 42}, "other"),
    "a Subject that is an object": ("other_message", {"Subject": {"a": ["b"]}}, "other"),
}


@pytest.mark.parametrize("name", list(HOSTILE_MESSAGES))
def test_hostile_messages_reach_slack(make_sandbox: Any, slack: SlackReceiver, name: str) -> None:
    """A well-formed SNS record is delivered whatever its Message or Subject holds (issue 9, defects 1 and 4)."""
    case, sns, kind = HOSTILE_MESSAGES[name]
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    inv = dispatcher.invoke("notifier", with_message_id(case, "m-hostile", **sns), "test", retries=0)
    assert inv.ok and inv.result["posted"] is True and inv.result["kind"] == kind
    [payload] = slack.received
    header, shown = (block["text"]["text"] for block in payload["attachments"][0]["blocks"][:2])
    if "Subject" in sns:
        assert header.endswith(json.dumps(sns["Subject"]))
    else:
        assert shown.startswith("```\n[[[[")  # the message as it came


def test_a_huge_guardduty_severity_reaches_slack(make_sandbox: Any, slack: SlackReceiver) -> None:
    event = sample("guardduty_eks_finding")
    body = json.loads(event["Records"][0]["Sns"]["Message"])
    body["detail"]["severity"] = int("9" * 400)
    event["Records"][0]["Sns"]["Message"] = json.dumps(body)
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    inv = dispatcher.invoke("notifier", event, "test", retries=0)
    assert inv.ok and (inv.result["kind"], inv.result["severity"]) == ("guardduty-finding", "unknown")
    assert "*Severity*\\n9999" in json.dumps(slack.received)


def test_a_planted_link_is_not_posted(make_sandbox: Any, slack: SlackReceiver) -> None:
    """An eksops-shaped message from anyone who may publish to the topic cannot put its own links in Slack."""
    event = sample("eksops_unknown_kind")
    body = json.loads(event["Records"][0]["Sns"]["Message"])
    own = body["links"]["Cluster in the console"]
    body["links"]["Reset your password"] = "https://evil.example/login"
    event["Records"][0]["Sns"]["Message"] = json.dumps(body)
    _sandbox, dispatcher = notifier(make_sandbox, slack.url)
    assert dispatcher.invoke("notifier", event, "test").ok
    posted = json.dumps(slack.received)
    assert f"<{own}|Cluster in the console>" in posted
    assert "evil.example" not in posted and "Reset your password (link not shown" in posted


def test_log_lines_survive_a_lone_surrogate(
    make_sandbox: Any, slack: SlackReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """The line that says what was delivered is written even when the message's text cannot be UTF-8 encoded."""
    event = sample("eksops_retention_changes")
    body = json.loads(event["Records"][0]["Sns"]["Message"])
    body.update(kind="retention.changes\ud800", title="lone \udfff surrogate", cluster="prod\ud800")
    event["Records"][0]["Sns"].update(Message=json.dumps(body), MessageId="m-\ud800")
    sandbox, dispatcher = notifier(make_sandbox, slack.url)
    inv = dispatcher.invoke("notifier", event, "test")
    assert inv.ok and inv.result["posted"] is True
    dispatcher.close()
    lines = [json.loads(line) for line in (sandbox.workdir / "functions.log").read_text().splitlines() if line]
    [handled] = [line for line in lines if line.get("message") == "notification handled"]
    assert handled["kind"] == "eksops:retention.changes\ufffd" and handled["message_id"] == "m-\\ud800"
    assert "Logging error" not in capsys.readouterr().err
    assert "lone \ufffd surrogate" in json.dumps(slack.received, ensure_ascii=False)
