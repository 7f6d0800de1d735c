"""The node groups the scaler looks after: Auto Scaling groups of EKS clusters, found by their tags.

A group belongs to the cluster named by its ``eks:cluster-name`` tag (EKS managed node groups) or its
``kubernetes.io/cluster/<name>`` tag (self-managed groups, eksctl, Karpenter's docs). It is enrolled when tagged
``eksops:scaling=enabled`` (exactly: IAM compares the value as it is), or when its cluster matches SCALER_CLUSTERS
and it has no ``eksops:scaling`` tag (``disabled``, or any value but exactly ``enabled``, keeps it out). What the
scaler remembers between runs (last scale-out and scale-in, a node's CPU, whether the group is at its maximum, the
last refusal reported) it keeps in ``eksops:scaling-*`` tags on the group, where operators see it.

A group's taints, which its headroom pause pods tolerate, are those Cluster Autoscaler's node-template tags declare
(``k8s.io/cluster-autoscaler/node-template/taint/<key>`` = ``<value>:<effect>``, what it knows of a group at zero
nodes) and, read by eksops.scaling.demand, those its nodes carry.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from eksops.scaling.config import ScalerConfig
from eksops.scaling.decision import Autoscaler, autoscaler_from_tags

__all__ = [
    "AT_MAX_TAG",
    "BOOKKEEPING_TAGS",
    "ENROLL_TAG",
    "LAST_SCALE_IN_TAG",
    "LAST_SCALE_OUT_TAG",
    "NODE_MILLICORES_TAG",
    "REFUSED_TAG",
    "TAINT_TAG_PREFIX",
    "NodeGroup",
    "Taint",
    "cluster_of",
    "discover",
    "format_time",
    "taints_from_tags",
]

ENROLL_TAG = "eksops:scaling"
ENABLED = "enabled"
DISABLED = "disabled"
CLUSTER_NAME_TAG = "eks:cluster-name"
CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"
NODEGROUP_TAG = "eks:nodegroup-name"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
KARPENTER_NODEPOOL = "karpenter.sh/nodepool"
CA_LABEL_TAG_PREFIX = "k8s.io/cluster-autoscaler/node-template/label/"
LAST_SCALE_OUT_TAG = "eksops:scaling-last-scale-out"
LAST_SCALE_IN_TAG = "eksops:scaling-last-scale-in"
NODE_MILLICORES_TAG = "eksops:scaling-node-millicores"
AT_MAX_TAG = "eksops:scaling-at-max"
# A fingerprint of the last refusal reported for the group: the same refusal is reported once, not every minute.
REFUSED_TAG = "eksops:scaling-refused"
# The only tag keys the function writes (its IAM policy allows these and no other).
BOOKKEEPING_TAGS = (LAST_SCALE_OUT_TAG, LAST_SCALE_IN_TAG, NODE_MILLICORES_TAG, AT_MAX_TAG, REFUSED_TAG)
# Cluster Autoscaler's node-template tag for a taint (cloudprovider/aws: extractTaintsFromAsg): <value>:<effect>.
TAINT_TAG_PREFIX = "k8s.io/cluster-autoscaler/node-template/taint/"
TAINT_EFFECTS = frozenset({"NoSchedule", "PreferNoSchedule", "NoExecute"})
_BOOTING = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})
_SERVING = frozenset({"InService"}) | _BOOTING


def cluster_of(tags: Mapping[str, str]) -> str | None:
    """The EKS cluster an Auto Scaling group's tags name, None for a group of no cluster."""
    if tags.get(CLUSTER_NAME_TAG):
        return tags[CLUSTER_NAME_TAG]
    for key in sorted(tags):
        if key.startswith(CLUSTER_TAG_PREFIX) and len(key) > len(CLUSTER_TAG_PREFIX):
            return key[len(CLUSTER_TAG_PREFIX) :]
    return None


@dataclass(frozen=True, order=True)
class Taint:
    """A taint a group's nodes carry (a Node's or a NodePool's ``spec.taints`` entry)."""

    key: str
    value: str
    effect: str

    def toleration(self) -> dict[str, str]:
        """The toleration of exactly this taint (a taint without value: ``Equal`` to the empty value)."""
        return {
            "key": self.key,
            "operator": "Equal",
            **({"value": self.value} if self.value else {}),
            "effect": self.effect,
        }

    @classmethod
    def parse(cls, item: Any) -> Taint | None:
        """A ``spec.taints`` entry, None when it is not one (no key or no valid effect)."""
        if not isinstance(item, Mapping):
            return None
        key, value, effect = (str(item.get(f) or "") for f in ("key", "value", "effect"))
        return cls(key, value, effect) if key and effect in TAINT_EFFECTS else None


def taints_from_tags(tags: Mapping[str, str]) -> tuple[Taint, ...]:
    """The taints Cluster Autoscaler's node-template tags declare, sorted. As Cluster Autoscaler reads them, the value
    is what comes before the first colon and the effect what follows; a tag without a valid effect is skipped."""
    found = set()
    for key, text in tags.items():
        name = key[len(TAINT_TAG_PREFIX) :] if key.startswith(TAINT_TAG_PREFIX) else ""
        value, colon, effect = text.partition(":")
        if name and colon and effect in TAINT_EFFECTS:
            found.add(Taint(name, value, effect))
    return tuple(sorted(found))


def format_time(epoch: float) -> str:
    """A tag value for a time: ISO 8601 in UTC, seconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None  # an edited or foreign value: as if never scaled (the cooldown errs towards acting)


@dataclass(frozen=True)
class NodeGroup:
    """One Auto Scaling group of an EKS cluster, as DescribeAutoScalingGroups showed it; or a Karpenter NodePool
    in its place (``nodepool`` set, built by eksops.scaling.pools from what the cluster's API shows)."""

    name: str
    arn: str
    cluster: str
    min_size: int
    max_size: int
    desired: int
    instances: tuple[str, ...]  # in service or booting
    tags: Mapping[str, str] = field(default_factory=dict)
    enrolled: bool = False
    instance_types: tuple[str, ...] = ()
    # A Karpenter NodePool standing in for a group (eksops.scaling.pools): its name; None for an Auto Scaling group.
    nodepool: str | None = None
    # The taints of its nodes, sorted: the headroom's pause pods tolerate exactly these. An Auto Scaling group's from
    # its node-template tags (discover), with its nodes' added by the service; a NodePool's from its template.
    taints: tuple[Taint, ...] = ()

    def with_taints(self, taints: Iterable[Taint]) -> NodeGroup:
        """The group with ``taints`` added to its own."""
        merged = tuple(sorted({*self.taints, *taints}))
        return self if merged == self.taints else replace(self, taints=merged)

    @property
    def tagged(self) -> bool:
        """Enrolled by its own tag: the asg actuator changes only such groups (IAM allows no other)."""
        return self.tags.get(ENROLL_TAG) == ENABLED

    @property
    def refusal_reported(self) -> str | None:
        """The fingerprint of the last refusal reported for the group (REFUSED_TAG), None if none."""
        return self.tags.get(REFUSED_TAG) or None

    @property
    def autoscaler(self) -> Autoscaler:
        return autoscaler_from_tags(self.tags)

    @property
    def last_scale_out(self) -> float | None:
        return _parse_time(self.tags.get(LAST_SCALE_OUT_TAG))

    @property
    def last_scale_in(self) -> float | None:
        return _parse_time(self.tags.get(LAST_SCALE_IN_TAG))

    @property
    def at_max_since(self) -> float | None:
        return _parse_time(self.tags.get(AT_MAX_TAG))

    @property
    def remembered_node_millicores(self) -> int | None:
        """A node's allocatable CPU as last measured (a group at zero nodes still knows its node size)."""
        value = self.tags.get(NODE_MILLICORES_TAG, "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    def node_labels(self) -> dict[str, str]:
        """Labels every node of the group carries, known from the group's tags (a nodeSelector for headroom)."""
        if self.tags.get(NODEGROUP_TAG):
            return {NODEGROUP_LABEL: self.tags[NODEGROUP_TAG]}
        if self.tags.get(KARPENTER_NODEPOOL):
            return {KARPENTER_NODEPOOL: self.tags[KARPENTER_NODEPOOL]}
        # Cluster Autoscaler's scale-from-zero convention for the labels a self-managed group's nodes carry.
        return {
            key[len(CA_LABEL_TAG_PREFIX) :]: value
            for key, value in sorted(self.tags.items())
            if key.startswith(CA_LABEL_TAG_PREFIX) and len(key) > len(CA_LABEL_TAG_PREFIX) and value
        }


def _tags(group: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in group.get("Tags", [])}


def _enrolled(tags: Mapping[str, str], cluster: str, cfg: ScalerConfig) -> bool:
    # Exactly "enabled" or "disabled", the values IAM's StringEquals on aws:ResourceTag/eksops:scaling compares:
    # a group tagged "Enabled" would be enrolled here and then refused SetDesiredCapacity by IAM every minute.
    # Any other value ("Enabled", " enabled", "disabled ") keeps the group out: a typo never enrolls a group.
    stated = tags.get(ENROLL_TAG)
    if stated == ENABLED:
        return True
    return stated is None and cfg.enrolled(cluster)


def _groups(autoscaling: Any) -> Iterator[Mapping[str, Any]]:
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate(PaginationConfig={"PageSize": 100}):
        yield from page.get("AutoScalingGroups", [])


def discover(autoscaling: Any, cfg: ScalerConfig) -> list[NodeGroup]:
    """Every Auto Scaling group of an EKS cluster in the region, enrolled or not, sorted by cluster and name.

    Groups of other clusters count too: in the Container Insights fallback a cluster's demand is shared over all
    of its groups' nodes. One DescribeAutoScalingGroups call per 100 groups.
    """
    found = []
    for group in _groups(autoscaling):
        tags = _tags(group)
        cluster = cluster_of(tags)
        if cluster is None:
            continue
        instances = [i for i in group.get("Instances", []) if i.get("LifecycleState") in _SERVING]
        found.append(
            NodeGroup(
                name=group["AutoScalingGroupName"],
                arn=group.get("AutoScalingGroupARN", ""),
                cluster=cluster,
                min_size=int(group["MinSize"]),
                max_size=int(group["MaxSize"]),
                desired=int(group["DesiredCapacity"]),
                instances=tuple(sorted(i["InstanceId"] for i in instances)),
                tags=tags,
                enrolled=_enrolled(tags, cluster, cfg),
                instance_types=tuple(sorted({i["InstanceType"] for i in instances if i.get("InstanceType")})),
                taints=taints_from_tags(tags),
            )
        )
    return sorted(found, key=lambda g: (g.cluster, g.name))


def median_millicores(values: list[int]) -> int | None:
    return int(statistics.median(values)) if values else None
