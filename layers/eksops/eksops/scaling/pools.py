"""Karpenter NodePools as capacity pools: what the headroom actuator forecasts and sizes pause pods for where
Karpenter, which creates no Auto Scaling groups, provisions the nodes.

A cluster enrolled through SCALER_CLUSTERS whose actuator is ``headroom`` has its NodePools
(``karpenter.sh/v1 nodepools``) read through its Kubernetes API; each becomes a :class:`NodeGroup` named
``karpenter:<nodepool>`` (an Auto Scaling group's name cannot hold a colon, so it never collides with one, in the
history metric's ``AutoScalingGroupName`` dimension or anywhere else) and goes through the same demand history,
:func:`eksops.scaling.decide`, headroom Deployment and reports as a group does. The rules:

* **Nodes**: those labelled ``karpenter.sh/nodepool=<name>``. Node CPU: their allocatable CPU (median). A pool
  with no node yet is skipped, saying so: its node size is unknown, and Karpenter provisions its first node for
  the first pending pod anyway.
* **Demand**: the CPU requests of pods bound to its nodes, plus the pending pods the scheduler found no room for
  (the rule of eksops.scaling.demand) that target it: a pod whose ``nodeSelector`` or required node affinity
  names ``karpenter.sh/nodepool`` counts for the pools it allows, split evenly among them; a pod that does not name
  the label counts only when the cluster has exactly one NodePool (with several, Karpenter's choice by weight and
  requirements is not predicted, and the pod is left out). A pod that selects an Auto Scaling group's node label
  (``eks.amazonaws.com/nodegroup``, :func:`eksops.scaling.demand.group_labels`) is that group's, never a pool's; the
  groups in turn leave every other pending pod to the pools, so each counts once. A pod larger than one node of the
  pool does not count. Other constraints (instance types, zones, taints) are not evaluated: Karpenter picks the
  instance.
* **Maximum**: the NodePool's ``spec.limits.cpu`` in nodes (Karpenter counts node *capacity* against it, so the
  limit is divided by a node's capacity, floored); without a CPU limit, :data:`UNLIMITED_POOL_MAX_NODES`. Never
  below the nodes the pool has now. Minimum 0; ``desired`` is the pool's node count.
* **Autoscaler**: always Karpenter (the group's tags say ``karpenter.sh/nodepool``), so the decision never sets a
  desired capacity (there is no group to set it on) and the headroom Deployment's ``nodeSelector`` is
  ``karpenter.sh/nodepool: <name>``: Karpenter provisions nodes of that pool for the pause pods.
* **Taints**: the pool's ``spec.template.spec.taints``, which the pause pods tolerate (Karpenter provisions only for
  pods that tolerate them); not its ``startupTaints``, which its nodes lose once they are initialised.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eksops.scaling.decision import AUTOSCALER_TAG, Autoscaler
from eksops.scaling.demand import ClusterView, GroupDemand, Node, Pod, cpu_millicores, list_items, selects
from eksops.scaling.groups import KARPENTER_NODEPOOL, NodeGroup, Taint, median_millicores

__all__ = [
    "NODEPOOL_LABEL",
    "POOL_PREFIX",
    "UNLIMITED_POOL_MAX_NODES",
    "NodePool",
    "PoolReading",
    "pool_groups",
    "read_nodepools",
    "targets",
]

NODEPOOL_LABEL = KARPENTER_NODEPOOL  # the label Karpenter puts on every node it launches for a pool
POOL_PREFIX = "karpenter:"  # Auto Scaling group names cannot contain ":" (CreateAutoScalingGroup)
GROUP, VERSION, PLURAL = "karpenter.sh", "v1", "nodepools"
# A pool without spec.limits.cpu: Karpenter sets no bound, eksops takes this many nodes (its pause pods never ask
# for more than that holds); SCALER_MAX_STEP node-equivalents per run is what paces them. Set limits.cpu for a
# real bound and the at-maximum alert.
UNLIMITED_POOL_MAX_NODES = 1000


@dataclass(frozen=True)
class NodePool:
    name: str
    limit_millicores: float | None  # spec.limits.cpu, None when not set
    taints: tuple[Taint, ...] = ()  # spec.template.spec.taints, sorted (not startupTaints)


def read_nodepools(api_client: Any) -> list[NodePool] | None:
    """The cluster's NodePools, None when the API does not serve them (Karpenter not installed, or pre-v1)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    custom = k8s.CustomObjectsApi(api_client)
    try:
        items = list(list_items(functools.partial(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    pools = []
    for item in items:
        name = str((item.get("metadata") or {}).get("name") or "")
        spec = item.get("spec") or {}
        limits = spec.get("limits") or {}
        if name:
            limit = cpu_millicores(limits["cpu"]) if "cpu" in limits else None
            template = (spec.get("template") or {}).get("spec") or {}
            taints = {t for t in map(Taint.parse, template.get("taints") or []) if t is not None}
            pools.append(NodePool(name=name, limit_millicores=limit, taints=tuple(sorted(taints))))
    return sorted(pools, key=lambda p: p.name)


def _holds(expression: tuple[str, str, tuple[str, ...]], pool: str) -> bool:
    key, operator, values = expression
    if key != NODEPOOL_LABEL:
        return True  # another requirement: Karpenter picks an instance that meets it (not evaluated)
    return {
        "In": pool in values,
        "NotIn": pool not in values,
        "Exists": True,
        "DoesNotExist": False,
    }.get(operator, False)  # Gt and Lt on a pool name: never true


def names_a_pool(pod: Pod) -> bool:
    """Whether the pod's nodeSelector or required node affinity says anything about ``karpenter.sh/nodepool``."""
    return NODEPOOL_LABEL in pod.node_selector or any(e[0] == NODEPOOL_LABEL for t in pod.required_terms for e in t)


def targets(pod: Pod, pool: str) -> bool:
    """Whether the pod's nodeSelector and required node affinity allow a node of ``pool`` (the pool label only)."""
    if pod.node_selector.get(NODEPOOL_LABEL, pool) != pool:
        return False
    return not pod.required_terms or any(all(_holds(e, pool) for e in term) for term in pod.required_terms)


@dataclass(frozen=True)
class PoolReading:
    """The pools of one cluster as groups, their demand, and those skipped (name, reason)."""

    groups: tuple[NodeGroup, ...]
    demand: Mapping[str, GroupDemand]
    skipped: tuple[tuple[str, str], ...]


def pool_id(name: str) -> str:
    return f"{POOL_PREFIX}{name}"


def _max_nodes(pool: NodePool, nodes: Sequence[Node], allocatable: int) -> int:
    if pool.limit_millicores is None:
        bound = UNLIMITED_POOL_MAX_NODES
    else:
        capacity = median_millicores([n.capacity for n in nodes if n.capacity > 0]) or allocatable
        bound = math.floor(pool.limit_millicores / capacity + 1e-9)
    return max(bound, len(nodes))


def _allowed(pod: Pod, pools: Sequence[NodePool], group_labels: Collection[str]) -> list[str]:
    """The pools a pending pod may be provisioned on (the module's rules)."""
    if selects(pod, group_labels):
        return []  # an Auto Scaling group's: counted there
    if names_a_pool(pod):
        return [p.name for p in pools if targets(pod, p.name)]
    return [p.name for p in pools] if len(pools) == 1 else []


def pool_groups(
    cluster: str, pools: Sequence[NodePool], view: ClusterView, *, group_labels: Collection[str] = ()
) -> PoolReading:
    """Each NodePool of ``cluster`` as a group with its demand, from what Kubernetes shows (the module's rules).

    ``group_labels``: the node labels that select the cluster's Auto Scaling groups; a pending pod that selects one is
    the groups' (eksops.scaling.demand.kube_demand), not a pool's.
    """
    nodes_of: dict[str, list[Node]] = {p.name: [] for p in pools}
    pool_of_node: dict[str, str] = {}
    for node in view.nodes:
        name = node.labels.get(NODEPOOL_LABEL)
        if name in nodes_of:
            nodes_of[name].append(node)
            pool_of_node[node.name] = name
    sizes = {p.name: median_millicores([n.millicores for n in nodes_of[p.name] if n.millicores > 0]) for p in pools}
    placed = dict.fromkeys(nodes_of, 0.0)
    pending = dict.fromkeys(nodes_of, 0.0)
    for pod in view.pods:
        if pod.node is not None:
            if pod.node in pool_of_node:
                placed[pool_of_node[pod.node]] += pod.millicores
            continue
        allowed = _allowed(pod, pools, group_labels)
        # A pod larger than one node of the pool is not something more nodes of it would place.
        fits = [name for name in allowed if sizes[name] is not None and pod.millicores <= (sizes[name] or 0)]
        for name in fits:
            pending[name] += pod.millicores / len(fits)
    groups, demand, skipped = [], {}, []
    for pool in pools:
        size = sizes[pool.name]
        if size is None:
            skipped.append(
                (
                    pool_id(pool.name),
                    f"NodePool {pool.name} has no node yet: a node's CPU is unknown, so its headroom cannot be sized "
                    "(Karpenter provisions its first node for the first pod that needs it)",
                )
            )
            continue
        members = nodes_of[pool.name]
        group = NodeGroup(
            name=pool_id(pool.name),
            arn="",
            cluster=cluster,
            min_size=0,
            max_size=_max_nodes(pool, members, size),
            desired=len(members),
            instances=tuple(sorted(n.instance_id for n in members if n.instance_id)),
            tags={NODEPOOL_LABEL: pool.name, AUTOSCALER_TAG: Autoscaler.KARPENTER.value},
            enrolled=True,
            nodepool=pool.name,
            taints=pool.taints,
        )
        groups.append(group)
        demand[group.name] = GroupDemand(
            millicores=placed[pool.name] + pending[pool.name],
            pending=pending[pool.name],
            nodes=sum(1 for n in members if n.ready),
            node_millicores=size,
            source="kubernetes",
        )
    return PoolReading(groups=tuple(groups), demand=demand, skipped=tuple(skipped))
