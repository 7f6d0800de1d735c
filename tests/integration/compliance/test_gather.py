"""One report per compliance sweep (eksops.compliance.gather) against the moto server over HTTP: the fan-out opens the
sweep's "#sweep" item in the state table, each cluster's part records its report there, and the part that completes
the sweep posts one digest to the reports topic; alerts stay per cluster and immediate.

The fan-out's continuations are recorded (not put on EventBridge); each test then runs the cluster parts itself, in
the order and as often as it wants, as Lambda would deliver them. Reports and alerts travel SNS -> SQS.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksops.aws import client
from eksops.compliance.gather import PARTITION, Gathered, SweepGather
from eksops.compliance.model import Severity
from eksops.compliance.service import ComplianceService, Summary
from eksops.compliance.triggers import ClusterSweep, FanOut
from eksops.errors import TemporaryError
from eksops.notify import Message, Publisher
from eksops.sweeps import Continuer
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.test_service import ACCOUNT, FOREVER, Retention, World, drain, make_world
from tests.integration.compliance.test_state import TABLE

CLUSTERS = ["prod-a", "prod-b", "prod-c"]
RUN = "5f0c9e2a-7d41-4c55-9a51-0c2b7e1d9f00"
T0 = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)


class Recording(Continuer):
    """Records the continuations a fan-out puts, or runs ``inline`` in their place (the part, at once)."""

    def __init__(self, inline: Callable[[str, str], None] | None = None) -> None:
        super().__init__(client("events"), function="compliance_sweep")
        self.clusters: list[str] = []
        self.inline = inline

    def continue_sweep(self, *, run_id: str, part: int, checkpoint: Any) -> None:
        if self.inline is not None:
            self.inline(checkpoint["cluster"], run_id)
        self.clusters.append(checkpoint["cluster"])


@pytest.fixture
def fleet(cluster: ClusterUnderTest) -> World:
    """test_service's world (the state table, the topics and their inboxes) with three more clusters, prod-a, b and c,
    each with one log group that never expires (one medium finding)."""
    world = make_world(cluster)
    for name in CLUSTERS:
        world.cluster.create_cluster(name=name)
        client("logs").create_log_group(logGroupName=f"/test/{name}/app")
    return world


def gathering(world: World, *, gather: SweepGather | None = None, **options: Any) -> ComplianceService:
    """The service over the prod-* clusters, gathering into the state table; medium findings alert."""
    return world.service(
        Retention,
        gather=gather or SweepGather(client("dynamodb"), TABLE),
        clusters=("prod-*",),
        alert_severity=Severity.MEDIUM,
        **{"continuer": Recording(), **options},
    )


def fan_out(service: ComplianceService, run_id: str = RUN) -> Summary:
    return service.handle(FanOut(run_id=run_id, origin="schedule daily"), FOREVER, account=ACCOUNT)


def part(service: ComplianceService, cluster: str, run_id: str = RUN) -> Summary:
    return service.handle(ClusterSweep(cluster, run_id, origin="continuation"), FOREVER, account=ACCOUNT)


def sweep_item(run_id: str = RUN) -> dict[str, Any]:
    key = {"cluster": {"S": PARTITION}, "finding": {"S": run_id}}
    return dict(client("dynamodb").get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item") or {})


def sweep_items() -> list[dict[str, Any]]:
    return list(
        client("dynamodb").query(
            TableName=TABLE,
            KeyConditionExpression="#k = :p",
            ExpressionAttributeNames={"#k": "cluster"},
            ExpressionAttributeValues={":p": {"S": PARTITION}},
        )["Items"]
    )


def finding_line(cluster: str) -> str:
    return f"[medium] open NEW test-log-retention log-group//test/{cluster}/app: never expires"


# -- one report per sweep ------------------------------------------------------------------------------------------


def test_a_sweep_of_three_clusters_posts_one_report_after_the_last_part(fleet: World) -> None:
    service = gathering(fleet)
    summary = fan_out(service)
    assert sorted(summary.dispatched) == CLUSTERS and summary.errors == []
    opened = sweep_item()
    assert sorted(opened["expected"]["SS"]) == CLUSTERS and "done" not in opened and "posted" not in opened
    assert 0 < int(opened["expires_at"]["N"]) - datetime.now(UTC).timestamp() <= 3 * 86_400

    for name in ("prod-c", "prod-a"):  # any order
        part(service, name)
        assert drain(fleet.reports) == []  # gathered, not posted
    assert sorted(a["cluster"] for a in drain(fleet.alerts)) == ["prod-a", "prod-c"]  # alerts at once, per cluster

    part(service, "prod-b")  # the last one posts
    (digest,) = drain(fleet.reports)
    assert digest["kind"] == "compliance.sweep" and digest["cluster"] is None
    assert digest["title"] == f"Compliance sweep {RUN[:8]}: 3 cluster(s), 3 open (3 new, 0 resolved)"
    assert digest["severity"] == "warning"  # the clusters' own reports are (medium findings at the alert threshold)
    assert digest["summary"] == "3 cluster(s) swept: 3 open finding(s) (3 medium), 3 new, 0 resolved."
    details = digest["details"]
    assert (details["run_id"], details["reported"], details["missing"]) == (RUN, 3, [])
    assert sorted(c["cluster"] for c in details["clusters"]) == CLUSTERS
    assert details["counts"]["open"] == 3 and details["counts"]["by_severity"] == {"medium": 3}
    assert digest["lines"][:3] == [f"{name}: 1 open, 1 new, 0 resolved" for name in CLUSTERS]  # the headlines first
    for name in CLUSTERS:
        assert f"{name}: {finding_line(name)}" in digest["lines"]
    assert [a["cluster"] for a in drain(fleet.alerts)] == ["prod-b"]
    assert "posted" in sweep_item() and sorted(sweep_item()["done"]["SS"]) == CLUSTERS


def test_a_part_delivered_again_after_the_report_posts_nothing_more(fleet: World) -> None:
    service = gathering(fleet)
    fan_out(service)
    for name in CLUSTERS:
        part(service, name)
    assert len(drain(fleet.reports)) == 1
    again = part(service, "prod-a")  # Lambda's retry of a part that had reported
    assert again.reports[0].cluster == "prod-a"
    assert drain(fleet.reports) == []
    fan_out(service)  # a retried fan-out (same run) re-opens nothing
    assert drain(fleet.reports) == [] and "posted" in sweep_item()


def test_of_two_claims_one_wins(fleet: World) -> None:
    gather = SweepGather(client("dynamodb"), TABLE)
    gather.open(RUN, ["prod-a"], now=T0)
    first, second = gather.claim(RUN, now=T0), gather.claim(RUN, now=T0)
    assert isinstance(first, Gathered) and first.posted and second is None
    assert gather.claim("no-such-run", now=T0) is None  # and a claim never creates an item
    assert [i["finding"]["S"] for i in sweep_items()] == [RUN]


class Racing(SweepGather):
    """Between this part's record and its claim, ``twin`` (a second delivery of the same part) runs whole."""

    twin: Callable[[], Any] | None = None

    def record(self, run_id: str, cluster: str, report: Mapping[str, Any]) -> Gathered | None:
        item = super().record(run_id, cluster, report)
        if self.twin is not None:
            twin, self.twin = self.twin, None
            twin()
        return item


def test_two_parts_that_both_complete_the_sweep_post_one_report(fleet: World) -> None:
    plain = gathering(fleet)
    racing = Racing(client("dynamodb"), TABLE)
    racing.twin = lambda: part(plain, "prod-c")
    late = gathering(fleet, gather=racing)
    fan_out(plain)
    part(plain, "prod-a")
    part(plain, "prod-b")
    part(late, "prod-c")  # it sees the sweep complete, but its twin claimed the report first
    assert racing.twin is None
    (digest,) = drain(fleet.reports)
    assert sorted(c["cluster"] for c in digest["details"]["clusters"]) == CLUSTERS


# -- clusters that do not report ----------------------------------------------------------------------------------


def test_a_sweep_with_a_cluster_that_never_reports_is_posted_by_a_later_fan_out(fleet: World) -> None:
    clock = [T0]
    service = gathering(fleet, now=lambda: clock[0])
    fan_out(service, "day-1")
    part(service, "prod-a", "day-1")
    part(service, "prod-b", "day-1")  # prod-c's part dies (dead-lettered): nothing is posted
    assert drain(fleet.reports) == []

    clock[0] = T0 + timedelta(hours=2, minutes=59)
    fan_out(service, "retry-1")  # not yet stale
    assert drain(fleet.reports) == []

    clock[0] = T0 + timedelta(hours=3, minutes=1)
    fan_out(service, "day-2")
    (stale,) = drain(fleet.reports)
    assert stale["details"]["run_id"] == "day-1" and stale["details"]["missing"] == ["prod-c"]
    assert sorted(c["cluster"] for c in stale["details"]["clusters"]) == ["prod-a", "prod-b"]
    assert stale["title"] == "Compliance sweep day-1: 2 cluster(s), 2 open (2 new, 0 resolved), 1 not reported"
    assert stale["severity"] == "warning"
    assert stale["lines"][0].startswith("not reported: prod-c (their part never reported: see the compliance_sweep")
    assert stale["summary"].endswith("; 1 cluster(s) not reported after 3 hours.")

    clock[0] = T0 + timedelta(hours=7)
    fan_out(service, "day-3")  # day-1 once only; retry-1 and day-2, which no part ran, are posted now
    posted = {m["details"]["run_id"]: m for m in drain(fleet.reports)}
    assert set(posted) == {"retry-1", "day-2"}
    assert posted["day-2"]["details"]["missing"] == CLUSTERS and posted["day-2"]["details"]["clusters"] == []

    part(service, "prod-c", "day-1")  # the dead part, redriven from the dead-letter queue: its own report
    (own,) = drain(fleet.reports)
    assert own["cluster"] == "prod-c" and own["title"] == "Compliance sweep of prod-c: 1 open, 1 new, 0 resolved"


def test_a_continuation_that_cannot_be_put_is_not_waited_for(fleet: World) -> None:
    """prod-c's continuation fails after prod-a's and prod-b's parts ran to the end (inline): the fan-out, taking
    prod-c out of the sweep, completes it and posts the report."""
    runner = gathering(fleet)

    def inline(cluster: str, run_id: str) -> None:
        if cluster == "prod-c":
            raise TemporaryError("EventBridge refused the event")
        part(runner, cluster, run_id)

    summary = fan_out(gathering(fleet, continuer=Recording(inline)))
    assert summary.dispatched == ["prod-a", "prod-b"]
    assert [(e["cluster"], e["stage"]) for e in summary.errors] == [("prod-c", "fan-out")]
    (digest,) = drain(fleet.reports)
    assert digest["details"]["missing"] == [] and digest["details"]["reported"] == 2
    assert sorted(sweep_item()["expected"]["SS"]) == ["prod-a", "prod-b"]


def test_a_cluster_gone_since_the_fan_out_counts_as_reported(fleet: World) -> None:
    service = gathering(fleet, dry_run=True)
    fan_out(service)
    client("eks").delete_cluster(name="prod-b")
    for name in CLUSTERS:
        part(service, name)
    (digest,) = drain(fleet.reports)
    assert digest["title"].endswith("3 cluster(s), 2 open (2 new, 0 resolved) (dry run)")
    assert "prod-b: not swept (gone)" in digest["lines"]


# -- reports on their own, as before ------------------------------------------------------------------------------


def test_a_cluster_swept_on_its_own_reports_on_its_own(fleet: World) -> None:
    part(gathering(fleet), "prod-a", uuid.uuid4().hex)  # `eksops sweep --cluster`, {"sweep": {"cluster": ...}}
    (own,) = drain(fleet.reports)
    assert own["cluster"] == "prod-a" and own["title"] == "Compliance sweep of prod-a: 1 open, 1 new, 0 resolved"
    assert finding_line("prod-a") in own["lines"]
    assert sweep_items() == []


def test_without_a_table_each_cluster_reports_on_its_own(fleet: World) -> None:
    service = fleet.service(Retention, clusters=("prod-*",), continuer=Recording(), state=False)
    fan_out(service)
    for name in CLUSTERS:
        part(service, name)
    assert sorted(m["cluster"] for m in drain(fleet.reports)) == CLUSTERS


def test_over_the_cluster_limit_each_cluster_reports_on_its_own(fleet: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("eksops.compliance.service.GATHER_MAX_CLUSTERS", 2)
    service = gathering(fleet)
    fan_out(service)
    assert sweep_items() == []
    for name in CLUSTERS:
        part(service, name)
    assert sorted(m["cluster"] for m in drain(fleet.reports)) == CLUSTERS


class Flaky(Publisher):
    """Fails to publish the first ``failures`` sweep digests (reports without a cluster)."""

    def __init__(self, world: World, failures: int) -> None:
        super().__init__(client("sns"), alerts_topic_arn=world.alerts_arn, reports_topic_arn=world.reports_arn)
        self.failures = failures

    def report(self, message: Message, *, subject: str | None = None) -> str | None:
        if message.cluster is None and self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "InternalError", "Message": "SNS is down"}}, "Publish")
        return super().report(message, subject=subject)


def test_a_report_that_cannot_be_published_is_posted_by_the_retry(fleet: World) -> None:
    service = gathering(fleet, publisher=Flaky(fleet, failures=1))
    fan_out(service)
    part(service, "prod-a")
    part(service, "prod-b")
    with pytest.raises(TemporaryError, match=f"the report of compliance sweep {RUN} could not be published"):
        part(service, "prod-c")
    assert drain(fleet.reports) == [] and "posted" not in sweep_item()  # the claim was given back
    part(service, "prod-c")  # Lambda's retry
    (digest,) = drain(fleet.reports)
    assert digest["details"]["reported"] == 3
    part(service, "prod-c")
    assert drain(fleet.reports) == []
