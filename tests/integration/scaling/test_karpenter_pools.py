"""The headroom actuator on Karpenter NodePools, end to end on the sandbox: a cluster enrolled through ScalerClusters,
its NodePool and nodes in the Kubernetes emulator, the handler invoked as Lambda would.

A Karpenter cluster has no Auto Scaling group for its pools: each NodePool is forecast as ``karpenter:<pool>`` and
gets a pause-pod Deployment that selects its nodes, so Karpenter provisions ahead. A headroom cluster without
Karpenter is served as before.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

from eksops.scaling.demand import HISTORY_METRIC, HISTORY_NAMESPACE
from eksops.scaling.groups import NODEGROUP_LABEL
from eksops.scaling.headroom import NAMESPACE, deployment_name
from eksops.scaling.pools import NODEPOOL_LABEL
from tests.integration.scaling.conftest import ALLOCATABLE, UNSCHEDULABLE, Fleet

PARAMETERS = {
    "ScalerClusters": '["karp-solo", "plain-*"]',  # karp-solo has no Auto Scaling group: named, not a glob
    "ScalerActuator": '{"karp-*": "headroom", "plain-*": "headroom", "*": "asg"}',
}
POOL = "karpenter:general"
CA = {"k8s.io/cluster-autoscaler/enabled": "true"}


def karpenter_cluster(f: Fleet, cluster: str, *, limit_cpu: str = "40", **template: Any) -> None:
    """NodePool general (spec.limits.cpu ``limit_cpu``, ``template`` in its spec.template.spec) with 2 ready 4-core
    nodes running 5 cores of pods."""
    from kubernetes import client as k8s

    core = f.core(cluster)
    k8s.CustomObjectsApi(core.api_client).create_cluster_custom_object(
        "karpenter.sh",
        "v1",
        "nodepools",
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "general"},
            "spec": {"limits": {"cpu": limit_cpu}, "template": {"spec": {"requirements": [], **template}}},
        },
    )
    for index, millicores in enumerate((3000, 2000)):
        name = f"ip-10-0-0-{index}.ec2.internal"
        core.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {NODEPOOL_LABEL: "general", "karpenter.sh/registered": "true"}},
                "spec": {"providerID": f"aws:///us-east-1a/i-0karp{index:011d}"},
                "status": {
                    "allocatable": {"cpu": f"{ALLOCATABLE}m"},
                    "capacity": {"cpu": "4"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
        f.pod(cluster, millicores, node=name)


def pending(f: Fleet, cluster: str, count: int, *, millicores: int = 1000) -> list[str]:
    """Pods the scheduler found no room for, naming no pool (the cluster's only NodePool takes them); their names."""
    names = [f"app-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for name in names:
        f.core(cluster).create_namespaced_pod(
            "shop",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "app:1", "resources": {"requests": {"cpu": f"{millicores}m"}}}
                    ]
                },
                "status": UNSCHEDULABLE,
            },
        )
    return names


def deployments(f: Fleet, cluster: str) -> dict[str, dict[str, Any]]:
    return {
        o.raw["metadata"]["name"]: o.raw
        for o in f.emulators[cluster].objects.values()
        if not o.deleted and o.raw.get("kind") == "Deployment"
    }


def test_a_karpenter_nodepool_gets_pause_pods_that_select_its_nodes_and_a_plain_cluster_is_unchanged(
    fleet: Callable[..., Fleet],
) -> None:
    f = fleet(**PARAMETERS)
    cluster, plain = "karp-solo", "plain-hr"
    karpenter_cluster(f, cluster)
    f.history(POOL, cluster, [3000.0 + 100 * i for i in range(20)])  # climbing 0.1 core a minute
    waiting = pending(f, cluster, 6)  # and now 6 cores the nodes cannot take: 11 cores requested
    # A headroom cluster without Karpenter (its API does not serve NodePools), Cluster Autoscaler on its group.
    group = f.group(f"{plain}-ng", plain, desired=2, tags=CA)
    first, second = f.nodes(plain, group)
    f.pod(plain, 3000, node=first)
    f.pod(plain, 2000, node=second)
    f.history(group, plain, [5000.0] * 20)
    pending(f, plain, 4)
    f.emulators[plain].resources.pop(next(k for k in f.emulators[plain].resources if "nodepools" in str(k)))
    calls = f.watch_set_desired()

    run = f.schedule()
    assert run.ok, run.error

    (decision,) = f.mine(run.result["decisions"], cluster)
    assert decision["group"] == POOL and decision["nodepool"] == "general"
    assert decision["actuator"] == "headroom" and decision["action"] == "scale_out"
    assert decision["source"] == "kubernetes" and decision["ready_nodes"] == 2
    assert decision["demand_millicores"] == 11000 and decision["pending_millicores"] == 6000
    assert (decision["min_size"], decision["max_size"], decision["desired_before"]) == (0, 10, 2)  # 40 cores / 4
    (change,) = f.mine(run.result["changed"], cluster)
    assert change == {
        "group": POOL,
        "cluster": cluster,
        "actuator": "headroom",
        "action": "scale_out",
        "unit": "pause pods",
        "from": 0,
        "to": decision["replicas"],
    }
    # The pause pods fill the gap between forecast plus headroom over the 90 % target and the 11 cores requested
    # now, in 1-core pods (the report rounds the forecast to a millicore: both roundings are allowed).
    fc = decision["forecast"]
    headroom = float(fc["headroom_millicores"])

    def gap(forecast: float) -> int:
        return math.ceil(((max(forecast, 11000) + headroom) / 0.9 - 11000) / 1000 - 1e-9)

    assert gap(fc["millicores"] - 0.5) <= decision["replicas"] <= gap(fc["millicores"] + 0.5)
    assert decision["replicas"] > 0
    pause = deployments(f, cluster)[deployment_name(POOL)]
    assert pause["metadata"]["namespace"] == NAMESPACE
    assert pause["spec"]["replicas"] == decision["replicas"]
    assert pause["spec"]["template"]["spec"]["nodeSelector"] == {NODEPOOL_LABEL: "general"}
    annotations = pause["metadata"]["annotations"]
    assert annotations["eksops/nodepool"] == "general" and "eksops/scaling-last-scale-out" in annotations
    # The demand history is kept under the pool's id, which no Auto Scaling group name can be (no colon allowed).
    metrics = f.cloudwatch.list_metrics(
        Namespace=HISTORY_NAMESPACE,
        MetricName=HISTORY_METRIC,
        Dimensions=[{"Name": "ClusterName", "Value": cluster}, {"Name": "AutoScalingGroupName", "Value": POOL}],
    )["Metrics"]
    assert metrics
    reports = [m for m in f.messages() if m["kind"] == "scaling.decision"]
    assert any(f"{POOL}: scale_out (headroom)" in line for m in reports for line in m["lines"])

    # The cluster without Karpenter: its group is decided on as before, nothing about pools.
    (plain_decision,) = f.mine(run.result["decisions"], plain)
    assert plain_decision["group"] == group and "nodepool" not in plain_decision
    assert plain_decision["action"] == "scale_out" and plain_decision["actuator"] == "headroom"
    assert f.mine(run.result["skipped"], plain) == [] and f.mine(run.result["skipped"], cluster) == []
    assert set(deployments(f, plain)) == {deployment_name(group)}
    assert "nodeSelector" not in deployments(f, plain)[deployment_name(group)]["spec"]["template"]["spec"]
    assert any("nodepools" in str(r.url) for r in f.emulators[plain])  # it looked, and found none served

    assert calls == [] and f.desired(group) == 2  # Karpenter and Cluster Autoscaler add the nodes, never eksops

    # The pending pods go (placed elsewhere, or deleted): 5 cores. The pause pods stay. Which guardrail holds them
    # depends on whether the history's minute already shows the run before (11 cores): the stabilisation window and
    # the cooldown, both from the last scale-out read back from the pool's Deployment, or the window's highest demand.
    # (The at-maximum test below checks the read-back on its own.)
    for name in waiting:
        f.core(cluster).delete_namespaced_pod(name, "shop")
    again = f.schedule()
    (held,) = f.mine(again.result["decisions"], cluster)
    assert held["demand_millicores"] == 5000 and held["replicas"] == decision["replicas"]
    assert held["action"] == "hold", held["reason"]
    assert held["reason"].startswith(("inside the stabilisation window", "scale-out cooldown", "capacity matches"))
    assert f.mine(again.result["changed"], cluster) == []


def test_a_pool_refusal_is_reported_once_and_reaching_its_limit_is_an_alert(fleet: Callable[..., Fleet]) -> None:
    f = fleet(**PARAMETERS)
    cluster = "karp-solo"
    karpenter_cluster(f, cluster, limit_cpu="16")  # 4 nodes of 4 cores
    # 9 cores wanted for the last 20 minutes, 4 of them pending: at the 90 % target, one more core of pause pods.
    # (Flat, so that whether a run's own sample is already in the history's minute changes nothing.)
    f.history(POOL, cluster, [9000.0] * 20)
    pending(f, cluster, 4)
    f.kill_switch("on")
    try:
        first, second = f.schedule(), f.schedule()
        assert first.ok and second.ok, (first.error, second.error)
        (refusal,) = f.mine(first.result["refused"], cluster)
        assert refusal["group"] == POOL
        assert refusal["reason"] == "kill switch /eksops/scaling/kill-switch is on; would set pause pods 0 -> 1"
        assert f.mine(second.result["refused"], cluster) == [] and POOL in second.result["refused_again"]
        assert deployments(f, cluster) == {}  # nothing written in the cluster under the kill switch
        assert f.messages("AlertsTopic") == []
    finally:
        f.kill_switch("off")
    pending(f, cluster, 10)  # 19 cores: more than the 4 nodes the NodePool's limit allows
    run = f.schedule()
    (decision,) = f.mine(run.result["decisions"], cluster)
    assert decision["max_size"] == 4 and decision["at_max"] and POOL in run.result["at_max"]
    (alert,) = f.messages("AlertsTopic")
    assert alert["kind"] == "scaling.at-max"
    assert alert["title"] == "Karpenter NodePool general is at its maximum (4 nodes)"
    # Remembered on the pool's Deployment: not alerted again a run later.
    assert "eksops/scaling-at-max" in deployments(f, cluster)[deployment_name(POOL)]["metadata"]["annotations"]
    assert POOL in f.schedule().result["at_max"] and f.messages("AlertsTopic") == []


def test_the_pause_pods_of_a_tainted_nodepool_tolerate_its_taints_and_not_its_startup_taints(
    fleet: Callable[..., Fleet],
) -> None:
    # Karpenter provisions for a pending pod only if it tolerates the NodePool's taints: without the tolerations the
    # pause pods would wait for nothing while the run reported success.
    f = fleet(**PARAMETERS)
    cluster = "karp-solo"
    karpenter_cluster(
        f,
        cluster,
        taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}],
        startupTaints=[{"key": "node.cilium.io/agent-not-ready", "value": "true", "effect": "NoExecute"}],
    )
    pending(f, cluster, 6)
    run = f.schedule()
    assert run.ok, run.error
    (decision,) = f.mine(run.result["decisions"], cluster)
    assert decision["action"] == "scale_out" and decision["replicas"] > 0
    pod = deployments(f, cluster)[deployment_name(POOL)]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {NODEPOOL_LABEL: "general"}
    # Exactly the pool's taints: a startup taint is Karpenter's to wait out, as the workload's pods do.
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}]


def test_a_pending_pod_counts_once_for_the_nodepools_unless_it_selects_a_node_groups_nodes(
    fleet: Callable[..., Fleet],
) -> None:
    # Cluster Autoscaler on the managed node group and Karpenter on the NodePool: a pod that selects neither is
    # Karpenter's (it provisions for any pod it can); counted for both, each would get pause pods for it.
    f = fleet(ScalerClusters='["karp-*"]', ScalerActuator='{"karp-*": "headroom"}')
    cluster = "karp-mixed"
    karpenter_cluster(f, cluster)
    system = f.group(f"{cluster}-system", cluster, desired=2, tags={"eks:nodegroup-name": "system", **CA})
    first, second = f.nodes(cluster, system, labels={NODEGROUP_LABEL: "system"})
    f.pod(cluster, 3000, node=first)
    f.pod(cluster, 2000, node=second)
    # Karpenter's controller runs on a group of its own, out of the scaler as the docs recommend.
    controller = f.group(
        f"{cluster}-karpenter",
        cluster,
        desired=1,
        tags={"eks:nodegroup-name": "karpenter", "eksops:scaling": "disabled"},
    )
    f.nodes(cluster, controller, labels={NODEGROUP_LABEL: "karpenter"})
    pending(f, cluster, 6)  # 6 cores that select no group and no pool: the NodePool's
    for group, millicores in (("system", 500), ("karpenter", 700)):
        f.core(cluster).create_namespaced_pod(
            "shop",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"pinned-{group}", "namespace": "shop"},
                "spec": {
                    "nodeSelector": {NODEGROUP_LABEL: group},
                    "containers": [
                        {"name": "app", "image": "app:1", "resources": {"requests": {"cpu": f"{millicores}m"}}}
                    ],
                },
                "status": UNSCHEDULABLE,
            },
        )

    run = f.schedule()
    assert run.ok, run.error

    pending_of = {d["group"]: d["pending_millicores"] for d in f.mine(run.result["decisions"], cluster)}
    # The pod pinned to the system group is that group's only; the one pinned to the controller's group is nobody's
    # (that group is not enrolled, and Karpenter would not provision a node for it).
    assert pending_of == {system: 500, POOL: 6000}
