"""Demand of each node group: from the Kubernetes API where it is reachable, else from Container Insights.

Kubernetes shows what the forecast needs: the CPU requests of running and pending pods and each node's
allocatable CPU. A node belongs to the Auto Scaling group holding its instance (``spec.providerID``); pods bound
to it count for that group, and a pod no node took yet counts, split evenly, for the enrolled groups whose nodes'
labels its nodeSelector allows. The pause pods of eksops' headroom never count. In a cluster with Karpenter
NodePools (eksops.scaling.pools), a pending pod counts for the groups only when it selects a group's node label
(``eks.amazonaws.com/nodegroup``, or the one its tags promise): any other is the NodePools', so that it counts once.
A group's nodes also say which taints the group's pause pods must tolerate (node lifecycle taints left out).

Container Insights is the fallback: ``node_cpu_reserved_capacity`` (requests / node cores, averaged over the
nodes) x ``node_cpu_limit`` (a node's cores) x ``cluster_node_count`` is the CPU requested by placed pods; it cannot
see pending pods, and it is cluster-wide, so each group gets the share of it its instances are of the cluster's.

The history the forecast replays is the function's own: it publishes each group's demand every run as the
metric ``eksops NodeGroupCpuDemand`` (dimensions ClusterName, AutoScalingGroupName) and reads the last hour back.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from eksops.scaling.forecasting import Sample
from eksops.scaling.groups import KARPENTER_NODEPOOL, NODEGROUP_LABEL, NodeGroup, Taint, median_millicores

__all__ = [
    "HISTORY_METRIC",
    "HISTORY_NAMESPACE",
    "ClusterView",
    "DemandHistory",
    "GroupDemand",
    "InsightsReading",
    "cpu_millicores",
    "group_labels",
    "insights_demand",
    "kube_demand",
    "list_items",
    "read_cluster",
    "read_insights",
]

HISTORY_NAMESPACE = "eksops"
HISTORY_METRIC = "NodeGroupCpuDemand"
INSIGHTS_NAMESPACE = "ContainerInsights"
RESERVED_METRIC = "node_cpu_reserved_capacity"
NODE_CPU_METRIC = "node_cpu_limit"
NODE_COUNT_METRIC = "cluster_node_count"
INSIGHTS_WINDOW_SECONDS = 600  # Container Insights' one-minute data arrives a minute or two late
PERIOD = 60
PAGE_LIMIT = 500  # pods or nodes per list request
DEFAULT_SCHEDULER = "default-scheduler"
QUERIES_PER_CALL = 500  # GetMetricData's limit
DATA_PER_CALL = 1000  # PutMetricData's limit
# A history point in the last half minute is the current minute's, which the sample taken now replaces.
FRESH_SECONDS = 30

# Taints that say what a node is going through, not what the group's nodes are for: the pause pods do not tolerate
# them. Cluster Autoscaler leaves the same out of a group's template node (utils/taints SanitizeTaints: its scale-in
# marks, the node condition taints, the cloud provider's, its startup and status taints); Karpenter's marks a node it
# is disrupting or has not registered yet.
LIFECYCLE_TAINTS = frozenset(
    {
        "ToBeDeletedByClusterAutoscaler",
        "DeletionCandidateOfClusterAutoscaler",
        "NodeWithImpairedVolumes",
        "karpenter.sh/disrupted",
        "karpenter.sh/disruption",
        "karpenter.sh/unregistered",
    }
)
LIFECYCLE_TAINT_PREFIXES = (
    "node.kubernetes.io/",
    "node.cloudprovider.kubernetes.io/",
    "startup-taint.cluster-autoscaler.kubernetes.io/",
    "status-taint.cluster-autoscaler.kubernetes.io/",
    "ignore-taint.cluster-autoscaler.kubernetes.io/",
)

log = logging.getLogger(__name__)

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def cpu_millicores(quantity: Any) -> float:
    """A Kubernetes CPU quantity (``"250m"``, ``"1"``, ``"0.5"``, ``2``, ``"1e3m"``) in millicores; 0 if unreadable.

    The API server only stores valid quantities; 0 keeps a malformed value from an emulator or a future format
    from failing the whole cluster (it is logged).
    """
    if quantity is None:
        return 0.0
    if isinstance(quantity, int | float) and not isinstance(quantity, bool):
        return float(quantity) * 1000
    text = str(quantity).strip()
    suffix = next((s for s in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei") if text.endswith(s)), "")
    if not suffix and text and text[-1] in _SUFFIXES and not text[-1].isdigit():
        suffix = text[-1]
    number = text[: len(text) - len(suffix)]
    try:
        value = Decimal(number) * _SUFFIXES[suffix] * 1000
    except (InvalidOperation, KeyError):
        log.warning("unreadable CPU quantity %r counted as 0", text[:40])
        return 0.0
    return float(value) if value.is_finite() and value >= 0 else 0.0


# -- Kubernetes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    name: str
    instance_id: str | None
    millicores: int  # allocatable CPU
    ready: bool  # Ready and schedulable
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: int = 0  # CPU capacity (cores, not allocatable): what a Karpenter NodePool's limits count
    taints: tuple[Taint, ...] = ()  # spec.taints, the node lifecycle taints (LIFECYCLE_TAINTS) left out


@dataclass(frozen=True)
class Pod:
    node: str | None  # None: not scheduled yet
    millicores: float
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # A pending pod's required node affinity: its nodeSelectorTerms (any one may match), each a tuple of
    # matchExpressions (all must hold) as (key, operator, values). Empty: none. Not kept for placed pods.
    required_terms: tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...] = ()


@dataclass(frozen=True)
class ClusterView:
    """Nodes and the pods that hold or want CPU (running and pending; the headroom's pause pods left out)."""

    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]


def _requests(container: Mapping[str, Any]) -> float:
    return cpu_millicores(((container.get("resources") or {}).get("requests") or {}).get("cpu"))


def pod_millicores(spec: Mapping[str, Any]) -> float:
    """What the scheduler reserves for a pod: its containers plus sidecars, or its largest init container plus
    sidecars if that is more, plus the pod overhead."""
    containers = sum(_requests(c) for c in spec.get("containers") or [])
    inits = spec.get("initContainers") or []
    sidecars = sum(_requests(c) for c in inits if c.get("restartPolicy") == "Always")
    largest_init = max((_requests(c) for c in inits if c.get("restartPolicy") != "Always"), default=0.0)
    overhead = cpu_millicores((spec.get("overhead") or {}).get("cpu"))
    return max(containers + sidecars, largest_init + sidecars) + overhead


def _instance_id(provider_id: Any) -> str | None:
    """``aws:///us-east-1a/i-0abc...`` -> ``i-0abc...``; None for Fargate or anything else."""
    if not isinstance(provider_id, str) or not provider_id.startswith("aws://"):
        return None
    last = provider_id.rstrip("/").rsplit("/", 1)[-1]
    return last if last.startswith("i-") else None


def _lifecycle(taint: Taint) -> bool:
    return taint.key in LIFECYCLE_TAINTS or taint.key.startswith(LIFECYCLE_TAINT_PREFIXES)


def _node(item: Mapping[str, Any]) -> Node:
    meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return Node(
        name=str(meta.get("name", "")),
        instance_id=_instance_id(spec.get("providerID")),
        millicores=int(cpu_millicores((status.get("allocatable") or {}).get("cpu"))),
        ready=ready and not spec.get("unschedulable"),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        capacity=int(cpu_millicores((status.get("capacity") or {}).get("cpu"))),
        taints=tuple(
            sorted({t for t in map(Taint.parse, spec.get("taints") or []) if t is not None and not _lifecycle(t)})
        ),
    )


def _required_terms(spec: Mapping[str, Any]) -> tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...]:
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        or {}
    ).get("nodeSelectorTerms") or []
    return tuple(
        tuple(
            (str(e.get("key", "")), str(e.get("operator", "")), tuple(str(v) for v in e.get("values") or []))
            for e in (term or {}).get("matchExpressions") or []
        )
        for term in required
    )


def _waits_for_a_node(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether an unscheduled pod is demand a node would serve: the default scheduler tried it and found no room.

    The scheduler says so with the PodScheduled condition False, reason Unschedulable (what Cluster Autoscaler
    acts on too). A pod it has not looked at yet, one gated (reason SchedulingGated), one that waits for a
    volume or an image pull after binding, or one another scheduler handles is not counted: adding nodes would
    not place it.
    """
    if spec.get("schedulerName") not in (None, "", DEFAULT_SCHEDULER):
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


def _pod(item: Mapping[str, Any], exclude_namespace: str) -> Pod | None:
    meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
    if meta.get("namespace") == exclude_namespace:
        return None  # eksops' own pause pods: they hold the headroom, they are not demand
    if status.get("phase", "Pending") not in ("Pending", "Running"):
        return None  # Succeeded and Failed pods hold no CPU
    if not spec.get("nodeName") and not _waits_for_a_node(spec, status):
        return None  # pending for a reason more nodes would not fix, or for a scheduler that is not the default's
    return Pod(
        node=spec.get("nodeName") or None,
        millicores=pod_millicores(spec),
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        required_terms=() if spec.get("nodeName") else _required_terms(spec),
    )


def list_items(call: Any) -> Iterable[Mapping[str, Any]]:
    """Every item of a list call, page by page; raw JSON (no model objects: a big cluster has many pods)."""
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": PAGE_LIMIT, "_preload_content": False}
        if token:
            kwargs["_continue"] = token
        page = json.loads(call(**kwargs).data)
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


def read_cluster(api_client: Any, *, exclude_namespace: str) -> ClusterView:
    """Nodes and pods of a cluster through its Kubernetes API (kubernetes is imported here only)."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api_client)
    nodes = tuple(_node(item) for item in list_items(core.list_node))
    pods = tuple(p for item in list_items(core.list_pod_for_all_namespaces) if (p := _pod(item, exclude_namespace)))
    return ClusterView(nodes=nodes, pods=pods)


@dataclass(frozen=True)
class GroupDemand:
    """One group's demand now, in millicores, and what its nodes hold."""

    millicores: float  # requested by pods on its nodes, plus its share of pods not scheduled yet
    pending: float  # of which not scheduled yet
    nodes: int  # ready, schedulable nodes
    node_millicores: int | None  # allocatable CPU of one node (median), None when no node shows it
    source: str
    taints: tuple[Taint, ...] = ()  # those every node of it carries, sorted; lifecycle taints left out


def _known_labels(group: NodeGroup, nodes: Sequence[Node]) -> dict[str, str]:
    """Labels every node of the group has (those its tags promise when it has none yet)."""
    labels = dict(group.node_labels())
    if nodes:
        common = set(nodes[0].labels.items())
        for node in nodes[1:]:
            common &= set(node.labels.items())
        labels.update(dict(common))
    return labels


def _allows(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    # A label the group's nodes are not known to carry may still be there: only a known different value excludes.
    return all(labels.get(key, value) == value for key, value in selector.items())


# Labels every kind of node carries (architecture, zone, instance type, capacity type): a pod selecting one asks
# for a kind of node, not for an Auto Scaling group's, so it does not take the pod away from the NodePools.
GENERIC_LABEL_PREFIXES = (
    "kubernetes.io/",
    "beta.kubernetes.io/",
    "topology.kubernetes.io/",
    "failure-domain.beta.kubernetes.io/",
    "node.kubernetes.io/",
    "topology.k8s.aws/",
    "eks.amazonaws.com/capacityType",
    "karpenter.",
)


def group_labels(groups: Iterable[NodeGroup]) -> frozenset[str]:
    """The node labels that select an Auto Scaling group's nodes: EKS's node group label, and those the groups' tags
    promise (:meth:`NodeGroup.node_labels`); never Karpenter's NodePool label, which selects a NodePool."""
    promised = {key for g in groups for key in g.node_labels() if not key.startswith(GENERIC_LABEL_PREFIXES)}
    return frozenset({NODEGROUP_LABEL, *promised} - {KARPENTER_NODEPOOL})


def selects(pod: Pod, labels: Collection[str]) -> bool:
    """Whether the pod asks for nodes carrying one of ``labels``: its nodeSelector names one, or a required node
    affinity expression does with ``In`` or ``Exists``. ``NotIn`` and ``DoesNotExist`` avoid a group, they do not
    select it (``eks.amazonaws.com/nodegroup DoesNotExist`` is the usual way to ask for Karpenter's nodes)."""
    return any(key in pod.node_selector for key in labels) or any(
        expression[0] in labels and expression[1] in {"In", "Exists"}
        for term in pod.required_terms
        for expression in term
    )


def _shared_taints(nodes: Sequence[Node]) -> tuple[Taint, ...]:
    """The taints every node carries: what the group's nodes are tainted with, not a taint one node has for a while
    (a spot interruption notice, an agent not ready yet), which the pause pods must not tolerate nor churn on."""
    if not nodes:
        return ()
    shared = set(nodes[0].taints).intersection(*(n.taints for n in nodes[1:]))
    return tuple(sorted(shared))


def kube_demand(
    view: ClusterView, groups: Sequence[NodeGroup], *, only_selecting: Collection[str] | None = None
) -> dict[str, GroupDemand]:
    """Demand of each of ``groups`` (the enrolled groups of one cluster) from what Kubernetes shows.

    ``only_selecting``: in a cluster with Karpenter NodePools, the labels that select a group's nodes
    (:func:`group_labels` of all the cluster's groups); a pending pod that selects none of them is the NodePools'
    (eksops.scaling.pools), not counted here. None: a cluster without NodePools, every pending pod may be the groups'.
    """
    owner = {instance: group.name for group in groups for instance in group.instances}
    nodes_of: dict[str, list[Node]] = {g.name: [] for g in groups}
    group_of_node: dict[str, str] = {}
    for node in view.nodes:
        name = owner.get(node.instance_id or "")
        if name is not None:
            nodes_of[name].append(node)
            group_of_node[node.name] = name
    placed = dict.fromkeys(nodes_of, 0.0)
    pending = dict.fromkeys(nodes_of, 0.0)
    labels = {g.name: _known_labels(g, nodes_of[g.name]) for g in groups}
    sizes = {g.name: median_millicores([n.millicores for n in nodes_of[g.name] if n.millicores > 0]) for g in groups}
    for pod in view.pods:
        if pod.node is not None:
            if pod.node in group_of_node:
                placed[group_of_node[pod.node]] += pod.millicores
            continue
        if only_selecting is not None and not selects(pod, only_selecting):
            continue  # Karpenter's to provision for: counted once, by the NodePools
        # A pod that fits no node of a group (larger than one node) is not something more nodes would fix.
        fits = [
            g.name
            for g in groups
            if _allows(pod.node_selector, labels[g.name])
            and pod.millicores <= (sizes[g.name] or g.remembered_node_millicores or math.inf)
        ]
        for name in fits:
            pending[name] += pod.millicores / len(fits)
    return {
        g.name: GroupDemand(
            millicores=placed[g.name] + pending[g.name],
            pending=pending[g.name],
            nodes=sum(1 for n in nodes_of[g.name] if n.ready),
            node_millicores=sizes[g.name],
            source="kubernetes",
            taints=_shared_taints(nodes_of[g.name]),
        )
        for g in groups
    }


# -- Container Insights -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InsightsReading:
    """The latest cluster-level Container Insights values."""

    reserved_percent: float  # node_cpu_reserved_capacity, average over nodes
    node_cpu: float  # node_cpu_limit: one node's CPU capacity in millicores (cores, not allocatable)
    node_count: float  # cluster_node_count

    @property
    def millicores(self) -> float:
        """CPU requested by the pods placed on nodes (pending pods are on no node: not in it)."""
        return self.reserved_percent / 100 * self.node_cpu * self.node_count


def _latest(result: Mapping[str, Any]) -> float | None:
    pairs = sorted(zip(result.get("Timestamps") or [], result.get("Values") or [], strict=False))
    return float(pairs[-1][1]) if pairs else None


def read_insights(cloudwatch: Any, clusters: Sequence[str], *, now: float) -> dict[str, InsightsReading]:
    """The latest Container Insights reading of each cluster that has one (one GetMetricData per 166 clusters)."""
    metrics = (
        ("r", RESERVED_METRIC, "Average"),
        ("c", NODE_CPU_METRIC, "Average"),
        ("n", NODE_COUNT_METRIC, "Average"),
    )
    queries = [
        {
            "Id": f"{prefix}{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": INSIGHTS_NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": [{"Name": "ClusterName", "Value": cluster}],
                },
                "Period": PERIOD,
                "Stat": stat,
            },
        }
        for index, cluster in enumerate(clusters)
        for prefix, metric, stat in metrics
    ]
    values = _metric_data(cloudwatch, queries, start=now - INSIGHTS_WINDOW_SECONDS, end=now)
    readings = {}
    for index, cluster in enumerate(clusters):
        reserved, cpu, count = (_latest(values.get(f"{p}{index}", {})) for p, _, _ in metrics)
        if reserved is not None and cpu and count:
            readings[cluster] = InsightsReading(reserved_percent=reserved, node_cpu=cpu, node_count=count)
    return readings


def insights_demand(
    reading: InsightsReading, enrolled: Sequence[NodeGroup], all_groups: Sequence[NodeGroup]
) -> dict[str, GroupDemand]:
    """Each enrolled group's share of the cluster's placed requests: its instances' share of the cluster's."""
    instances = sum(len(g.instances) for g in all_groups)
    demand = {}
    for group in enrolled:
        share = len(group.instances) / instances if instances else 1 / max(len(all_groups), 1)
        demand[group.name] = GroupDemand(
            millicores=reading.millicores * share,
            pending=0.0,  # Container Insights cannot see pods that no node took
            nodes=len(group.instances),
            node_millicores=int(reading.node_cpu),
            source="container-insights",
        )
    return demand


# -- the demand history -------------------------------------------------------------------------------------


def _dimensions(group: NodeGroup) -> list[dict[str, str]]:
    return [{"Name": "ClusterName", "Value": group.cluster}, {"Name": "AutoScalingGroupName", "Value": group.name}]


def _metric_data(cloudwatch: Any, queries: list[dict[str, Any]], *, start: float, end: float) -> dict[str, Any]:
    """GetMetricData for ``queries`` (any number), by query id. The start is aligned to a period boundary, so
    every backend cuts the same minutes."""
    aligned = math.floor(start / PERIOD) * PERIOD
    # The end a period late: a point stamped within the current second would otherwise fall after an end that
    # the request carries to the second. Callers drop what is too recent for them.
    end += PERIOD
    found: dict[str, Any] = {}
    for offset in range(0, len(queries), QUERIES_PER_CALL):
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries[offset : offset + QUERIES_PER_CALL],
            "StartTime": datetime.fromtimestamp(aligned, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
            "ScanBy": "TimestampAscending",
        }
        while True:
            page = cloudwatch.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                entry = found.setdefault(result["Id"], {"Timestamps": [], "Values": []})
                entry["Timestamps"] += list(result.get("Timestamps") or [])
                entry["Values"] += list(result.get("Values") or [])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    return found


class DemandHistory:
    """The scaler's own record of each group's demand: published every run, read back for the forecast."""

    def __init__(self, cloudwatch: Any) -> None:
        self._cloudwatch = cloudwatch

    def read(self, groups: Sequence[NodeGroup], *, now: float, seconds: int) -> dict[str, list[Sample]]:
        """The last ``seconds`` of each group's demand (one point a minute, the highest of the minute)."""
        queries = [
            {
                "Id": f"g{index}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": HISTORY_NAMESPACE,
                        "MetricName": HISTORY_METRIC,
                        "Dimensions": _dimensions(g),
                    },
                    "Period": PERIOD,
                    "Stat": "Maximum",
                },
            }
            for index, g in enumerate(groups)
        ]
        if not queries:
            return {}
        values = _metric_data(self._cloudwatch, queries, start=now - seconds, end=now)
        history = {}
        for index, group in enumerate(groups):
            result = values.get(f"g{index}", {})
            samples = [
                Sample(at=at.timestamp(), millicores=float(value))
                for at, value in zip(result.get("Timestamps") or [], result.get("Values") or [], strict=False)
                if at.timestamp() <= now - FRESH_SECONDS
            ]
            history[group.name] = sorted(samples, key=lambda s: s.at)
        return history

    def publish(self, samples: Sequence[tuple[NodeGroup, float, float]]) -> None:
        """Record (group, time, millicores) points."""
        data = [
            {
                "MetricName": HISTORY_METRIC,
                "Dimensions": _dimensions(group),
                "Timestamp": datetime.fromtimestamp(at, UTC),
                "Value": round(value, 3),
                "Unit": "None",
                "StorageResolution": PERIOD,
            }
            for group, at, value in samples
        ]
        for offset in range(0, len(data), DATA_PER_CALL):
            self._cloudwatch.put_metric_data(
                Namespace=HISTORY_NAMESPACE, MetricData=data[offset : offset + DATA_PER_CALL]
            )
