"""Observability rules against the Kubernetes emulator and moto over HTTP; the add-on's health (moto has no EKS add-on
API) through botocore's Stubber on the same EKS client the context reads with."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from eksops.aws import client
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.kube_objects import container, pod_spec, workload

ADDON = "amazon-cloudwatch-observability"
CW_IMAGE = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300062.0b1304"
FB_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.34.3"


def node(name: str, *, fargate: bool = False) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if fargate:
        labels["eks.amazonaws.com/compute-type"] = "fargate"
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def daemonset(namespace: str, name: str, image: str, *, ready: int, desired: int) -> dict[str, Any]:
    obj = workload("DaemonSet", namespace, name, pod_spec(container(name, image=image)))
    obj["status"] = {"desiredNumberScheduled": desired, "numberReady": ready, "numberAvailable": ready}
    return obj


def create(cluster: ClusterUnderTest, *objects: dict[str, Any]) -> None:
    for obj in objects:
        cluster.kube_create(obj)


@pytest.fixture
def addon(cluster: ClusterUnderTest) -> Iterator[Any]:
    """Stub the cluster's EKS add-ons: call it with the add-on's status (None: no add-on)."""
    stubber = Stubber(client("eks"))

    def stub(status: str | None, issues: list[dict[str, Any]] | None = None) -> None:
        stubber.add_response(
            "list_addons", {"addons": [ADDON] if status else ["vpc-cni"]}, {"clusterName": cluster.name}
        )
        if status:
            body = {
                "addonName": ADDON,
                "clusterName": cluster.name,
                "status": status,
                "health": {"issues": issues or []},
            }
            stubber.add_response("describe_addon", {"addon": body}, {"clusterName": cluster.name, "addonName": ADDON})

    with stubber:
        yield stub
    stubber.assert_no_pending_responses()


# -- observability-cloudwatch-agent -------------------------------------------------------------------------------


def test_observability_cloudwatch_agent_compliant(cluster: ClusterUnderTest) -> None:
    create(
        cluster,
        node("ip-10-0-1-10"),
        node("ip-10-0-2-10"),
        daemonset("amazon-cloudwatch", "cloudwatch-agent", CW_IMAGE, ready=2, desired=2),
        daemonset("amazon-cloudwatch", "cloudwatch-agent-windows", CW_IMAGE, ready=0, desired=0),  # no Windows node
    )
    assert cluster.violations("observability-cloudwatch-agent") == []


def test_observability_cloudwatch_agent_compliant_fargate_only(cluster: ClusterUnderTest) -> None:
    create(cluster, node("fargate-ip-10-0-1-10", fargate=True))  # no EC2 node runs DaemonSets: nothing to check
    assert cluster.violations("observability-cloudwatch-agent") == []


def test_observability_cloudwatch_agent_compliant_through_active_addon(cluster: ClusterUnderTest, addon: Any) -> None:
    create(cluster, node("ip-10-0-1-10"))
    addon("ACTIVE")
    assert cluster.violations("observability-cloudwatch-agent") == []


def test_observability_cloudwatch_agent_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()  # moto: no add-on API, so no add-on
    create(cluster, node("ip-10-0-1-10"), node("fargate-ip-10-0-1-11", fargate=True))
    (violation,) = cluster.violations("observability-cloudwatch-agent")
    assert violation.resource == f"cluster/{cluster.name}"
    assert violation.evidence == f"no CloudWatch agent DaemonSet, and no {ADDON} add-on"


def test_observability_cloudwatch_agent_non_compliant_not_ready(cluster: ClusterUnderTest, addon: Any) -> None:
    create(
        cluster,
        node("ip-10-0-1-10"),
        daemonset("amazon-cloudwatch", "cloudwatch-agent", CW_IMAGE, ready=1, desired=3),
    )
    addon("DEGRADED", [{"code": "InsufficientNumberOfReplicas", "message": "1 of 3 ready"}])
    (violation,) = cluster.violations("observability-cloudwatch-agent")
    assert violation.evidence == (
        "CloudWatch agent not ready: amazon-cloudwatch/cloudwatch-agent ready on 1 of 3 nodes, and the"
        f" {ADDON} add-on is DEGRADED (InsufficientNumberOfReplicas: 1 of 3 ready)"
    )


# -- observability-fluent-bit ---------------------------------------------------------------------------------------


def test_observability_fluent_bit_compliant(cluster: ClusterUnderTest) -> None:
    create(
        cluster,
        node("ip-10-0-1-10"),
        # a Helm install under another name: found by its image
        daemonset("logging", "log-shipper", FB_IMAGE, ready=1, desired=1),
    )
    assert cluster.violations("observability-fluent-bit") == []


def test_observability_fluent_bit_non_compliant(cluster: ClusterUnderTest, addon: Any) -> None:
    create(
        cluster,
        node("ip-10-0-1-10"),
        node("ip-10-0-2-10"),
        daemonset("amazon-cloudwatch", "fluent-bit", FB_IMAGE, ready=0, desired=0),  # its nodeSelector matches none
        daemonset("amazon-cloudwatch", "cloudwatch-agent", CW_IMAGE, ready=2, desired=2),  # not Fluent Bit
    )
    addon(None)
    (violation,) = cluster.violations("observability-fluent-bit")
    assert violation.evidence == (
        f"Fluent Bit DaemonSet amazon-cloudwatch/fluent-bit runs on none of 2 nodes, and no {ADDON} add-on"
    )


# -- observability-metrics-server -----------------------------------------------------------------------------------


def hpa(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 10,
        },
    }


def metrics_api(available: str, reason: str = "", message: str = "") -> dict[str, Any]:
    condition = {"type": "Available", "status": available, "reason": reason, "message": message}
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "service": {"namespace": "kube-system", "name": "metrics-server"},
        },
        "status": {"conditions": [condition]},
    }


def test_observability_metrics_server_compliant(cluster: ClusterUnderTest) -> None:
    assert cluster.violations("observability-metrics-server") == []  # no HPA depends on it yet
    create(cluster, hpa("shop", "cart"), metrics_api("True", "Passed", "all checks passed"))
    assert cluster.violations("observability-metrics-server") == []


def test_observability_metrics_server_non_compliant(cluster: ClusterUnderTest) -> None:
    create(cluster, hpa("shop", "cart"), hpa("shop", "web"))
    (violation,) = cluster.violations("observability-metrics-server")
    assert violation.resource == f"cluster/{cluster.name}"
    assert violation.evidence == (
        "2 HorizontalPodAutoscaler(s) (shop/cart; shop/web) but no APIService v1beta1.metrics.k8s.io:"
        " metrics-server is missing"
    )


def test_observability_metrics_server_non_compliant_unavailable(cluster: ClusterUnderTest) -> None:
    create(
        cluster,
        hpa("shop", "cart"),
        metrics_api("False", "FailedDiscoveryCheck", "failing or missing response from https://10.0.1.5:10251"),
    )
    (violation,) = cluster.violations("observability-metrics-server")
    assert violation.evidence == (
        "1 HorizontalPodAutoscaler(s) (shop/cart) but the metrics API is unavailable (FailedDiscoveryCheck:"
        " failing or missing response from https://10.0.1.5:10251)"
    )
