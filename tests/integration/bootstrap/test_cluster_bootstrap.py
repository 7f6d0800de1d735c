"""cluster_bootstrap as Lambda runs it: moto for EKS and IAM, a Kubernetes API emulator per cluster over HTTP."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from eksops.kube import manifests
from eksops.local.cloudtrail import CloudTrailShim
from eksops.local.dispatch import Dispatcher
from eksops.local.sandbox import Sandbox

CLOUDWATCH_AGENT = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
VPC = {"subnetIds": ["subnet-0a1b2c3d", "subnet-1a2b3c4d"]}


def role(sandbox: Sandbox, name: str, service: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return str(
        sandbox.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    )


def cluster(
    sandbox: Sandbox, name: str, *, nodegroup: bool = True, fargate: bool = False, creating: bool = False
) -> dict[str, str]:
    eks = sandbox.client("eks")
    roles = {"cluster": role(sandbox, f"{name}-cluster", "eks.amazonaws.com")}
    if creating:
        sandbox.eks_shim.creating.add(name)
    CloudTrailShim(sandbox.client).call(
        "eks", "create_cluster", name=name, roleArn=roles["cluster"], resourcesVpcConfig=VPC
    )
    if nodegroup:
        roles["node"] = role(sandbox, f"{name}-node", "ec2.amazonaws.com")
        eks.create_nodegroup(
            clusterName=name, nodegroupName="default", nodeRole=roles["node"], subnets=VPC["subnetIds"]
        )
    if fargate:
        roles["pod"] = role(sandbox, f"{name}-pod", "eks-fargate-pods.amazonaws.com")
        eks.create_fargate_profile(
            clusterName=name,
            fargateProfileName="default",
            podExecutionRoleArn=roles["pod"],
            selectors=[{"namespace": "default"}],
        )
    return roles


def attached(sandbox: Sandbox, role_arn: str) -> set[str]:
    policies = sandbox.client("iam").list_attached_role_policies(RoleName=role_arn.rsplit("/", 1)[-1])
    return {p["PolicyArn"] for p in policies["AttachedPolicies"]}


def objects(emulator: Any) -> set[str]:
    """kind/namespace/name of the live objects the emulator stores ('-' for cluster-scoped)."""
    found = set()
    for obj in emulator.objects.values():
        if obj.deleted:
            continue
        meta = obj.raw.get("metadata", {})
        found.add(f"{obj.raw.get('kind')}/{meta.get('namespace') or '-'}/{meta.get('name')}")
    return found


def bootstrap_runs(runs: list[Any]) -> list[Any]:
    return [r for r in runs if r.function == "cluster_bootstrap"]


def expected_refs(name: str, *, fargate_only: bool = False, fargate: bool = False) -> set[str]:
    docs = manifests.render_observability(name, "us-east-1") + manifests.render_metrics_server(fargate_only)
    if fargate:
        docs += manifests.render_fargate_logging(name, "us-east-1")
    return {f"{d['kind']}/{d['metadata'].get('namespace') or '-'}/{d['metadata']['name']}" for d in docs}


@pytest.fixture
def sandbox(make_sandbox: Any) -> tuple[Sandbox, Dispatcher]:
    return make_sandbox()  # type: ignore[no-any-return]


def test_event_bootstraps_a_new_cluster_and_a_second_run_changes_nothing(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("c1")
    roles = cluster(sb, "c1")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error
    result = run.result["clusters"]["c1"]
    assert result["status"] == "bootstrapped"
    assert result["kubernetes"]["created"] == len(expected_refs("c1"))
    assert CLOUDWATCH_AGENT in attached(sb, roles["node"])
    names = {r.split("/", 1)[1] for r in objects(emulator)}
    assert "amazon-cloudwatch/cloudwatch-agent" in names and "amazon-cloudwatch/fluent-bit" in names
    assert "kube-system/metrics-server" in names
    tags = sb.client("eks").describe_cluster(name="c1")["cluster"]["tags"]
    assert tags["eksops:bootstrap"] == manifests.MANIFEST_VERSION
    [again] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert again.ok and again.result["clusters"]["c1"]["status"] == "unchanged"
    assert again.result["clusters"]["c1"]["kubernetes"] == {"unchanged": len(expected_refs("c1"))}


def test_a_hand_deleted_daemonset_comes_back_on_reconcile(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    sb, dispatcher = sandbox
    sb.add_kube_cluster("c1")
    cluster(sb, "c1")
    assert all(r.ok for r in bootstrap_runs(dispatcher.drain()))
    apps = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(sb.kubeconfig_path), context="c1"))
    apps.delete_namespaced_daemon_set("fluent-bit", "amazon-cloudwatch")
    assert "fluent-bit" not in {d.metadata.name for d in apps.list_namespaced_daemon_set("amazon-cloudwatch").items}
    [run] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert run.ok and run.result["clusters"]["c1"]["status"] == "bootstrapped"
    assert "DaemonSet/amazon-cloudwatch/fluent-bit" in run.result["clusters"]["c1"]["changed_objects"]
    assert "fluent-bit" in {d.metadata.name for d in apps.list_namespaced_daemon_set("amazon-cloudwatch").items}


def test_a_creating_cluster_is_skipped_then_bootstrapped_by_the_reconcile(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("c1")
    cluster(sb, "c1", creating=True)
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok and run.result["clusters"]["c1"]["status"] == "not-active"
    assert not any(r.startswith("DaemonSet/") for r in objects(emulator))
    sb.eks_shim.activate("c1")
    [later] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert later.ok and later.result["clusters"]["c1"]["status"] == "bootstrapped"
    assert "DaemonSet/amazon-cloudwatch/cloudwatch-agent" in objects(emulator)


def test_fargate_only_clusters_get_aws_observability(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("f1")
    roles = cluster(sb, "f1", nodegroup=False, fargate=True)
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error
    stored = objects(emulator)
    assert "Namespace/-/aws-observability" in stored and "ConfigMap/aws-observability/aws-logging" in stored
    assert sb.refs["FargateLoggingPolicy"] in attached(sb, roles["pod"])
    deployment = next(d for d in manifests.render_metrics_server(True) if d["kind"] == "Deployment")
    ports = [p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]]
    assert manifests.KUBELET_PORT not in ports  # the Fargate port difference


def test_namespaces_get_pod_security_labels_and_opted_in_ones_default_deny(make_sandbox: Any) -> None:
    sb, dispatcher = make_sandbox(parameters={"BootstrapDenyNamespaces": '["team-*"]'})
    emulator = sb.add_kube_cluster("c1")
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(sb.kubeconfig_path), context="c1"))
    for ns in ("team-a", "kube-system", "shop"):
        core.create_namespace({"metadata": {"name": ns}})
    cluster(sb, "c1")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error
    labels = {ns: (core.read_namespace(ns).metadata.labels or {}) for ns in ("team-a", "kube-system", "shop")}
    assert labels["team-a"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["shop"]["pod-security.kubernetes.io/warn"] == "restricted"
    assert "pod-security.kubernetes.io/enforce" not in labels["kube-system"]
    stored = objects(emulator)
    assert "NetworkPolicy/team-a/eksops-default-deny" in stored
    assert not any(r.startswith("NetworkPolicy/shop/") or r.startswith("NetworkPolicy/kube-system/") for r in stored)


class Forbidden(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def forbidding_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_403_says_which_access_entry_to_create(sandbox: tuple[Sandbox, Dispatcher], forbidding_api: str) -> None:
    sb, dispatcher = sandbox
    sb.kube_clusters["locked"] = (forbidding_api, None)
    sb._write_kubeconfig()
    cluster(sb, "locked")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.error_type == "AccessDenied" and run.dead_lettered
    principal = sb.client("sts").get_caller_identity()["Arn"]  # moto's caller; in Lambda the function's role
    assert f"aws eks create-access-entry --cluster-name locked --principal-arn {principal}" in str(run.error)
    assert (
        f"aws eks associate-access-policy --cluster-name locked --principal-arn {principal} --policy-arn "
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy --access-scope type=cluster"
    ) in str(run.error)
    [swept] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert swept.error_type == "PartialFailure"


@pytest.mark.parametrize(
    ("params", "fragment"), [({"name": ""}, "detail.requestParameters.name"), ({}, "detail.requestParameters.name")]
)
def test_malformed_events_fail_specifically(
    sandbox: tuple[Sandbox, Dispatcher], params: dict[str, str], fragment: str
) -> None:
    from eksops.local.cloudtrail import cloudtrail_event

    _sb, dispatcher = sandbox
    inv = dispatcher.invoke("cluster_bootstrap", cloudtrail_event("eks", "CreateCluster", params), "test", retries=0)
    assert inv.error_type == "InvalidEvent" and fragment in str(inv.error)
