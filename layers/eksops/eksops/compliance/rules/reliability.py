"""Compliance rules: workload reliability (requests and limits, replicas, disruption budgets, autoscaling, probes).

Like the security rules, these look at each workload's pod template once (Deployments, DaemonSets, StatefulSets,
CronJobs, stand-alone Jobs and ReplicaSets, other pods; see ``eksops.compliance.workloads``), outside system namespaces
(``eksops.compliance.workloads.SYSTEM_NAMESPACES``). A Deployment scaled to zero is left alone by the replica,
disruption-budget and autoscaling rules: nobody runs it. Jobs and CronJobs are left out of the probe rule: their pods
run to completion and serve no traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eksops.compliance.model import Category, KubePermission, Rule, Severity, Violation, register
from eksops.compliance.workloads import WORKLOAD_READS, Container, Workload, selector_matches, summarise, workloads

if TYPE_CHECKING:
    from eksops.compliance.context import ClusterContext

HPAS = KubePermission("autoscaling", "horizontalpodautoscalers", ("list",))
DEPLOYMENTS = KubePermission("apps", "deployments", ("list",))
RESOURCES = ("cpu", "memory")
BATCH_KINDS = frozenset({"Job", "CronJob"})  # pods that run to completion


def _violation(workload: Workload, found: list[str]) -> Violation:
    return Violation(
        workload.resource, summarise(found), annotations=workload.annotations, namespace=workload.namespace
    )


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (``500m``, ``1Gi``, ``2``) as a number, None when it cannot be read."""
    from kubernetes.utils.quantity import parse_quantity  # the Kubernetes client is loaded anyway to read clusters

    try:
        return parse_quantity(value)  # type: ignore[no-untyped-call,no-any-return]
    except (ValueError, TypeError):
        return None


def _resources(container: Container) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    spec = container.spec.get("resources") or {}
    return spec.get("requests") or {}, spec.get("limits") or {}


@register
class WorkloadMissingRequests(Rule):
    id = "workload-missing-requests"
    title = "Container without CPU or memory requests"
    severity = Severity.MEDIUM
    category = Category.RELIABILITY
    why = (
        "The scheduler places pods by their requests: without them a node is overcommitted and its pods are the"
        " first evicted under pressure. HPA utilisation targets, Cluster Autoscaler and Karpenter bin-packing, and"
        " Container Insights' reserved-CPU metrics (node_scaler's signal) are all computed from requests."
    )
    fix = (
        "Set resources.requests.cpu and .memory on every container, from observed use (Container Insights or the"
        " Vertical Pod Autoscaler's recommendations). A limit without a request counts as a request of the same size;"
        " defaults from a namespace LimitRange are not seen here (accept the finding if you rely on one)."
    )
    reference = (
        "hardeneks: set_requests_limits_for_containers; EKS BP: Security > Pod Security > Set requests and limits"
        " for each container to avoid resource contention and DoS attacks; EKS BP: Reliability > Data plane >"
        " Configure and size Resource Requests/Limits for all workloads"
    )
    adds = "names the missing resources per container; a limit that Kubernetes turns into the request passes"
    kube_permissions = WORKLOAD_READS

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for workload in workloads(ctx):
            found = []
            for container in workload.containers(init=False):
                requests, limits = _resources(container)
                missing = [r for r in RESOURCES if r not in requests and r not in limits]
                if missing:
                    found.append(f"{container.name}: no {' or '.join(missing)} request")
            if found:
                yield _violation(workload, found)


@register
class WorkloadLimitsOverRequests(Rule):
    id = "workload-limits-over-requests"
    title = "Container limits far above its requests"
    severity = Severity.LOW
    category = Category.RELIABILITY
    why = (
        "A pod may use up to its limits but is placed by its requests: when many burst together the node runs out,"
        " the kernel kills containers for memory and CPU is throttled for everyone. The further apart, the more the"
        " node is overcommitted."
    )
    fix = (
        "Bring requests up to typical use and limits within COMPLIANCE_LIMIT_RATIO (default 4) times the requests;"
        " for memory, a limit equal to the request is safest."
    )
    reference = (
        "EKS BP: Reliability > Data plane > Configure and size Resource Requests/Limits for all workloads;"
        " hardeneks: set_requests_limits_for_containers"
    )
    adds = "a configurable ratio (COMPLIANCE_LIMIT_RATIO) between limits and requests; hardeneks only checks presence"
    kube_permissions = WORKLOAD_READS

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        ratio = Decimal(str(ctx.settings.limit_ratio))
        for workload in workloads(ctx):
            found = []
            for container in workload.containers(init=False):
                requests, limits = _resources(container)
                for resource in RESOURCES:
                    if resource not in requests or resource not in limits:
                        continue
                    request, limit = quantity(requests[resource]), quantity(limits[resource])
                    if request is None or limit is None:
                        continue
                    if limit > request * ratio:
                        times = f"{limit / request:.1f}x" if request else "unbounded times"
                        found.append(
                            f"{container.name}: {resource} limit {limits[resource]} is {times} its request"
                            f" {requests[resource]}"
                        )
            if found:
                yield _violation(workload, found)


def _scalers(ctx: ClusterContext) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(namespace, Deployment name) -> the HorizontalPodAutoscaler that scales it."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for hpa in ctx.kube_list("autoscaling/v2", "horizontalpodautoscalers"):
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment":
            found[(str(hpa["metadata"].get("namespace")), str(target.get("name")))] = hpa
    return found


def _deployments(ctx: ClusterContext) -> Iterable[Workload]:
    """Deployments outside system namespaces that are not scaled to zero."""
    return (w for w in workloads(ctx) if w.kind == "Deployment" and w.replicas > 0)


def _least_replicas(workload: Workload, hpa: Mapping[str, Any] | None) -> tuple[int, str]:
    """The fewest replicas the Deployment may run, and why: its HPA's minReplicas, else spec.replicas."""
    if hpa is not None:
        least = int((hpa.get("spec") or {}).get("minReplicas") or 1)
        return least, f"its HPA {hpa['metadata'].get('name')} has minReplicas {least}"
    return workload.replicas, f"replicas {workload.replicas}"


@register
class DeploymentSingleReplica(Rule):
    id = "deployment-single-replica"
    title = "Deployment with a single replica"
    severity = Severity.LOW
    category = Category.RELIABILITY
    why = (
        "One replica means downtime at every node drain, node failure, rollout or eviction: nothing serves while the"
        " pod is rescheduled."
    )
    fix = (
        "Run at least 2 replicas (or an HPA with minReplicas 2 or more), spread across zones with"
        " topologySpreadConstraints. A Deployment scaled to 0 is not reported."
    )
    reference = "hardeneks: run_multiple_replicas; EKS BP: Reliability > Applications > Run multiple replicas"
    adds = "an HPA's minReplicas counts instead of spec.replicas when an HPA scales the Deployment"
    kube_permissions = (*WORKLOAD_READS, HPAS)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        scalers = _scalers(ctx)
        for workload in _deployments(ctx):
            least, why = _least_replicas(workload, scalers.get((workload.namespace, workload.name)))
            if least < 2:
                yield _violation(workload, [why])


@register
class DeploymentNoPdb(Rule):
    id = "deployment-no-pdb"
    title = "Deployment without a PodDisruptionBudget"
    severity = Severity.LOW
    category = Category.RELIABILITY
    why = (
        "Without a PodDisruptionBudget, a node drain (upgrades, Karpenter consolidation, node_scaler scale-in) may"
        " evict every replica at once."
    )
    fix = (
        "Add a policy/v1 PodDisruptionBudget selecting the Deployment's pods, with maxUnavailable 1 (or a"
        " minAvailable below the replica count). Single-replica Deployments are left to deployment-single-replica."
    )
    reference = "EKS BP: Reliability > Applications > Protect critical workload with Pod Disruption Budgets"
    adds = "hardeneks has no rule for disruption budgets; the PDB's selector is matched against the pod template"
    kube_permissions = (*WORKLOAD_READS, HPAS, KubePermission("policy", "poddisruptionbudgets", ("list",)))

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        scalers = _scalers(ctx)
        budgets = ctx.kube_list("policy/v1", "poddisruptionbudgets")
        for workload in _deployments(ctx):
            least, _ = _least_replicas(workload, scalers.get((workload.namespace, workload.name)))
            if least < 2:
                continue
            covered = any(
                pdb["metadata"].get("namespace") == workload.namespace
                and selector_matches((pdb.get("spec") or {}).get("selector"), workload.pod_labels)
                for pdb in budgets
            )
            if not covered:
                labels = ",".join(f"{k}={v}" for k, v in sorted(workload.pod_labels.items())) or "none"
                yield _violation(workload, [f"{least} replicas and no PodDisruptionBudget selects its pods ({labels})"])


@register
class DeploymentNoHpa(Rule):
    id = "deployment-no-hpa"
    title = "Deployment without a HorizontalPodAutoscaler"
    severity = Severity.INFO
    category = Category.RELIABILITY
    why = (
        "A fixed replica count is sized for one load: under a peak it saturates, off-peak it wastes nodes. An HPA"
        " (or KEDA, which creates one) follows the load. Informational: steady workloads need none."
    )
    fix = (
        "Add an autoscaling/v2 HorizontalPodAutoscaler on CPU or a load metric (requests must be set), or accept the"
        " finding for a Deployment whose load does not vary."
    )
    reference = (
        "hardeneks: check_horizontal_pod_autoscaling_exists; EKS BP: Reliability > Applications > Horizontal Pod"
        " Autoscaler (HPA)"
    )
    adds = "Deployments scaled to zero are not reported"
    kube_permissions = (*WORKLOAD_READS, HPAS)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        scalers = _scalers(ctx)
        for workload in _deployments(ctx):
            if (workload.namespace, workload.name) not in scalers:
                yield _violation(workload, [f"replicas fixed at {workload.replicas}; no HPA targets it"])


@register
class WorkloadNoProbes(Rule):
    id = "workload-no-probes"
    title = "Container without readiness or liveness probe"
    severity = Severity.LOW
    category = Category.RELIABILITY
    why = (
        "Without a readiness probe a pod gets traffic before it can serve and keeps it while it cannot; without a"
        " liveness probe a hung process is never restarted."
    )
    fix = (
        "Add a readinessProbe that checks the pod can serve, and a livenessProbe that checks only the process itself"
        " (never its dependencies); a startupProbe for slow starters. Jobs and CronJobs are not reported: their pods"
        " run to completion and serve no traffic (bound a hung run with activeDeadlineSeconds instead)."
    )
    reference = (
        "hardeneks: check_readiness_probes, check_liveness_probes; EKS BP: Reliability > Applications > Use"
        " Readiness Probe to detect partial unavailability, Use Liveness Probe to remove unhealthy pods"
    )
    adds = (
        "one finding per workload naming each container's missing probes (hardeneks: one rule per probe, per pod);"
        " Jobs and CronJobs are left out"
    )
    kube_permissions = WORKLOAD_READS

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for workload in workloads(ctx):
            if workload.kind in BATCH_KINDS:
                continue
            found = []
            for container in workload.containers(init=False):
                missing = [p for p in ("readiness", "liveness") if not container.spec.get(f"{p}Probe")]
                if missing:
                    found.append(f"{container.name}: no {' or '.join(missing)} probe")
            if found:
                yield _violation(workload, found)
