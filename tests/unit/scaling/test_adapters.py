"""The node scaler's adapters that need no server: quantities, demand attribution, groups, triggers, manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from eksops.aws.alarms import same_alarm
from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops.scaling.alarms import AlarmSettings, ScalingAlarms
from eksops.scaling.config import ScalerConfig
from eksops.scaling.decision import Autoscaler
from eksops.scaling.demand import (
    ClusterView,
    InsightsReading,
    Node,
    Pod,
    _node,
    _pod,
    cpu_millicores,
    group_labels,
    insights_demand,
    kube_demand,
    pod_millicores,
)
from eksops.scaling.groups import NodeGroup, Taint, _enrolled, cluster_of, taints_from_tags
from eksops.scaling.headroom import NAME_LIMIT, base_objects, deployment, deployment_name
from eksops.scaling.triggers import AlarmTrigger, parse_trigger

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = json.loads((ROOT / "events/node_scaler/reserved_cpu_alarm.json").read_text())


@pytest.mark.parametrize(
    ("quantity", "millicores"),
    [
        ("250m", 250),
        ("1", 1000),
        ("0.5", 500),
        (2, 2000),
        (1.5, 1500),
        ("1e3m", 1000),
        ("100000u", 100),
        ("2k", 2_000_000),
        ("1Ki", 1_024_000),
        (None, 0),
        ("nonsense", 0),
        ("-1", 0),
        ("NaN", 0),
    ],
)
def test_cpu_quantities(quantity: Any, millicores: float) -> None:
    assert cpu_millicores(quantity) == pytest.approx(millicores)


def test_a_pods_request_counts_sidecars_init_containers_and_overhead_as_the_scheduler_does() -> None:
    def c(cpu: str, **extra: Any) -> dict[str, Any]:
        return {"name": "x", "resources": {"requests": {"cpu": cpu}}, **extra}

    assert pod_millicores({"containers": [c("500m"), c("250m")]}) == 750
    # An init container larger than the app containers sets the request; a sidecar (restartPolicy Always) adds.
    assert pod_millicores({"containers": [c("500m")], "initContainers": [c("2")]}) == 2000
    assert pod_millicores({"containers": [c("500m")], "initContainers": [c("100m", restartPolicy="Always")]}) == 600
    assert pod_millicores({"containers": [c("500m")], "overhead": {"cpu": "250m"}}) == 750
    assert pod_millicores({"containers": [{"name": "no-requests"}]}) == 0


def group(name: str, instances: tuple[str, ...], **tags: str) -> NodeGroup:
    return NodeGroup(
        name=name,
        arn="",
        cluster="shop",
        min_size=0,
        max_size=10,
        desired=len(instances),
        instances=instances,
        tags={"eks:cluster-name": "shop", **tags},
        enrolled=True,
    )


def node(name: str, instance: str | None, *, ready: bool = True, **labels: str) -> Node:
    return Node(name=name, instance_id=instance, millicores=3920, ready=ready, labels=labels)


def test_demand_is_attributed_to_the_group_holding_the_node_and_pending_pods_split_by_selector() -> None:
    arm = group("arm", ("i-1", "i-2"))
    amd = group("amd", ("i-3",))
    view = ClusterView(
        nodes=(
            node("n1", "i-1", **{"kubernetes.io/arch": "arm64"}),
            node("n2", "i-2", ready=False, **{"kubernetes.io/arch": "arm64"}),
            node("n3", "i-3", **{"kubernetes.io/arch": "amd64"}),
            node("fargate", None),
        ),
        pods=(
            Pod(node="n1", millicores=1000),
            Pod(node="n3", millicores=500),
            Pod(node="fargate", millicores=250),  # on no group's node: nobody's demand
            Pod(node=None, millicores=2000),  # either group: half each
            Pod(node=None, millicores=800, node_selector={"kubernetes.io/arch": "arm64"}),  # arm only
            Pod(node=None, millicores=8000),  # larger than any node: more nodes would not place it
        ),
    )
    demand = kube_demand(view, [arm, amd])
    assert demand["arm"].millicores == 1000 + 1000 + 800 and demand["arm"].pending == 1800
    assert demand["amd"].millicores == 500 + 1000 and demand["amd"].pending == 1000
    assert demand["arm"].nodes == 1 and demand["amd"].nodes == 1  # ready ones
    assert demand["arm"].node_millicores == 3920 and demand["arm"].source == "kubernetes"


def test_with_nodepools_the_groups_count_only_the_pending_pods_that_select_a_groups_nodes() -> None:
    system = group("system-asg", ("i-1",), **{"eks:nodegroup-name": "system"})
    other = group("other-asg", ("i-2",), **{"eks:nodegroup-name": "other"})
    view = ClusterView(
        nodes=(
            node("n1", "i-1", **{"eks.amazonaws.com/nodegroup": "system"}),
            node("n2", "i-2", **{"eks.amazonaws.com/nodegroup": "other", "role": "other"}),
        ),
        pods=(
            Pod(node="n1", millicores=1000),
            Pod(node=None, millicores=600),  # selects nothing: the NodePools'
            Pod(node=None, millicores=700, node_selector={"role": "other"}),  # not a group label: the NodePools'
            Pod(node=None, millicores=800, node_selector={"eks.amazonaws.com/nodegroup": "system"}),
            Pod(
                node=None,
                millicores=400,
                required_terms=((("eks.amazonaws.com/nodegroup", "In", ("system",)),),),
            ),
        ),
    )
    labels = group_labels([system, other])
    assert labels == {"eks.amazonaws.com/nodegroup"}
    pooled = kube_demand(view, [system, other], only_selecting=labels)
    # The nodeSelector picks the system group; the affinity term is not matched on values: split over both.
    assert pooled["system-asg"].pending == 800 + 200 and pooled["other-asg"].pending == 200
    assert pooled["system-asg"].millicores == 1000 + 1000
    # Without NodePools every pending pod is the groups' (as before).
    alone = kube_demand(view, [system, other])
    assert alone["system-asg"].pending + alone["other-asg"].pending == 600 + 700 + 800 + 400


def test_avoiding_a_group_or_asking_for_a_kind_of_node_leaves_a_pending_pod_to_the_nodepools() -> None:
    label = "eks.amazonaws.com/nodegroup"
    template = "k8s.io/cluster-autoscaler/node-template/label/"
    system = group("system-asg", ("i-1",), **{"eks:nodegroup-name": "system"})
    arm = group("arm-asg", ("i-2",), **{template + "kubernetes.io/arch": "arm64", template + "team": "ml"})
    labels = group_labels([system, arm])
    assert labels == {label, "team"}  # the architecture is a kind of node, not a group
    avoid = Pod(node=None, millicores=1000, required_terms=(((label, "DoesNotExist", ()),),))
    not_in = Pod(node=None, millicores=1000, required_terms=(((label, "NotIn", ("system",)),),))
    amd = Pod(node=None, millicores=1000, node_selector={"kubernetes.io/arch": "amd64"})
    view = ClusterView(nodes=(node("n1", "i-1", **{label: "system"}),), pods=(avoid, not_in, amd))
    pooled = kube_demand(view, [system, arm], only_selecting=labels)
    assert pooled["system-asg"].pending == pooled["arm-asg"].pending == 0


def test_a_groups_taints_are_its_node_template_tags_and_its_nodes_taints_less_the_lifecycle_ones() -> None:
    template = "k8s.io/cluster-autoscaler/node-template/taint/"
    assert taints_from_tags(
        {
            f"{template}dedicated": "batch:NoSchedule",
            f"{template}gpu": ":NoExecute",  # no value
            f"{template}team": "ml:PreferNoSchedule",
            f"{template}bad": "true",  # no effect: Cluster Autoscaler skips it too
            f"{template}odd": "a:b:NoSchedule",  # the value is what comes before the first colon: effect invalid
            template: "x:NoSchedule",  # no key
            "k8s.io/cluster-autoscaler/node-template/label/dedicated": "batch:NoSchedule",
        }
    ) == (
        Taint("dedicated", "batch", "NoSchedule"),
        Taint("gpu", "", "NoExecute"),
        Taint("team", "ml", "PreferNoSchedule"),
    )
    taints = [
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"},
        {"key": "ToBeDeletedByClusterAutoscaler", "value": "1700000000", "effect": "NoSchedule"},
        {"key": "DeletionCandidateOfClusterAutoscaler", "value": "1700000000", "effect": "PreferNoSchedule"},
        {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"},
        {"key": "startup-taint.cluster-autoscaler.kubernetes.io/cni", "effect": "NoSchedule"},
        {"key": "no-effect"},
    ]
    parsed = _node({"metadata": {"name": "n"}, "spec": {"taints": taints}, "status": {}})
    assert parsed.taints == (Taint("dedicated", "batch", "NoSchedule"), Taint("nvidia.com/gpu", "", "NoSchedule"))
    # The taints every node of the group carries, sorted: not one a single node has for a while (a spot interruption
    # notice, an agent not ready yet), which pause pods must not tolerate (nor roll out anew for).
    tainted = group("batch", ("i-1", "i-2"))
    spot = Taint("aws-node-termination-handler/spot-itn", "", "NoSchedule")
    view = ClusterView(
        nodes=(
            Node(name="n1", instance_id="i-1", millicores=3920, ready=True, taints=(*parsed.taints, spot)),
            Node(name="n2", instance_id="i-2", millicores=3920, ready=True, taints=parsed.taints),
        ),
        pods=(),
    )
    demand = kube_demand(view, [tainted, group("plain", ("i-3",))])
    assert demand["batch"].taints == parsed.taints
    assert demand["plain"].taints == ()
    merged = tainted.with_taints(demand["batch"].taints).with_taints([Taint("dedicated", "batch", "NoSchedule")])
    assert merged.taints == demand["batch"].taints


def test_container_insights_demand_is_shared_by_the_instances_of_the_clusters_groups() -> None:
    reading = InsightsReading(reserved_percent=50.0, node_cpu=4000.0, node_count=4.0)  # 8 cores requested
    enrolled, other = group("a", ("i-1", "i-2", "i-3")), group("b", ("i-4",))
    demand = insights_demand(reading, [enrolled], [enrolled, other])
    assert demand["a"].millicores == 6000 and demand["a"].pending == 0 and demand["a"].nodes == 3


def _raw_pod(*, node: str | None = None, scheduler: str | None = None, **condition: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "resources": {"requests": {"cpu": "500m"}}}]}
    if node:
        spec["nodeName"] = node
    if scheduler:
        spec["schedulerName"] = scheduler
    status: dict[str, Any] = {"phase": "Running" if node else "Pending"}
    if condition:
        status["conditions"] = [{"type": "PodScheduled", **condition}]
    return {"metadata": {"name": "p", "namespace": "shop"}, "spec": spec, "status": status}


@pytest.mark.parametrize(
    ("raw", "counted"),
    [
        (_raw_pod(status="False", reason="Unschedulable"), True),  # no room: what nodes fix
        (_raw_pod(scheduler="default-scheduler", status="False", reason="Unschedulable"), True),
        (_raw_pod(node="n1", status="True"), True),  # running: demand on its node
        (_raw_pod(), False),  # the scheduler has not looked at it yet
        (_raw_pod(status="False", reason="SchedulingGated"), False),  # held by a scheduling gate
        (_raw_pod(status="True"), False),  # bound, waiting for its volume or image: not a node's job
        (_raw_pod(scheduler="volcano", status="False", reason="Unschedulable"), False),  # another scheduler's
    ],
)
def test_only_pods_the_default_scheduler_found_no_room_for_count_as_pending_demand(
    raw: dict[str, Any], counted: bool
) -> None:
    pod = _pod(raw, exclude_namespace="eksops-headroom")
    assert (pod is not None) is counted
    if pod is not None:
        assert pod.millicores == 500


def test_groups_cluster_enrollment_and_autoscaler_from_tags() -> None:
    assert cluster_of({"eks:cluster-name": "prod"}) == "prod"
    assert cluster_of({"kubernetes.io/cluster/dev-1": "owned"}) == "dev-1"
    assert cluster_of({"Name": "web"}) is None
    cfg = ScalerConfig(clusters=("prod-*",))
    assert _enrolled({"eksops:scaling": "enabled"}, "other", cfg)
    assert _enrolled({}, "prod-eu", cfg) and not _enrolled({}, "dev", cfg)
    assert not _enrolled({"eksops:scaling": "disabled"}, "prod-eu", cfg)  # opted out of a listed cluster
    assert group("g", (), **{"k8s.io/cluster-autoscaler/enabled": "true"}).autoscaler is Autoscaler.CLUSTER_AUTOSCALER
    managed = group("g", (), **{"eks:nodegroup-name": "general"})
    assert managed.node_labels() == {"eks.amazonaws.com/nodegroup": "general"}
    # A self-managed group names its nodes' labels the way Cluster Autoscaler reads them for scale-from-zero.
    template = "k8s.io/cluster-autoscaler/node-template/label/"
    self_managed = group("g", (), **{template + "role": "batch", template + "zone-pool": "a", template: "x"})
    assert self_managed.node_labels() == {"role": "batch", "zone-pool": "a"}
    assert group("g", ()).node_labels() == {}
    assert not managed.tagged and group("g", (), **{"eksops:scaling": "enabled"}).tagged


@pytest.mark.parametrize("value", ["Enabled", " enabled ", "ENABLED", "enabled\n", "true"])
def test_only_the_exact_enabled_value_enrolls_or_tags_a_group_as_iam_compares_it(value: str) -> None:
    # IAM's StringEquals on aws:ResourceTag/eksops:scaling matches "enabled" only: any other spelling would be
    # enrolled here and refused SetDesiredCapacity every minute. It also keeps the group out of a listed cluster.
    cfg = ScalerConfig(clusters=("prod-*",))
    assert not _enrolled({"eksops:scaling": value}, "other", cfg)
    assert not _enrolled({"eksops:scaling": value}, "prod-eu", cfg)
    assert not group("g", (), **{"eksops:scaling": value}).tagged
    assert not _enrolled({"eksops:scaling": "Disabled"}, "prod-eu", cfg)  # a typo never enrolls a group either


def test_the_headroom_manifests_are_valid_for_kubernetes_and_run_as_restricted_pods() -> None:
    g = group("eks-general-20261127-4ac9e2f1/With Odd_Chars", ("i-1",), **{"eks:nodegroup-name": "general"})
    docs = [*base_objects(), deployment(g, replicas=3, pod_millicores=1500)]
    for doc in docs:
        kubernetes_validate.validate(doc, latest_version(), strict=True)
    pause = docs[-1]
    assert pause["spec"]["replicas"] == 3
    spec = pause["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "general"}
    assert spec["containers"][0]["resources"]["requests"]["cpu"] == "1500m"
    assert spec["securityContext"]["runAsNonRoot"] and spec["containers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"]
    }
    assert "tolerations" not in spec  # an untainted group's pause pods tolerate nothing
    priority = docs[1]
    assert priority["value"] == -1 and priority["preemptionPolicy"] == "Never"


def test_a_tainted_groups_pause_pods_tolerate_exactly_its_taints() -> None:
    plain = group("ng", ("i-1",), **{"eks:nodegroup-name": "batch"})
    tainted = plain.with_taints([Taint("dedicated", "batch", "NoSchedule"), Taint("nvidia.com/gpu", "", "NoExecute")])
    pause = deployment(tainted, replicas=2, pod_millicores=1000)
    kubernetes_validate.validate(pause, latest_version(), strict=True)
    assert pause["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Equal", "effect": "NoExecute"},
    ]
    # Nothing else differs from the untainted group's Deployment.
    del pause["spec"]["template"]["spec"]["tolerations"]
    assert pause == deployment(plain, replicas=2, pod_millicores=1000)


def test_deployment_names_are_dns_labels_and_unique_per_group() -> None:
    names = {deployment_name(n) for n in ("a" * 255, "a" * 254, "ng/1", "ng_1", "NG 1", "---")}
    assert len(names) == 6
    for name in names:
        assert len(name) <= NAME_LIMIT and name[0].isalpha() and name[-1].isalnum() and name == name.lower()


def test_the_alarm_trigger_parses_cloudwatchs_notification() -> None:
    trigger = parse_trigger(SAMPLE)
    assert isinstance(trigger, AlarmTrigger)
    assert (trigger.cluster, trigger.state, trigger.alarm_name) == (
        "prod-eu",
        "ALARM",
        "eksops-scaling-prod-eu-cpu-reserved",
    )
    assert trigger.idempotency_key == SAMPLE["Records"][0]["Sns"]["MessageId"]
    assert (trigger.namespace, trigger.metric) == ("ContainerInsights", "node_cpu_reserved_capacity")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(Trigger="x"), "Records[0].Sns.Message.Trigger"),
        (lambda b: b["Trigger"].update(Dimensions=[1]), "Records[0].Sns.Message.Trigger.Dimensions[0]"),
        (lambda b: b.update(AlarmName=""), "Records[0].Sns.Message.AlarmName"),
        (lambda b: b.update(AlarmName="a" * 256), "Records[0].Sns.Message.AlarmName"),
        (lambda b: b.update(OldStateValue=7), "Records[0].Sns.Message.OldStateValue"),
        (lambda b: b["Trigger"].update(Namespace=[]), "Records[0].Sns.Message.Trigger.Namespace"),
    ],
)
def test_a_malformed_alarm_names_its_field(change: Any, field: str) -> None:
    event = json.loads(json.dumps(SAMPLE))
    body = json.loads(event["Records"][0]["Sns"]["Message"])
    change(body)
    event["Records"][0]["Sns"]["Message"] = json.dumps(body)
    with pytest.raises(InvalidEvent) as caught:
        parse_trigger(event)
    assert caught.value.field == field


def test_only_the_schedule_comes_through_eventbridge() -> None:
    schedule = json.loads((ROOT / "events/node_scaler/scheduled_forecast.json").read_text())
    assert parse_trigger(schedule).rule.startswith("eksops-NodeScalerFunctionForecast")  # type: ignore[union-attr]
    with pytest.raises(UnsupportedEvent):
        parse_trigger(json.loads((ROOT / "events/node_scaler/unmatched/set_desired_capacity.json").read_text()))


def test_alarm_names_and_comparison() -> None:
    settings = AlarmSettings(topic_arn="arn:aws:sns:us-east-1:123456789012:s", prefix="stack-scaling-")
    assert settings.name("prod") == "stack-scaling-prod-cpu-reserved"
    assert settings.cluster_of("stack-scaling-prod-cpu-reserved") == "prod"
    assert settings.cluster_of("stack-scaling--cpu-reserved") is None
    assert settings.cluster_of("other-prod-cpu-reserved") is None
    desired = ScalingAlarms(settings, cloudwatch=None, threshold=90, dry_run=False).desired("prod")
    current = {**desired, "AlarmArn": "arn", "StateValue": "OK"}
    assert same_alarm(current, desired)
    assert not same_alarm({**current, "Threshold": 80.0}, desired)
    assert not same_alarm({**current, "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:other"]}, desired)
    assert not same_alarm({**current, "DatapointsToAlarm": 3}, desired)
    # At a target of 100 % the alarm still can fire: the metric (requests / cores) never reaches 100 %.
    capped = ScalingAlarms(settings, cloudwatch=None, threshold=100, dry_run=False).desired("prod")
    assert capped["Threshold"] == 95.0
