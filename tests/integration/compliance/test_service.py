"""ComplianceService end to end against the moto server and the Kubernetes emulator over HTTP.

The rules here are small test classes (not registered: the registry is the rule helpers' business): one reads log
groups and can fix their retention (AWS side), others read namespaces and Deployments (Kubernetes side), one stands
in for ``cluster-kubernetes-unreachable`` with the same contract (a finding when the API cannot be used), one fails,
one spends the call budget. Reports and alerts travel SNS -> SQS; state is a DynamoDB table; continuations go
through EventBridge to an SQS target.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from eksops.aws import client
from eksops.bootstrap.service import safe_message
from eksops.compliance.context import ClusterContext, ClusterUnreachable, Tools, kube_request
from eksops.compliance.gather import SweepGather
from eksops.compliance.model import Category, KubePermission, NotRemediated, Rule, Severity, Violation
from eksops.compliance.securityhub import SecurityHubExport
from eksops.compliance.service import CLOSING_RESERVE_MS, ComplianceService, Summary
from eksops.compliance.state import StateStore
from eksops.compliance.triggers import ClusterSweep, FanOut, parse_trigger
from eksops.errors import ConfigError, PartialFailure
from eksops.kube.auth import api_client
from eksops.kube.errors import AccessDenied
from eksops.notify import Publisher
from eksops.sweeps import MARGIN_MS, Continuer, Deadline
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.conftest import kubeconfig_file as kubeconfig
from tests.integration.compliance.test_state import TABLE, create_table

FOREVER = Deadline(lambda: 900_000)
ACCOUNT = "123456789012"


# -- test rules -------------------------------------------------------------------------------------------------


class Reachable(Rule):
    """Stands in for cluster-kubernetes-unreachable (same id and contract)."""

    id = "cluster-kubernetes-unreachable"
    title = "Kubernetes API unreachable"
    severity = Severity.HIGH
    category = Category.CLUSTER
    why = "eksops cannot check what it cannot read."
    fix = "Create an access entry for eksops."
    reference = "EKS BP: Security > IAM"
    kube_permissions = (KubePermission("", "namespaces"),)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        try:
            ctx.namespaces()
        except (ClusterUnreachable, AccessDenied) as exc:
            yield Violation(f"cluster/{ctx.name}", safe_message(exc))


class Retention(Rule):
    id = "test-log-retention"
    title = "Log groups that never expire"
    severity = Severity.MEDIUM
    category = Category.LOGS
    why = "Logs kept forever cost money forever."
    fix = "Set a retention."
    reference = "EKS BP: Observability"
    iam_actions = ("logs:DescribeLogGroups",)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        groups = ctx.aws_pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=f"/test/{ctx.name}/")
        for group in groups:
            if "retentionInDays" not in group:
                yield Violation(
                    f"log-group/{group['logGroupName']}", "never expires", data={"name": group["logGroupName"]}
                )

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        if ctx.dry_run:
            return "would set the retention to 30 days"
        ctx.spend("logs:PutRetentionPolicy")
        ctx.client("logs").put_retention_policy(logGroupName=violation.data["name"], retentionInDays=30)
        return "set the retention to 30 days"


class TeamLabel(Rule):
    id = "test-namespace-team"
    title = "Namespaces without a team label"
    severity = Severity.HIGH
    category = Category.SECURITY
    why = "Nobody answers for an unlabelled namespace."
    fix = "Label it with its team."
    reference = "EKS BP: Multi-tenancy"
    kube_permissions = (KubePermission("", "namespaces"),)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for ns in ctx.namespaces():
            meta = ns["metadata"]
            if meta["name"].startswith("app-") and "team" not in (meta.get("labels") or {}):
                yield Violation(f"namespace/{meta['name']}", "no team label", annotations=meta.get("annotations") or {})


class Privileged(Rule):
    id = "test-privileged"
    title = "Privileged Deployments"
    severity = Severity.CRITICAL
    category = Category.SECURITY
    why = "A privileged container is root on its node."
    fix = "Drop privileged."
    reference = "hardeneks: disallow_privileged_containers"
    kube_permissions = (KubePermission("apps", "deployments"),)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for deployment in ctx.kube_list("apps/v1", "deployments"):
            meta = deployment["metadata"]
            containers = deployment["spec"]["template"]["spec"]["containers"]
            for container in containers:
                if (container.get("securityContext") or {}).get("privileged"):
                    yield Violation(
                        f"deployment/{meta['namespace']}/{meta['name']}",
                        f"container {container['name']}: privileged: true",
                        annotations=meta.get("annotations") or {},
                        namespace=meta["namespace"],
                    )


class Broken(Rule):
    id = "test-broken"
    title = "A rule with a bug"
    severity = Severity.LOW
    category = Category.CLUSTER
    why = "Rules have bugs."
    fix = "Fix the rule."
    reference = "EKS BP: none"

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        raise KeyError("nodegroups")


class Hungry(Rule):
    id = "test-hungry"
    title = "A rule that reads without end"
    severity = Severity.LOW
    category = Category.CLUSTER
    why = "Big clusters need many reads."
    fix = "Raise COMPLIANCE_MAX_CALLS."
    reference = "EKS BP: none"

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        while True:
            ctx.spend("ListSomething")
        yield  # pragma: no cover


def rules(*classes: type[Rule]) -> dict[str, Rule]:
    return {cls.id: cls() for cls in classes}


# -- the world --------------------------------------------------------------------------------------------------


def subscribed_queue(topic_arn: str, name: str) -> str:
    url = client("sqs").create_queue(QueueName=name)["QueueUrl"]
    arn = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return str(url)


def drain(url: str) -> list[dict[str, Any]]:
    """Every message on the queue: SNS envelopes' ``default`` body (the eksops envelope), oldest first."""
    out: list[dict[str, Any]] = []
    while True:
        batch = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return out
        for message in batch:
            out.append(json.loads(json.loads(message["Body"])["Message"]))
            client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@dataclass
class World:
    cluster: ClusterUnderTest
    reports: str
    alerts: str
    reports_arn: str
    alerts_arn: str
    metrics: list[tuple[str, str, int]]

    @property
    def name(self) -> str:
        return self.cluster.name

    def service(
        self,
        *classes: type[Rule],
        dry_run: bool = False,
        state: bool = True,
        kubeconfig: Path | None = None,
        security_hub: SecurityHubExport | None = None,
        continuer: Continuer | None = None,
        gather: SweepGather | None = None,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        **settings: Any,
    ) -> ComplianceService:
        path = str(kubeconfig or self.cluster.kubeconfig)
        tools = Tools(
            aws=client,
            clock=clock,
            api_client=lambda name: api_client(name, eks_client=None, sts_client=None, kubeconfig=path),
            settings=replace(self.cluster.settings, **settings),
            common=replace(
                self.cluster.common,
                dry_run=dry_run,
                reports_topic_arn=self.reports_arn,
                alerts_topic_arn=self.alerts_arn,
            ),
        )
        return ComplianceService(
            tools,
            publisher=publisher
            or Publisher(client("sns"), alerts_topic_arn=self.alerts_arn, reports_topic_arn=self.reports_arn),
            continuer=continuer or Continuer(client("events"), function="compliance_sweep"),
            state=StateStore(client("dynamodb"), TABLE, days=30) if state else None,
            security_hub=security_hub,
            gather=gather,
            emit_metric=lambda rule, severity, count: self.metrics.append((rule, severity, count)),
            rules=rules(*classes),
            now=now,
        )

    def sweep(self, service: ComplianceService, deadline: Deadline = FOREVER) -> Summary:
        self.metrics.clear()
        return service.handle(ClusterSweep(self.name, uuid.uuid4().hex), deadline, account=ACCOUNT)

    def log_group(self, suffix: str, retention: int | None = None) -> str:
        name = f"/test/{self.name}/{suffix}"
        client("logs").create_log_group(logGroupName=name)
        if retention:
            client("logs").put_retention_policy(logGroupName=name, retentionInDays=retention)
        return name


@pytest.fixture
def world(cluster: ClusterUnderTest) -> World:
    return make_world(cluster)


def make_world(cluster: ClusterUnderTest) -> World:
    """The cluster, the state table, the topics and their inboxes."""
    cluster.create_cluster()
    create_table()
    reports_arn = client("sns").create_topic(Name="reports")["TopicArn"]
    alerts_arn = client("sns").create_topic(Name="alerts")["TopicArn"]
    return World(
        cluster,
        reports=subscribed_queue(reports_arn, "reports-inbox"),
        alerts=subscribed_queue(alerts_arn, "alerts-inbox"),
        reports_arn=reports_arn,
        alerts_arn=alerts_arn,
        metrics=[],
    )


def retention_of(name: str) -> int | None:
    group = client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    days = group.get("retentionInDays")
    return None if days is None else int(days)


def by_key(summary: Summary) -> dict[str, Any]:
    (report,) = summary.reports
    return {f.key: f for f in report.findings}


# -- remediation and state ----------------------------------------------------------------------------------------


def test_the_next_sweep_reports_a_remediated_finding_resolved(world: World) -> None:
    forever = world.log_group("app")
    world.log_group("kept", retention=7)
    service = world.service(Retention, remediate=frozenset({"test-log-retention"}))

    first = world.sweep(service)
    key = f"test-log-retention|log-group/{forever}"
    assert list(by_key(first)) == [key]
    finding = by_key(first)[key]
    assert (finding.status, finding.new, finding.remediation) == ("remediated", True, "set the retention to 30 days")
    assert retention_of(forever) == 30
    assert first.changed[0]["resource"] == f"log-group/{forever}"
    first.raise_for_errors()  # nothing failed

    second = world.sweep(service)
    (report,) = second.reports
    assert report.findings == []
    assert [(r.rule, r.resource, r.status) for r in report.resolved] == [
        ("test-log-retention", f"log-group/{forever}", "remediated")
    ]
    assert second.counts()["resolved"] == 1

    third = world.sweep(service)  # resolved once: the state no longer holds it
    assert third.reports[0].resolved == []

    messages = drain(world.reports)
    assert [m["kind"] for m in messages] == ["compliance.sweep"] * 3
    assert messages[0]["cluster"] == world.name
    assert messages[0]["details"]["counts"]["remediated"] == 1
    assert messages[1]["details"]["counts"]["resolved"] == 1
    assert f"resolved [medium] test-log-retention log-group/{forever}" in messages[1]["lines"]
    assert drain(world.alerts) == []  # medium is below the alert severity (high)


def test_dry_run_changes_nothing_but_records_what_it_saw(world: World) -> None:
    forever = world.log_group("app")
    service = world.service(Retention, dry_run=True, remediate=frozenset({"test-log-retention"}))
    first = world.sweep(service)
    finding = next(iter(by_key(first).values()))
    assert (finding.status, finding.remediation) == ("would-remediate", "would set the retention to 30 days")
    assert retention_of(forever) is None
    assert first.dry_run and first.reports[0].dry_run
    assert first.changed[0]["status"] == "would-remediate"
    second = world.sweep(service)
    again = next(iter(by_key(second).values()))
    assert (again.status, again.new) == ("would-remediate", False)  # the state was written: not new again
    assert second.reports[0].resolved == []
    assert retention_of(forever) is None
    titles = [m["title"] for m in drain(world.reports)]
    assert all(t.endswith("(dry run)") for t in titles) and len(titles) == 2


def test_without_state_nothing_is_new_or_resolved_and_open_findings_alert(world: World) -> None:
    world.cluster.namespace("app-shop")
    summary = world.sweep(world.service(TeamLabel, state=False))
    (report,) = summary.reports
    assert not report.state and [f.new for f in report.findings] == [False]
    (alert,) = drain(world.alerts)
    assert alert["kind"] == "compliance.findings"
    assert alert["summary"].startswith("1 open finding(s) (no state to tell new ones) at or above high")
    assert client("dynamodb").scan(TableName=TABLE)["Count"] == 0


# -- reachability ------------------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_cluster_is_a_finding_and_the_aws_rules_still_run(world: World, tmp_path: Path) -> None:
    forever = world.log_group("app")
    config = kubeconfig(tmp_path / "kubeconfig", world.name, f"http://127.0.0.1:{closed_port()}")
    service = world.service(Reachable, TeamLabel, Retention, kubeconfig=config)
    summary = world.sweep(service)
    (report,) = summary.reports
    findings = by_key(summary)
    unreachable = findings[f"cluster-kubernetes-unreachable|cluster/{world.name}"]
    assert unreachable.severity is Severity.HIGH and unreachable.new
    assert unreachable.evidence.startswith(f"cannot reach the Kubernetes API of {world.name}")
    assert f"test-log-retention|log-group/{forever}" in findings  # the AWS-side rule ran
    assert report.rules_run == ["cluster-kubernetes-unreachable", "test-log-retention"]
    assert report.not_run == [
        {
            "rule": "test-namespace-team",
            "reason": "the Kubernetes API cannot be used (see the cluster-kubernetes-unreachable finding)",
        }
    ]
    assert summary.errors == []
    summary.raise_for_errors()
    (alert,) = drain(world.alerts)
    assert alert["details"]["findings"][0]["rule"] == "cluster-kubernetes-unreachable"
    assert alert["severity"] == "warning"


class Denying(BaseHTTPRequestHandler):
    """A Kubernetes API that authenticates nobody (HTTP 401), as EKS does for a principal without access entry."""

    def do_GET(self) -> None:
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def denying_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Denying)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_access_denied_is_a_finding_saying_how_to_grant_access(world: World, denying_api: str, tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", world.name, denying_api)
    summary = world.sweep(world.service(Reachable, Privileged, kubeconfig=config))
    (report,) = summary.reports
    (finding,) = report.findings
    assert finding.rule == "cluster-kubernetes-unreachable"
    assert "aws eks create-access-entry" in finding.evidence and "HTTP 401" in finding.evidence
    assert [n["rule"] for n in report.not_run] == ["test-privileged"]
    assert summary.errors == []


# -- acceptance --------------------------------------------------------------------------------------------------


def privileged_deployment(namespace: str, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx", "securityContext": {"privileged": True}}]},
            },
        },
    }


def test_accepted_findings_are_reported_as_accepted_with_their_reason(world: World) -> None:
    c = world.cluster
    c.namespace("app-open")
    c.namespace("app-annotated", annotations={"eksops.io/accept-test-namespace-team": "shared platform namespace"})
    c.namespace("app-expired", annotations={"eksops.io/accept-test-namespace-team": "migration; expires=2020-01-01"})
    c.namespace("app-config")
    c.namespace("vendor", annotations={"eksops.io/accept-test-privileged": "vendor agent, ticket SEC-12"})
    c.namespace("shop")
    c.kube_create(privileged_deployment("vendor", "agent"))
    c.kube_create(privileged_deployment("shop", "cart", {"eksops.io/accept-test-privileged": "debug build"}))
    c.kube_create(privileged_deployment("shop", "api"))
    accept = json.dumps(
        [
            {
                "rule": "test-namespace-team",
                "resource": "namespace/app-conf*",
                "reason": "owned by the platform team",
                "expires": "2999-12-31",
            }
        ]
    )
    summary = world.sweep(world.service(Reachable, TeamLabel, Privileged, accept_raw=accept))
    findings = by_key(summary)
    status = {key.split("|", 1)[1]: f.status for key, f in findings.items()}
    assert status == {
        "namespace/app-open": "open",
        "namespace/app-annotated": "accepted",
        "namespace/app-expired": "open",
        "namespace/app-config": "accepted",
        "deployment/vendor/agent": "accepted",
        "deployment/shop/cart": "accepted",
        "deployment/shop/api": "open",
    }
    config = findings["test-namespace-team|namespace/app-config"].accepted
    assert config is not None
    assert (config.reason, config.expires, config.source) == (
        "owned by the platform team",
        "2999-12-31",
        "config COMPLIANCE_ACCEPT[0]",
    )
    on_namespace = findings["test-privileged|deployment/vendor/agent"].accepted
    assert on_namespace is not None
    assert on_namespace.reason == "vendor agent, ticket SEC-12"
    assert on_namespace.source == "annotation eksops.io/accept-test-privileged on namespace/vendor"
    on_object = findings["test-privileged|deployment/shop/cart"].accepted
    assert on_object is not None and on_object.source.endswith("on deployment/shop/cart")
    expired = findings["test-namespace-team|namespace/app-expired"]
    assert expired.accepted is None and expired.acceptance_note is not None
    assert "expired on 2020-01-01" in expired.acceptance_note

    (message,) = drain(world.reports)
    assert message["details"]["counts"]["accepted"] == 4
    reported = {f["resource"]: f for f in message["details"]["findings"]}
    assert reported["namespace/app-annotated"]["accepted"]["reason"] == "shared platform namespace"
    assert any("(accepted: debug build)" in line for line in message["lines"])
    (alert,) = drain(world.alerts)  # accepted findings are never alerted
    assert {f["resource"] for f in alert["details"]["findings"]} == {
        "namespace/app-open",
        "namespace/app-expired",
        "deployment/shop/api",
    }
    assert alert["severity"] == "critical"  # test-privileged is critical


def test_a_finding_whose_acceptance_ends_alerts_again(world: World) -> None:
    """Accepted in one sweep, open in the next (its acceptance expired, or was taken away): not new, but it alerts,
    saying why; while it stays open it does not alert again."""
    c = world.cluster
    c.namespace("shop")
    c.kube_create(privileged_deployment("shop", "cart"))
    c.kube_create(privileged_deployment("shop", "api"))
    entries = [
        {"rule": "test-privileged", "resource": "deployment/shop/cart", "reason": "debug", "expires": "2026-06-30"},
        {"rule": "test-privileged", "resource": "deployment/shop/api", "reason": "vendor image, SEC-12"},
    ]

    def sweep(day: str, accept: list[dict[str, str]]) -> dict[str, Any]:
        at = datetime.fromisoformat(f"{day}T06:00:00+00:00")
        service = world.service(Reachable, Privileged, now=lambda: at, accept_raw=json.dumps(accept))
        return by_key(world.sweep(service))

    first = sweep("2026-06-30", entries)  # the last day the acceptance holds
    assert {f.resource: f.status for f in first.values()} == {
        "deployment/shop/cart": "accepted",
        "deployment/shop/api": "accepted",
    }
    assert drain(world.alerts) == []

    second = sweep("2026-07-01", entries[:1])  # cart's acceptance has expired; api's was removed from the config
    cart, api = second["test-privileged|deployment/shop/cart"], second["test-privileged|deployment/shop/api"]
    assert (cart.status, cart.new, cart.reopened) == ("open", False, True)
    assert (api.status, api.new, api.reopened) == ("open", False, True)
    (alert,) = drain(world.alerts)
    assert alert["title"] == f"2 reopened compliance finding(s) in {world.name}"
    assert alert["summary"].startswith("2 reopened finding(s) (their acceptance ended) at or above high")
    lines = [line for line in alert["lines"] if not line.startswith("    fix:")]
    (cart_line,) = [line for line in lines if "deployment/shop/cart" in line]
    assert cart_line.startswith("[critical] open REOPENED (acceptance expired) test-privileged deployment/shop/cart:")
    assert "expired on 2026-06-30" in cart_line
    (api_line,) = [line for line in lines if "deployment/shop/api" in line]
    assert api_line.startswith("[critical] open REOPENED (no longer accepted) test-privileged deployment/shop/api:")
    assert {f["resource"]: f.get("reopened") for f in alert["details"]["findings"]} == {
        "deployment/shop/cart": True,
        "deployment/shop/api": True,
    }

    third = sweep("2026-07-02", entries[:1])  # still open: reported every day, alerted once
    assert [f.reopened for f in third.values()] == [False, False]
    assert drain(world.alerts) == []


def test_an_acceptance_of_an_unknown_rule_fails_at_start_up(world: World) -> None:
    accept = json.dumps([{"rule": "test-privileged", "resource": "*", "reason": "x"}])
    with pytest.raises(ConfigError, match=r"COMPLIANCE_ACCEPT: entry 0: \"rule\": unknown rule id 'test-privileged'"):
        world.service(TeamLabel, accept_raw=accept)  # the service's rules do not include test-privileged


# -- budget and failures -----------------------------------------------------------------------------------------


def test_a_spent_budget_leaves_the_remaining_rules_not_run_and_resolves_nothing_for_them(world: World) -> None:
    forever = world.log_group("app")
    world.cluster.namespace("app-shop")
    first = world.sweep(world.service(Reachable, Retention, TeamLabel))
    assert set(by_key(first)) == {f"test-log-retention|log-group/{forever}", "test-namespace-team|namespace/app-shop"}

    client("logs").put_retention_policy(logGroupName=forever, retentionInDays=7)  # both fixed by hand
    status, _ = kube_request(
        world.cluster.api(),
        "PATCH",
        "/api/v1/namespaces/app-shop",
        body={"metadata": {"labels": {"team": "shop"}}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    second = world.sweep(world.service(Reachable, Retention, Hungry, TeamLabel, max_calls=50))
    (report,) = second.reports
    assert report.rules_run == ["cluster-kubernetes-unreachable", "test-log-retention"]
    assert [n["rule"] for n in report.not_run] == ["test-hungry", "test-namespace-team"]
    assert report.not_run[0]["reason"].startswith("budget spent: cluster ")
    assert report.not_run[1]["reason"] == report.not_run[0]["reason"]
    assert [r.key for r in report.resolved] == [f"test-log-retention|log-group/{forever}"]  # not the namespace one
    assert report.calls == 50
    second.raise_for_errors()  # a spent budget is reported, not a failure
    state = StateStore(client("dynamodb"), TABLE).load(world.name)
    assert list(state) == ["test-namespace-team|namespace/app-shop"]  # kept for the next full sweep

    third = world.sweep(world.service(Reachable, Retention, TeamLabel))
    assert [r.key for r in third.reports[0].resolved] == ["test-namespace-team|namespace/app-shop"]


class Slow(Rule):
    """Takes ten minutes of the (virtual) clock."""

    id = "test-slow"
    title = "A slow rule"
    severity = Severity.LOW
    category = Category.CLUSTER
    why = "Some reads are slow."
    fix = "Wait."
    reference = "EKS BP: none"
    clock: list[float] = [0.0]

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        self.clock[0] += 600
        return []


def test_out_of_time_the_rules_left_are_not_run(world: World) -> None:
    clock = [0.0]
    Slow.clock = clock
    service = world.service(Slow, Retention, clock=lambda: clock[0])
    remaining = 300_000 + MARGIN_MS + CLOSING_RESERVE_MS  # five minutes for the rules
    summary = world.sweep(service, Deadline(lambda: remaining - int(clock[0] * 1000)))
    (report,) = summary.reports
    assert report.rules_run == ["test-slow"]
    assert report.not_run == [
        {"rule": "test-log-retention", "reason": "out of time: the cluster's sweep stopped before this rule"}
    ]
    assert summary.errors == []


def test_a_failing_rule_is_reported_and_fails_the_invocation_after_the_others_ran(world: World) -> None:
    world.log_group("app")
    summary = world.sweep(world.service(Broken, Retention))
    (report,) = summary.reports
    assert report.rules_run == ["test-log-retention"] and len(report.findings) == 1
    (error,) = report.errors
    assert (error["rule"], error["stage"], error["code"]) == ("test-broken", "check", "KeyError")
    assert error["where"].startswith("test_service.py:") and error["where"].endswith("in check")
    (message,) = drain(world.reports)
    assert message["severity"] == "warning"
    assert message["lines"][0] == "error test-broken (check): KeyError: 'nodegroups'"
    with pytest.raises(PartialFailure) as caught:
        summary.raise_for_errors()
    assert caught.value.errors == [{"cluster": world.name, **error}]


def test_a_failed_remediation_is_reported_on_the_finding(world: World) -> None:
    forever = world.log_group("app")

    class Unfixable(Retention):
        def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
            raise RuntimeError("PutRetentionPolicy refused")

    summary = world.sweep(world.service(Unfixable, remediate=frozenset({"test-log-retention"})))
    finding = by_key(summary)[f"test-log-retention|log-group/{forever}"]
    assert (finding.status, finding.remediation) == ("remediation-failed", "PutRetentionPolicy refused")
    assert [e["stage"] for e in summary.errors] == ["remediate"]


def test_a_finding_left_as_it_is_on_purpose_stays_open_without_an_error(world: World) -> None:
    forever = world.log_group("app")

    class OptInOnly(Retention):
        def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
            raise NotRemediated("not opted in")

    summary = world.sweep(world.service(OptInOnly, remediate=frozenset({"test-log-retention"})))
    finding = by_key(summary)[f"test-log-retention|log-group/{forever}"]
    assert (finding.status, finding.remediation) == ("open", "not remediated: not opted in")
    assert summary.errors == []
    summary.raise_for_errors()  # nothing failed


def test_metrics_per_rule_and_severity(world: World) -> None:
    world.log_group("a")
    world.log_group("b")
    world.sweep(world.service(Reachable, Retention, TeamLabel))
    assert sorted(world.metrics) == [
        ("cluster-kubernetes-unreachable", "high", 0),
        ("test-log-retention", "medium", 2),
        ("test-namespace-team", "high", 0),
    ]


def test_a_gone_cluster_is_skipped_quietly(world: World) -> None:
    client("eks").delete_cluster(name=world.name)
    summary = world.sweep(world.service(Retention))
    (report,) = summary.reports
    assert report.status == "gone" and report.findings == [] and summary.errors == []
    assert drain(world.reports) == []


def test_security_hub_failures_are_reported_as_errors(world: World) -> None:
    world.log_group("app")
    import botocore.session

    hub = botocore.session.get_session().create_client(
        "securityhub", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(hub) as stub:
        stub.add_response(
            "batch_import_findings",
            {
                "FailedCount": 1,
                "SuccessCount": 0,
                "FailedFindings": [{"Id": "x", "ErrorCode": "E", "ErrorMessage": "m"}],
            },
        )
        summary = world.sweep(world.service(Retention, security_hub=SecurityHubExport(hub)))
        stub.assert_no_pending_responses()
    (report,) = summary.reports
    assert report.security_hub == {
        "imported": 0,
        "archived": 0,
        "workflow_updated": 0,
        "failed": [{"id": "x", "code": "E", "message": "m"}],
    }
    assert [e["stage"] for e in summary.errors] == ["security-hub"]


# -- fan-out -----------------------------------------------------------------------------------------------------


def test_the_fan_out_puts_one_continuation_per_selected_cluster(world: World) -> None:
    for name in ("prod-a", "prod-b", "dev-c"):
        world.cluster.create_cluster(name=name)
    url = client("sqs").create_queue(QueueName="continuations")["QueueUrl"]
    queue = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("events").put_rule(
        Name="compliance-continuations",
        EventPattern=json.dumps(
            {
                "source": ["eksops"],
                "detail-type": ["eksops sweep continuation"],
                "detail": {"function": ["compliance_sweep"]},
            }
        ),
    )
    client("events").put_targets(Rule="compliance-continuations", Targets=[{"Id": "q", "Arn": queue}])

    service = world.service(Retention, clusters=("prod-*",))
    summary = service.handle(FanOut(run_id="run-42", origin="schedule daily"), FOREVER, account=ACCOUNT)
    assert sorted(summary.dispatched) == ["prod-a", "prod-b"]
    assert summary.not_selected == 2  # dev-c and the fixture's own cluster
    assert summary.reports == [] and summary.counts()["dispatched"] == 2

    delivered = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    events = [json.loads(m["Body"]) for m in delivered]
    assert len(events) == 2
    triggers = [parse_trigger(event) for event in events]
    assert sorted(t.cluster for t in triggers if isinstance(t, ClusterSweep)) == ["prod-a", "prod-b"]
    assert {t.run_id for t in triggers} == {"run-42"}
    assert {e["detail"]["part"] for e in events} == {2}
    assert drain(world.reports) == []  # each cluster's own sweep reports


def test_a_continuation_that_cannot_be_put_is_that_clusters_error(world: World) -> None:
    class Failing(Continuer):
        """The real Continuer; the fixture's cluster gets a part number it refuses (over MAX_PARTS)."""

        def continue_sweep(self, *, run_id: str, part: int, checkpoint: Any) -> None:
            part = 10_000 if checkpoint["cluster"] == world.name else part
            super().continue_sweep(run_id=run_id, part=part, checkpoint=checkpoint)

    world.cluster.create_cluster(name="prod-z")
    service = world.service(Retention, continuer=Failing(client("events"), function="compliance_sweep"))
    summary = service.handle(FanOut(run_id="r", origin="on demand"), FOREVER)
    assert summary.dispatched == ["prod-z"]
    assert [(e["cluster"], e["stage"], e["code"]) for e in summary.errors] == [
        (world.name, "fan-out", "TemporaryError")
    ]
    with pytest.raises(PartialFailure):
        summary.raise_for_errors()
