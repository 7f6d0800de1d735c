"""Karpenter NodePools as capacity pools (eksops.scaling.pools): which nodes and pods are a pool's, its bounds, and
that the decision and the service never set a desired capacity for one, whatever the actuator says."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_validate.utils import latest_version

from eksops.scaling import Action, Actuator, Autoscaler, GroupState, Sample, ScalerConfig, decide
from eksops.scaling.demand import ClusterView, Node, Pod, _node, _pod, group_labels
from eksops.scaling.groups import Taint
from eksops.scaling.headroom import deployment, deployment_name
from eksops.scaling.pools import (
    NODEPOOL_LABEL,
    UNLIMITED_POOL_MAX_NODES,
    NodePool,
    pool_groups,
    read_nodepools,
    targets,
)
from eksops.scaling.service import _NotOurs, _only_tagged_groups

NOW = 1_700_000_000.0
ALLOCATABLE = 3920
CAPACITY = 4000


def node(name: str, pool: str | None, *, ready: bool = True, millicores: int = ALLOCATABLE) -> Node:
    labels = {NODEPOOL_LABEL: pool} if pool else {}
    return Node(
        name=name, instance_id=f"i-{name}", millicores=millicores, ready=ready, labels=labels, capacity=CAPACITY
    )


def pending(millicores: float, *, selector: dict[str, str] | None = None, terms: Any = ()) -> Pod:
    return Pod(node=None, millicores=millicores, node_selector=selector or {}, required_terms=terms)


def In(*pools: str) -> tuple[str, str, tuple[str, ...]]:
    return (NODEPOOL_LABEL, "In", pools)


def test_a_pool_is_its_labelled_nodes_the_pods_on_them_and_the_pending_pods_that_target_it() -> None:
    pools = [NodePool("general", 40_000.0), NodePool("gpu", None)]
    view = ClusterView(
        nodes=(
            node("g1", "general"),
            node("g2", "general", ready=False),
            node("x1", "gpu", millicores=7910),
            node("mng", None),  # a managed node group's node: no pool's
        ),
        pods=(
            Pod(node="g1", millicores=1500),
            Pod(node="g2", millicores=500),
            Pod(node="x1", millicores=4000),
            Pod(node="mng", millicores=9000),
            pending(1000, selector={NODEPOOL_LABEL: "general"}),
            pending(2000, terms=((In("gpu"),),)),
            pending(600, terms=((In("general", "gpu"),),)),  # allows both: split evenly
            pending(700, terms=(((NODEPOOL_LABEL, "NotIn", ("gpu",)),),)),  # allows general only
            pending(800),  # names no pool, and the cluster has two: Karpenter's choice is not predicted
            pending(5000, selector={NODEPOOL_LABEL: "general"}),  # larger than a general node: more nodes won't help
        ),
    )
    reading = pool_groups("shop", pools, view)
    general, gpu = reading.groups
    assert (general.name, gpu.name) == ("karpenter:general", "karpenter:gpu")
    assert general.nodepool == "general" and general.cluster == "shop" and general.enrolled
    assert general.desired == 2 and general.min_size == 0
    assert general.max_size == 10  # limits.cpu 40 cores over a node's 4-core capacity (not its allocatable)
    assert gpu.max_size == UNLIMITED_POOL_MAX_NODES  # no limits.cpu
    g, x = reading.demand["karpenter:general"], reading.demand["karpenter:gpu"]
    assert g.pending == pytest.approx(1000 + 300 + 700) and g.millicores == pytest.approx(2000 + 2000)
    assert x.pending == pytest.approx(2000 + 300) and x.millicores == pytest.approx(4000 + 2300)
    assert (g.nodes, g.node_millicores, g.source) == (1, ALLOCATABLE, "kubernetes")
    assert x.node_millicores == 7910
    assert reading.skipped == ()


def test_with_exactly_one_nodepool_any_pending_pod_counts_unless_it_names_another_pool() -> None:
    view = ClusterView(
        nodes=(node("g1", "general"),),
        pods=(
            pending(1000),
            pending(500, selector={"kubernetes.io/arch": "arm64"}),  # other requirements: Karpenter picks the instance
            pending(400, selector={NODEPOOL_LABEL: "batch"}),  # a pool that does not exist: not this one's
            pending(300, terms=(((NODEPOOL_LABEL, "DoesNotExist", ()),),)),  # no Karpenter node at all
        ),
    )
    (general,) = pool_groups("shop", [NodePool("general", None)], view).groups
    demand = pool_groups("shop", [NodePool("general", None)], view).demand[general.name]
    assert demand.pending == 1500


def test_a_pending_pod_that_selects_an_auto_scaling_groups_nodes_is_never_a_pools() -> None:
    nodegroup = "eks.amazonaws.com/nodegroup"
    view = ClusterView(
        nodes=(node("g1", "general"),),
        pods=(
            pending(1000),  # selects no group: the only pool's
            pending(500, selector={nodegroup: "system"}),  # the system group's
            pending(400, terms=(((nodegroup, "In", ("system",)),),)),  # by required affinity too
            pending(300, selector={"team": "web"}),  # a label no group's tags promise: the pool's
        ),
    )
    reading = pool_groups("shop", [NodePool("general", None)], view, group_labels=group_labels([]))
    assert reading.demand["karpenter:general"].pending == 1300


def test_a_pools_pause_pods_tolerate_its_taints_not_its_startup_taints(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import kubernetes

    page = {
        "items": [
            {
                "metadata": {"name": "batch"},
                "spec": {
                    "template": {
                        "spec": {
                            "taints": [
                                {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
                                {"key": "spot", "effect": "PreferNoSchedule"},
                            ],
                            "startupTaints": [{"key": "node.cilium.io/agent-not-ready", "effect": "NoExecute"}],
                        }
                    }
                },
            },
            {"metadata": {"name": "general"}, "spec": {"template": {"spec": {}}}},
        ],
        "metadata": {},
    }

    class Response:
        data = json.dumps(page).encode()

    monkeypatch.setattr(
        kubernetes.client.CustomObjectsApi, "list_cluster_custom_object", lambda *args, **kwargs: Response()
    )
    pools = read_nodepools(kubernetes.client.ApiClient())
    assert pools is not None
    batch, general = pools
    assert batch.taints == (Taint("dedicated", "batch", "NoSchedule"), Taint("spot", "", "PreferNoSchedule"))
    assert general.taints == ()
    view = ClusterView(nodes=(node("b", "batch"), node("g", "general")), pods=())
    tainted, plain = pool_groups("shop", pools, view).groups
    pause = deployment(tainted, replicas=3, pod_millicores=1000)
    kubernetes_validate.validate(pause, latest_version(), strict=True)
    assert pause["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Equal", "effect": "PreferNoSchedule"},
    ]
    assert "tolerations" not in deployment(plain, replicas=3, pod_millicores=1000)["spec"]["template"]["spec"]


def test_a_pool_without_a_node_is_skipped_saying_why() -> None:
    view = ClusterView(nodes=(node("g1", "general"),), pods=(pending(1000, selector={NODEPOOL_LABEL: "new"}),))
    reading = pool_groups("shop", [NodePool("general", None), NodePool("new", 10_000.0)], view)
    assert [g.name for g in reading.groups] == ["karpenter:general"]
    ((name, reason),) = reading.skipped
    assert name == "karpenter:new" and reason.startswith("NodePool new has no node yet")
    assert "karpenter:new" not in reading.demand


def test_the_maximum_is_never_below_the_nodes_the_pool_has() -> None:
    view = ClusterView(nodes=tuple(node(f"g{i}", "general") for i in range(5)), pods=())
    (general,) = pool_groups("shop", [NodePool("general", 8_000.0)], view).groups  # 2 nodes' worth of limit
    assert general.desired == general.max_size == 5


def test_required_node_affinity_terms_are_read_from_pending_pods_only() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": NODEPOOL_LABEL, "operator": "In", "values": ["a", "b"]}]},
                    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "Exists"}]},
                ]
            }
        }
    }
    unscheduled = {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
    pod = _pod({"metadata": {"namespace": "shop"}, "spec": {"affinity": affinity}, "status": unscheduled}, "x")
    assert pod is not None
    assert pod.required_terms == (
        ((NODEPOOL_LABEL, "In", ("a", "b")),),
        (("topology.kubernetes.io/zone", "Exists", ()),),
    )
    # Terms are ORed: the second term does not restrict the pool, so any pool is allowed.
    assert targets(pod, "c")
    placed = _pod(
        {"metadata": {}, "spec": {"nodeName": "n", "affinity": affinity}, "status": {"phase": "Running"}}, "x"
    )
    assert placed is not None and placed.required_terms == ()
    assert targets(pending(1, terms=((In("a", "b"),),)), "a") and not targets(pending(1, terms=((In("a"),),)), "b")
    assert not targets(pending(1, selector={NODEPOOL_LABEL: "a"}, terms=((In("b"),),)), "b")


def test_a_node_reports_its_cpu_capacity_besides_its_allocatable() -> None:
    item = {"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "3920m"}, "capacity": {"cpu": "4"}}}
    assert (_node(item).millicores, _node(item).capacity) == (3920, 4000)


def test_the_headroom_deployment_of_a_pool_selects_its_nodes() -> None:
    (general,) = pool_groups(
        "shop", [NodePool("general", None)], ClusterView(nodes=(node("g", "general"),), pods=())
    ).groups
    manifest = deployment(general, replicas=3, pod_millicores=1000)
    assert manifest["spec"]["template"]["spec"]["nodeSelector"] == {NODEPOOL_LABEL: "general"}
    assert manifest["metadata"]["name"] == deployment_name("karpenter:general")
    assert manifest["metadata"]["annotations"] == {"eksops/nodepool": "general", "eksops/cluster": "shop"}
    assert general.autoscaler is Autoscaler.KARPENTER and not general.tagged


def test_read_nodepools_is_none_where_karpenter_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.client.exceptions import ApiException

    def not_found(*args: Any, **kwargs: Any) -> Any:
        raise ApiException(status=404, reason="Not Found")

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise ApiException(status=403, reason="Forbidden")

    import kubernetes

    monkeypatch.setattr(kubernetes.client.CustomObjectsApi, "list_cluster_custom_object", not_found)
    assert read_nodepools(object()) is None
    monkeypatch.setattr(kubernetes.client.CustomObjectsApi, "list_cluster_custom_object", forbidden)
    with pytest.raises(ApiException):
        read_nodepools(object())  # the service reports it and keeps the cluster's Auto Scaling groups


# -- never SetDesiredCapacity ---------------------------------------------------------------------------------


@st.composite
def pool_states(draw: st.DrawFn) -> tuple[GroupState, Any]:
    """A NodePool's group as the service builds it, with an arbitrary demand history, pending CPU and pause pods."""
    nodes = draw(st.integers(1, 30))
    limit = draw(st.one_of(st.none(), st.integers(1, 400).map(lambda cores: cores * 1000.0)))
    view = ClusterView(nodes=tuple(node(f"n{i}", "general") for i in range(nodes)), pods=())
    (group,) = pool_groups("karp", [NodePool("general", limit)], view).groups
    base = draw(st.floats(0, 2)) * nodes * ALLOCATABLE
    slope = draw(st.floats(-1, 3)) * ALLOCATABLE / 60
    count = draw(st.integers(0, 30))  # the service's history always ends with the sample taken now
    history = tuple(Sample(NOW - 60 * (count - 1 - i), max(0.0, base + slope * i)) for i in range(count))
    state = GroupState(
        name=group.name,
        cluster=group.cluster,
        min_size=group.min_size,
        max_size=group.max_size,
        desired=group.desired,
        nodes=nodes,
        node_millicores=ALLOCATABLE,
        pending_millicores=draw(st.sampled_from([0.0, 500.0, 50_000.0])),
        history=history,
        autoscaler=group.autoscaler,
        headroom_replicas=draw(st.integers(0, 50)),
    )
    return state, group


@settings(max_examples=300, deadline=None)
@given(pool_states(), st.sampled_from(list(Actuator)), st.booleans(), st.booleans())
def test_a_pool_never_gets_a_desired_capacity_whatever_the_actuator(
    pool: tuple[GroupState, Any], actuator: Actuator, dry_run: bool, kill_switch: bool
) -> None:
    state, group = pool
    cfg = ScalerConfig(actuators=(("*", actuator),), clusters=("karp",))
    decision = _only_tagged_groups(group, decide(state, cfg, now=NOW, dry_run=dry_run, kill_switch=kill_switch))
    assert decision.desired == state.desired  # desired capacity is never what a decision about a pool changes
    if decision.actuator is Actuator.ASG:
        assert not decision.changed
        if decision.action is Action.REFUSED:
            assert decision.reason.startswith("karpenter manages this group")
    else:
        assert decision.replicas == state.headroom_replicas or decision.changed
        if decision.action is Action.SCALE_OUT:  # pause pods for at most the pool's maximum, never more
            assert decision.replicas * 1000 <= state.max_size * ALLOCATABLE


def test_the_service_refuses_to_send_set_desired_capacity_for_a_pool() -> None:
    """The last check before the call: even a decision that says asg and scale_out is never sent for a pool."""
    from eksops.config import CommonConfig
    from eksops.scaling import AlarmSettings, NodeScalerService
    from eksops.scaling.decision import Decision

    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"{name} called")

    (group,) = pool_groups(
        "karp", [NodePool("general", None)], ClusterView(nodes=(node("g", "general"),), pods=())
    ).groups
    service = NodeScalerService(
        ScalerConfig(),
        CommonConfig(
            dry_run=False, alerts_topic_arn=None, reports_topic_arn=None, event_bus_name="default", function_name="x"
        ),
        autoscaling=NoCalls(),
        cloudwatch=NoCalls(),
        ssm=NoCalls(),
        publisher=NoCalls(),  # type: ignore[arg-type]
        alarms=AlarmSettings(topic_arn=None),
    )
    forged = Decision(
        group=group.name,
        action=Action.SCALE_OUT,
        actuator=Actuator.ASG,
        reason="forged",
        desired=5,
        replicas=0,
        proposed=5,
        wanted_nodes=5,
        demand=0.0,
        forecast=None,
    )
    with pytest.raises(_NotOurs):
        service._act(group, forged, api=None)
