"""What the Kubernetes rules walk: workloads and their pod templates, system namespaces and subjects, selectors.

A workload is a Deployment, DaemonSet or StatefulSet (its pod template), or a bare pod (one no controller owns:
nothing recreates it). Findings are reported once per workload (``deployment/shop/cart``), never once per replica.
Pods that a controller owns are left to that controller's template; pods of Jobs and CronJobs are not walked yet
(their pods come and go with each run, so a finding on them would churn between sweeps).

System namespaces (the platform's, AWS add-ons' and eksops' own) are left out of namespace and workload rules, as
the EKS Best Practices Guide and hardeneks leave them out: their agents need host access by design.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eksops.compliance.model import KubePermission

if TYPE_CHECKING:
    from eksops.compliance.context import ClusterContext

# kube-system, kube-public, kube-node-lease; amazon-cloudwatch, aws-observability and other AWS add-ons'; eksops'
# own (eksops-headroom, eksops.scaling.headroom.NAMESPACE, not imported here: it would load node scaling).
SYSTEM_NAMESPACES: tuple[str, ...] = (
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "amazon-*",
    "aws-*",
    "eks-*",
    "eksops-*",
)

WORKLOAD_KINDS: tuple[tuple[str, str, str], ...] = (
    ("apps/v1", "deployments", "Deployment"),
    ("apps/v1", "daemonsets", "DaemonSet"),
    ("apps/v1", "statefulsets", "StatefulSet"),
)
# What walking the workloads reads (list, cluster-wide): every workload rule needs exactly these.
WORKLOAD_READS: tuple[KubePermission, ...] = (
    KubePermission("apps", "deployments", ("list",)),
    KubePermission("apps", "daemonsets", ("list",)),
    KubePermission("apps", "statefulsets", ("list",)),
    KubePermission("", "pods", ("list",)),
)

# Groups that stand for many principals: a binding to one of them is never a "system" binding.
_BROAD_GROUPS = frozenset(
    {"system:authenticated", "system:unauthenticated", "system:anonymous", "system:serviceaccounts"}
)


def is_system_namespace(namespace: str) -> bool:
    """Whether ``namespace`` belongs to the platform, an AWS add-on or eksops (see SYSTEM_NAMESPACES)."""
    return any(fnmatch.fnmatchcase(namespace, g) for g in SYSTEM_NAMESPACES)


def is_system_subject(subject: Mapping[str, Any]) -> bool:
    """Whether an RBAC subject is the platform's own: a ``system:``/``eks:`` user or group other than the broad
    groups (everyone authenticated, anonymous, every service account), or a service account of a system namespace."""
    kind, name = str(subject.get("kind", "")), str(subject.get("name", ""))
    if kind == "ServiceAccount":
        return is_system_namespace(str(subject.get("namespace") or ""))
    if name in _BROAD_GROUPS:
        return False
    for prefix in ("system:serviceaccounts:", "system:serviceaccount:"):
        if name.startswith(prefix):  # a namespace's service accounts, or one of them (as a User)
            return is_system_namespace(name[len(prefix) :].split(":", 1)[0])
    return name.startswith(("system:", "eks:"))


def describe_subject(subject: Mapping[str, Any]) -> str:
    """``Group developers``, ``ServiceAccount ci/deployer``."""
    kind, name = subject.get("kind", "?"), subject.get("name", "?")
    return (
        f"{kind} {subject['namespace']}/{name}"
        if kind == "ServiceAccount" and subject.get("namespace")
        else f"{kind} {name}"
    )


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against ``labels``; ``{}`` selects everything, ``None`` nothing (as policy/v1 reads them)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = set(expression.get("values") or [])
        present = key in labels
        matched = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not matched:
            return False
    return True


def summarise(items: Iterable[str], limit: int = 4) -> str:
    """``a; b; c`` and ``(and N more)`` after ``limit`` items: evidence stays short."""
    items = list(items)
    text = "; ".join(items[:limit])
    return f"{text}; and {len(items) - limit} more" if len(items) > limit else text


@dataclass(frozen=True)
class Container:
    """One container of a pod template; ``init`` for init containers."""

    spec: Mapping[str, Any]
    init: bool

    @property
    def name(self) -> str:
        return f"{'init container' if self.init else 'container'} {self.spec.get('name', '?')}"

    @property
    def security_context(self) -> Mapping[str, Any]:
        return self.spec.get("securityContext") or {}


@dataclass(frozen=True)
class Workload:
    """A workload and its pod template: ``kind`` is Deployment, DaemonSet, StatefulSet or Pod (a bare pod)."""

    kind: str
    obj: Mapping[str, Any]
    pod_spec: Mapping[str, Any]
    pod_labels: Mapping[str, str]

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.obj.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "default")

    @property
    def resource(self) -> str:
        return f"{self.kind.lower()}/{self.namespace}/{self.name}"

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.metadata.get("annotations") or {}).items()}

    @property
    def replicas(self) -> int:
        """spec.replicas (1 when unset) of a Deployment or StatefulSet; 1 for others."""
        value = (self.obj.get("spec") or {}).get("replicas")
        return 1 if value is None else int(value)

    @property
    def pod_security_context(self) -> Mapping[str, Any]:
        return self.pod_spec.get("securityContext") or {}

    def containers(self, *, init: bool = True) -> list[Container]:
        """The containers, and with ``init`` the init containers (they run with the same privileges) first."""
        found = [Container(c, True) for c in self.pod_spec.get("initContainers") or []] if init else []
        return found + [Container(c, False) for c in self.pod_spec.get("containers") or []]

    def effective(self, container: Container, field: str) -> Any:
        """A security setting as the kubelet applies it: the container's, else the pod's."""
        value = container.security_context.get(field)
        return self.pod_security_context.get(field) if value is None else value


def workloads(ctx: ClusterContext, *, system: bool = False) -> Iterator[Workload]:
    """Every Deployment, DaemonSet, StatefulSet and bare pod, outside system namespaces unless ``system``."""
    for api_version, plural, kind in WORKLOAD_KINDS:
        for obj in ctx.kube_list(api_version, plural):
            template = (obj.get("spec") or {}).get("template") or {}
            workload = Workload(
                kind, obj, template.get("spec") or {}, (template.get("metadata") or {}).get("labels") or {}
            )
            if system or not is_system_namespace(workload.namespace):
                yield workload
    for pod in ctx.pods():
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        # A mirror pod (owner: its Node) is a static pod the kubelet runs: nothing else would recreate it either.
        if any(o.get("controller") and o.get("kind") != "Node" for o in owners):
            continue
        workload = Workload("Pod", pod, pod.get("spec") or {}, (pod.get("metadata") or {}).get("labels") or {})
        if system or not is_system_namespace(workload.namespace):
            yield workload
