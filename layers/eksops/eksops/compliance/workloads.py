"""What the Kubernetes rules walk: workloads and their pod templates, system namespaces and subjects, selectors.

A workload is what decides how pods run, checked once on its pod template: a Deployment, DaemonSet, StatefulSet or
CronJob (``cronjob/<ns>/<name>``: its Jobs' pods are reported once per CronJob, not once per run). Every pod is
covered by exactly one workload: a pod whose controller the walk knows is left to it (a Deployment's pods through
their ReplicaSet, a CronJob's through their Job); everything else is checked too, so no pod escapes the rules:

* a stand-alone Job (or one whose CronJob is gone) is its own workload, ``job/<ns>/<name>``;
* a ReplicaSet without a Deployment (created by hand, or whose Deployment is gone) is its own workload,
  ``replicaset/<ns>/<name>``; one that another controller created (an Argo Rollout) stands for that controller,
  ``rollout/<ns>/<name>``, judged on its newest ReplicaSet that runs pods (its template is what the Rollout runs;
  the Rollout's own API is not read), so a finding stays the same finding from one revision to the next;
* a pod without a controller (a bare pod, or a static pod whose mirror the kubelet owns), or whose controller is of
  a kind the walk does not read (an operator's custom resource) or is not there, is its own workload,
  ``pod/<ns>/<name>``: reported per pod, since the operator's template cannot be read without its API.

Findings are therefore reported once per workload (``deployment/shop/cart``), never once per replica of a known
controller. Owners are matched by kind, namespace and name.

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

# The controllers whose pod template the walk reads directly (api version, plural, kind).
WORKLOAD_KINDS: tuple[tuple[str, str, str], ...] = (
    ("apps/v1", "deployments", "Deployment"),
    ("apps/v1", "daemonsets", "DaemonSet"),
    ("apps/v1", "statefulsets", "StatefulSet"),
    ("batch/v1", "cronjobs", "CronJob"),
)
# What walking the workloads reads (list, cluster-wide): every workload rule needs exactly these. ReplicaSets and
# Jobs tell which pods a walked controller covers, and are workloads themselves when none does.
WORKLOAD_READS: tuple[KubePermission, ...] = (
    KubePermission("apps", "deployments", ("list",)),
    KubePermission("apps", "daemonsets", ("list",)),
    KubePermission("apps", "statefulsets", ("list",)),
    KubePermission("apps", "replicasets", ("list",)),
    KubePermission("batch", "cronjobs", ("list",)),
    KubePermission("batch", "jobs", ("list",)),
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
    """A workload and its pod template: ``kind`` is Deployment, DaemonSet, StatefulSet, CronJob, Job, ReplicaSet,
    Pod, or the kind of another controller whose ReplicaSet ``obj`` is (then ``controller`` is its name)."""

    kind: str
    obj: Mapping[str, Any]
    pod_spec: Mapping[str, Any]
    pod_labels: Mapping[str, str]
    controller: str | None = None  # the name of the controller this stands for, when ``obj`` is one of its ReplicaSets

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.obj.get("metadata") or {}

    @property
    def name(self) -> str:
        return self.controller or str(self.metadata.get("name", ""))

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
    """Every workload (see the module docstring: each pod is covered by exactly one), outside system namespaces
    unless ``system``."""
    for workload in _walk(ctx):
        if system or not is_system_namespace(workload.namespace):
            yield workload


Key = tuple[str, str, str]  # (kind, namespace, name) of an object, or of a controller an owner reference names


def _key(kind: str, obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return kind, str(meta.get("namespace") or "default"), str(meta.get("name", ""))


def _controller(obj: Mapping[str, Any]) -> Key | None:
    """The key of the object's controller (its owner reference marked controller), None when it has none."""
    meta = obj.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("kind", "")), str(meta.get("namespace") or "default"), str(owner.get("name", ""))
    return None


def _workload(kind: str, obj: Mapping[str, Any], controller: str | None = None, *, pod: bool = False) -> Workload:
    spec = obj.get("spec") or {}
    if kind == "Pod" or pod:  # a pod itself (``pod``: one of an unknown controller's pods, standing for it)
        return Workload(kind, obj, spec, (obj.get("metadata") or {}).get("labels") or {}, controller)
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    return Workload(kind, obj, template.get("spec") or {}, labels, controller)


def _runs_newest(replica_set: Mapping[str, Any]) -> tuple[bool, str, str]:
    """Sort key: ReplicaSets that run pods first, then the newest."""
    spec, meta = replica_set.get("spec") or {}, replica_set.get("metadata") or {}
    replicas = spec.get("replicas")
    return (
        (1 if replicas is None else int(replicas)) > 0,
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("name", "")),
    )


def _walk(ctx: ClusterContext) -> Iterator[Workload]:
    covered: set[Key] = set()  # objects whose pods a workload already stands for
    for api_version, plural, kind in WORKLOAD_KINDS:
        for obj in ctx.kube_list(api_version, plural):
            covered.add(_key(kind, obj))
            yield _workload(kind, obj)
    yield from _replica_sets(ctx, covered)
    yield from _jobs(ctx, covered)
    yield from _pods(ctx, covered)


# Jobs and pods of a controller eksops cannot read (a KEDA ScaledJob, an Argo Workflow, an operator's resource) are
# each judged, but reported on that controller (``<kind>/<namespace>/<name>``; the service joins one controller's
# findings into one): their own names change on every run, and findings named after them would be new and resolved
# again on every sweep.


def _jobs(ctx: ClusterContext, covered: set[Key]) -> Iterator[Workload]:
    unknown: dict[Key, list[Mapping[str, Any]]] = {}
    for job in ctx.kube_list("batch/v1", "jobs"):
        covered.add(_key("Job", job))
        owner = _controller(job)
        if owner is None or (owner[0] == "CronJob" and owner not in covered):  # stand-alone, or its CronJob is gone
            yield _workload("Job", job)
        elif owner not in covered:
            unknown.setdefault(owner, []).append(job)
    for (kind, namespace, name), jobs in sorted(unknown.items()):
        covered.add((kind, namespace, name))
        for each in jobs:
            yield _workload(kind, each, controller=name)


def _pods(ctx: ClusterContext, covered: set[Key]) -> Iterator[Workload]:
    unknown: dict[Key, list[Mapping[str, Any]]] = {}
    for pod in ctx.pods():
        owner = _controller(pod)
        if owner is not None and owner in covered:
            continue
        if owner is None or owner[0] in _POD_OWNERS:  # bare, static (a Node's), or its Job/ReplicaSet is gone
            yield _workload("Pod", pod)
        else:
            unknown.setdefault(owner, []).append(pod)
    for (kind, _, name), pods in sorted(unknown.items()):
        for each in pods:
            yield _workload(kind, each, controller=name, pod=True)


# Owners whose pods are judged one by one when the owner itself is not walked (a Node: static pods).
_POD_OWNERS = frozenset({"Node", "Job", "ReplicaSet", "DaemonSet", "StatefulSet"})


def _replica_sets(ctx: ClusterContext, covered: set[Key]) -> Iterator[Workload]:
    """ReplicaSets that no walked Deployment stands for, as workloads (each added to ``covered``)."""
    others: dict[Key, list[Mapping[str, Any]]] = {}  # another controller's ReplicaSets (an Argo Rollout's)
    for replica_set in ctx.kube_list("apps/v1", "replicasets"):
        covered.add(_key("ReplicaSet", replica_set))
        owner = _controller(replica_set)
        if owner is not None and owner in covered:  # a walked Deployment's
            continue
        if owner is None or owner[0] == "Deployment":  # by hand, or its Deployment is gone
            yield _workload("ReplicaSet", replica_set)
        else:
            others.setdefault(owner, []).append(replica_set)
    for (kind, _, name), replica_sets in sorted(others.items()):
        yield _workload(kind, max(replica_sets, key=_runs_newest), controller=name)
