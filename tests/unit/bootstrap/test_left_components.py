"""Components another installer has, decided per component: the EKS add-on list (DescribeAddon, which moto lacks: the
EKS calls are checked with botocore's Stubber against the EKS model) and the objects on the Kubernetes emulator over
HTTP. The sandbox-level tests (Helm and EKS-labelled metrics-server, eksops' own) are in tests/integration/bootstrap.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from eksops.bootstrap import BootstrapConfig, BootstrapService
from eksops.bootstrap.service import FLUENT_BIT_ADDON, METRICS_SERVER_ADDON, OBSERVABILITY_ADDON, TAG, Summary
from eksops.config import CommonConfig
from eksops.kube import manifests
from eksops.kube.apply import ref_of
from eksops.notify import Publisher
from eksops_dev.kube import EksopsEmulator
from tests.integration.kube.test_apply_ownership import ConflictProxy

ARN = "arn:aws:eks:us-east-1:123456789012:cluster/c1"
PROFILE = {
    "fargateProfileName": "default",
    "clusterName": "c1",
    "podExecutionRoleArn": "arn:aws:iam::123456789012:role/pods",
    "selectors": [{"namespace": "default"}],
    "status": "ACTIVE",
}
HELM = {"app.kubernetes.io/managed-by": "Helm"}
KUBECTL = [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1"}]


def bootstrap(api: Any, *, addons: tuple[str, ...] = (), dry_run: bool = False, fargate: bool = False) -> Summary:
    """Bootstrap c1 in manifests mode (an EKS event: applies even if tagged); ``addons``: the installed EKS add-ons."""
    eks = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client("eks")
    svc = BootstrapService(
        BootstrapConfig.from_env({}),
        CommonConfig.from_env({"DRY_RUN": "true" if dry_run else "false"}),
        eks=eks,
        iam=None,
        sts=None,
        publisher=Publisher(None, alerts_topic_arn=None, reports_topic_arn=None),
        api_client=lambda name: api,
    )
    summary = Summary(dry_run=dry_run)
    with Stubber(eks) as stub:
        cluster = {"name": "c1", "arn": ARN, "status": "ACTIVE", "version": "1.31", "tags": {}}
        stub.add_response("describe_cluster", {"cluster": cluster}, expected_params={"name": "c1"})
        stub.add_response("list_nodegroups", {"nodegroups": []}, expected_params={"clusterName": "c1"})
        profiles = ["default"] if fargate else []
        stub.add_response("list_fargate_profiles", {"fargateProfileNames": profiles}, {"clusterName": "c1"})
        if fargate:
            stub.add_response("describe_fargate_profile", {"fargateProfile": PROFILE})
        for name in (OBSERVABILITY_ADDON, METRICS_SERVER_ADDON, FLUENT_BIT_ADDON):  # the order the service asks in
            params = {"clusterName": "c1", "addonName": name}
            if name in addons:
                stub.add_response("describe_addon", {"addon": {"addonName": name, "status": "ACTIVE"}}, params)
            else:
                stub.add_client_error("describe_addon", "ResourceNotFoundException", http_status_code=404)
        if not dry_run:
            stub.add_response("tag_resource", {}, {"resourceArn": ARN, "tags": {TAG: manifests.MANIFEST_VERSION}})
        svc.bootstrap("c1", summary, force=True)
        stub.assert_no_pending_responses()
    return summary


def live(emulator: EksopsEmulator) -> set[str]:
    return {ref_of(o.raw) for o in emulator.objects.values() if not o.deleted}


def refs(docs: list[dict[str, Any]]) -> set[str]:
    return {ref_of(d) for d in docs}


def create(api: Any, doc: dict[str, Any]) -> None:
    """Create ``doc`` through the API, as another tool would (dynamic client: any kind)."""
    from kubernetes.dynamic import DynamicClient

    client = DynamicClient(api)  # type: ignore[no-untyped-call]  # the kubernetes client is untyped
    resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    resource.create(body=doc, namespace=doc["metadata"].get("namespace"))


def as_theirs(doc: dict[str, Any], labels: dict[str, str] | None = None, writer: Any = None) -> dict[str, Any]:
    found = copy.deepcopy(doc)
    found["metadata"]["labels"] = labels or {}
    if writer:
        found["metadata"]["managedFields"] = writer
    return found


@pytest.fixture
def api(kube: tuple[str, EksopsEmulator]) -> Iterator[Any]:
    import kubernetes

    url, _ = kube
    with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url)) as client:
        yield client


def test_an_installed_metrics_server_addon_keeps_eksops_metrics_server_out(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    _, emulator = kube
    summary = bootstrap(api, addons=(METRICS_SERVER_ADDON,))
    stored = live(emulator)
    assert not refs(manifests.render_metrics_server(False)) & stored
    assert refs(manifests.render_observability("c1", "us-east-1")) <= stored
    result = summary.clusters["c1"]
    (warning,) = result.warnings
    assert warning.startswith(
        "metrics-server is installed by the EKS add-on metrics-server (eks:DescribeAddon metrics-server):"
        " eksops leaves it and applies none of its 9 object(s)"
    )
    assert result.kubernetes["left"] == 9 and summary.warned == ["c1"]


def test_an_installed_fluent_bit_addon_keeps_only_eksops_fluent_bit_out(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    """Two log shippers on every node would send each line twice; the CloudWatch agent still goes on."""
    _, emulator = kube
    summary = bootstrap(api, addons=(FLUENT_BIT_ADDON,))
    stored = live(emulator)
    assert not refs(manifests.render_fluent_bit("c1", "us-east-1")) & stored
    assert refs(manifests.render_container_insights("c1", "us-east-1")) <= stored
    assert [p["component"] for p in summary.clusters["c1"].left] == ["Fluent Bit"]


def test_a_helm_cloudwatch_agent_is_left_while_fluent_bit_goes_into_its_namespace(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    """The namespace does not decide: Helm created it (--create-namespace), yet eksops' Fluent Bit lives there, so
    eksops sets its labels on it, without force since the namespace is not eksops' own."""
    _, emulator = kube
    insights = manifests.render_container_insights("c1", "us-east-1")
    namespace = next(d for d in insights if d["kind"] == "Namespace")
    agent = next(d for d in insights if d["kind"] == "DaemonSet")
    helm = [{"manager": "helm", "operation": "Update", "apiVersion": "v1"}]
    create(
        api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "amazon-cloudwatch", "managedFields": helm}}
    )
    create(api, as_theirs(agent, {**HELM, "app.kubernetes.io/instance": "cw"}))
    agent_before = copy.deepcopy(emulator.objects["apps/v1/daemonsets", "amazon-cloudwatch", "cloudwatch-agent"].raw)

    summary = bootstrap(api)
    result = summary.clusters["c1"]
    assert [(p["component"], p["owner"], p["object"]) for p in result.left] == [
        ("CloudWatch agent", "Helm", "DaemonSet/amazon-cloudwatch/cloudwatch-agent")
    ]
    # The namespace is applied (Fluent Bit needs it) and so not counted as left.
    assert result.left[0]["objects"] == [ref_of(d) for d in insights if d is not namespace]
    assert emulator.objects["apps/v1/daemonsets", "amazon-cloudwatch", "cloudwatch-agent"].raw == agent_before
    forced = {a.path.rsplit("/", 2)[-1]: a.params.get("force") for a in emulator.applies}
    assert forced["amazon-cloudwatch"] is None  # Helm's namespace: no force
    assert forced["fluent-bit"] == "true"  # eksops' new DaemonSet
    assert "cloudwatch-agent" not in forced and "cwagentconfig" not in forced
    labels = emulator.objects["v1/namespaces", None, "amazon-cloudwatch"].raw["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert refs(manifests.render_fluent_bit("c1", "us-east-1")) <= live(emulator)


def test_fargate_logging_set_up_by_hand_is_left_with_its_namespace(kube: tuple[str, EksopsEmulator], api: Any) -> None:
    """The EKS Fargate logging guide has users `kubectl apply` aws-observability and aws-logging themselves."""
    _, emulator = kube
    docs = manifests.render_fargate_logging("c1", "us-east-1")
    for doc in docs:
        create(api, as_theirs(doc, {"aws-observability": "enabled"} if doc["kind"] == "Namespace" else {}, KUBECTL))
    before = {ref_of(o.raw): copy.deepcopy(o.raw) for o in emulator.objects.values()}

    summary = bootstrap(api, fargate=True)
    result = summary.clusters["c1"]
    assert [(p["component"], p["owner"], p["object"]) for p in result.left] == [
        ("Fargate logging", "field manager kubectl-client-side-apply", "ConfigMap/aws-observability/aws-logging")
    ]
    assert result.left[0]["objects"] == [ref_of(d) for d in docs]  # nothing else of eksops' lives there
    assert not [a for a in emulator.applies if "aws-observability" in a.path]
    assert {ref_of(o.raw): o.raw for o in emulator.objects.values() if ref_of(o.raw) in before} == before
    assert "Deployment/kube-system/metrics-server" in live(emulator)


def test_dry_run_reports_what_it_would_leave_and_stores_nothing(kube: tuple[str, EksopsEmulator], api: Any) -> None:
    _, emulator = kube
    deployment = next(d for d in manifests.render_metrics_server(False) if d["kind"] == "Deployment")
    create(api, as_theirs(deployment, HELM))
    stored = live(emulator)
    summary = bootstrap(api, dry_run=True)
    assert live(emulator) == stored  # nothing created
    assert {a.params.get("dryRun") for a in emulator.applies} == {"All"}
    assert not [a for a in emulator.applies if "metrics" in a.path]
    result = summary.clusters["c1"]
    assert [p["component"] for p in result.left] == ["metrics-server"] and summary.warned == ["c1"]
    assert "DaemonSet/amazon-cloudwatch/cloudwatch-agent" in result.changed_objects  # would be created
    assert not [ref for ref in result.changed_objects if "metrics" in ref]


def test_a_refused_pod_security_label_is_a_warning_not_a_failure(kube: tuple[str, EksopsEmulator], api: Any) -> None:
    """An application namespace is not eksops' own: its Pod Security labels are applied without force, and when the
    API server refuses (another manager owns such a label), the namespace is left and the rest goes on."""
    import kubernetes

    url, emulator = kube
    create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "managedFields": KUBECTL}})
    proxy = ConflictProxy(url, "/api/v1/namespaces/shop")
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=proxy.url)) as proxied:
            summary = bootstrap(proxied)
    finally:
        proxy.shutdown()
        proxy.server_close()
    result = summary.clusters["c1"]
    assert result.status == "bootstrapped" and result.kubernetes["conflict"] == 1
    (warning,) = result.warnings
    assert warning.startswith("Namespace/shop is left as it is: another field manager owns a field eksops sets")
    assert 'conflict with "kubectl-label"' in warning
    assert "labels" not in emulator.objects["v1/namespaces", None, "shop"].raw["metadata"]
    assert "Deployment/kube-system/metrics-server" in live(emulator)
