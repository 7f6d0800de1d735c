"""Quieter Slack on its own: severity order and thresholds, their validation, what makes two alerts the same,
the digest layout within Slack's limits, and the SQS batch parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eksops.errors import ConfigError, InvalidEvent
from eksops.notify.blocks import MAX_BLOCKS
from eksops.notify.digest import DIGEST_KIND, REPORTS_PER_GROUP, digest
from eksops.notify.formats import SlackMessage, format_sns
from eksops.notify.notifier import (
    DEFAULT_DEDUP_S,
    BurstDedup,
    NotifierConfig,
    NotifierService,
)
from eksops.notify.once import InProgress, Repeats
from eksops.notify.queue import is_sqs_batch, parse_sqs_batch
from eksops.notify.severity import SEVERITIES, at_least, rank
from eksops.notify.sns import SnsRecord
from tests.unit.notify.test_formats import assert_valid_block_kit

ROOT = Path(__file__).resolve().parents[3]
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:eksops/slack/{}-AbCdEf"
ALERTS = "arn:aws:sns:us-east-1:123456789012:eksops-alerts"


def sns_of(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events/notifier" / f"{name}.json").read_text())["Records"][0]["Sns"]  # type: ignore[no-any-return]


def formatted(name: str, **changes: Any) -> SlackMessage:
    sns = sns_of(name)
    body = json.loads(sns["Message"])
    body.update(changes)
    return format_sns(json.dumps(body), sns.get("Subject"), sns["TopicArn"])


def config(**env: str) -> NotifierConfig:
    return NotifierConfig.from_env({"AWS_REGION": "us-east-1", **env})


# -- severities and thresholds -------------------------------------------------------------------------------------


def test_severities_are_listed_lowest_first_with_ok_and_unknown_alike() -> None:
    assert [rank(s) for s in SEVERITIES] == [0, 1, 1, 2, 3]
    assert at_least("ok", "unknown") and at_least("unknown", "ok")
    assert not at_least("info", "ok") and not at_least("ok", "warning") and at_least("critical", "warning")
    assert rank("made-up") == rank("unknown")


def test_defaults_post_everything_and_dedup_ten_minutes() -> None:
    cfg = config()
    assert (cfg.min_severity, cfg.dedup_seconds) == ("info", DEFAULT_DEDUP_S) == ("info", 600)
    assert all(cfg.destination_for(formatted(name)).admits(formatted(name)) for name in ("eksops_retention_changes",))


def test_the_first_matching_route_decides_with_its_own_threshold() -> None:
    routes = [
        {"cluster": "prod-*", "min_severity": "critical", "secret_arn": ARN.format("oncall")},
        {"severity": ["warning", "critical"], "secret_arn": ARN.format("alerts")},
    ]
    cfg = config(SLACK_WEBHOOK_SECRET_ARN=ARN.format("team"), SLACK_ROUTES=json.dumps(routes), SLACK_MIN_SEVERITY="ok")
    prod_warning = formatted("guardduty_eks_finding")  # warning, prod-eu: the first route takes it, and drops it
    place = cfg.destination_for(prod_warning)
    assert (place.secret_arn, place.min_severity, place.setting) == (
        ARN.format("oncall"),
        "critical",
        "SLACK_ROUTES[0].min_severity",
    )
    assert not place.admits(prod_warning)
    other_warning = formatted("health_eks_event")  # warning, legacy-apps: the second route, no threshold of its own
    assert cfg.destination_for(other_warning).secret_arn == ARN.format("alerts")
    assert cfg.destination_for(other_warning).admits(other_warning)
    info = formatted("eksops_retention_changes")  # info, no cluster: the default webhook, below its "ok"
    assert cfg.destination_for(info).setting == "SLACK_MIN_SEVERITY" and not cfg.destination_for(info).admits(info)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"SLACK_MIN_SEVERITY": "high"}, "SLACK_MIN_SEVERITY: 'high' is not allowed; use one of: info, ok, unknown,"),
        ({"SLACK_MIN_SEVERITY": "INFO"}, "SLACK_MIN_SEVERITY: 'INFO' is not allowed"),
        ({"SLACK_DEDUP_SECONDS": "ten"}, "SLACK_DEDUP_SECONDS: 'ten' is not a whole number"),
        ({"SLACK_DEDUP_SECONDS": "86401"}, "SLACK_DEDUP_SECONDS: 86401 is outside 0..86400"),
        (
            {"SLACK_ROUTES": json.dumps([{"secret_arn": ARN.format("a"), "min_severity": ["warning"]}])},
            "SLACK_ROUTES[0].min_severity: use one of, lowest first: info, ok, unknown, warning, critical",
        ),
        (
            {"SLACK_ROUTES": json.dumps([{"secret_arn": ARN.format("a"), "minimum": "warning"}])},
            "SLACK_ROUTES[0]: must be an object like",
        ),
        (
            {
                "SLACK_ROUTES": json.dumps(
                    [
                        {"secret_arn": ARN.format("a")},
                        {"severity": ["info", "ok"], "min_severity": "critical", "secret_arn": ARN.format("b")},
                    ]
                )
            },
            "SLACK_ROUTES[1].min_severity: critical is above every severity the route takes (info, ok)",
        ),
    ],
)
def test_invalid_thresholds_name_the_variable_and_entry(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(**env)
    assert str(raised.value).startswith(error)


def test_a_route_threshold_within_its_severities_is_accepted() -> None:
    route = {"severity": ["ok", "critical"], "min_severity": "unknown", "secret_arn": ARN.format("a")}
    [parsed] = config(SLACK_ROUTES=json.dumps([route])).routes
    assert (parsed.severities, parsed.min_severity) == (("ok", "critical"), "unknown")


# -- what makes two alerts the same --------------------------------------------------------------------------------


def test_the_dedup_key_ignores_the_sns_envelope() -> None:
    sns = sns_of("eksops_bootstrap_access_denied")
    first = format_sns(sns["Message"], sns["Subject"], sns["TopicArn"])
    again = format_sns(sns["Message"], "another subject", "arn:aws:sns:us-east-1:123456789012:other")
    assert first.dedup_key() == again.dedup_key()
    for change in ({"summary": "x"}, {"title": "x"}, {"cluster": "prod-us"}, {"severity": "warning"}, {"kind": "y"}):
        assert formatted("eksops_bootstrap_access_denied", **change).dedup_key() != first.dedup_key(), change
    # details, links and lines are not part of it
    assert formatted("eksops_bootstrap_access_denied", details={"a": 1}, links={}).dedup_key() == first.dedup_key()


def test_each_alarm_state_change_is_its_own_alert() -> None:
    first = formatted("cloudwatch_alarm")
    later = formatted("cloudwatch_alarm", StateChangeTime="2026-11-25T10:25:02.846+0000")
    assert first.dedup_key() != later.dedup_key()
    assert first.dedup_key() == formatted("cloudwatch_alarm").dedup_key()


def test_another_image_or_finding_is_another_alert_and_a_recurring_finding_is_not() -> None:
    scan = sns_of("ecr_image_scan")
    body = json.loads(scan["Message"])
    other = json.loads(scan["Message"])
    other["detail"]["image-digest"] = "sha256:" + "1" * 64
    keys = {format_sns(json.dumps(b), None, ALERTS).dedup_key() for b in (body, other)}
    assert len(keys) == 2
    finding = sns_of("guardduty_eks_finding")
    recurring = json.loads(finding["Message"])
    recurring["detail"]["service"] = {"count": 7, "updatedAt": "2026-11-25T11:00:00Z"}
    assert (
        format_sns(finding["Message"], None, ALERTS).dedup_key()
        == format_sns(json.dumps(recurring), None, ALERTS).dedup_key()
    )


# -- burst dedup in the service ------------------------------------------------------------------------------------


class FakeOnce:
    """An in-memory Once: the first result per key, or InProgress when told."""

    def __init__(self, busy: bool = False) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.busy = busy

    def run(self, key: str, action: Any) -> tuple[dict[str, Any], bool]:
        if self.busy:
            raise InProgress("busy")
        if key in self.results:
            return self.results[key], True
        self.results[key] = action()
        return self.results[key], False


class FakeRepeats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def peek(self, key: str) -> Repeats | None:
        return Repeats(self.counts[key], "2026-11-25T10:00:00Z") if self.counts.get(key) else None

    def settle(self, key: str, seen: Repeats) -> None:
        self.counts[key] -= seen.count


class FakeWebhook:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    def post(self, url: str, payload: dict[str, Any], remaining_ms: Any, *, label: str) -> None:
        self.posts.append(payload)


def service(once: FakeOnce) -> tuple[NotifierService, FakeWebhook]:
    webhook = FakeWebhook()
    dedup = BurstDedup(once, FakeRepeats(), 600)  # type: ignore[arg-type]
    return (
        NotifierService(
            config(SLACK_WEBHOOK_SECRET_ARN=ARN.format("team")),
            dry_run=False,
            get_secret=lambda arn: "https://hooks.slack.com/services/T/B/X",
            webhook=webhook,  # type: ignore[arg-type]
            sqs=None,
            alerts_topic_arn=ALERTS,
            dedup=dedup,
        ),
        webhook,
    )


def alert(message_id: str) -> SnsRecord:
    sns = sns_of("eksops_bootstrap_access_denied")
    return SnsRecord(message_id, ALERTS, sns["Subject"], sns["Message"], idempotency_key=message_id)


def test_a_copy_while_the_first_is_being_posted_counts_as_a_repeat() -> None:
    """Two identical alerts at the same moment: the second finds the first in progress. It is not an error (the
    notifier's alarm would fire for a burst, the very thing dedup is for): it is counted like any copy."""
    notifier, webhook = service(FakeOnce(busy=True))
    result = notifier.deliver(alert("m-2"), lambda: 60_000)
    assert (result["posted"], result["deduplicated"], result["repeats"], result["duplicate_of"]) == (
        False,
        True,
        1,
        None,
    )
    assert webhook.posts == []


def test_the_same_delivery_again_is_posted_not_counted() -> None:
    """A delivery whose first try posted but failed afterwards (its own idempotency record lost) finds its own
    dedup record: it was posted, it is no repeat of itself."""
    once = FakeOnce()
    notifier, webhook = service(once)
    assert notifier.deliver(alert("m-1"), lambda: 60_000)["posted"] is True
    again = notifier.deliver(alert("m-1"), lambda: 60_000)
    assert again["posted"] is True and "deduplicated" not in again and len(webhook.posts) == 1
    copy = notifier.deliver(alert("m-2"), lambda: 60_000)
    assert copy["deduplicated"] is True and copy["duplicate_of"] == "m-1"


# -- digests -------------------------------------------------------------------------------------------------------


def report(kind: str, severity: str, cluster: str | None, title: str, lines: tuple[str, ...] = ()) -> SlackMessage:
    body = {"source": "eksops", "kind": kind, "severity": severity, "title": title, "summary": "s", "lines": lines}
    if cluster:
        body["cluster"] = cluster
    return format_sns(json.dumps(body), None, "arn:aws:sns:us-east-1:123456789012:eksops-reports")


def test_one_message_is_its_own_digest() -> None:
    only = report("retention.changes", "info", None, "one")
    assert digest([only]) is only
    with pytest.raises(ValueError, match="at least one"):
        digest([])


def test_a_full_batch_of_long_hostile_reports_stays_within_slacks_limits() -> None:
    """Up to 25 reports (the proposed BatchSize), each kind and cluster a group, 3,000-character titles and lines
    with mrkdwn control characters: valid Block Kit, nothing unescaped."""
    long = "<!channel> & <https://evil.example|x> " * 80
    messages = [
        report(f"kind.{index % 13}", SEVERITIES[index % 5], f"c{index}", long, tuple(long for _ in range(20)))
        for index in range(60)
    ]
    payload = digest(messages).payload()
    assert_valid_block_kit(payload)
    text = json.dumps(payload)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert len(payload["attachments"][0]["blocks"]) == MAX_BLOCKS
    assert payload["attachments"][0]["color"] == "#D13212"


def test_a_digest_counts_what_it_does_not_show() -> None:
    messages = [
        report("retention.changes", "info", None, f"r{i}", (f"line {i}",)) for i in range(REPORTS_PER_GROUP + 3)
    ]
    result = digest(messages)
    assert result.kind == DIGEST_KIND and result.severity == "info" and result.cluster is None
    text = json.dumps(result.payload(), ensure_ascii=False)
    assert "line 4" in text and "line 5" not in text and "… and 3 more retention.changes reports" in text


def test_a_digest_of_one_cluster_says_so() -> None:
    messages = [report("a", "warning", "prod-eu", "x"), report("b", "critical", "prod-eu", "y")]
    result = digest(messages)
    assert (result.cluster, result.severity, result.title) == ("prod-eu", "critical", "eksops: 2 reports on prod-eu")


# -- the SQS batch -------------------------------------------------------------------------------------------------


def sqs_record(message_id: str, body: Any) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:eksops-reports",
        "awsRegion": "us-east-1",
    }


def test_sns_notifications_in_the_batch_keep_their_sns_identity() -> None:
    sns = sns_of("eksops_retention_changes")
    notification = {k: sns[k] for k in ("Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp")}
    [queued] = parse_sqs_batch({"Records": [sqs_record("q-1", notification)]})
    assert queued.queue_message_id == "q-1"
    assert (queued.sns.message_id, queued.sns.topic_arn, queued.sns.idempotency_key) == (
        sns["MessageId"],
        sns["TopicArn"],
        sns["MessageId"],
    )


@pytest.mark.parametrize(
    "body",
    [
        "plain text",
        "[" * 50_000,
        {"Type": "Notification", "MessageId": 5, "TopicArn": "t", "Message": "m"},  # not what SNS sends
        {"Message": "no Type"},
    ],
)
def test_any_other_body_is_a_message_of_its_own(body: Any) -> None:
    [queued] = parse_sqs_batch({"Records": [sqs_record("q-1", body)]})
    assert queued.sns.message == (body if isinstance(body, str) else json.dumps(body))
    assert (queued.sns.idempotency_key, queued.sns.topic_arn) == (
        "sqs:q-1",
        "arn:aws:sqs:us-east-1:123456789012:eksops-reports",
    )


def test_only_sqs_events_are_batches() -> None:
    sns = json.loads((ROOT / "events/notifier/cloudwatch_alarm.json").read_text())
    assert not is_sqs_batch(sns) and not is_sqs_batch({"Records": []}) and not is_sqs_batch([])
    assert is_sqs_batch({"Records": [sqs_record("1", "x")]})
    with pytest.raises(InvalidEvent, match=r"field: Records\[0\]\.eventSource"):
        parse_sqs_batch(sns)
