"""Workload reliability rules against the Kubernetes emulator over HTTP."""

from __future__ import annotations

from typing import Any

from eksops.compliance.model import Violation
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.kube_objects import container, pod, pod_spec, workload


def found(cluster: ClusterUnderTest, rule_id: str, *objects: dict[str, Any], **settings: Any) -> dict[str, Violation]:
    for obj in objects:
        cluster.kube_create(obj)
    violations = cluster.violations(rule_id, **settings)
    by_resource = {v.resource: v for v in violations}
    assert len(by_resource) == len(violations), f"a resource reported twice: {violations}"
    return by_resource


def resources(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests is not None:
        out["requests"] = requests
    if limits is not None:
        out["limits"] = limits
    return out


def hpa(namespace: str, target: str, min_replicas: int | None = 2, kind: str = "Deployment") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
        "maxReplicas": 10,
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"{target}-hpa", "namespace": namespace},
        "spec": spec,
    }


def pdb(namespace: str, name: str, selector: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"maxUnavailable": 1}
    if selector is not None:
        spec["selector"] = selector
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# -- workload-missing-requests ------------------------------------------------------------------------------------


def test_workload_missing_requests_compliant(cluster: ClusterUnderTest) -> None:
    limits_only = container(resources=resources(limits={"cpu": "1", "memory": "1Gi"}))  # requests default to limits
    no_requests = container(resources={})
    assert (
        found(
            cluster,
            "workload-missing-requests",
            workload("Deployment", "shop", "cart"),
            workload("Deployment", "shop", "web", pod_spec(limits_only)),
            # an init container's requests are not required
            workload("Deployment", "shop", "api", pod_spec(container(), initContainers=[no_requests])),
            workload("DaemonSet", "kube-system", "kube-proxy", pod_spec(no_requests)),
        )
        == {}
    )


def test_workload_missing_requests_non_compliant(cluster: ClusterUnderTest) -> None:
    cpu_only = container("sidecar", resources=resources(requests={"cpu": "100m"}))
    violations = found(
        cluster,
        "workload-missing-requests",
        workload("Deployment", "shop", "cart", pod_spec(container(), cpu_only)),
        pod("shop", "debug", pod_spec(container(resources={}))),
    )
    assert violations["deployment/shop/cart"].evidence == "container sidecar: no memory request"
    assert violations["pod/shop/debug"].evidence == "container app: no cpu or memory request"


# -- workload-limits-over-requests --------------------------------------------------------------------------------


def test_workload_limits_over_requests_compliant(cluster: ClusterUnderTest) -> None:
    four_times = container(resources=resources({"cpu": "250m", "memory": "256Mi"}, {"cpu": "1", "memory": "1Gi"}))
    assert (
        found(
            cluster,
            "workload-limits-over-requests",
            workload("Deployment", "shop", "cart", pod_spec(four_times)),  # exactly the ratio: allowed
            workload("Deployment", "shop", "web", pod_spec(container(resources=resources({"cpu": "1"})))),  # no limit
        )
        == {}
    )


def test_workload_limits_over_requests_non_compliant(cluster: ClusterUnderTest) -> None:
    bursty = container(resources=resources({"cpu": "100m", "memory": "128Mi"}, {"cpu": "2", "memory": "256Mi"}))
    spec = pod_spec(bursty)
    violations = found(cluster, "workload-limits-over-requests", workload("StatefulSet", "shop", "db", spec))
    assert violations["statefulset/shop/db"].evidence == "container app: cpu limit 2 is 20.0x its request 100m"
    # the ratio is COMPLIANCE_LIMIT_RATIO's: at 1.5 the memory limit (2x) is reported too
    tight = {v.resource: v for v in cluster.violations("workload-limits-over-requests", limit_ratio=1.5)}
    assert "memory limit 256Mi is 2.0x its request 128Mi" in tight["statefulset/shop/db"].evidence


# -- deployment-single-replica --------------------------------------------------------------------------------------


def test_deployment_single_replica_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "deployment-single-replica",
            workload("Deployment", "shop", "cart", replicas=3),
            workload("Deployment", "shop", "batch", replicas=0),  # scaled to zero on purpose
            workload("Deployment", "shop", "web", replicas=1),  # its HPA keeps 2 at least
            hpa("shop", "web", min_replicas=2),
            workload("Deployment", "kube-system", "coredns", replicas=1),
        )
        == {}
    )


def test_deployment_single_replica_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "deployment-single-replica",
        workload("Deployment", "shop", "cart", replicas=None),  # replicas unset: 1
        workload("Deployment", "shop", "web", replicas=4),
        hpa("shop", "web", min_replicas=None),  # minReplicas defaults to 1
        workload("StatefulSet", "shop", "db", replicas=1),  # only Deployments
    )
    assert set(violations) == {"deployment/shop/cart", "deployment/shop/web"}
    assert violations["deployment/shop/cart"].evidence == "replicas 1"
    assert violations["deployment/shop/web"].evidence == "its HPA web-hpa has minReplicas 1"


# -- deployment-no-pdb ------------------------------------------------------------------------------------------------


def test_deployment_no_pdb_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "deployment-no-pdb",
            workload("Deployment", "shop", "cart", labels={"app": "cart", "tier": "web"}),
            pdb("shop", "cart", {"matchLabels": {"app": "cart"}}),
            workload("Deployment", "shop", "web", labels={"app": "web"}),
            pdb("shop", "web", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}),
            workload("Deployment", "shop", "solo", replicas=1),  # deployment-single-replica's
            workload("Deployment", "blog", "all"),
            pdb("blog", "everything", {}),  # an empty selector selects every pod of its namespace
        )
        == {}
    )


def test_deployment_no_pdb_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "deployment-no-pdb",
        workload("Deployment", "shop", "cart", labels={"app": "cart"}),
        pdb("shop", "other", {"matchLabels": {"app": "web"}}),
        pdb("shop", "null", None),  # a missing selector selects nothing
        pdb("blog", "everything", {}),  # another namespace's
        workload("Deployment", "shop", "web", replicas=1, labels={"app": "web-x"}),
        hpa("shop", "web", min_replicas=3),  # its HPA runs 3 at least
    )
    assert set(violations) == {"deployment/shop/cart", "deployment/shop/web"}
    assert violations["deployment/shop/cart"].evidence == (
        "2 replicas and no PodDisruptionBudget selects its pods (app=cart)"
    )


# -- deployment-no-hpa ------------------------------------------------------------------------------------------------


def test_deployment_no_hpa_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "deployment-no-hpa",
            workload("Deployment", "shop", "cart"),
            hpa("shop", "cart"),
            workload("Deployment", "shop", "batch", replicas=0),
        )
        == {}
    )


def test_deployment_no_hpa_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "deployment-no-hpa",
        workload("Deployment", "shop", "cart", replicas=3),
        hpa("blog", "cart"),  # the same name in another namespace
        workload("Deployment", "shop", "db", replicas=1),
        hpa("shop", "db", kind="StatefulSet"),  # scales a StatefulSet of the same name
    )
    assert set(violations) == {"deployment/shop/cart", "deployment/shop/db"}
    assert violations["deployment/shop/cart"].evidence == "replicas fixed at 3; no HPA targets it"


# -- workload-no-probes -------------------------------------------------------------------------------------------


def test_workload_no_probes_compliant(cluster: ClusterUnderTest) -> None:
    unprobed = {k: v for k, v in container("setup").items() if not k.endswith("Probe")}
    assert (
        found(
            cluster,
            "workload-no-probes",
            workload("Deployment", "shop", "cart", pod_spec(container(), initContainers=[unprobed])),
            workload("DaemonSet", "kube-system", "aws-node", pod_spec(unprobed)),
        )
        == {}
    )


def test_workload_no_probes_non_compliant(cluster: ClusterUnderTest) -> None:
    ready_only = container("sidecar", livenessProbe=None)
    bare = {k: v for k, v in container().items() if not k.endswith("Probe")}
    violations = found(
        cluster,
        "workload-no-probes",
        workload("Deployment", "shop", "cart", pod_spec(container(), ready_only)),
        workload("StatefulSet", "shop", "db", pod_spec(bare)),
    )
    assert violations["deployment/shop/cart"].evidence == "container sidecar: no liveness probe"
    assert violations["statefulset/shop/db"].evidence == "container app: no readiness or liveness probe"
