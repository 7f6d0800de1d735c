"""deploy/kubernetes/eksops-node-scaler-rbac.yaml against the requests node_scaler really sends to the Kubernetes
emulator: reading demand, reading and applying the headroom. The role must allow all of it and grant no more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from eksops.kube.apply import apply_manifests
from eksops.scaling.demand import read_cluster
from eksops.scaling.groups import NodeGroup
from eksops.scaling.headroom import NAMESPACE, HeadroomActuator
from eksops.scaling.pools import read_nodepools
from eksops_dev.kube import EksopsEmulator
from tests.unit.kube.test_rbac import ANY, allows, granted, requested

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "deploy/kubernetes/eksops-node-scaler-rbac.yaml"
GROUP = "eksops-node-scaler"


def docs() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}


@pytest.fixture
def api(kube: tuple[str, EksopsEmulator]) -> Iterator[Any]:
    import kubernetes

    url, _ = kube
    with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url)) as client:
        yield client


def test_the_file_is_valid_and_binds_both_roles_to_the_group_only() -> None:
    found = docs()
    assert set(found) == {"Namespace", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    for doc in found.values():
        kubernetes_validate.validate(doc, latest_version(), strict=True)
    for binding in (found["ClusterRoleBinding"], found["RoleBinding"]):
        assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}]
    assert found["Role"]["metadata"]["namespace"] == found["RoleBinding"]["metadata"]["namespace"] == NAMESPACE
    assert found["Namespace"]["metadata"]["name"] == NAMESPACE


def test_every_request_of_the_scaler_is_allowed_and_nothing_more_is_granted(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    _, emulator = kube
    group = NodeGroup(name="prod-general", arn="", cluster="prod", min_size=1, max_size=10, desired=2, instances=())
    pool = NodeGroup(
        name="karpenter:general",
        arn="",
        cluster="prod",
        min_size=0,
        max_size=10,
        desired=1,
        instances=(),
        nodepool="general",
    )
    headroom = HeadroomActuator()
    # The dynamic client's discovery, cached from here on (every authenticated user may discover).
    apply_manifests(api, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}])
    start = len(list(emulator))
    read_cluster(api, exclude_namespace=NAMESPACE)
    assert read_nodepools(api) == []
    assert headroom.replicas(api, group) == 0
    headroom.apply(api, group, replicas=3, pod_millicores=1000)  # creates
    assert headroom.replicas(api, group) == 3
    headroom.apply(api, group, replicas=5, pod_millicores=1000)  # patches
    # A NodePool's Deployment, and what the scaler remembers for the pool in its annotations.
    assert not headroom.annotate(api, pool, {"eksops/scaling-at-max": "2025-01-01T00:00:00Z"})
    headroom.apply(api, pool, replicas=0, pod_millicores=1000)
    assert headroom.annotate(api, pool, {"eksops/scaling-at-max": "2025-01-01T00:00:00Z"})
    assert headroom.read(api, pool).annotations["eksops/scaling-at-max"] == "2025-01-01T00:00:00Z"
    requests = list(emulator)[start:]
    needs = set(requested(requests))
    cluster_rules, namespace_rules = docs()["ClusterRole"]["rules"], docs()["Role"]["rules"]

    def allowed(need: tuple[str, str, str, str], namespace: str | None) -> bool:
        return allows(cluster_rules, *need) or (namespace == NAMESPACE and allows(namespace_rules, *need))

    namespaced = {need: r.namespace for r in requests for need in requested([r])}
    denied = sorted(need for need in needs if not allowed(need, namespaced[need]))
    assert not denied, f"{MANIFEST.name} would deny node_scaler: {denied}"
    # Nothing granted that the scaler never asked for (the Deployments' names follow the node groups: any name).
    extra = granted(cluster_rules) | granted(namespace_rules)
    never = sorted(grant for grant in extra if not any(n[:3] == grant[:3] and grant[3] in (ANY, n[3]) for n in needs))
    assert not never, f"{MANIFEST.name} grants what node_scaler never asks for: {never}"
