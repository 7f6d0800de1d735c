"""cluster_bootstrap as Lambda runs it: moto for EKS and IAM, a Kubernetes API emulator per cluster over HTTP."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops.kube import manifests
from eksops_dev.cloudtrail import CloudTrailShim
from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox

CLOUDWATCH_AGENT = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
EVENTS = Path(__file__).resolve().parents[3] / "events" / "cluster_bootstrap"
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
    sandbox: Sandbox,
    name: str,
    *,
    nodegroup: bool = True,
    fargate: bool = False,
    creating: bool = False,
    fargate_namespaces: tuple[str, ...] = ("default",),
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
            selectors=[{"namespace": ns} for ns in fargate_namespaces],
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


def expected_refs(name: str, *, fargate: bool = False) -> set[str]:
    docs = manifests.render_observability(name, "us-east-1") + manifests.render_metrics_server(False)
    if fargate:
        docs += manifests.render_fargate_logging(name, "us-east-1")
    return {f"{d['kind']}/{d['metadata'].get('namespace') or '-'}/{d['metadata']['name']}" for d in docs}


def inbox(sandbox: Sandbox, topic: str) -> str:
    """An SQS queue subscribed to the stack's ``topic`` (AlertsTopic, ReportsTopic): read it with ``received``."""
    sqs = sandbox.client("sqs")
    url = sqs.create_queue(QueueName=f"inbox-{topic}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sandbox.client("sns").subscribe(TopicArn=sandbox.refs[topic], Protocol="sqs", Endpoint=arn)
    return str(url)


def received(sandbox: Sandbox, url: str) -> list[dict[str, Any]]:
    """The envelopes published to the topic behind ``url`` (SNS JSON message structure, default part)."""
    found = []
    while messages := sandbox.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in messages:
            found.append(json.loads(json.loads(m["Body"])["Message"]))
            sandbox.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def kube_client(sandbox: Sandbox, context: str) -> Any:
    from kubernetes import config as k8s_config

    return k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=context)


# The template's default is a dry run (safe first deploy); these tests watch bootstrap act.
ACTING = {"DryRun": "false"}


@pytest.fixture
def sandbox(make_sandbox: Any) -> tuple[Sandbox, Dispatcher]:
    return make_sandbox(parameters=ACTING)  # type: ignore[no-any-return]


def test_event_bootstraps_a_new_cluster_and_a_second_run_changes_nothing(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("c1")
    roles = cluster(sb, "c1")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error
    result = run.result["clusters"]["c1"]
    assert result["status"] == "bootstrapped"
    assert result["kubernetes"]["created"] == len(expected_refs("c1"))
    # A fresh cluster: nothing of anyone else's under eksops' names, so nothing is left out or warned about.
    assert result["warnings"] == [] and result["left"] == [] and run.result["warned"] == []
    assert CLOUDWATCH_AGENT in attached(sb, roles["node"])
    names = {r.split("/", 1)[1] for r in objects(emulator)}
    assert "amazon-cloudwatch/cloudwatch-agent" in names and "amazon-cloudwatch/fluent-bit" in names
    assert "kube-system/metrics-server" in names
    tags = sb.client("eks").describe_cluster(name="c1")["cluster"]["tags"]
    assert tags["eksops:bootstrap"] == manifests.MANIFEST_VERSION
    # Every write was a server-side apply by field manager eksops, forcing conflicts.
    assert len(emulator.applies) == len(expected_refs("c1"))
    assert {(a.params.get("fieldManager"), a.params.get("force")) for a in emulator.applies} == {("eksops", "true")}
    [again] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert again.ok and again.result["clusters"]["c1"]["status"] == "unchanged"
    assert again.result["clusters"]["c1"]["kubernetes"] == {"unchanged": len(expected_refs("c1"))}
    assert len(emulator.applies) == len(expected_refs("c1"))  # the current tag: a reconcile only reads


def test_an_older_manifest_version_on_the_tag_re_applies_everything(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("c1")
    cluster(sb, "c1")
    assert all(r.ok for r in bootstrap_runs(dispatcher.drain()))
    eks = sb.client("eks")
    arn = eks.describe_cluster(name="c1")["cluster"]["arn"]
    eks.tag_resource(resourceArn=arn, tags={"eksops:bootstrap": "2026.1.0"})  # an older eksops applied it
    applied_before = len(emulator.applies)
    [run] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert run.ok, run.error
    refs = expected_refs("c1")
    assert len(emulator.applies) - applied_before == len(refs)  # every object applied again, none skipped
    assert run.result["clusters"]["c1"]["kubernetes"] == {"created": 0, "configured": 0, "unchanged": len(refs)}
    assert eks.describe_cluster(name="c1")["cluster"]["tags"]["eksops:bootstrap"] == manifests.MANIFEST_VERSION


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


def function_log_lines(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The JSON log lines the functions wrote (the sandbox's functions.log, as CloudWatch Logs would hold them)."""
    lines = (sandbox.workdir / "functions.log").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_creating_cluster_is_skipped_then_bootstrapped_by_the_reconcile(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("c1")
    cluster(sb, "c1", creating=True)
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok and run.result["clusters"]["c1"]["status"] == "not-active"
    skipped = [
        line
        for line in function_log_lines(sb)
        if line.get("message") == "cluster c1 is CREATING: skipped; the reconcile bootstraps it once ACTIVE"
    ]
    assert len(skipped) == 1 and skipped[0]["level"] == "INFO" and skipped[0]["service"] == "cluster_bootstrap"
    assert not any(r.startswith("DaemonSet/") for r in objects(emulator))
    sb.eks_shim.activate("c1")
    [later] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert later.ok and later.result["clusters"]["c1"]["status"] == "bootstrapped"
    assert "DaemonSet/amazon-cloudwatch/cloudwatch-agent" in objects(emulator)


def stored_metrics_server_ports(emulator: Any) -> list[int]:
    deployment = emulator.objects["apps/v1/deployments", "kube-system", "metrics-server"].raw
    return [p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]]


def test_fargate_only_clusters_get_aws_observability(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("f1")
    roles = cluster(sb, "f1", nodegroup=False, fargate=True, fargate_namespaces=("default", "kube-system"))
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error
    stored = objects(emulator)
    assert "Namespace/-/aws-observability" in stored and "ConfigMap/aws-observability/aws-logging" in stored
    assert sb.refs["FargateLoggingPolicy"] in attached(sb, roles["pod"])
    # A Fargate profile selects kube-system: metrics-server runs on Fargate, off the micro-VM kubelet's port.
    assert stored_metrics_server_ports(emulator) == [manifests.FARGATE_SECURE_PORT]


def test_metrics_server_keeps_the_kubelet_port_when_no_profile_selects_kube_system(
    sandbox: tuple[Sandbox, Dispatcher],
) -> None:
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("m1")
    cluster(sb, "m1", fargate=True, fargate_namespaces=("default",))
    assert all(r.ok for r in bootstrap_runs(dispatcher.drain()))
    assert "ConfigMap/aws-observability/aws-logging" in objects(emulator)
    assert stored_metrics_server_ports(emulator) == [manifests.KUBELET_PORT]


def test_namespaces_get_pod_security_labels_and_opted_in_ones_default_deny(make_sandbox: Any) -> None:
    from kubernetes import client as k8s

    sb, dispatcher = make_sandbox(parameters={**ACTING, "BootstrapDenyNamespaces": '["team-*"]'})
    emulator = sb.add_kube_cluster("c1")
    core = k8s.CoreV1Api(kube_client(sb, "c1"))
    for ns in ("team-a", "kube-system", "shop", "amazon-guardduty", "calico-system"):
        core.create_namespace({"metadata": {"name": ns}})
    # Its owner runs a privileged agent there and chose the level: eksops must not override it.
    owned = {"pod-security.kubernetes.io/enforce": "privileged", "team": "infra"}
    core.create_namespace({"metadata": {"name": "agents", "labels": owned}})
    cluster(sb, "c1")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error
    names = ("team-a", "kube-system", "shop", "amazon-guardduty", "calico-system", "agents")
    labels = {ns: (core.read_namespace(ns).metadata.labels or {}) for ns in names}
    assert labels["team-a"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["shop"]["pod-security.kubernetes.io/warn"] == "restricted"
    for system in ("kube-system", "amazon-guardduty", "calico-system"):
        assert not any(k.startswith("pod-security.kubernetes.io/") for k in labels[system]), system
    assert labels["agents"] == owned
    stored = objects(emulator)
    assert "NetworkPolicy/team-a/eksops-default-deny" in stored
    assert not any(r.startswith("NetworkPolicy/shop/") or r.startswith("NetworkPolicy/kube-system/") for r in stored)

    # eksops may change the levels it set itself (a new setting), never those its owner set since.
    core.patch_namespace("shop", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    sb.client("eks").tag_resource(
        resourceArn=sb.client("eks").describe_cluster(name="c1")["cluster"]["arn"], tags={"eksops:bootstrap": "0"}
    )
    [again] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert again.ok, again.error
    assert core.read_namespace("shop").metadata.labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert core.read_namespace("team-a").metadata.labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert core.read_namespace("agents").metadata.labels == owned


class Denying(http.server.BaseHTTPRequestHandler):
    status = 403

    def do_GET(self) -> None:
        reason = "Unauthorized" if self.status == 401 else "Forbidden"
        body = json.dumps(
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": self.status}
        ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(params=[403, 401])
def denying_api(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    handler = type("Handler", (Denying,), {"status": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    server.shutdown()
    server.server_close()


def test_401_and_403_say_which_access_entry_to_create(
    sandbox: tuple[Sandbox, Dispatcher], denying_api: tuple[str, int]
) -> None:
    sb, dispatcher = sandbox
    url, status = denying_api
    alerts = inbox(sb, "AlertsTopic")
    sb.kube_clusters["locked"] = (url, None)
    sb._write_kubeconfig()
    cluster(sb, "locked")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.error_type == "AccessDenied" and run.dead_lettered
    assert f"(HTTP {status})" in str(run.error)
    principal = sb.client("sts").get_caller_identity()["Arn"]  # moto's caller; in Lambda the function's role
    create = f"aws eks create-access-entry --cluster-name locked --principal-arn {principal}"
    associate = (
        f"aws eks associate-access-policy --cluster-name locked --principal-arn {principal} --policy-arn "
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy --access-scope type=cluster"
    )
    assert create in str(run.error) and associate in str(run.error)
    # The event path alerts before it raises (each try does: the operator hears of it at once).
    event_alerts = received(sb, alerts)
    assert event_alerts and all(a["kind"] == "bootstrap.access-denied" for a in event_alerts)
    assert create in event_alerts[0]["summary"] and event_alerts[0]["cluster"] == "locked"

    [swept] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert swept.error_type == "PartialFailure"
    sweep_alerts = [a for a in received(sb, alerts) if a["kind"] == "bootstrap.access-denied"]
    assert sweep_alerts and all(create in a["summary"] and associate in a["summary"] for a in sweep_alerts)


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_cluster_does_not_stop_the_sweep(sandbox: tuple[Sandbox, Dispatcher]) -> None:
    sb, dispatcher = sandbox
    reports = inbox(sb, "ReportsTopic")
    sb.kube_clusters["a-private"] = (f"https://127.0.0.1:{closed_port()}", None)  # listed before the healthy one
    emulator = sb.add_kube_cluster("b-healthy")
    cluster(sb, "a-private")
    cluster(sb, "b-healthy", creating=True)  # its event skips it: the sweep is what bootstraps it
    dispatcher.drain()
    sb.eks_shim.activate("b-healthy")
    assert not any(r.startswith("DaemonSet/") for r in objects(emulator))
    [run] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert run.error_type == "PartialFailure"  # the invocation fails at the end, after the others
    assert "DaemonSet/amazon-cloudwatch/fluent-bit" in objects(emulator)
    report = next(r for r in received(sb, reports) if r["details"]["errors"])  # each retry reports too
    assert report["details"]["clusters"]["b-healthy"]["status"] == "bootstrapped"
    [error] = report["details"]["errors"]
    assert error["cluster"] == "a-private" and error["error"] == "TemporaryError"
    assert "cannot reach the Kubernetes API of cluster 'a-private'" in error["message"]
    assert "k8s-aws-v1." not in error["message"] and "Bearer" not in error["message"]


@pytest.mark.parametrize(
    ("params", "fragment"), [({"name": ""}, "detail.requestParameters.name"), ({}, "detail.requestParameters.name")]
)
def test_malformed_events_fail_specifically(
    sandbox: tuple[Sandbox, Dispatcher], params: dict[str, str], fragment: str
) -> None:
    from eksops_dev.cloudtrail import cloudtrail_event

    _sb, dispatcher = sandbox
    inv = dispatcher.invoke("cluster_bootstrap", cloudtrail_event("eks", "CreateCluster", params), "test", retries=0)
    assert inv.error_type == "InvalidEvent" and fragment in str(inv.error)


def sample(case: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{case}.json").read_text())  # type: ignore[no-any-return]


def test_a_failed_create_cluster_call_changes_nothing_on_a_cluster_that_exists(
    sandbox: tuple[Sandbox, Dispatcher],
) -> None:
    """CreateCluster failed (ResourceInUseException: the name is taken): the rule pattern drops such events in
    AWS, but the function must not act on one either (a redrive, a widened rule, a hand-made event)."""
    sb, dispatcher = sandbox
    emulator = sb.add_kube_cluster("prod-eu")
    roles = cluster(sb, "prod-eu", creating=True)  # its own event skips it: nothing applied yet
    dispatcher.drain()
    sb.eks_shim.activate("prod-eu")
    reports, alerts = inbox(sb, "ReportsTopic"), inbox(sb, "AlertsTopic")
    failed = sample("unmatched/create_cluster_failed")
    assert failed["detail"]["errorCode"] == "ResourceInUseException"
    inv = dispatcher.invoke("cluster_bootstrap", failed, "test", retries=0)
    assert inv.ok, inv.error
    assert inv.result["clusters"] == {} and inv.result["errors"] == []
    assert inv.result["skipped"] == [
        {"call": "CreateCluster", "error_code": "ResourceInUseException", "cluster": "prod-eu"}
    ]
    assert CLOUDWATCH_AGENT not in attached(sb, roles["node"])
    assert emulator.applies == [] and not any(r.startswith("DaemonSet/") for r in objects(emulator))
    assert "eksops:bootstrap" not in sb.client("eks").describe_cluster(name="prod-eu")["cluster"].get("tags", {})
    assert received(sb, reports) == [] and received(sb, alerts) == []
    skipped = [line for line in function_log_lines(sb) if "(ResourceInUseException)" in line.get("message", "")]
    assert [line["message"] for line in skipped] == [
        "the CreateCluster call for prod-eu failed (ResourceInUseException): nothing to do"
    ]


BAD_NAMES = ["x" * 300_000, "prod eu", "-prod", "prod/../eu", "x" * 101, 42]


@pytest.mark.parametrize(
    ("case", "key"),
    [("create_cluster", "name"), ("create_nodegroup", "clusterName"), ("create_fargate_profile", "clusterName")],
)
def test_a_cluster_name_outside_the_eks_pattern_is_invalid_before_any_call(
    sandbox: tuple[Sandbox, Dispatcher], case: str, key: str
) -> None:
    """Every bad name on one sandbox: a rejected event changes nothing, so the cases cannot affect each other."""
    sb, dispatcher = sandbox
    eks_calls: list[str] = []
    from eksops.aws import client

    dispatcher.handler(sb.function("cluster_bootstrap"))  # its start-up creates the cached clients
    client("eks").meta.events.register("before-send.eks", lambda request, **_: eks_calls.append(request.url))
    for name in BAD_NAMES:
        event = sample(case)
        event["detail"]["requestParameters"][key] = name
        inv = dispatcher.invoke("cluster_bootstrap", event, "test", retries=0)
        assert inv.error_type == "InvalidEvent", (repr(name)[:40], inv.error)
        assert f"(field: detail.requestParameters.{key})" in str(inv.error) and len(str(inv.error)) < 300
    assert eks_calls == []  # never sent to DescribeCluster (a 300 KB name there is HTTP 414)
