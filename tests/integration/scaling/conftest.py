"""A node-group fleet on the sandbox: Auto Scaling groups in moto, nodes and pods in a Kubernetes emulator per
cluster, the scaler's demand history in moto's CloudWatch, and inboxes on the topics to read reports from.

Tests share one sandbox (``shared``, bringing the template up costs seconds): each test works on clusters and
groups of its own names, and its groups leave the scaler (tag ``eksops:scaling=disabled``) when it ends, so a
later test's scheduled runs never act on them. What a run returns covers every enrolled group: tests look at
their own cluster's part (``Fleet.mine``). A test that needs other template parameters makes its own sandbox
(``fleet``).
"""

from __future__ import annotations

import copy
import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.client
import pytest

from eksops.scaling.demand import HISTORY_METRIC, HISTORY_NAMESPACE
from eksops_dev.dispatch import Dispatcher, Invocation
from eksops_dev.sandbox import STACK, Sandbox
from eksops_dev.template import Template

EVENTS = Path(__file__).resolve().parents[3] / "events" / "node_scaler"
ALLOCATABLE = 3920  # a 4-core node on the EKS AMIs
# What the default scheduler writes on a pod no node has room for (the scaler counts only such pending pods).
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
}
PREFIX = f"{STACK}-scaling-"  # SCALER_ALARM_PREFIX in the sandbox (the template's ${AWS::StackName}-scaling-)


class Fleet:
    """Seeds and reads node groups, Kubernetes objects, demand history and published messages."""

    def __init__(self, sandbox: Sandbox, dispatcher: Dispatcher) -> None:
        self.sandbox = sandbox
        self.dispatcher = dispatcher
        self.autoscaling = sandbox.client("autoscaling")
        self.cloudwatch = sandbox.client("cloudwatch")
        self._template: str | None = None
        self._kube: dict[str, Any] = {}
        self.emulators: dict[str, Any] = {}
        self._inboxes = {name: self._subscribe(name) for name in ("ReportsTopic", "AlertsTopic")}
        self.created: list[str] = []
        self._restore: list[Callable[[], None]] = []

    # -- AWS ----------------------------------------------------------------------------------------------------

    def group(
        self,
        name: str,
        cluster: str,
        *,
        desired: int,
        min_size: int = 1,
        max_size: int = 10,
        tags: dict[str, str] | None = None,
    ) -> str:
        if self._template is None:
            self._template = f"eksops-test-nodes-{uuid.uuid4().hex[:8]}"
            self.sandbox.client("ec2").create_launch_template(
                LaunchTemplateName=self._template,
                LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m6g.xlarge"},
            )
        all_tags = {"eks:cluster-name": cluster, **(tags or {})}
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": self._template, "Version": "$Latest"},
            MinSize=min_size,
            MaxSize=max_size,
            DesiredCapacity=desired,
            AvailabilityZones=["us-east-1a"],
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in all_tags.items()],
        )
        self.created.append(name)
        return name

    def tag(self, name: str, key: str, value: str) -> None:
        self.autoscaling.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": key,
                    "Value": value,
                    "PropagateAtLaunch": False,
                }
            ]
        )

    def describe(self, name: str) -> dict[str, Any]:
        (group,) = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        return group  # type: ignore[no-any-return]

    def desired(self, name: str) -> int:
        return int(self.describe(name)["DesiredCapacity"])

    def tags(self, name: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.describe(name)["Tags"]}

    def history(self, group: str, cluster: str, values: list[float], *, end: float | None = None) -> None:
        """Demand samples one minute apart, the last at ``end`` (default: a minute ago), as earlier runs put them."""
        end = time.time() - 60 if end is None else end
        start = end - 60 * (len(values) - 1)
        data = [
            {
                "MetricName": HISTORY_METRIC,
                "Dimensions": [
                    {"Name": "ClusterName", "Value": cluster},
                    {"Name": "AutoScalingGroupName", "Value": group},
                ],
                "Timestamp": datetime.fromtimestamp(start + 60 * i, UTC),
                "Value": value,
            }
            for i, value in enumerate(values)
        ]
        self.cloudwatch.put_metric_data(Namespace=HISTORY_NAMESPACE, MetricData=data)

    def insights(self, cluster: str, *, reserved_percent: float, node_millicores: float, nodes: float) -> None:
        """Container Insights' cluster metrics as the agent publishes them (the fallback without the API)."""
        for metric, value in (
            ("node_cpu_reserved_capacity", reserved_percent),
            ("node_cpu_limit", node_millicores),
            ("cluster_node_count", nodes),
        ):
            self.cloudwatch.put_metric_data(
                Namespace="ContainerInsights",
                MetricData=[
                    {"MetricName": metric, "Dimensions": [{"Name": "ClusterName", "Value": cluster}], "Value": value}
                ],
            )

    def kill_switch(self, value: str) -> None:
        self.sandbox.client("ssm").put_parameter(
            Name="/eksops/scaling/kill-switch", Type="String", Value=value, Overwrite=True
        )

    # -- Kubernetes ---------------------------------------------------------------------------------------------

    def core(self, cluster: str) -> Any:
        """A CoreV1Api on the cluster's emulator (started on first use)."""
        if cluster not in self._kube:
            from kubernetes import client as k8s
            from kubernetes import config as k8s_config

            self.emulators[cluster] = self.sandbox.add_kube_cluster(cluster)
            api = k8s_config.new_client_from_config(config_file=str(self.sandbox.kubeconfig_path), context=cluster)
            self._kube[cluster] = k8s.CoreV1Api(api)
        return self._kube[cluster]

    def nodes(
        self,
        cluster: str,
        group: str,
        *,
        millicores: int = ALLOCATABLE,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> list[str]:
        """A ready Node for every instance of ``group`` (with ``taints`` in its spec); returns the node names."""
        core, names = self.core(cluster), []
        for instance in self.describe(group)["Instances"]:
            name = f"ip-{instance['InstanceId'][2:10]}.ec2.internal"
            spec: dict[str, Any] = {"providerID": f"aws:///us-east-1a/{instance['InstanceId']}"}
            if taints:
                spec["taints"] = taints
            core.create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", **(labels or {})}},
                    "spec": spec,
                    "status": {
                        "allocatable": {"cpu": f"{millicores}m"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
            names.append(name)
        return names

    def pod(self, cluster: str, millicores: int, *, node: str | None = None, namespace: str = "shop") -> None:
        spec: dict[str, Any] = {
            "containers": [{"name": "app", "image": "app:1", "resources": {"requests": {"cpu": f"{millicores}m"}}}]
        }
        if node:
            spec["nodeName"] = node
        self.core(cluster).create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"app-{uuid.uuid4().hex[:8]}", "namespace": namespace},
                "spec": spec,
                "status": {"phase": "Running"} if node else UNSCHEDULABLE,
            },
        )

    def watch_set_desired(self) -> list[dict[str, Any]]:
        """Every SetDesiredCapacity any client in this process sends from now on, recorded before it is sent.

        Patched into botocore itself rather than hooked on one client: the handler's clients were made at its cold
        start, and any later clear_client_cache() would leave a hook on a new client seeing nothing.
        """
        calls: list[dict[str, Any]] = []
        original = botocore.client.BaseClient._make_api_call

        def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if operation == "SetDesiredCapacity":
                calls.append(dict(params))
            return original(client, operation, params)

        botocore.client.BaseClient._make_api_call = recording  # type: ignore[method-assign]
        self._restore.append(lambda: setattr(botocore.client.BaseClient, "_make_api_call", original))
        return calls

    def finish(self) -> None:
        """The test's groups leave the scaler; its hooks go."""
        for name in self.created:
            self.tag(name, "eksops:scaling", "disabled")
        for restore in reversed(self._restore):
            restore()
        self.messages("ReportsTopic"), self.messages("AlertsTopic")

    @staticmethod
    def mine(entries: list[dict[str, Any]], cluster: str) -> list[dict[str, Any]]:
        """The entries of a run's result (decisions, changed, refused, alarms) that are about ``cluster``."""
        return [e for e in entries if e.get("cluster") == cluster]

    # -- messages -----------------------------------------------------------------------------------------------

    def _subscribe(self, topic: str) -> str:
        sqs = self.sandbox.client("sqs")
        url = sqs.create_queue(QueueName=f"{STACK}-test-{topic}-{uuid.uuid4().hex[:6]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sandbox.client("sns").subscribe(TopicArn=self.sandbox.refs[topic], Protocol="sqs", Endpoint=arn)
        return str(url)

    def messages(self, topic: str = "ReportsTopic") -> list[dict[str, Any]]:
        """Envelopes published to ``topic`` since the last read."""
        sqs, found = self.sandbox.client("sqs"), []
        while batch := sqs.receive_message(QueueUrl=self._inboxes[topic], MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                found.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(QueueUrl=self._inboxes[topic], ReceiptHandle=message["ReceiptHandle"])
        return found

    # -- invoking -----------------------------------------------------------------------------------------------

    def schedule(self) -> Invocation:
        """One scheduled run, delivered to node_scaler only (nothing else is drained)."""
        event = json.loads((EVENTS / "scheduled_forecast.json").read_text())
        event["id"] = str(uuid.uuid4())
        return self.dispatcher.invoke("node_scaler", event, "schedule")

    def alarm(self, event: dict[str, Any]) -> Invocation:
        return self.dispatcher.invoke("node_scaler", event, "alarm")


def alarm_event(cluster: str, *, message_id: str | None = None, state: str = "ALARM") -> dict[str, Any]:
    """The sample alarm notification (events/node_scaler) for ``cluster`` under the sandbox's alarm prefix."""
    event = json.loads((EVENTS / "reserved_cpu_alarm.json").read_text())
    sns = event["Records"][0]["Sns"]
    body = json.loads(sns["Message"])
    name = f"{PREFIX}{cluster}-cpu-reserved"
    body["AlarmName"], body["NewStateValue"] = name, state
    body["AlarmArn"] = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
    body["Trigger"]["Dimensions"] = [{"value": cluster, "name": "ClusterName"}]
    sns["Message"] = json.dumps(body)
    sns["MessageId"] = message_id or str(uuid.uuid4())
    return copy.deepcopy(event)


@pytest.fixture
def fleet(make_sandbox: Callable[..., tuple[Sandbox, Dispatcher]]) -> Iterator[Callable[..., Fleet]]:
    """Make a sandbox of its own (template parameters as keywords) with a Fleet on it."""

    made: list[Fleet] = []

    def make(**parameters: str) -> Fleet:
        made.append(Fleet(*make_sandbox(parameters)))
        return made[-1]

    yield make
    for fleet in made:
        fleet.finish()


# Clusters named hr-* get the headroom actuator, every other one asg; the scaler acts (the template's default is a
# dry run).
SHARED_PARAMETERS = {"ScalerActuator": '{"hr-*": "headroom", "*": "asg"}', "DryRun": "false"}


@pytest.fixture(scope="module")
def shared_sandbox(
    moto_endpoint: str, template: Template, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, Dispatcher]]:
    """One sandbox for a module's tests, on the emptied moto server."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    sandbox = Sandbox(
        template, parameters=SHARED_PARAMETERS, endpoint=moto_endpoint, workdir=tmp_path_factory.mktemp("scaling")
    )
    sandbox.start()
    dispatcher = Dispatcher(sandbox)
    yield sandbox, dispatcher
    dispatcher.close()
    sandbox.stop()


@pytest.fixture
def shared(shared_sandbox: tuple[Sandbox, Dispatcher]) -> Iterator[Fleet]:
    """A Fleet on the module's sandbox; the test's groups leave the scaler when it ends."""
    fleet = Fleet(*shared_sandbox)
    fleet.messages("ReportsTopic"), fleet.messages("AlertsTopic")
    yield fleet
    fleet.finish()
