"""Image rules against moto's ECR (pushed images, queued scan results) and the Kubernetes emulator's pods and
workloads, over HTTP."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from eksops.aws import client
from eksops_dev.ecr import image_manifest
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.kube_objects import owner, replica_set
from tests.integration.images.test_registry import post_findings

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
CRITICAL = {
    "findingSeverityCounts": {"CRITICAL": 1, "MEDIUM": 2},
    "findings": [
        {"name": "CVE-2024-3094", "severity": "CRITICAL", "uri": "https://nvd.nist.gov/vuln/detail/CVE-2024-3094"}
    ],
}
MEDIUM = {"findingSeverityCounts": {"MEDIUM": 2}, "findings": [{"name": "CVE-2023-4911", "severity": "MEDIUM"}]}


def push(repository: str, n: int, tag: str, mutability: str = "IMMUTABLE") -> str:
    ecr = client("ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository, imageTagMutability=mutability)
    image = ecr.put_image(repositoryName=repository, imageManifest=image_manifest(n), imageTag=tag)["image"]
    return str(image["imageId"]["imageDigest"])


def scanned(endpoint: str, repository: str, digest: str, findings: dict[str, Any], status: str = "COMPLETE") -> None:
    post_findings(
        endpoint,
        {
            "registryId": "123456789012",
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": status, "description": "scan"},
            "imageScanFindings": findings,
        },
    )
    client("ecr").start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})


def pod(
    cluster: ClusterUnderTest,
    namespace: str,
    name: str,
    image: str,
    image_id: str = "",
    phase: str = "Running",
    **meta: Any,
) -> None:
    """A running pod; ``image_id`` is what the kubelet reports it pulled (status.containerStatuses[].imageID)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"phase": phase},
    }
    if image_id:
        body["status"]["containerStatuses"] = [{"name": "app", "image": image, "imageID": image_id}]
    cluster.kube_create(body)


def deployment(cluster: ClusterUnderTest, namespace: str, name: str, *images: str, **meta: Any) -> None:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    cluster.kube_create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, **meta},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
            },
        }
    )


@pytest.fixture
def shop(cluster: ClusterUnderTest) -> ClusterUnderTest:
    cluster.create_cluster()
    cluster.namespace("shop")
    return cluster


# -- images-critical-findings ---------------------------------------------------------------------------------


def test_images_critical_findings_compliant(shop: ClusterUnderTest, aws: str) -> None:
    digest = push("cart", 1, "1.0")
    scanned(aws, "cart", digest, MEDIUM)
    pod(shop, "shop", "cart-1", f"{REGISTRY}/cart:1.0", f"{REGISTRY}/cart@{digest}")
    unscanned = push("web", 2, "2.0")  # no scan yet: nothing known, nothing found
    pod(shop, "shop", "web-1", f"{REGISTRY}/web@{unscanned}")
    pod(shop, "shop", "proxy-1", "public.ecr.aws/nginx/nginx:1.27")  # not in this account's ECR
    assert shop.violations("images-critical-findings") == []


def test_images_critical_findings_non_compliant(shop: ClusterUnderTest, aws: str) -> None:
    digest = push("cart", 1, "1.0")
    scanned(aws, "cart", digest, CRITICAL)
    pod(shop, "shop", "cart-1", f"{REGISTRY}/cart:1.0")  # no imageID reported yet: the tag is resolved in ECR
    pod(shop, "shop", "cart-2", f"{REGISTRY}/cart:1.0", f"{REGISTRY}/cart@{digest}")
    pod(shop, "shop", "done", f"{REGISTRY}/cart:1.0", phase="Succeeded")
    [found] = shop.violations("images-critical-findings")
    assert found.resource == f"image/cart@{digest}"
    assert found.evidence == (
        "1 finding at or above CRITICAL (CRITICAL: 1): CVE-2024-3094 (CRITICAL); running in pod(s) shop/cart-1, "
        "shop/cart-2"
    )


# -- ecr-mutable-tags -----------------------------------------------------------------------------------------


def test_ecr_mutable_tags_compliant(shop: ClusterUnderTest) -> None:
    push("cart", 1, "1.0", mutability="IMMUTABLE")
    push("unused", 2, "latest", mutability="MUTABLE")  # no pod runs it
    pod(shop, "shop", "cart-1", f"{REGISTRY}/cart:1.0")
    pod(shop, "shop", "gone-1", f"{REGISTRY}/deleted-repo:1.0")  # the repository is gone: nothing to judge
    assert shop.violations("ecr-mutable-tags") == []


def test_ecr_mutable_tags_non_compliant(shop: ClusterUnderTest) -> None:
    digest = push("cart", 1, "1.0", mutability="MUTABLE")
    pod(shop, "shop", "cart-1", f"{REGISTRY}/cart:1.0")
    pod(shop, "shop", "cart-2", f"{REGISTRY}/cart@{digest}")
    [found] = shop.violations("ecr-mutable-tags")
    assert found.resource == "repository/cart"
    assert found.evidence == f"imageTagMutability MUTABLE; running: 1.0, {digest}"


# -- images-latest-tag ----------------------------------------------------------------------------------------


def test_images_latest_tag_compliant(shop: ClusterUnderTest) -> None:
    deployment(shop, "shop", "cart", f"{REGISTRY}/cart:1.0", "busybox@sha256:" + "a" * 64)
    deployment(shop, "kube-system", "coredns", "coredns/coredns")  # platform namespaces are left out
    shop.kube_create(replica_set("shop", "cart-5d4f", by=owner("Deployment", "cart")))  # the Deployment's
    owned = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cart-5d4f", "uid": "1", "controller": True}
    pod(shop, "shop", "cart-1", "nginx:latest", ownerReferences=[owned])  # its controller's template decides
    assert shop.violations("images-latest-tag") == []


def test_images_latest_tag_non_compliant(shop: ClusterUnderTest) -> None:
    deployment(shop, "shop", "web", "nginx:latest", f"{REGISTRY}/web", annotations={"team": "web"})
    pod(shop, "shop", "debug", "busybox")  # a bare pod: reported as itself
    found = {v.resource: v for v in shop.violations("images-latest-tag")}
    assert set(found) == {"deployment/shop/web", "pod/shop/debug"}
    web = found["deployment/shop/web"]
    assert web.evidence == f"c0: nginx:latest (tag latest); c1: {REGISTRY}/web (no tag (pulls latest))"
    assert web.namespace == "shop" and web.annotations == {"team": "web"}
