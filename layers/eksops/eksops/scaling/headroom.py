"""The headroom actuator: a Deployment of low-priority pause pods per node group or Karpenter NodePool, applied
server-side.

The pause pods request CPU and do nothing. Cluster Autoscaler or Karpenter adds nodes for those that do not fit,
ahead of the real pods; a real pod preempts a pause pod at once (its priority is higher), and the evicted pause
pod goes pending, which makes the autoscaler add a node for it. So eksops never changes a group's desired
capacity that another autoscaler manages: it only says, through pending pause pods, what is coming.

The PriorityClass is -1: below every workload (0 by default), yet above Cluster Autoscaler's
``--expendable-pods-priority-cutoff`` (-10), under which pods would not make it scale up. ``preemptionPolicy:
Never`` keeps the pause pods from ever evicting anything. The pause pods tolerate exactly the group's taints
(:attr:`NodeGroup.taints`): an autoscaler adds no node for a pod that would not tolerate it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eksops.kube.apply import MANAGED_BY, ApplySummary, apply_manifests
from eksops.scaling.groups import NodeGroup

__all__ = [
    "NAMESPACE",
    "PAUSE_IMAGE",
    "PRIORITY",
    "PRIORITY_CLASS",
    "HeadroomActuator",
    "Held",
    "base_objects",
    "deployment",
    "deployment_name",
    "state_annotation",
]

NAMESPACE = "eksops-headroom"
PRIORITY_CLASS = "eksops-headroom"
PRIORITY = -1
# Pinned like the bootstrap manifests' images (eksops.kube.manifests.IMAGES): a tag, never a moving one.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
APP_LABEL = "app.kubernetes.io/name"
APP = "eksops-headroom"
GROUP_ANNOTATION = "eksops/auto-scaling-group"
NODEPOOL_ANNOTATION = "eksops/nodepool"  # instead of GROUP_ANNOTATION on a Karpenter NodePool's Deployment
_UNSAFE = re.compile(r"[^a-z0-9-]+")
NAME_LIMIT = 63  # the name is also a label value


def deployment_name(group: str) -> str:
    """A DNS label for the group's Deployment: readable, and unique by a hash (ASG names allow any character)."""
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]
    slug = _UNSAFE.sub("-", group.lower()).strip("-")[: NAME_LIMIT - len("headroom--") - len(digest)].strip("-")
    return f"headroom-{slug}-{digest}" if slug else f"headroom-{digest}"


def state_annotation(tag: str) -> str:
    """The annotation that keeps a NodePool's bookkeeping tag (``eksops:scaling-x`` -> ``eksops/scaling-x``): a pool
    has no Auto Scaling group to tag, so what the scaler remembers for it lives on its headroom Deployment."""
    return tag.replace(":", "/", 1)


def _labels(**extra: str) -> dict[str, str]:
    key, value = MANAGED_BY
    return {key: value, APP_LABEL: APP, **extra}


def base_objects() -> list[dict[str, Any]]:
    """The namespace and PriorityClass every headroom Deployment uses."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": _labels()}},
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": PRIORITY_CLASS, "labels": _labels()},
            "value": PRIORITY,
            "globalDefault": False,
            "preemptionPolicy": "Never",
            "description": "eksops headroom: pause pods that any workload preempts; they make the autoscaler add "
            "nodes ahead of demand",
        },
    ]


def deployment(group: NodeGroup, *, replicas: int, pod_millicores: int) -> dict[str, Any]:
    """The group's pause-pod Deployment: ``replicas`` pods of ``pod_millicores`` each, on the group's nodes."""
    name = deployment_name(group.name)
    selector = {APP_LABEL: APP, "eksops/headroom": name}
    pod_spec: dict[str, Any] = {
        "priorityClassName": PRIORITY_CLASS,
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65535,
            "runAsGroup": 65535,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "pause",
                "image": PAUSE_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "resources": {
                    "requests": {"cpu": f"{pod_millicores}m", "memory": "16Mi"},
                    "limits": {"cpu": f"{pod_millicores}m", "memory": "16Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if group.node_labels():
        pod_spec["nodeSelector"] = group.node_labels()
    if group.taints:
        # Exactly the group's taints: Cluster Autoscaler and Karpenter add nodes only for pods that tolerate them.
        pod_spec["tolerations"] = [taint.toleration() for taint in group.taints]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": _labels(**{"eksops/headroom": name}),
            "annotations": {
                **({GROUP_ANNOTATION: group.name} if group.nodepool is None else {NODEPOOL_ANNOTATION: group.nodepool}),
                "eksops/cluster": group.cluster,
            },
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": _labels(**{"eksops/headroom": name})}, "spec": pod_spec},
        },
    }


@dataclass(frozen=True)
class Held:
    """A group's Deployment as read: the replicas it asks for and its annotations (none when it does not exist)."""

    exists: bool
    replicas: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)


class HeadroomActuator:
    """Reads and sets the pause pods of a group through a cluster's Kubernetes API client."""

    def __init__(self, *, field_manager: str = "eksops") -> None:
        self._field_manager = field_manager

    def read(self, api_client: Any, group: NodeGroup) -> Held:
        """The group's Deployment now (``exists`` False when there is none)."""
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        apps: Any = k8s.AppsV1Api(api_client)  # raw JSON (_preload_content=False), not the typed model
        try:
            raw = apps.read_namespaced_deployment(deployment_name(group.name), NAMESPACE, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return Held(exists=False)
            raise
        body = json.loads(raw.data)
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return Held(
            exists=True,
            replicas=max(0, int((body.get("spec") or {}).get("replicas") or 0)),
            annotations={str(k): str(v) for k, v in annotations.items()},
        )

    def replicas(self, api_client: Any, group: NodeGroup) -> int:
        """The replicas the group's Deployment asks for now (0 when there is none)."""
        return self.read(api_client, group).replicas

    def annotate(self, api_client: Any, group: NodeGroup, annotations: Mapping[str, str | None]) -> bool:
        """Set (None: remove) annotations of the group's Deployment with a JSON merge patch, which leaves every
        other field and its server-side apply ownership alone. False when the Deployment does not exist."""
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        apps: Any = k8s.AppsV1Api(api_client)
        try:
            apps.patch_namespaced_deployment(
                deployment_name(group.name),
                NAMESPACE,
                {"metadata": {"annotations": dict(annotations)}},
                field_manager=self._field_manager,
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def apply(
        self, api_client: Any, group: NodeGroup, *, replicas: int, pod_millicores: int, deadline: float | None = None
    ) -> ApplySummary:
        """Server-side apply of the namespace and PriorityClass, then the Deployment (pods need their class)."""
        base = apply_manifests(api_client, base_objects(), field_manager=self._field_manager, deadline=deadline)
        pods = apply_manifests(
            api_client,
            [deployment(group, replicas=replicas, pod_millicores=pod_millicores)],
            field_manager=self._field_manager,
            deadline=deadline,
        )
        return ApplySummary(objects=base.objects + pods.objects, dry_run=False)
