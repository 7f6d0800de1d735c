"""eksops.kube.apply against the Kubernetes emulator over HTTP, with the real kubernetes client."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from eksops.kube import manifests
from eksops.kube.apply import ApplySummary, apply_manifests, order_manifests
from eksops_dev.kube import EksopsEmulator

Kube = tuple[str, EksopsEmulator]

NS = "eksops-system"
MANIFESTS: list[dict[str, Any]] = [
    # Deliberately out of order: apply_manifests must put the namespace and cluster RBAC first.
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "node-agent"}},
            "template": {
                "metadata": {"labels": {"app": "node-agent"}},
                "spec": {"serviceAccountName": "node-agent", "containers": [{"name": "agent", "image": "agent:1"}]},
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "agent-config", "namespace": NS},
        "data": {"a": "1"},
    },
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "node-agent", "namespace": NS}},
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "node-agent"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-agent"},
        "subjects": [{"kind": "ServiceAccount", "name": "node-agent", "namespace": NS}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "node-agent"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}],
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": NS},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
]
DS_KEY = ("apps/v1/daemonsets", NS, "node-agent")


@pytest.fixture
def api_client(kube: Kube) -> Iterator[Any]:
    import kubernetes

    url, _ = kube
    with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url)) as client:
        yield client


def apply(api_client: Any, **kwargs: Any) -> ApplySummary:
    return apply_manifests(api_client, copy.deepcopy(MANIFESTS), **kwargs)


def outcomes(summary: ApplySummary) -> dict[str, str]:
    return {obj.ref: obj.outcome for obj in summary.objects}


def test_first_apply_creates_every_object_namespace_and_cluster_rbac_first(api_client: Any, kube: Kube) -> None:
    _, emulator = kube
    summary = apply(api_client)

    assert [obj.kind for obj in summary.objects][:3] == ["Namespace", "ClusterRole", "ClusterRoleBinding"]
    assert set(outcomes(summary).values()) == {"created"}
    assert summary.count("created") == len(MANIFESTS)
    assert len(emulator.objects) == len(MANIFESTS)
    assert emulator.objects[DS_KEY] >= {"spec": {"template": {"spec": {"serviceAccountName": "node-agent"}}}}
    assert emulator.objects["v1/namespaces", None, NS] >= {"metadata": {"name": NS}}


def test_second_apply_reports_everything_unchanged(api_client: Any) -> None:
    apply(api_client)
    summary = apply(api_client)
    assert set(outcomes(summary).values()) == {"unchanged"}
    assert not summary.changed


def shipped() -> list[dict[str, Any]]:
    """Every object the shipped manifests hold, as cluster_bootstrap renders them for a cluster with Fargate."""
    return (
        manifests.render_observability("c1", "eu-west-1")
        + manifests.render_metrics_server(True)
        + manifests.render_fargate_logging("c1", "eu-west-1")
        + [manifests.default_deny("shop", egress=True)]
    )


def test_a_second_full_apply_of_the_shipped_manifests_changes_no_object(api_client: Any, kube: Kube) -> None:
    _, emulator = kube
    first = apply_manifests(api_client, shipped())
    assert set(outcomes(first).values()) == {"created"}
    stored = {key: copy.deepcopy(obj.raw) for key, obj in emulator.objects.items()}

    second = apply_manifests(api_client, shipped())  # a full apply, not the reconcile's read-only shortcut
    assert set(outcomes(second).values()) == {"unchanged"}
    assert len(emulator.applies) == 2 * len(shipped())  # every object was sent again
    # Bodies and resourceVersions as they were: the server saw nothing to change.
    assert {key: obj.raw for key, obj in emulator.objects.items()} == stored


def test_apply_sends_field_manager_eksops_and_forces_conflicts(api_client: Any, kube: Kube) -> None:
    _, emulator = kube
    apply(api_client)
    apply(api_client, dry_run=True)
    sent = [(a.params.get("fieldManager"), a.params.get("force"), a.params.get("dryRun")) for a in emulator.applies]
    real, dry = sent[: len(MANIFESTS)], sent[len(MANIFESTS) :]
    assert set(real) == {("eksops", "true", None)}
    assert set(dry) == {("eksops", "true", "All")} and len(dry) == len(MANIFESTS)
    assert {a.path for a in emulator.applies[: len(MANIFESTS)]} >= {
        f"/apis/apps/v1/namespaces/{NS}/daemonsets/node-agent",
        f"/api/v1/namespaces/{NS}",
    }


def test_an_exhausted_deadline_stops_the_apply(api_client: Any, kube: Kube) -> None:
    import time

    from eksops.errors import TemporaryError

    _, emulator = kube
    with pytest.raises(TemporaryError, match="out of time"):
        apply(api_client, deadline=time.monotonic() - 1)
    assert emulator.applies == []


def test_a_changed_manifest_is_configured(api_client: Any) -> None:
    apply(api_client)
    docs = copy.deepcopy(MANIFESTS)
    docs[1]["data"] = {"a": "2"}
    summary = apply_manifests(api_client, docs)
    assert outcomes(summary)[f"ConfigMap/{NS}/agent-config"] == "configured"
    assert summary.count("configured") == 1


def test_a_hand_deleted_daemonset_comes_back(api_client: Any, kube: Kube) -> None:
    _, emulator = kube
    apply(api_client)
    emulator.objects[DS_KEY].delete()  # as `kubectl delete daemonset` would leave it

    summary = apply(api_client)
    assert outcomes(summary)[f"DaemonSet/{NS}/node-agent"] == "created"
    assert summary.count("unchanged") == len(MANIFESTS) - 1
    assert not emulator.objects[DS_KEY].deleted


def test_dry_run_changes_nothing(api_client: Any, kube: Kube) -> None:
    _, emulator = kube
    summary = apply(api_client, dry_run=True)
    assert summary.dry_run
    assert set(outcomes(summary).values()) == {"created"}
    assert len(emulator.objects) == 0

    apply(api_client)
    docs = copy.deepcopy(MANIFESTS)
    docs[1]["data"] = {"a": "2"}
    versions = {key: obj.raw["metadata"]["resourceVersion"] for key, obj in emulator.objects.items()}
    summary = apply_manifests(api_client, docs, dry_run=True)
    assert outcomes(summary)[f"ConfigMap/{NS}/agent-config"] == "configured"
    assert summary.count("unchanged") == len(MANIFESTS) - 1
    assert {key: obj.raw["metadata"]["resourceVersion"] for key, obj in emulator.objects.items()} == versions
    assert emulator.objects["v1/configmaps", NS, "agent-config"] >= {"data": {"a": "1"}}


def test_order_is_stable_within_a_kind_and_unknown_kinds_go_last() -> None:
    docs = [
        {"kind": "APIService"},
        {"kind": "Widget", "n": 1},
        {"kind": "ConfigMap", "n": 1},
        {"kind": "Widget", "n": 2},
        {"kind": "ConfigMap", "n": 2},
        {"kind": "Namespace"},
    ]
    assert [(d["kind"], d.get("n")) for d in order_manifests(docs)] == [
        ("Namespace", None),
        ("ConfigMap", 1),
        ("ConfigMap", 2),
        ("Widget", 1),
        ("Widget", 2),
        ("APIService", None),
    ]


def test_importing_the_module_does_not_import_kubernetes() -> None:
    import subprocess
    import sys

    code = "import sys, eksops.kube.apply; assert 'kubernetes' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
