"""kmock's KubernetesEmulator made to behave as the real API server for what eksops applies, served over HTTP.

kmock 0.8 as found (see docs: design.md, "The Kubernetes emulator"): resources must be declared before discovery
sees them, an apply PATCH to a missing object answers 404, and `/api/v1/namespaces[/<name>]` breaks its path
parser. `EksopsEmulator` closes exactly those gaps, plus the two server behaviours `eksops.kube.apply` relies
on: `metadata.resourceVersion` (bumped only on a real change) and `?dryRun=All`. Everything else is kmock's.
Each deviation from stock kmock is marked "DEVIATION" below. Every apply PATCH is also recorded, with its query
parameters, in `EksopsEmulator.applies`, so tests can check what the client asked for (fieldManager, force, dryRun).

What it does NOT emulate: field ownership. The API server tracks which field manager set each field
(`metadata.managedFields`), so a server-side apply that no longer sets a field removes it, and a conflicting
apply without force fails with 409. This emulator merges an apply PATCH into the stored object like a merge
patch: a field dropped from a manifest stays in the stored object, no conflict is ever reported, and objects
carry no managedFields. Tests that depend on those semantics must run against a real API server.

`serve()` runs the emulator on 127.0.0.1 (a free port) in a background thread with its own event loop, because
the code under test (the official `kubernetes` client) is synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import dicts, parsing  # private, but the only place to fix the path parser

# group/version/plural, kind, namespaced: what eksops manages or reads. One list; discovery is built from it.
RESOURCES: tuple[tuple[str, str, bool], ...] = (
    ("v1/namespaces", "Namespace", False),
    ("v1/configmaps", "ConfigMap", True),
    ("v1/serviceaccounts", "ServiceAccount", True),
    ("v1/services", "Service", True),
    ("apps/v1/daemonsets", "DaemonSet", True),
    ("apps/v1/deployments", "Deployment", True),
    ("rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding", False),
    ("rbac.authorization.k8s.io/v1/roles", "Role", True),
    ("rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", True),
    ("networking.k8s.io/v1/networkpolicies", "NetworkPolicy", True),
    ("apiregistration.k8s.io/v1/apiservices", "APIService", False),
    # node_scaler reads pods and nodes, and applies the headroom's PriorityClass
    ("v1/pods", "Pod", True),
    ("v1/nodes", "Node", False),
    ("scheduling.k8s.io/v1/priorityclasses", "PriorityClass", False),
    # and lists Karpenter's NodePools (cluster-scoped) for the headroom actuator
    ("karpenter.sh/v1/nodepools", "NodePool", False),
    # compliance_sweep reads workloads' autoscaling and disruption budgets
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget", True),
    ("apps/v1/statefulsets", "StatefulSet", True),
    # and every pod's controller: ReplicaSets, Jobs and CronJobs
    ("apps/v1/replicasets", "ReplicaSet", True),
    ("batch/v1/jobs", "Job", True),
    ("batch/v1/cronjobs", "CronJob", True),
)
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
APPLY_PATCH = "application/apply-patch+yaml"

ObjectKey = tuple[Any, str | None, str]  # (kmock resource, namespace or None, name)


@attrs.frozen
class ApplyRecord:
    """One apply PATCH as the emulator received it: its path and query parameters."""

    path: str
    params: dict[str, str]


# DEVIATION 1: kmock 0.8's parse_path always reads `namespaces/<x>` after the version as a namespace prefix, so
# the Namespace resource's own URLs fail: `/api/v1/namespaces` raises (tuple unpacking) and `/api/v1/namespaces/x`
# parses as "namespace x, no resource". The parser is a module function called from Request._parse (no hook on
# the handler), so it is wrapped here: only those two URL shapes are re-parsed, all others go to kmock unchanged.
# Other cluster-scoped resources (clusterroles, apiservices, ...) already parse correctly.
def _parse_path(path: str) -> parsing.ParsedPath:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (3, 4):
        return parsing.ParsedPath(
            group="", version="v1", plural="namespaces", name=parts[3] if len(parts) == 4 else None
        )
    return _kmock_parse_path(path)


if not getattr(parsing.parse_path, "_eksops_wrapped", False):  # idempotent on re-import
    _kmock_parse_path = parsing.parse_path
    _parse_path._eksops_wrapped = True  # type: ignore[attr-defined]
    parsing.parse_path = _parse_path
else:
    _kmock_parse_path = parsing.parse_path.__globals__["_kmock_parse_path"]


class EksopsEmulator(kmock.KubernetesEmulator):
    """A KubernetesEmulator with eksops' resources declared and the API-server behaviours eksops relies on."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # DEVIATION 2: declare the resources (kind, scope, verbs) so that discovery, and so the dynamic client,
        # sees them; stock kmock only discovers what was declared or already has objects.
        for key, kind, namespaced in RESOURCES:
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, singular=kind.lower(), verbs=VERBS
            )
        self._versions = itertools.count(1)
        self.applies: list[ApplyRecord] = []

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        action = request.action
        if request.resource is None or action not in (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE):
            return await super()._handle(request)
        data = request.data if isinstance(request.data, Mapping) else None
        name = request.name or (data or {}).get("metadata", {}).get("name")
        current = self._current((request.resource, request.namespace, name)) if name else None

        # DEVIATION 3: an apply PATCH to a missing object creates it, as the API server does (kmock answers 404).
        is_apply = request.headers.get("Content-Type", "").startswith(APPLY_PATCH)
        if is_apply:
            self.applies.append(ApplyRecord(str(request.url.path), dict(request.params)))
        if action == kmock.action.UPDATE and is_apply and current is None and data is not None:
            action = kmock.action.CREATE
            data = dicts.patch_dict(data, {"metadata": {"name": request.name}})

        # DEVIATION 4: the API server owns metadata.uid/creationTimestamp/resourceVersion and bumps resourceVersion
        # only when a write changes the object; kmock keeps none of them. Clients use it to tell "no change".
        if data is not None and action == kmock.action.CREATE:
            data = self._stamp_new(request.resource, data, request.namespace)
        elif data is not None and action == kmock.action.UPDATE and current is not None:
            data = self._stamp_update(current, data)

        # DEVIATION 5: ?dryRun=All answers what the write would produce and stores nothing (kmock always stores).
        if request.params.get("dryRun") == "All":
            return self._dry_run(action, current, data)

        if action != request.action or data is not request.data:
            # kmock matches its reactions by the identity of the request in its journal: swap it there too.
            evolved = attrs.evolve(request, action=action, data=data)
            index = next(i for i, seen in enumerate(self._requests) if seen is request)
            self._requests[index] = request = evolved
        return await super()._handle(request)

    async def _serve_list(self, request: kmock.Request) -> Any:
        # DEVIATION 6: a list carries apiVersion and kind (`<Kind>List`) as the API server's do; the dynamic client
        # reads `kind` to wrap the answer and fails on kmock's bare {"metadata", "items"}.
        payload = await super()._serve_list(request)
        assert request.resource is not None  # a list request always names its resource
        kind = self.resources[request.resource].kind
        return {"apiVersion": _api_version(request.resource), "kind": f"{kind}List", **dict(payload)}  # type: ignore[arg-type]

    def _current(self, key: ObjectKey) -> dict[str, Any] | None:
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def _stamp_new(self, resource: Any, data: Mapping[str, Any], namespace: str | None) -> Mapping[str, Any]:
        # Also apiVersion/kind, which the API server always stores and a plain POST body may omit.
        meta: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "creationTimestamp": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resourceVersion": str(next(self._versions)),
        }
        if namespace is not None:
            meta["namespace"] = namespace
        kind = self.resources[resource].kind
        return dicts.patch_dict(data, {"apiVersion": _api_version(resource), "kind": kind, "metadata": meta})

    def _stamp_update(self, current: Mapping[str, Any], patch: Mapping[str, Any]) -> Mapping[str, Any]:
        version = current.get("metadata", {}).get("resourceVersion")
        patched = dicts.patch_dict(current, patch)
        if _without_version(patched) != _without_version(current):
            version = str(next(self._versions))
        return dicts.patch_dict(patch, {"metadata": {"resourceVersion": version}})

    def _dry_run(
        self, action: kmock.action, current: Mapping[str, Any] | None, data: Mapping[str, Any] | None
    ) -> aiohttp.web.StreamResponse:
        if action == kmock.action.CREATE:
            if current is not None:
                raise kmock.KubernetesError(status=409, reason="AlreadyExists", message="the object already exists")
            return aiohttp.web.json_response(data, status=201)
        if current is None:
            raise kmock.KubernetesObjectNotFoundError()
        if action == kmock.action.UPDATE:
            return aiohttp.web.json_response(dicts.patch_dict(current, data or {}))
        return aiohttp.web.json_response(current)  # DELETE


def _api_version(resource: Any) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def _without_version(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return dicts.patch_dict(obj, {"metadata": {"resourceVersion": None}})


def forget_discovery(url: str) -> None:
    """Remove the kubernetes client's discovery cache for ``url``. The dynamic client keeps it in the temp directory
    under a name derived from the host alone; a port the OS hands out again (another test, another worker) would
    otherwise find an earlier emulator's resources there, and rediscover in the middle of a test."""
    name = f"osrcp-{hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()}.json"
    (Path(tempfile.gettempdir()) / name).unlink(missing_ok=True)


@contextlib.contextmanager
def serve(emulator: EksopsEmulator | None = None) -> Iterator[tuple[str, EksopsEmulator]]:
    """Serve the emulator on 127.0.0.1 (free port) from a background event-loop thread; yield (base URL, emulator)."""
    emulator = emulator if emulator is not None else EksopsEmulator()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def run() -> None:
        state["stop"] = stop = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        try:
            async with emulator, kmock.Server(emulator) as server:  # port 0: the OS picks a free one
                state["url"] = str(server.url).rstrip("/")
                started.set()
                await stop.wait()
        finally:
            started.set()  # unblock the caller if start-up failed

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            state["error"] = exc

    thread = threading.Thread(target=target, name="kube-emulator", daemon=True)
    thread.start()
    started.wait(timeout=30)
    if "url" not in state:
        raise RuntimeError("the Kubernetes emulator did not start") from state.get("error")
    forget_discovery(state["url"])
    try:
        yield state["url"], emulator
    finally:
        forget_discovery(state["url"])
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(timeout=30)
