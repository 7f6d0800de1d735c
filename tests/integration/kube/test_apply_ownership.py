"""apply_manifests(force="owned") and read_objects against the Kubernetes emulator over HTTP: conflicts are forced
only on objects eksops owns or creates; an apply without force that the server refuses leaves the object as it is."""

from __future__ import annotations

import copy
import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from eksops.kube.apply import apply_manifests, read_objects
from eksops_dev.kube import EksopsEmulator

Kube = tuple[str, EksopsEmulator]
NS = "shop"
EKSOPS = {"app.kubernetes.io/managed-by": "eksops"}
# How the API server records a `kubectl apply` (client-side) of an object: the field manager that created it.
KUBECTL = [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1"}]


def config_map(name: str, data: dict[str, str], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, **metadata},
        "data": data,
    }


@pytest.fixture
def api_client(kube: Kube) -> Iterator[Any]:
    import kubernetes

    url, _ = kube
    with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url)) as client:
        yield client


@pytest.fixture
def existing(api_client: Any) -> None:
    """A namespace, an eksops ConfigMap and one that someone created with kubectl (no eksops label)."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": NS, "managedFields": KUBECTL}})
    core.create_namespaced_config_map(NS, config_map("ours", {"a": "1"}, labels=EKSOPS))
    core.create_namespaced_config_map(NS, config_map("theirs", {"a": "1"}, managedFields=KUBECTL))


def sent(emulator: EksopsEmulator) -> dict[str, str | None]:
    """The last apply PATCH to each object path: its force parameter (None: not sent)."""
    return {a.path.rsplit("/", 1)[-1]: a.params.get("force") for a in emulator.applies}


@pytest.mark.usefixtures("existing")
def test_owned_mode_forces_conflicts_only_on_objects_eksops_owns_or_creates(api_client: Any, kube: Kube) -> None:
    _, emulator = kube
    docs = [
        config_map("ours", {"a": "2"}, labels=EKSOPS),
        config_map("theirs", {"a": "1"}, labels=EKSOPS),
        config_map("new", {"a": "1"}, labels=EKSOPS),
    ]
    summary = apply_manifests(api_client, copy.deepcopy(docs), force="owned")
    assert {o.name: o.outcome for o in summary.objects} == {
        "ours": "configured",
        "theirs": "configured",
        "new": "created",
    }
    assert sent(emulator) == {"ours": "true", "theirs": None, "new": "true"}
    # The default stays what every other caller relies on: force everywhere.
    apply_manifests(api_client, copy.deepcopy(docs))
    assert set(sent(emulator).values()) == {"true"}


@pytest.mark.usefixtures("existing")
def test_read_objects_returns_what_exists_and_none_for_the_rest(api_client: Any) -> None:
    docs = [
        config_map("theirs", {}),
        config_map("missing", {}),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": NS}},
    ]
    found = read_objects(api_client, docs)
    assert list(found) == [f"ConfigMap/{NS}/theirs", f"ConfigMap/{NS}/missing", f"Namespace/{NS}", f"Widget/{NS}/w"]
    assert found[f"ConfigMap/{NS}/theirs"]["metadata"]["managedFields"] == KUBECTL  # type: ignore[index]
    assert found[f"Namespace/{NS}"]["metadata"]["name"] == NS  # type: ignore[index]
    assert found[f"ConfigMap/{NS}/missing"] is None and found[f"Widget/{NS}/w"] is None


class ConflictProxy(http.server.ThreadingHTTPServer):
    """Forwards to the emulator, but answers an apply PATCH to ``path`` that does not force conflicts with 409, as the
    API server does when another field manager owns a field the apply sets to another value (the emulator keeps no
    field ownership, design.md). Forced applies and everything else go through."""

    def __init__(self, upstream: str, path: str) -> None:
        self.upstream, self.path = urlsplit(upstream), path
        self.refused: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: ConflictProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        is_apply = self.headers.get("Content-Type", "").startswith("application/apply-patch")
        if self.command == "PATCH" and is_apply and parts.path == self.server.path and "force=true" not in parts.query:
            self.server.refused.append(self.path)
            message = 'Apply failed with 1 conflict: conflict with "kubectl-label": .metadata.labels.team'
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409}
            self._reply(409, json.dumps({**status, "message": message}).encode())
            return
        upstream = http.client.HTTPConnection(str(self.server.upstream.hostname), self.server.upstream.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        self._reply(answer.status, answer.read(), answer.getheader("Content-Type") or "application/json")
        upstream.close()

    def _reply(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def conflicting(kube: Kube) -> Iterator[tuple[Any, ConflictProxy]]:
    """An ApiClient through a ConflictProxy that refuses unforced applies to namespace ``shop``."""
    import kubernetes

    url, _ = kube
    proxy = ConflictProxy(url, f"/api/v1/namespaces/{NS}")
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=proxy.url)) as client:
            yield client, proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.mark.usefixtures("existing")
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_refused_unforced_apply_leaves_the_object_and_says_why(
    conflicting: tuple[Any, ConflictProxy], kube: Kube, dry_run: bool
) -> None:
    client, proxy = conflicting
    _, emulator = kube
    before = copy.deepcopy(emulator.objects["v1/namespaces", None, NS].raw)
    labels = {"pod-security.kubernetes.io/enforce": "baseline", "team": "web"}
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": labels}},
        config_map("ours", {"a": "3"}, labels=EKSOPS),
    ]
    summary = apply_manifests(client, docs, force="owned", dry_run=dry_run)
    outcomes = {o.ref: o.outcome for o in summary.objects}
    assert outcomes == {f"Namespace/{NS}": "conflict", f"ConfigMap/{NS}/ours": "configured"}
    (conflict,) = summary.conflicts
    assert 'conflict with "kubectl-label"' in conflict.message and ".metadata.labels.team" in conflict.message
    (refused,) = proxy.refused  # sent once, without force
    query = dict(parse_qsl(urlsplit(refused).query))
    assert query == {"fieldManager": "eksops", **({"dryRun": "All"} if dry_run else {})}
    assert summary.changed  # the ConfigMap; a conflict is not a change
    assert emulator.objects["v1/namespaces", None, NS].raw == before  # left as it is
    stored = emulator.objects["v1/configmaps", NS, "ours"].raw["data"]
    assert stored == ({"a": "1"} if dry_run else {"a": "3"})
