"""node_scaler end to end on the sandbox: moto (Auto Scaling, CloudWatch, SSM, SNS, DynamoDB) and a Kubernetes
emulator per cluster, the handler invoked as Lambda would (template environment, retries, dead-letter queue).

Most tests share one sandbox and work on a cluster of their own (conftest.py); clusters named hr-* get the
headroom actuator there, the others asg.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from eksops.scaling.alarms import MANAGED_TAG
from eksops.scaling.groups import LAST_SCALE_OUT_TAG, NODE_MILLICORES_TAG
from eksops.scaling.headroom import NAMESPACE, PAUSE_IMAGE, PRIORITY_CLASS, deployment_name
from eksops.scaling.service import INSIGHTS_LAG_SECONDS
from eksops_dev.alarms import AlarmShim
from tests.integration.scaling.conftest import ALLOCATABLE, PREFIX, UNSCHEDULABLE, Fleet, alarm_event

OURS = {"eksops:scaling": "enabled", "eksops:scaling-autoscaler": "none"}  # no other autoscaler runs
CA = {"eksops:scaling": "enabled", "k8s.io/cluster-autoscaler/enabled": "true"}
FLAT = [5000.0] * 20


def steady_cluster(fleet: Fleet, cluster: str, *, tags: dict[str, str] = OURS, max_size: int = 10) -> str:
    """A group of 2 ready nodes running 5 cores of pods, steady for 20 minutes: capacity matches the forecast."""
    group = fleet.group(f"{cluster}-ng", cluster, desired=2, max_size=max_size, tags=tags)
    first, second = fleet.nodes(cluster, group)
    fleet.pod(cluster, 3000, node=first)
    fleet.pod(cluster, 2000, node=second)
    fleet.history(group, cluster, FLAT)
    return group


def burst(fleet: Fleet, cluster: str, millicores: int = 9000) -> None:
    """Pods no node can take yet: what the reserved-capacity metric cannot see."""
    for _ in range(millicores // 1000):
        fleet.pod(cluster, 1000)


def alarm_name(cluster: str) -> str:
    return f"{PREFIX}{cluster}-cpu-reserved"


def test_the_schedule_holds_a_steady_group_and_creates_the_clusters_alarm(shared: Fleet) -> None:
    f, cluster = shared, "c1-steady"
    group = steady_cluster(f, cluster)
    run = f.schedule()
    assert run.ok, run.error
    (decision,) = f.mine(run.result["decisions"], cluster)
    assert decision["action"] == "hold" and decision["source"] == "kubernetes"
    assert decision["demand_millicores"] == 5000 and decision["ready_nodes"] == 2
    assert f.desired(group) == 2
    (alarm,) = f.cloudwatch.describe_alarms(AlarmNames=[alarm_name(cluster)])["MetricAlarms"]
    assert alarm["Namespace"] == "ContainerInsights" and alarm["MetricName"] == "node_cpu_reserved_capacity"
    assert alarm["Dimensions"] == [{"Name": "ClusterName", "Value": cluster}]
    assert alarm["Threshold"] == 90.0 and alarm["Period"] == 60 and alarm["Statistic"] == "Average"
    assert alarm["AlarmActions"] == [f.sandbox.refs["ScalingTopic"]] and not alarm.get("OKActions")
    assert MANAGED_TAG in f.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
    assert f.tags(group)[NODE_MILLICORES_TAG] == str(ALLOCATABLE)  # remembered for a group at zero nodes
    (report,) = f.messages()
    assert report["kind"] == "scaling.decision"
    assert f"{cluster}: create alarm {alarm_name(cluster)}" in report["lines"]
    # The demand of this run is the next run's history; nothing changes, nothing is reported.
    again = f.schedule()
    assert f.mine(again.result["decisions"], cluster)[0]["history"]["samples"] >= 21
    assert f.mine(again.result["alarms"], cluster) == [] and f.desired(group) == 2
    assert f.messages() == []


def test_the_alarm_through_the_scaling_topic_raises_desired_capacity_and_reports_it(shared: Fleet) -> None:
    f, cluster = shared, "c2-alarm"
    group = steady_cluster(f, cluster)
    assert f.schedule().ok  # creates the alarm, holds the group
    f.messages()
    burst(f, cluster)  # 9 cores pending: 14 cores wanted, 7.8 there
    AlarmShim(f.sandbox.client).set_state(
        alarm_name(cluster), "ALARM", "Threshold Crossed: 1 datapoint [93.4] >= the threshold (90.0)."
    )
    runs = [r for r in f.dispatcher.drain() if r.function == "node_scaler"]
    assert [r.trigger.split(":")[0] for r in runs] == ["ReservedCpuAlarm"]  # the template's SNS subscription
    (run,) = runs
    assert run.ok, run.error
    assert run.result["trigger"] == f"alarm {alarm_name(cluster)} ALARM"
    (change,) = run.result["changed"]
    (decision,) = run.result["decisions"]  # the alarm's cluster only
    assert change == {
        "group": group,
        "cluster": cluster,
        "actuator": "asg",
        "action": "scale_out",
        "unit": "nodes",
        "from": 2,
        "to": decision["wanted_nodes"],  # within the step (10) and the maximum (10)
    }
    # At least what the demand seen now needs, ceil(14 cores / 90 % / 3.92 cores per node), plus the headroom the
    # forecast's miss on this step calls for.
    assert change["to"] >= 4 and decision["forecast"]["headroom_millicores"] > 0
    assert f.desired(group) == change["to"]
    assert LAST_SCALE_OUT_TAG in f.tags(group)
    (report,) = [m for m in f.messages() if m["kind"] == "scaling.decision"]
    assert report["title"] == f"Node scaling: changed {group} nodes 2 -> {change['to']}"
    assert report["cluster"] == cluster
    (reported,) = report["details"]["decisions"]
    assert reported["demand_millicores"] == 14000 and reported["pending_millicores"] == 9000
    assert reported["forecast"]["millicores"] >= 9000 and reported["history"]["samples"] >= 20
    assert any(line.startswith(f"{group}: scale_out (asg)") for line in report["lines"])


def test_the_same_alarm_delivered_twice_acts_once(shared: Fleet) -> None:
    f, cluster = shared, "c3-dup"
    group = steady_cluster(f, cluster, max_size=100)
    burst(f, cluster)
    calls = f.watch_set_desired()

    def more_demand_and_no_cooldown() -> None:
        # What would make a second run act again: more pending pods, and the cooldown since the last scale-out over.
        burst(f, cluster, 10000)
        f.autoscaling.delete_tags(
            Tags=[{"ResourceId": group, "ResourceType": "auto-scaling-group", "Key": LAST_SCALE_OUT_TAG}]
        )

    event = alarm_event(cluster)
    first = f.alarm(event)
    assert first.ok, first.error
    size = f.desired(group)
    assert size > 2 and len(calls) == 1
    more_demand_and_no_cooldown()
    second = f.alarm(event)
    assert second.ok and second.result == first.result  # the stored result of the first delivery
    assert f.desired(group) == size and len(calls) == 1
    assert len([m for m in f.messages() if m["kind"] == "scaling.decision"]) == 1
    # Another message (a new MessageId) is a new alarm: it acts on the demand added since.
    third = f.alarm(alarm_event(cluster))
    assert third.result["changed"][0]["to"] > size and len(calls) == 2
    # Without a MessageId the content decides: the same content twice acts once.
    blank = alarm_event(cluster, message_id="")
    more_demand_and_no_cooldown()
    once = f.alarm(blank)
    assert once.result["changed"] and len(calls) == 3
    more_demand_and_no_cooldown()
    assert f.alarm(blank).result == once.result and len(calls) == 3


def test_the_kill_switch_stops_every_change_and_the_refusal_is_reported(shared: Fleet) -> None:
    f, cluster = shared, "c4-kill"
    group = steady_cluster(f, cluster)
    burst(f, cluster)
    calls = f.watch_set_desired()
    f.kill_switch("on")
    try:
        run = f.alarm(alarm_event(cluster))
        assert run.ok, run.error
        assert run.result["kill_switch"] == "on" and run.result["changed"] == []
        (refusal,) = run.result["refused"]
        assert refusal["reason"].startswith("kill switch /eksops/scaling/kill-switch is on; would set nodes 2 -> ")
        assert f.desired(group) == 2 and calls == []
        (report,) = f.messages()
        assert "kill switch on" in report["summary"] and "refused 1" in report["summary"]
        # A scheduled run changes no alarm either.
        scheduled = f.schedule()
        assert f.mine(scheduled.result["changed"], cluster) == [] and scheduled.result["alarms"] == []
        assert "alarms not reconciled: the kill switch is on" in scheduled.result["notes"]
        assert f.cloudwatch.describe_alarms(AlarmNames=[alarm_name(cluster)])["MetricAlarms"] == []
    finally:
        f.kill_switch("off")
    # Flipped back (no deploy), the next run acts.
    assert f.mine(f.schedule().result["changed"], cluster)[0]["to"] > 2
    # The decision's own cooldown applies; the group's default cooldown must not delay a predictive step.
    assert len(calls) == 1 and calls[0]["HonorCooldown"] is False


def test_a_cluster_autoscaler_group_never_gets_set_desired_capacity(shared: Fleet) -> None:
    f, cluster = shared, "c5-ca"  # the asg actuator
    group = steady_cluster(f, cluster, tags=CA)
    burst(f, cluster)
    calls = f.watch_set_desired()
    for run in (f.schedule(), f.alarm(alarm_event(cluster))):
        assert run.ok, run.error
        assert f.mine(run.result["changed"], cluster) == []
        (decision,) = f.mine(run.result["decisions"], cluster)
        assert decision["action"] == "refused"
        assert decision["reason"].startswith("cluster-autoscaler manages this group")
    assert calls == [] and f.desired(group) == 2
    # Reported once: the same refusal a run later is not news (not 1,440 reports a day).
    assert len(f.mine(run.result["refused"], cluster)) + run.result["refused_again"].count(group) == 1


def test_the_headroom_actuator_applies_pause_pods_sized_to_the_gap(shared: Fleet) -> None:
    f, cluster = shared, "hr-c6"  # the headroom actuator
    group = steady_cluster(f, cluster, tags=CA)
    burst(f, cluster, 4000)  # 9 cores wanted now
    calls = f.watch_set_desired()
    run = f.schedule()
    assert run.ok, run.error
    (change,) = f.mine(run.result["changed"], cluster)
    (decision,) = f.mine(run.result["decisions"], cluster)
    assert change["actuator"] == "headroom" and change["unit"] == "pause pods" and change["from"] == 0
    # The gap between forecast plus headroom (over 90 %) and the 9 cores requested now, in 1-core pause pods.
    assert change["to"] == decision["replicas"] > 0
    objects = {
        (o.raw["kind"], o.raw["metadata"]["name"]): o.raw
        for o in f.emulators[cluster].objects.values()
        if not o.deleted
    }
    pause = objects[("Deployment", deployment_name(group))]
    assert pause["metadata"]["namespace"] == NAMESPACE
    assert pause["spec"]["replicas"] == decision["replicas"]
    pod = pause["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == PRIORITY_CLASS
    assert pod["containers"][0]["image"] == PAUSE_IMAGE
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == "1000m"
    assert objects[("PriorityClass", PRIORITY_CLASS)]["value"] == -1
    assert calls == [] and f.desired(group) == 2  # Cluster Autoscaler adds the nodes, not eksops
    # The pause pods are not demand: the next run sees the same 9 cores and, in its cooldown, holds.
    for index in range(decision["replicas"]):
        f.core(cluster).create_namespaced_pod(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"pause-{index}", "namespace": NAMESPACE},
                "spec": {
                    "containers": [{"name": "pause", "image": PAUSE_IMAGE, "resources": {"requests": {"cpu": "1"}}}]
                },
                "status": UNSCHEDULABLE,
            },
        )
    again = f.schedule()
    (held,) = f.mine(again.result["decisions"], cluster)
    assert held["demand_millicores"] == 9000 and held["replicas"] == decision["replicas"]
    assert f.mine(again.result["changed"], cluster) == []


def test_the_pause_pods_of_a_tainted_group_tolerate_its_template_tags_and_its_nodes_taints(shared: Fleet) -> None:
    # Cluster Autoscaler grows a tainted group only for pods that tolerate its taints: those its node-template tags
    # declare (what it knows at zero nodes) and those its nodes carry; node lifecycle taints are not the group's.
    f, cluster = shared, "hr-taint"
    template = "k8s.io/cluster-autoscaler/node-template/taint/"
    group = f.group(
        f"{cluster}-ng",
        cluster,
        desired=2,
        tags={**CA, f"{template}dedicated": "batch:NoSchedule", f"{template}team": "ml:PreferNoSchedule"},
    )
    first, second = f.nodes(
        cluster,
        group,
        taints=[
            {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
            {"key": "nvidia.com/gpu", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
            {"key": "ToBeDeletedByClusterAutoscaler", "value": "1700000000", "effect": "NoSchedule"},
            {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"},
        ],
    )
    f.pod(cluster, 3000, node=first)
    f.pod(cluster, 2000, node=second)
    f.history(group, cluster, FLAT)
    burst(f, cluster, 4000)
    run = f.schedule()
    assert run.ok, run.error
    (change,) = f.mine(run.result["changed"], cluster)
    assert change["actuator"] == "headroom" and change["to"] > 0
    pause = next(
        o.raw
        for o in f.emulators[cluster].objects.values()
        if not o.deleted and o.raw["kind"] == "Deployment" and o.raw["metadata"]["name"] == deployment_name(group)
    )
    assert pause["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Equal", "effect": "NoSchedule"},
        {"key": "team", "operator": "Equal", "value": "ml", "effect": "PreferNoSchedule"},
    ]


def test_the_reconcile_repairs_the_alarm_leaves_a_foreign_one_and_removes_one_no_longer_needed(shared: Fleet) -> None:
    f, cluster, other = shared, "c7-alarms", "c7-other"
    group = steady_cluster(f, cluster)
    assert f.schedule().ok
    name = alarm_name(cluster)
    (alarm,) = f.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    f.cloudwatch.put_metric_alarm(  # a hand edit of eksops' alarm
        **{k: alarm[k] for k in ("AlarmName", "MetricName", "Namespace", "Statistic", "Dimensions", "Period")},
        EvaluationPeriods=5,
        Threshold=99.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=alarm["AlarmActions"],
    )
    repaired = f.schedule()
    assert f.mine(repaired.result["alarms"], cluster) == [
        {"cluster": cluster, "kind": "alarm", "name": name, "action": "update"}
    ]
    (alarm,) = f.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert alarm["Threshold"] == 90.0 and alarm["EvaluationPeriods"] == 1
    assert f.mine(f.schedule().result["alarms"], cluster) == []  # repaired: unchanged now

    # Someone else's alarm under the name eksops would use for another cluster: never touched.
    f.group(f"{other}-ng", other, desired=1, tags=OURS)
    foreign = alarm_name(other)
    f.cloudwatch.put_metric_alarm(
        AlarmName=foreign,
        MetricName="x",
        Namespace="team",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    run = f.schedule()
    assert foreign in run.result["not_owned"]
    assert f.cloudwatch.describe_alarms(AlarmNames=[foreign])["MetricAlarms"][0]["Namespace"] == "team"

    # The cluster's only group leaves (tag eksops:scaling=disabled): its alarm goes.
    f.tag(group, "eksops:scaling", "disabled")
    gone = f.schedule()
    assert {"cluster": cluster, "kind": "alarm", "name": name, "action": "delete"} in gone.result["alarms"]
    assert f.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
    f.cloudwatch.delete_alarms(AlarmNames=[foreign])


def test_an_alarm_for_a_cluster_not_enrolled_is_refused_and_reported(shared: Fleet) -> None:
    f, cluster = shared, "c8-elsewhere"
    f.group(f"{cluster}-ng", cluster, desired=2, tags={})  # an EKS group nobody enrolled
    calls = f.watch_set_desired()
    run = f.alarm(alarm_event(cluster))
    assert run.ok, run.error
    (refusal,) = run.result["refused"]
    assert refusal["cluster"] == cluster and "has no enrolled node group" in refusal["reason"]
    assert run.result["decisions"] == [] and calls == [] and f.desired(f"{cluster}-ng") == 2
    (report,) = f.messages()
    assert report["kind"] == "scaling.decision" and "refused 1" in report["summary"]
    # An OK transition of the same alarm is not a reason to scale: ignored, nothing reported.
    ok = f.alarm(alarm_event(cluster, state="OK"))
    assert "went to OK" in ok.result["ignored"] and f.messages() == []


def test_malformed_events_raise_invalid_event_and_change_nothing(shared: Fleet) -> None:
    f, cluster = shared, "c9-bad"
    group = steady_cluster(f, cluster)
    burst(f, cluster)
    calls = f.watch_set_desired()

    def with_message(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        event = alarm_event(cluster)
        sns = event["Records"][0]["Sns"]
        body = json.loads(sns["Message"])
        replaced = change(body)
        sns["Message"] = replaced if isinstance(replaced, str) else json.dumps(body)
        return event

    cases = {
        "Records[0].Sns.Message": with_message(lambda body: "not json {"),
        "Records[0].Sns.Message.AlarmName": with_message(lambda body: body.__delitem__("AlarmName")),
        "Records[0].Sns.Message.Trigger.Dimensions": with_message(lambda body: body["Trigger"].update(Dimensions=[])),
        "Records[0].Sns.Message.Trigger.Dimensions[0].value": with_message(
            lambda body: body["Trigger"].update(Dimensions=[{"name": "ClusterName", "value": "../etc"}])
        ),
        "Records[0].Sns.Message.NewStateValue": with_message(lambda body: body.update(NewStateValue="BURNING")),
        "Records[0].Sns.MessageId": {"Records": [{"Sns": {"TopicArn": "arn", "Message": "{}"}}]},
        "source": {"detail-type": "Scheduled Event", "detail": {}},
    }
    for field, event in cases.items():
        run = f.alarm(event)
        assert not run.ok and run.error_type == "InvalidEvent", (field, run.error)
        assert f"(field: {field})" in str(run.error), run.error
        assert run.dead_lettered
    # A well-formed event of another kind: UnsupportedEvent, an InvalidEvent too.
    cloudtrail = json.loads(
        (f.sandbox.template.root / "events/node_scaler/unmatched/set_desired_capacity.json").read_text()
    )
    assert f.alarm(cloudtrail).error_type == "UnsupportedEvent"
    assert calls == [] and f.desired(group) == 2
    assert f.cloudwatch.describe_alarms(AlarmNames=[alarm_name(cluster)])["MetricAlarms"] == []
    assert f.messages() == []


def test_without_the_kubernetes_api_container_insights_is_the_signal(shared: Fleet) -> None:
    # No emulator for this cluster: the sandbox's kubeconfig has no context for it, so the API is not reachable.
    f, cluster = shared, "c10-metrics"
    group = f.group(f"{cluster}-ng", cluster, desired=3, tags=OURS)
    f.history(group, cluster, [8000.0] * 20)
    f.insights(cluster, reserved_percent=95.0, node_millicores=4000.0, nodes=3.0)
    run = f.alarm(alarm_event(cluster))
    assert run.ok, run.error
    (decision,) = run.result["decisions"]
    assert decision["source"] == "container-insights"
    assert decision["demand_millicores"] == 11400  # 95 % of 3 nodes x 4 cores
    assert decision["pending_millicores"] == 0  # the metric cannot see pending pods
    assert f.desired(group) >= 4  # ceil(11.4 cores / 90 % / 4 cores), and the step's measured miss on top
    assert any(note.startswith(f"{cluster}: Kubernetes API") for note in run.result["notes"])


def test_without_the_kubernetes_api_it_never_scales_in_and_looks_further_ahead(shared: Fleet) -> None:
    # Container Insights shows 2 of 10 nodes' worth of requests, low for an hour: from the API that is a scale-in.
    # From the metric it is not: pods may be pending, and the metric cannot show them.
    f, cluster = shared, "c10-metrics-low"
    group = f.group(f"{cluster}-ng", cluster, desired=10, min_size=1, tags=OURS)
    f.history(group, cluster, [4000.0] * 60)
    f.insights(cluster, reserved_percent=10.0, node_millicores=4000.0, nodes=10.0)
    run = f.alarm(alarm_event(cluster))
    assert run.ok, run.error
    (decision,) = run.result["decisions"]
    assert decision["source"] == "container-insights" and decision["action"] == "hold"
    assert "cannot see pending pods" in decision["reason"]
    assert decision["wanted_nodes"] < 10 and f.desired(group) == 10
    # The forecast reaches the metric's lag further than the lead (210 s by default): 330 s ahead.
    assert f" at +{210 + INSIGHTS_LAG_SECONDS} s" in decision["line"]


def test_reaching_the_maximum_is_an_alert_once(shared: Fleet) -> None:
    f, cluster = shared, "c11-max"
    group = steady_cluster(f, cluster, max_size=3)
    burst(f, cluster, 20000)  # 25 cores wanted: 8 nodes, the group may have 3
    first = f.alarm(alarm_event(cluster))
    assert first.ok, first.error
    assert first.result["at_max"] == [group] and f.desired(group) == 3
    (alert,) = f.messages("AlertsTopic")
    assert alert["kind"] == "scaling.at-max" and alert["severity"] == "warning" and alert["cluster"] == cluster
    assert alert["title"] == f"Node group {group} is at its maximum (3 nodes)"
    assert "eksops:scaling-at-max" in f.tags(group)
    # Still at the maximum a minute later: reported, not alerted again.
    again = f.alarm(alarm_event(cluster))
    assert again.result["at_max"] == [group] and f.messages("AlertsTopic") == []


def test_a_lasting_error_is_reported_and_fails_once_then_only_listed(shared: Fleet, monkeypatch: Any) -> None:
    """An RBAC file not applied yet (403 on every apply) makes one report and one failed run, not one a minute;
    once it is fixed and comes back, it is news again."""
    from kubernetes.client.exceptions import ApiException

    f, cluster = shared, "hr-c9"
    steady_cluster(f, cluster, tags=CA)
    burst(f, cluster, 4000)
    actuator = f.dispatcher.module("node_scaler").service._headroom

    def forbidden(*_: Any, **__: Any) -> None:
        raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(actuator, "apply", forbidden)
    f.messages()
    first = f.schedule()
    assert not first.ok and first.error_type == "PartialFailure" and first.attempts == 1  # no Lambda retries
    reports = [m for m in f.messages() if any(cluster in line for line in m.get("lines", []))]
    assert len(reports) == 1 and reports[0]["severity"] == "warning"
    second = f.schedule()
    assert second.ok, second.error
    assert [e["group"] for e in second.result["errors_again"]] and second.result["errors"] == []
    assert not [m for m in f.messages() if any("ERROR" in line and cluster in line for line in m.get("lines", []))]

    def unavailable(*_: Any, **__: Any) -> None:
        raise ApiException(status=503, reason="Service Unavailable")

    monkeypatch.setattr(actuator, "apply", unavailable)  # the same fault answering with another code is no news
    third = f.schedule()
    assert third.ok and third.result["errors"] == [] and third.result["errors_again"], third.error
