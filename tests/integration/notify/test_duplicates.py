"""Duplicates that arrive at the same time, and failures after a post: the notifier's service and handler with their
records in DynamoDB (moto over HTTP). Two execution environments are two services sharing the table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from eksops.notify.notifier import BatchOutcome, BurstDedup, NotifierConfig, NotifierService
from eksops.notify.once import Once, PostedReports, RepeatCounter
from eksops.notify.queue import QueuedRecord
from eksops.notify.sns import SnsRecord
from eksops.notify.webhook import SlackUnavailable
from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from eksops_dev.slack import SlackReceiver
from tests.integration.notify.conftest import IDEMPOTENCY_TABLE
from tests.integration.notify.test_notifier import notifier, sample

TABLE = IDEMPOTENCY_TABLE
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:eksops/slack/team-AbCdEf"
ALERTS = "arn:aws:sns:us-east-1:123456789012:eksops-alerts"
REPORTS = "arn:aws:sns:us-east-1:123456789012:eksops-reports"


class Webhook:
    """Slack as the service sees it: records payloads; ``during`` runs inside the first post (another invocation at
    that very moment); ``fail`` makes the next posts raise."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.during: Callable[[], None] | None = None
        self.fail = 0

    def post(self, url: str, payload: dict[str, Any], remaining_ms: Any, *, label: str) -> None:
        during, self.during = self.during, None
        if during is not None:
            during()
        if self.fail:
            self.fail -= 1
            raise SlackUnavailable("Slack answered 503")
        self.posts.append(payload)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def service(
    dynamodb: Any, webhook: Webhook, *, dedup_s: int = 0, clock: Callable[[], float] = time.time
) -> NotifierService:
    """One execution environment's service, with the handler's stores on the shared table."""
    dedup = (
        BurstDedup(
            Once(
                table=TABLE, dynamodb=dynamodb, key_prefix="n.alert-dedup", expires_after_seconds=dedup_s, clock=clock
            ),
            RepeatCounter(table=TABLE, dynamodb=dynamodb, key_prefix="n.alert-repeats", clock=clock),
            dedup_s,
        )
        if dedup_s
        else None
    )
    return NotifierService(
        NotifierConfig(default_secret_arn=SECRET, routes=(), dead_letter_queue_url=None, dedup_seconds=dedup_s),
        dry_run=False,
        get_secret=lambda arn: "https://hooks.slack.com/services/T/B/X",
        webhook=webhook,  # type: ignore[arg-type]
        sqs=None,
        alerts_topic_arn=ALERTS,
        dedup=dedup,
        digest_once=Once(table=TABLE, dynamodb=dynamodb, key_prefix="n.digest", expires_after_seconds=86400),
        posted=PostedReports(table=TABLE, dynamodb=dynamodb, key_prefix="n.report-posted"),
    )


def report(message_id: str, title: str) -> QueuedRecord:
    body = {"source": "eksops", "kind": "retention.changes", "severity": "warning", "title": title, "summary": "s"}
    body["report_id"] = f"log_retention:req-1#retention.changes/-#{title}"
    sns = SnsRecord.from_notification(
        {"MessageId": message_id, "TopicArn": REPORTS, "Message": json.dumps(body), "Subject": title}, "test"
    )
    return QueuedRecord(f"sqs-{message_id}", sns)


def titles(payload: dict[str, Any]) -> str:
    return json.dumps(payload)


def test_two_batches_holding_one_report_at_the_same_time_post_it_once(ddb: Any) -> None:
    """Issue 9 review: the reports queue runs two batches at once (MaximumConcurrency 2); SNS delivered report A
    twice, into both. The second batch, run while the first posts, finds A claimed and acknowledges its copy."""
    slack = Webhook()
    first, second = service(ddb, slack), service(ddb, slack)
    meanwhile: list[BatchOutcome] = []
    slack.during = lambda: meanwhile.append(second.deliver_batch([report("m-a2", "A")], lambda: 60_000))
    outcome = first.deliver_batch([report("m-a1", "A"), report("m-b", "B")], lambda: 60_000)
    assert outcome.failures == {} and len(slack.posts) == 1
    assert "A" in titles(slack.posts[0]) and "B" in titles(slack.posts[0])
    [other] = meanwhile
    assert (other.copies, other.digests, other.failures) == (1, [], {})
    # and later copies too
    assert service(ddb, slack).deliver_batch([report("m-a3", "A")], lambda: 60_000).copies == 1
    assert len(slack.posts) == 1


def test_a_report_whose_digest_failed_is_released_for_its_redelivery(ddb: Any) -> None:
    """The copy acknowledged while the first batch held it is not lost: that batch fails, releases the report, and
    SQS delivers its record again, which posts it."""
    slack = Webhook()
    first, second = service(ddb, slack), service(ddb, slack)
    slack.fail = 1
    meanwhile: list[BatchOutcome] = []
    slack.during = lambda: meanwhile.append(second.deliver_batch([report("m-a2", "A")], lambda: 60_000))
    outcome = first.deliver_batch([report("m-a1", "A")], lambda: 60_000)
    assert list(outcome.failures) == ["sqs-m-a1"] and meanwhile[0].copies == 1 and slack.posts == []
    again = service(ddb, slack).deliver_batch([report("m-a1", "A")], lambda: 60_000)  # SQS's redelivery
    assert again.failures == {} and len(slack.posts) == 1 and "A" in titles(slack.posts[0])


class RefusedClaims:
    """The real client, with every report claim refused by DynamoDB (throttled): the store does not answer."""

    def __init__(self, dynamodb: Any) -> None:
        self._ddb = dynamodb

    def put_item(self, **kwargs: Any) -> Any:
        if ".report-posted#" in kwargs["Item"]["id"]["S"] and "ConditionExpression" in kwargs:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutItem")
        return self._ddb.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ddb, name)


def test_an_unanswered_claim_is_posted_and_never_releases_another_invocations_claim(ddb: Any) -> None:
    """Third review of issue 9: B could not claim report A (DynamoDB throttled), posted it all the same, Slack failed,
    and B's release deleted the claim the first invocation held, so a third copy was posted again."""
    slack = Webhook()
    first, unanswered = service(ddb, slack), service(RefusedClaims(ddb), slack)
    meanwhile: list[BatchOutcome] = []

    def during_first_post() -> None:
        slack.fail = 1  # B's post fails
        meanwhile.append(unanswered.deliver_batch([report("m-a2", "A")], lambda: 60_000))
        meanwhile.append(service(ddb, slack).deliver_batch([report("m-a3", "A")], lambda: 60_000))  # C

    slack.during = during_first_post
    outcome = first.deliver_batch([report("m-a1", "A")], lambda: 60_000)
    b, c = meanwhile
    assert list(b.failures) == ["sqs-m-a2"] and b.copies == 0  # posted all the same (and retried by SQS)
    assert c.copies == 1 and c.digests == []  # the first invocation's claim was still there
    assert outcome.failures == {} and len(slack.posts) == 1


class RefusedSettle:
    """The real client, with the update that takes the reported copies off the count refused (throttled)."""

    def __init__(self, dynamodb: Any) -> None:
        self._ddb = dynamodb

    def update_item(self, **kwargs: Any) -> Any:
        if ":taken" in kwargs.get("ExpressionAttributeValues", {}):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "Update")
        return self._ddb.update_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ddb, name)


def alert(message_id: str) -> SnsRecord:
    return SnsRecord.from_notification(
        {"MessageId": message_id, "TopicArn": ALERTS, "Message": "Disk full on node-1", "Subject": "disk"}, "test"
    )


def test_an_alert_posted_is_not_posted_again_when_the_count_after_it_fails(ddb: Any) -> None:
    """Issue 9 review: the held-back copies are taken off the count after the post; that update failing must not
    fail the delivery (Lambda would retry it and post the alert twice)."""
    slack, clock = Webhook(), Clock()
    notifier = service(RefusedSettle(ddb), slack, dedup_s=600, clock=clock)
    delivered = Once(table=TABLE, dynamodb=ddb, key_prefix="n.delivery", expires_after_seconds=86400, clock=clock)

    def deliver(record: SnsRecord) -> dict[str, Any]:
        return delivered.run(record.idempotency_key, lambda: notifier.deliver(record, lambda: 60_000))[0]

    assert deliver(alert("m-1"))["posted"] is True
    assert deliver(alert("m-2"))["deduplicated"] is True  # a copy within the window: counted
    clock.now += 601  # the window ends: the next copy is posted with the count, and taking it off fails
    third = deliver(alert("m-3"))
    assert third["posted"] is True and third["repeats_reported"] == 1
    assert deliver(alert("m-3")) == third  # Lambda's retry of m-3, or a duplicate delivery: replayed, not posted
    assert len(slack.posts) == 2 and "The same alert came once more" in json.dumps(slack.posts[1])


def test_the_same_delivery_at_the_same_moment_is_acknowledged_not_an_error(
    make_sandbox: Any, slack: SlackReceiver
) -> None:
    """Issue 9 review: SNS delivers one message twice at once; the copy finds the first being posted. It is
    acknowledged (the first posts it, or fails and is retried), not a failure that fires the notifier's alarm."""
    sandbox, dispatcher = notifier(make_sandbox, slack.url)
    event = sample("cloudwatch_alarm", "m-twice")
    holder = _holder(sandbox)
    holder.run(SnsRecord.parse(event).idempotency_key, lambda: _meanwhile(dispatcher, event, slack))
    assert slack.received == []  # the holder's action above posted nothing itself


def _holder(sandbox: Sandbox) -> Once:
    name = sandbox.function_name(sandbox.template.functions["notifier"])
    return Once(
        table=sandbox.refs["IdempotencyTable"],
        dynamodb=sandbox.client("dynamodb"),
        key_prefix=f"{name}.delivery",
        expires_after_seconds=86400,
    )


def _meanwhile(dispatcher: Dispatcher, event: dict[str, Any], slack: SlackReceiver) -> dict[str, Any]:
    copy = dispatcher.invoke("notifier", event, "test", retries=0)
    assert copy.ok, copy.error
    assert copy.result["posted"] is False and copy.result["deduplicated"] is True
    assert "being posted by another invocation" in copy.result["reason"]
    return {"posted": False}
