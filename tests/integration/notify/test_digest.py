"""Reports through the reports queue: SNS to a real SQS queue on moto, the sandbox's event source mapping (batches,
partial batch responses), one Slack digest per batch on the local receiver."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eksops.notify import Message, Publisher, Severity
from eksops_dev.cloudtrail import CloudTrailShim
from eksops_dev.dispatch import Dispatcher, Invocation, sqs_event
from eksops_dev.fuzz.strategies import hostile_strings, messages
from eksops_dev.sandbox import Sandbox
from eksops_dev.slack import SlackReceiver, render
from tests.integration.notify.conftest import webhook
from tests.unit.notify.test_formats import assert_valid_block_kit

MakeSandbox = Callable[..., tuple[Sandbox, Dispatcher]]


def publisher(sandbox: Sandbox) -> Publisher:
    refs = sandbox.refs
    return Publisher(
        sandbox.client("sns"), alerts_topic_arn=refs["AlertsTopic"], reports_topic_arn=refs["ReportsTopic"]
    )


def retention_report(group: str) -> Message:
    return Message(
        kind="retention.changes",
        severity=Severity.INFO,
        title="Log retention: changed 1 log group(s)",
        summary="changed 1, unchanged 0, excluded 0, errors 0; mode missing.",
        details={"changed": [{"group": group, "from": None, "to": 14}]},
        lines=(f"{group}: never expire -> 14 days",),
    )


def alarms_report(cluster: str, severity: Severity = Severity.WARNING) -> Message:
    return Message(
        kind="error_alarms.changes",
        severity=severity,
        title="Error alarms: changed 2 resource(s)",
        summary="changed 2, unchanged 0, errors 0 across 1 cluster(s).",
        cluster=cluster,
        lines=(
            f"{cluster}: created filter eksops-{cluster}-errors",
            f"{cluster}: created alarm eksops-{cluster}-errors",
        ),
    )


def queue_depth(sandbox: Sandbox) -> tuple[int, int]:
    """(visible, in flight) messages of the reports queue."""
    attributes = sandbox.client("sqs").get_queue_attributes(
        QueueUrl=sandbox.refs["ReportsQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def visibility_timeout_passes(sandbox: Sandbox, invocation: Invocation, only: set[str] | None = None) -> None:
    """The queue's visibility timeout ends for the messages a failed batch left in flight (or ``only`` those)."""
    sqs = sandbox.client("sqs")
    for record in invocation.event["Records"]:
        if only is None or record["messageId"] in only:
            sqs.change_message_visibility(
                QueueUrl=sandbox.refs["ReportsQueue"], ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )


def received_batch(sandbox: Sandbox) -> dict[str, Any]:
    """What the reports queue holds, as the SQS batch its event source mapping would hand the notifier."""
    sqs = sandbox.client("sqs")
    received = sqs.receive_message(QueueUrl=sandbox.refs["ReportsQueue"], MaxNumberOfMessages=10)["Messages"]
    arn = sqs.get_queue_attributes(QueueUrl=sandbox.refs["ReportsQueue"], AttributeNames=["QueueArn"])
    return sqs_event(received, arn["Attributes"]["QueueArn"])


def batches(invocations: list[Invocation]) -> list[Invocation]:
    return [inv for inv in invocations if inv.function == "notifier" and "SQS batch" in inv.trigger]


def test_a_new_clusters_log_groups_reach_slack_as_one_digest(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """Three CreateLogGroup calls of a new cluster: three log_retention runs and one error_alarms run, four reports,
    one Slack message (four before). An alert in the same moment is posted on its own, at once."""
    sandbox, dispatcher = make_notifier_sandbox({"DryRun": "false"})
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    cloudtrail = CloudTrailShim(sandbox.client)
    groups = [f"/aws/containerinsights/c1/{name}" for name in ("application", "host", "performance")]
    for group in groups:
        cloudtrail.call("logs", "create_log_group", logGroupName=group)
    publisher(sandbox).alert(
        Message(kind="bootstrap.access-denied", severity=Severity.CRITICAL, title="cannot reach c1", summary="-")
    )
    runs = dispatcher.drain()
    assert all(inv.ok for inv in runs)
    assert sorted(inv.function for inv in runs) == ["error_alarms"] + ["log_retention"] * 3 + ["notifier"] * 2
    [batch] = batches(runs)
    assert len(batch.event["Records"]) == 4 and batch.result == {"batchItemFailures": []}
    assert len(slack.received) == 2
    alert, digest = (render(p) for p in slack.received)
    assert alert[0] == "== 🔴 cannot reach c1 =="
    assert digest[:3] == [
        "== 🔵 eksops: 4 reports ==",
        "1 error_alarms.changes (c1), 3 retention.changes",
        "*error_alarms.changes · c1 · 1 report(s)*",
    ]
    assert "      c1: create alarm eksops-c1-application-errors" in digest
    assert "*retention.changes · no cluster · 3 report(s)*" in digest
    for group, days in zip(groups, (30, 14, 7), strict=True):
        assert f"      {group}: never expire -> {days} days" in digest
    assert queue_depth(sandbox) == (0, 0)
    dispatcher.close()
    log = (sandbox.workdir / "functions.log").read_text()
    handled = [json.loads(line) for line in log.splitlines() if '"reports handled"' in line]
    assert [(h["records"], h["filtered"], h["failed"], h["digests"][0]["reports"]) for h in handled] == [(4, 0, 0, 4)]


def test_a_digest_groups_by_kind_and_cluster_most_severe_first(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    reports = publisher(sandbox)
    for index in range(7):
        reports.report(retention_report(f"/aws/lambda/app-{index}"))
    reports.report(alarms_report("prod-eu"))
    reports.report(alarms_report("prod-us"))
    reports.report(alarms_report("prod-eu", Severity.INFO))
    [batch] = batches(dispatcher.drain())
    assert batch.ok and len(batch.event["Records"]) == 10
    [payload] = slack.received
    assert_valid_block_kit(payload)
    assert payload["attachments"][0]["color"] == "#FF9900"  # the most severe report's colour: warning
    lines = render(payload)
    assert lines[:2] == [
        "== 🟠 eksops: 10 reports ==",
        "2 error_alarms.changes (prod-eu), 1 error_alarms.changes (prod-us), 7 retention.changes",
    ]
    headings = [line for line in lines if line.startswith("*")]
    assert headings == [
        "*error_alarms.changes · prod-eu · 2 report(s)*",
        "*error_alarms.changes · prod-us · 1 report(s)*",
        "*retention.changes · no cluster · 7 report(s)*",
    ]
    assert "• :warning: *Error alarms: changed 2 resource(s)*" in lines
    assert "      prod-us: created alarm eksops-prod-us-errors" in lines
    assert sum("/aws/lambda/app-" in line for line in lines) == 5
    assert "• … and 2 more retention.changes reports" in lines
    assert payload["text"].startswith(":warning: eksops: 10 reports: 2 error_alarms.changes (prod-eu)")


def test_a_batch_of_one_report_keeps_the_reports_own_layout(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    publisher(sandbox).report(alarms_report("prod-eu"))
    [batch] = batches(dispatcher.drain())
    [payload] = slack.received
    lines = render(payload)
    assert batch.ok and lines[0] == "== 🟠 Error alarms: changed 2 resource(s) =="
    assert lines[-1] == "  (eksops · error_alarms.changes)"


def test_slack_down_fails_the_batch_and_the_redelivery_posts_it_once(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    for index in range(3):
        publisher(sandbox).report(retention_report(f"/aws/lambda/app-{index}"))
    slack.answer(503, text="unavailable")
    [failed] = batches(dispatcher.drain())
    # every record failed: the invocation fails with the real error (the notifier's error alarm), nothing deleted
    assert failed.error_type == "SlackUnavailable" and failed.attempts == 1 and not failed.dead_lettered
    assert queue_depth(sandbox) == (0, 3) and slack.received == []
    visibility_timeout_passes(sandbox, failed)
    [retried] = batches(dispatcher.drain())
    assert retried.ok and retried.result == {"batchItemFailures": []}
    assert len(slack.received) == 1 and render(slack.received[0])[0] == "== 🔵 eksops: 3 reports =="
    assert queue_depth(sandbox) == (0, 0)


def test_a_failed_webhook_retries_only_its_own_reports(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """dev-* reports go to another webhook, which is down: the team's digest is posted and its records deleted; the
    partial batch response names only the dev records, which SQS redelivers."""
    with SlackReceiver() as dev:
        sandbox, dispatcher = make_notifier_sandbox()
        routes = [{"cluster": "dev-*", "secret_arn": webhook(sandbox, dev, "dev")}]
        sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack), SlackRoutes=json.dumps(routes))
        reports = publisher(sandbox)
        reports.report(alarms_report("prod-eu"))
        reports.report(alarms_report("dev-1"))
        reports.report(retention_report("/aws/lambda/app"))
        dev.answer(500, text="internal_error")
        [batch] = batches(dispatcher.drain())
        dev_record = next(r["messageId"] for r in batch.event["Records"] if "dev-1" in r["body"])
        assert batch.ok and batch.result == {"batchItemFailures": [{"itemIdentifier": dev_record}]}
        assert len(slack.received) == 1 and render(slack.received[0])[0] == "== 🟠 eksops: 2 reports =="
        assert queue_depth(sandbox) == (0, 1) and dev.received == []
        visibility_timeout_passes(sandbox, batch, only={dev_record})
        [again] = batches(dispatcher.drain())
        assert again.ok and len(again.event["Records"]) == 1 and len(dev.received) == 1
        assert len(slack.received) == 1 and queue_depth(sandbox) == (0, 0)


def test_the_same_batch_delivered_twice_is_posted_once(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """A batch retried after a timeout (the digest was posted, the response lost) is not posted again."""
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    for index in range(2):
        publisher(sandbox).report(retention_report(f"/aws/lambda/app-{index}"))
    event = received_batch(sandbox)
    reordered = {**event, "Records": event["Records"][::-1]}
    first = dispatcher.invoke("notifier", event, "test", synchronous=True)
    second = dispatcher.invoke("notifier", reordered, "test", synchronous=True)
    assert first.ok and second.ok and len(slack.received) == 1
    items = sandbox.client("dynamodb").scan(TableName=sandbox.refs["IdempotencyTable"])["Items"]
    assert [i["status"]["S"] for i in items if ".digest#" in i["id"]["S"]] == ["COMPLETED"], items


def test_reports_below_the_threshold_are_left_out(make_notifier_sandbox: MakeSandbox, slack: SlackReceiver) -> None:
    sandbox, dispatcher = make_notifier_sandbox({"SlackMinSeverity": "warning"})
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    reports = publisher(sandbox)
    reports.report(retention_report("/aws/lambda/a"))
    reports.report(retention_report("/aws/lambda/b"))
    reports.report(alarms_report("prod-eu"))
    [batch] = batches(dispatcher.drain())
    assert batch.ok and batch.result == {"batchItemFailures": []} and queue_depth(sandbox) == (0, 0)
    [payload] = slack.received  # the warning alone, in its own layout
    assert render(payload)[0] == "== 🟠 Error alarms: changed 2 resource(s) =="
    for index in range(3):
        reports.report(retention_report(f"/aws/lambda/c{index}"))
    [quiet] = batches(dispatcher.drain())
    assert quiet.ok and len(slack.received) == 1 and queue_depth(sandbox) == (0, 0)
    dispatcher.close()
    log = (sandbox.workdir / "functions.log").read_text()
    handled = [json.loads(line) for line in log.splitlines() if '"reports handled"' in line]
    assert [(h["records"], h["filtered"], len(h["digests"])) for h in handled] == [(3, 2, 1), (3, 3, 0)]
    assert log.count("is info, below SLACK_MIN_SEVERITY: not posted") == 5


def test_a_digest_slack_refuses_is_dead_lettered_report_by_report(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    for index in range(2):
        publisher(sandbox).report(retention_report(f"/aws/lambda/app-{index}"))
    slack.answer(400, text="invalid_blocks")
    [batch] = batches(dispatcher.drain())
    assert batch.ok and batch.result == {"batchItemFailures": []} and queue_depth(sandbox) == (0, 0)
    sqs = sandbox.client("sqs")
    parked = sqs.receive_message(QueueUrl=sandbox.refs["DeadLetterQueue"], MaxNumberOfMessages=10)["Messages"]
    records = [json.loads(m["Body"]) for m in parked]
    assert sorted(r["reason"] + " " + r["slackError"] for r in records) == ["SlackRejected invalid_blocks"] * 2
    assert {json.loads(r["sns"]["Message"])["lines"][0] for r in records} == {
        "/aws/lambda/app-0: never expire -> 14 days",
        "/aws/lambda/app-1: never expire -> 14 days",
    }
    assert all(r["sns"]["TopicArn"] == sandbox.refs["ReportsTopic"] for r in records)  # ready to publish again


def test_a_body_that_is_not_an_sns_notification_is_still_delivered(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    publisher(sandbox).report(retention_report("/aws/lambda/app"))
    sandbox.client("sqs").send_message(
        QueueUrl=sandbox.refs["ReportsQueue"], MessageBody="hello <!channel> from a script"
    )
    [batch] = batches(dispatcher.drain())
    assert batch.ok and len(slack.received) == 1
    lines = render(slack.received[0])
    assert "*other · no cluster · 1 report(s)*" in lines
    assert "      hello <!channel> from a script" in lines  # shown as text (escaped in the payload)
    assert "&lt;!channel&gt;" in json.dumps(slack.received[0])


def test_no_webhook_configured_lets_the_batch_go(make_notifier_sandbox: MakeSandbox) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    publisher(sandbox).report(retention_report("/aws/lambda/app"))
    [batch] = batches(dispatcher.drain())
    assert batch.ok and queue_depth(sandbox) == (0, 0)
    dispatcher.close()
    log = (sandbox.workdir / "functions.log").read_text()
    assert "no Slack webhook configured; 1 report(s) not posted" in log


@pytest.mark.parametrize(
    ("records", "field"),
    [
        ([{"eventSource": "aws:sqs", "messageId": "1"}], "Records[0].body"),
        ([{"eventSource": "aws:sqs", "body": "x"}], "Records[0].messageId"),
        ([{"eventSource": "aws:sqs", "messageId": "1", "body": "x"}, {"messageId": "2", "body": "y"}], "Records[1]"),
        ([{"eventSource": "aws:sqs", "messageId": "1", "body": "x"}] * 2, "Records[1].messageId"),
    ],
)
def test_malformed_batches_fail_specifically(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver, records: list[dict[str, Any]], field: str
) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    inv = dispatcher.invoke("notifier", {"Records": records}, "test", synchronous=True)
    assert inv.error_type == "InvalidEvent" and field in str(inv.error) and slack.attempts == 0


def notification(message: str, subject: Any) -> str:
    """The body SNS gives an SQS subscriber (raw message delivery off), with a MessageId of its own."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:eksops-local-reports",
            "Subject": subject,
            "Message": message,
            "Timestamp": "2026-11-25T10:15:02.873Z",
        }
    )


def test_any_batch_of_any_messages_is_posted_as_one_message(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """The SQS side of the notifier's contract (docs/reliability.md): a well-formed batch is delivered whatever its
    bodies hold (SNS notifications of any message and subject, or any text), as one Slack post, with no record
    failed. Messages and subjects come from the fuzz strategies the SNS side is fuzzed with."""
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    dispatcher.handler(sandbox.function("notifier"))  # the cold start, once
    # ("sns", message, subject): an SNS notification, given a fresh MessageId when sent (a MessageId seen before is
    # a redelivery, rightly not posted again); ("raw", text): any other body
    body = st.one_of(
        st.tuples(st.just("sns"), messages(), st.one_of(st.none(), hostile_strings())),
        st.tuples(st.just("raw"), hostile_strings()),
    )

    @settings(
        max_examples=int(os.environ.get("EKSOPS_FUZZ_EXAMPLES", "40")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(bodies=st.lists(body, min_size=1, max_size=5))
    def check(bodies: list[tuple[Any, ...]]) -> None:
        texts = [notification(b[1], b[2]) if b[0] == "sns" else b[1] for b in bodies]
        sent = [{"MessageId": str(uuid.uuid4()), "ReceiptHandle": "r", "Body": text} for text in texts]
        before = slack.attempts
        inv = dispatcher.invoke(
            "notifier", sqs_event(sent, "arn:aws:sqs:us-east-1:123456789012:q"), "fuzz", synchronous=True
        )
        dispatcher.history.clear()
        assert inv.ok, (inv.error_type, inv.error)
        assert inv.result == {"batchItemFailures": []}
        assert slack.attempts - before == 1

    check()


def test_a_retried_invocations_reports_are_posted_once(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """Review of issue 13: a sweep that ends in PartialFailure is retried by Lambda (twice) with the same event, and
    each attempt reported again: three Slack messages for one sweep. Reports carry an identity made of the function,
    the event's id and their place in the invocation; a copy in a later batch is acknowledged, not posted."""
    from eksops.notify.identity import reports_of

    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    for attempt in range(3):  # the first attempt, then Lambda's two retries, each delivered in a batch of its own
        with reports_of("log_retention:5d0c6c2a-sweep-event"):
            publisher(sandbox).report(retention_report(f"/aws/lambda/attempt-{attempt}"))
            publisher(sandbox).report(alarms_report("c1"))  # a second report of the same invocation
        runs = dispatcher.drain()
        assert [inv.ok for inv in batches(runs)] == [True]
    assert len(slack.received) == 1  # the first attempt's digest of its two reports
    assert "/aws/lambda/attempt-0" in "\n".join(render(slack.received[0]))
    with reports_of("log_retention:another-event"):  # another invocation's report is posted
        publisher(sandbox).report(retention_report("/aws/lambda/next"))
    dispatcher.drain()
    assert len(slack.received) == 2
    dispatcher.close()
    log = (sandbox.workdir / "functions.log").read_text()
    handled = [json.loads(line) for line in log.splitlines() if '"reports handled"' in line]
    assert [h["copies"] for h in handled] == [0, 2, 2, 0]


def test_a_report_delivered_twice_is_posted_once(make_notifier_sandbox: MakeSandbox, slack: SlackReceiver) -> None:
    """The same SNS message twice (SNS to SQS delivers at least once): once in the digest, and not again later."""
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    for index in range(2):
        publisher(sandbox).report(retention_report(f"/aws/lambda/app-{index}"))
    event = received_batch(sandbox)
    copy = {**event["Records"][0], "messageId": str(uuid.uuid4())}  # another SQS message, the same SNS message
    first = dispatcher.invoke("notifier", {"Records": [*event["Records"], copy]}, "test", synchronous=True)
    assert first.ok and len(slack.received) == 1
    digest = "\n".join(render(slack.received[0]))
    assert digest.count("/aws/lambda/app-0") == 1 and "2 reports" in digest
    later = dispatcher.invoke("notifier", {"Records": [copy]}, "test", synchronous=True)
    assert later.ok and len(slack.received) == 1
