"""cluster_bootstrap leaves what Helm, an EKS add-on or another tool installed under the names of its components,
and reports it; it forces conflicts only on its own objects. moto for EKS and IAM, the Kubernetes emulator over HTTP.

The objects "installed by others" are created through the Kubernetes API the way those tools leave them: Helm's
labels and release annotations, an EKS add-on's app.kubernetes.io/managed-by=EKS label, and the managedFields the
API server records for the writer (a create may carry them; the emulator keeps no field ownership of its own).
"""

from __future__ import annotations

import copy
from typing import Any

from eksops.kube import manifests
from eksops.kube.apply import ref_of
from eksops_dev.sandbox import Sandbox
from tests.integration.bootstrap.test_cluster_bootstrap import (
    ACTING,
    bootstrap_runs,
    cluster,
    expected_refs,
    inbox,
    kube_client,
    objects,
    received,
)

HELM_LABELS = {
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/instance": "metrics-server",
    "app.kubernetes.io/name": "metrics-server",
    "helm.sh/chart": "metrics-server-3.12.2",
}
HELM_ANNOTATIONS = {"meta.helm.sh/release-name": "metrics-server", "meta.helm.sh/release-namespace": "kube-system"}
HELM_WRITER = [{"manager": "helm", "operation": "Update", "apiVersion": "apps/v1"}]
EKS_LABELS = {"app.kubernetes.io/managed-by": "EKS", "app.kubernetes.io/name": "metrics-server"}
EKS_WRITER = [{"manager": "eks", "operation": "Apply", "apiVersion": "apps/v1"}]
KUBECTL_WRITER = [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1"}]
METRICS_SERVER_REFS = {
    f"{d['kind']}/{d['metadata'].get('namespace') or '-'}/{d['metadata']['name']}"
    for d in manifests.render_metrics_server(False)
}


def theirs(doc: dict[str, Any], labels: dict[str, str], annotations: dict[str, str] | None = None, **meta: Any) -> Any:
    """``doc`` as another installer would have put it: its own labels and annotations, and an older image."""
    found = copy.deepcopy(doc)
    found["metadata"] = {**found["metadata"], "labels": labels, **meta}
    if annotations:
        found["metadata"]["annotations"] = annotations
    for container in found.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        container["image"] = "registry.k8s.io/metrics-server/metrics-server:v0.7.2"
    return found


def metrics_server_doc(kind: str) -> dict[str, Any]:
    return next(d for d in manifests.render_metrics_server(False) if d["kind"] == kind)


def install_metrics_server(sb: Sandbox, labels: dict[str, str], annotations: dict[str, str] | None, writer: Any) -> Any:
    """metrics-server's Deployment and Service as Helm or the EKS add-on create them; returns the emulator keys."""
    from kubernetes import client as k8s

    api = kube_client(sb, "c1")
    deployment = theirs(metrics_server_doc("Deployment"), labels, annotations, managedFields=writer)
    service = theirs(metrics_server_doc("Service"), labels, annotations, managedFields=writer)
    k8s.AppsV1Api(api).create_namespaced_deployment("kube-system", deployment)
    k8s.CoreV1Api(api).create_namespaced_service("kube-system", service)
    return [("apps/v1/deployments", "kube-system", "metrics-server"), ("v1/services", "kube-system", "metrics-server")]


def applied_refs(emulator: Any) -> set[str]:
    """The object paths eksops sent an apply PATCH to."""
    return {a.path for a in emulator.applies}


def metrics_server_paths(paths: set[str]) -> set[str]:
    return {p for p in paths if "metrics-server" in p or "metrics.k8s.io" in p}


def snapshot(emulator: Any, keys: list[Any]) -> list[dict[str, Any]]:
    return [copy.deepcopy(emulator.objects[key].raw) for key in keys]


def test_a_helm_metrics_server_is_left_untouched_and_reported(make_sandbox: Any) -> None:
    """Regression: eksops force-applied its metrics-server over Helm's (image, labels and ownership taken over)."""
    sb, dispatcher = make_sandbox(parameters=ACTING)
    emulator = sb.add_kube_cluster("c1")
    keys = install_metrics_server(sb, HELM_LABELS, HELM_ANNOTATIONS, HELM_WRITER)
    before = snapshot(emulator, keys)
    reports = inbox(sb, "ReportsTopic")
    cluster(sb, "c1")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error

    assert snapshot(emulator, keys) == before  # Helm's Deployment and Service exactly as Helm left them
    assert metrics_server_paths(applied_refs(emulator)) == set()  # not one apply to a metrics-server object
    stored = objects(emulator)
    # The whole component is left, not only the objects Helm has: no eksops metrics-server RBAC or APIService.
    helms = {"Deployment/kube-system/metrics-server", "Service/kube-system/metrics-server"}
    assert not (METRICS_SERVER_REFS - helms) & stored
    # The rest of the baseline is applied, with force: those objects are new and eksops'.
    assert expected_refs("c1") - METRICS_SERVER_REFS <= stored
    assert {a.params.get("force") for a in emulator.applies} == {"true"}

    result = run.result["clusters"]["c1"]
    (warning,) = result["warnings"]
    assert warning.startswith(
        "metrics-server is installed by Helm release kube-system/metrics-server"
        " (annotation meta.helm.sh/release-name on Deployment/kube-system/metrics-server): eksops leaves it"
    )
    assert result["left"] == [
        {
            "component": "metrics-server",
            "owner": "Helm release kube-system/metrics-server",
            "sign": "annotation meta.helm.sh/release-name",
            "object": "Deployment/kube-system/metrics-server",
            "objects": [ref_of(d) for d in manifests.render_metrics_server(False)],
        }
    ]
    assert result["kubernetes"]["left"] == len(METRICS_SERVER_REFS)
    assert run.result["warned"] == ["c1"]
    report = next(r for r in received(sb, reports) if r["kind"] == "bootstrap.changes")
    assert report["severity"] == "warning"
    assert f"c1: warning: {warning}" in report["lines"]

    # The reconcile of the tagged cluster still leaves it; the warning is logged, not reported again.
    [again] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert again.ok, again.error
    assert again.result["clusters"]["c1"]["warnings"] == [warning] and again.result["warned"] == []
    assert snapshot(emulator, keys) == before


def test_an_eks_addon_metrics_server_is_left_untouched_and_reported(make_sandbox: Any) -> None:
    """The metrics-server EKS add-on labels its objects app.kubernetes.io/managed-by=EKS and applies them as "eks"
    (moto has no add-on API: DescribeAddon answers 404 here, so the labels alone must be enough)."""
    sb, dispatcher = make_sandbox(parameters=ACTING)
    emulator = sb.add_kube_cluster("c1")
    keys = install_metrics_server(sb, EKS_LABELS, None, EKS_WRITER)
    before = snapshot(emulator, keys)
    cluster(sb, "c1")
    [run] = bootstrap_runs(dispatcher.drain())
    assert run.ok, run.error
    assert snapshot(emulator, keys) == before
    assert metrics_server_paths(applied_refs(emulator)) == set()
    result = run.result["clusters"]["c1"]
    assert [(p["component"], p["owner"], p["sign"]) for p in result["left"]] == [
        ("metrics-server", "an EKS add-on", "label app.kubernetes.io/managed-by=EKS")
    ]
    (warning,) = result["warnings"]
    assert "metrics-server is installed by an EKS add-on" in warning and "eksops leaves it" in warning
    assert "DaemonSet/amazon-cloudwatch/fluent-bit" in objects(emulator)  # the rest of the baseline still applies


def test_eksops_own_metrics_server_is_re_applied_with_force(make_sandbox: Any) -> None:
    """What eksops applied itself stays its own: drift (a hand-edited image) is forced back on the next apply."""
    from kubernetes import client as k8s

    sb, dispatcher = make_sandbox(parameters=ACTING)
    emulator = sb.add_kube_cluster("c1")
    cluster(sb, "c1")
    assert all(r.ok for r in bootstrap_runs(dispatcher.drain()))
    apps = k8s.AppsV1Api(kube_client(sb, "c1"))
    edited = {"spec": {"template": {"spec": {"containers": [{"name": "metrics-server", "image": "example/ms:dev"}]}}}}
    apps.patch_namespaced_deployment("metrics-server", "kube-system", edited)
    eks = sb.client("eks")
    eks.tag_resource(resourceArn=eks.describe_cluster(name="c1")["cluster"]["arn"], tags={"eksops:bootstrap": "0"})
    applied_before = len(emulator.applies)

    [run] = bootstrap_runs(dispatcher.fire_schedule("cluster_bootstrap"))
    assert run.ok, run.error
    again = emulator.applies[applied_before:]
    deployment = "/apis/apps/v1/namespaces/kube-system/deployments/metrics-server"
    assert [a.params.get("force") for a in again if a.path == deployment] == ["true"]
    assert {a.params.get("force") for a in again} == {"true"}  # every object of the baseline is eksops'
    image = apps.read_namespaced_deployment("metrics-server", "kube-system").spec.template.spec.containers[0].image
    assert image == manifests.IMAGES["metrics-server"]
    result = run.result["clusters"]["c1"]
    assert "Deployment/kube-system/metrics-server" in result["changed_objects"]
    assert result["warnings"] == [] and result["left"] == [] and "left" not in result["kubernetes"]
