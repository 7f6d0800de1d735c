"""functions/compliance_sweep/app.py as template.yaml deploys it, on the sandbox (moto and the Kubernetes emulator
over HTTP): the schedule fans out through the ClusterSweep rule, each cluster is swept in its own invocation with the
template's environment (the state table, the topics), EMF metrics per rule and severity, on-demand runs, and a bad
payload refused before any call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eksops.compliance.gather import PARTITION
from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from tests.integration.bootstrap.test_cluster_bootstrap import closed_port, inbox, received

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "events" / "compliance_sweep"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


def create_cluster(sandbox: Sandbox, name: str, *, reachable: bool) -> None:
    role = sandbox.client("iam").create_role(RoleName=f"{name}-cluster", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    sandbox.client("eks").create_cluster(
        name=name, roleArn=role, resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]}
    )
    sandbox.client("logs").create_log_group(logGroupName=f"/aws/containerinsights/{name}/application")
    if reachable:
        sandbox.add_kube_cluster(name)
    else:  # a context whose server refuses connections (written with the next add_kube_cluster)
        sandbox.kube_clusters[name] = (f"http://127.0.0.1:{closed_port()}", None)


def emf(sandbox: Sandbox, metric: str) -> list[dict[str, Any]]:
    """The EMF records of ``metric`` the functions printed (the sandbox keeps their stdout in functions.log)."""
    found = []
    for line in (sandbox.workdir / "functions.log").read_text().splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            names = [m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            if metric in names:
                found.append(record)
    return found


@pytest.fixture
def sandbox(make_sandbox: Any) -> tuple[Sandbox, Dispatcher]:
    return make_sandbox()  # type: ignore[no-any-return]


def test_the_schedule_fans_out_one_invocation_per_cluster_through_the_template_rule(
    sandbox: tuple[Sandbox, Dispatcher],
) -> None:
    sb, dispatcher = sandbox
    reports = inbox(sb, "ReportsTopic")
    create_cluster(sb, "private", reachable=False)  # its endpoint refuses connections: the unreachable path
    create_cluster(sb, "shop", reachable=True)
    runs = [r for r in dispatcher.fire_schedule("compliance_sweep") if r.function == "compliance_sweep"]
    fan_out, *clusters = runs
    assert fan_out.ok and sorted(fan_out.result["dispatched"]) == ["private", "shop"]
    assert sorted(c["clusters"][0]["cluster"] for c in (r.result for r in clusters if r.result)) == ["private", "shop"]
    assert all(r.trigger.startswith("ClusterSweep") for r in clusters), [r.trigger for r in clusters]

    by_cluster = {c["cluster"]: c for r in clusters if r.result for c in r.result["clusters"]}
    private = {f["rule"] for f in by_cluster["private"]["findings"]}
    assert "cluster-kubernetes-unreachable" in private  # and the AWS-side rules still ran:
    assert "cluster-endpoint-public" in private
    assert by_cluster["private"]["not_run"]  # the Kubernetes rules, with the reason
    assert "cluster-kubernetes-unreachable" not in {f["rule"] for f in by_cluster["shop"]["findings"]}

    # one report for the sweep (the state table gathers the clusters' reports), posted by its last part
    (report,) = [m for m in received(sb, reports) if m["kind"] == "compliance.sweep"]
    assert report["cluster"] is None and report["details"]["run_id"] == fan_out.result["run_id"]
    assert sorted(c["cluster"] for c in report["details"]["clusters"]) == ["private", "shop"]
    assert report["details"]["missing"] == []
    assert any(line.startswith("private: ") for line in report["lines"])

    # the state table the template made: each cluster's findings, and the sweep's item
    table = sb.refs["ComplianceStateTable"]
    items = sb.client("dynamodb").scan(TableName=table)["Items"]
    assert {i["cluster"]["S"] for i in items} == {"private", "shop", PARTITION}
    assert all(i["expires_at"]["N"].isdigit() for i in items)
    (gathered,) = [i for i in items if i["cluster"]["S"] == PARTITION]
    assert sorted(gathered["done"]["SS"]) == ["private", "shop"] and "posted" in gathered

    # one EMF metric per rule and severity, per cluster sweep
    metrics = emf(sb, "OpenFindings")
    assert {(m["rule"], m["severity"]) for m in metrics} >= {("cluster-endpoint-public", "high")}
    assert all(
        m["service"] == "compliance_sweep" and m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "eksops"
        for m in metrics
    )
    assert all(
        sorted(m["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["rule", "service", "severity"] for m in metrics
    )
    swept = {(m["rule"]) for m in metrics}
    assert "cluster-kubernetes-unreachable" in swept and "pod-privileged" in swept  # the rules that ran, 0s too


def test_on_demand_runs_sweep_one_cluster_or_fan_out(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    create_cluster(sb, "prod-eu", reachable=True)
    one = dispatcher.invoke(
        "compliance_sweep", json.loads((SAMPLES / "direct" / "on_demand.json").read_text()), "on demand", retries=0
    )
    assert one.ok, one.error
    [report] = one.result["clusters"]
    assert report["cluster"] == "prod-eu" and report["status"] != "failed" and report["findings"]
    everything = dispatcher.invoke(
        "compliance_sweep", json.loads((SAMPLES / "direct" / "on_demand_all.json").read_text()), "on demand", retries=0
    )
    assert everything.ok and everything.result["dispatched"] == ["prod-eu"]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"sweep": "everything"}, "InvalidEvent"),
        ({"sweep": {"cluster": "not a cluster name"}}, "InvalidEvent"),
        ({"sweep": "all", "dry_run": False}, "InvalidEvent"),
        (json.loads((ROOT / "events/log_retention/sweep_continuation.json").read_text()), "UnsupportedEvent"),
    ],
)
def test_a_bad_payload_is_refused_before_any_call(
    sandbox: tuple[Sandbox, Dispatcher], payload: dict[str, Any], error: str
) -> None:
    sb, dispatcher = sandbox
    run = dispatcher.invoke("compliance_sweep", payload, "bad", retries=0)
    assert run.error_type == error, (run.error_type, run.error)
    assert run.dead_lettered  # the on-failure destination of the template
    assert sb.client("dynamodb").scan(TableName=sb.refs["ComplianceStateTable"])["Count"] == 0
