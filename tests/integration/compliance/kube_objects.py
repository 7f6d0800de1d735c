"""Builders of Kubernetes objects for the compliance rule tests: a compliant container and pod template by default,
each test changing only what its rule looks at."""

from __future__ import annotations

import copy
from typing import Any

IMAGE = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop/cart:1.4.2"


def container(name: str = "app", **fields: Any) -> dict[str, Any]:
    """A container every workload rule passes: requests and limits, probes, non-root, no escalation."""
    probe = {"httpGet": {"path": "/healthz", "port": 8080}}
    base: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "readinessProbe": probe,
        "livenessProbe": probe,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    base.update(fields)
    return base


def pod_spec(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "containers": list(containers) or [container()],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "automountServiceAccountToken": False,
        **fields,
    }


def workload(
    kind: str,
    namespace: str,
    name: str,
    spec: dict[str, Any] | None = None,
    *,
    replicas: int | None = 2,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment, DaemonSet or StatefulSet (apps/v1) with ``spec`` as its pod template's spec."""
    labels = labels or {"app": name}
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    body: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": copy.deepcopy(spec or pod_spec())},
    }
    if kind != "DaemonSet" and replicas is not None:
        body["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": body}


def pod(
    namespace: str,
    name: str,
    spec: dict[str, Any] | None = None,
    *,
    owner: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {"app": name}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "controller": True, "uid": "x", **owner}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(spec or pod_spec())}


def owner(kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    """An owner reference (controller: true) for ``pod(owner=...)``, ``replica_set`` and ``job``."""
    return {"apiVersion": api_version, "kind": kind, "name": name}


def _owned(meta: dict[str, Any], by: dict[str, Any] | None) -> dict[str, Any]:
    if by:
        meta["ownerReferences"] = [{"controller": True, "uid": "x", **by}]
    return meta


def replica_set(
    namespace: str,
    name: str,
    spec: dict[str, Any] | None = None,
    *,
    by: dict[str, Any] | None = None,
    replicas: int = 1,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An apps/v1 ReplicaSet, controlled by ``by`` (an ``owner(...)``) when given."""
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _owned({"name": name, "namespace": namespace}, by),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": copy.deepcopy(spec or pod_spec())},
        },
    }


def job(
    namespace: str, name: str, spec: dict[str, Any] | None = None, *, by: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A batch/v1 Job (its pod template restarts Never), controlled by ``by`` when given (a CronJob's run)."""
    template = {"restartPolicy": "Never", **copy.deepcopy(spec or pod_spec())}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _owned({"name": name, "namespace": namespace}, by),
        "spec": {"template": {"metadata": {"labels": {"job-name": name}}, "spec": template}},
    }


def cron_job(namespace: str, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A batch/v1 CronJob running nightly with ``spec`` as its Jobs' pod template's spec."""
    template = {"restartPolicy": "Never", **copy.deepcopy(spec or pod_spec())}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": template}}}},
    }


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
