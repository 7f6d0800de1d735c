"""The Kubernetes emulator itself behaves as the API server does for what eksops needs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from eksops_dev.kube import RESOURCES, EksopsEmulator

Kube = tuple[str, EksopsEmulator]


def call(url: str, method: str = "GET", body: Any = None, content_type: str = "application/json") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def status_of(url: str, method: str = "GET") -> int:
    with pytest.raises(urllib.error.HTTPError) as info:
        call(url, method)
    return info.value.code


def test_discovery_lists_every_declared_resource_with_kind_and_scope(kube: Kube) -> None:
    url, _ = kube
    served: dict[str, tuple[str, bool]] = {}
    group_versions = ["v1"] + [
        version["groupVersion"] for group in call(f"{url}/apis")["groups"] for version in group["versions"]
    ]
    for group_version in group_versions:
        prefix = "/api/" if group_version == "v1" else "/apis/"
        for res in call(f"{url}{prefix}{group_version}")["resources"]:
            served[f"{group_version}/{res['name']}"] = (res["kind"], res["namespaced"])
            assert {"get", "list", "create", "patch", "delete"} <= set(res["verbs"])
    assert served == {key: (kind, namespaced) for key, kind, namespaced in RESOURCES}


@pytest.mark.parametrize(
    ("collection", "kind"),
    [
        ("/api/v1/namespaces", "Namespace"),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole"),
        ("/apis/apiregistration.k8s.io/v1/apiservices", "APIService"),
        ("/api/v1/namespaces/team/configmaps", "ConfigMap"),
        ("/apis/apps/v1/namespaces/team/daemonsets", "DaemonSet"),
    ],
)
def test_create_get_list_patch_delete(kube: Kube, collection: str, kind: str) -> None:
    url, emulator = kube
    created = call(f"{url}{collection}", "POST", {"metadata": {"name": "one", "labels": {"a": "1"}}})
    assert created["kind"] == kind
    assert created["metadata"]["resourceVersion"]
    assert created["metadata"].get("namespace") == ("team" if "/namespaces/team/" in collection else None)

    assert call(f"{url}{collection}/one")["metadata"]["uid"] == created["metadata"]["uid"]
    listed = call(f"{url}{collection}")
    assert listed["kind"] == f"{kind}List"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["one"]

    patched = call(
        f"{url}{collection}/one", "PATCH", {"metadata": {"labels": {"b": "2"}}}, "application/merge-patch+json"
    )
    assert patched["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert patched["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]

    call(f"{url}{collection}/one", "DELETE")
    assert status_of(f"{url}{collection}/one") == 404
    assert call(f"{url}{collection}")["items"] == []
    assert len(emulator.objects) == 1  # kept in history, soft-deleted


def test_apply_patch_creates_then_updates_and_bumps_version_only_on_change(kube: Kube) -> None:
    url, emulator = kube
    path = f"{url}/apis/rbac.authorization.k8s.io/v1/clusterroles/reader"
    body = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}
    apply = "application/apply-patch+yaml"

    created = call(path, "PATCH", {**body, "rules": [{"verbs": ["get"]}]}, apply)
    same = call(path, "PATCH", {**body, "rules": [{"verbs": ["get"]}]}, apply)
    changed = call(path, "PATCH", {**body, "rules": [{"verbs": ["get", "list"]}]}, apply)

    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert changed["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert emulator.objects["rbac.authorization.k8s.io/v1/clusterroles", None, "reader"] >= {
        "rules": [{"verbs": ["get", "list"]}]
    }


def test_dry_run_answers_without_storing(kube: Kube) -> None:
    url, emulator = kube
    path = f"{url}/api/v1/namespaces/team/serviceaccounts/bot"
    answer = call(f"{path}?dryRun=All", "PATCH", {"metadata": {"name": "bot"}}, "application/apply-patch+yaml")
    assert answer["metadata"]["name"] == "bot"
    assert status_of(path) == 404
    assert len(emulator.objects) == 0


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/namespaces/missing", "GET"),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles/missing", "GET"),
        ("/apis/apps/v1/namespaces/team/deployments/missing", "GET"),
        ("/apis/apps/v1/namespaces/team/deployments/missing", "DELETE"),
    ],
)
def test_unknown_objects_answer_404(kube: Kube, path: str, method: str) -> None:
    url, _ = kube
    assert status_of(f"{url}{path}", method) == 404


def test_a_plain_merge_patch_to_a_missing_object_is_still_404(kube: Kube) -> None:
    url, _ = kube
    with pytest.raises(urllib.error.HTTPError) as info:
        call(f"{url}/api/v1/namespaces/x", "PATCH", {"metadata": {"labels": {}}}, "application/merge-patch+json")
    assert info.value.code == 404
