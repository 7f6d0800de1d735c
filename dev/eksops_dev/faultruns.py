"""Sweeps run under fault injection: one list of sweep targets for the fault test and the fault benchmark.

Each target builds a realistic world on a moto server (no faults while seeding), runs its function's scheduled
sweep as Lambda would (each invocation with its own deadline; continuation parts, if any, as further
invocations), and says what is not yet converged and what is half-applied. ``converge`` runs a target through
fault proxies (eksops_dev.faults) until it converges or its runs are spent. A function added later joins the
test and the benchmark with one class and one entry in SWEEPS.

A *run* is one scheduled invocation and the continuation parts it sets off; a failed invocation ends its run, and
the next run (Lambda's retry of it, or the next schedule) starts over from a scheduled event.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import boto3

from eksops.aws import RateLimiter, client
from eksops.config import CommonConfig
from eksops.errors import EksopsError
from eksops.events import Continuation, ScheduledRun
from eksops.sweeps import Continuer, Deadline
from eksops_dev.ecr import image_manifest
from eksops_dev.faults import FaultPlan, proxied
from eksops_dev.template import ACCOUNT, REGION, Template

Clock = Callable[[], float]
Sleep = Callable[[float], None]
REPORTS = "fault-run-reports"


@dataclass
class Invocation:
    function: str
    event: str  # "schedule" or "part N"
    started: float  # on the run's clock
    ended: float
    timeout_s: float
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def in_time(self) -> bool:
        return self.ended - self.started < self.timeout_s


class CallStats:
    """Counts eksops' AWS calls and their attempts and times each call, from the events of the session that
    eksops' clients are made from (attach before the clients are made)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls = 0
        self.attempts = 0
        self.longest_s = 0.0
        self.longest: str = ""

    def attach(self) -> None:
        from eksops.aws.clients import _session

        events = _session().get_component("event_emitter")
        events.register("before-call", self._begin)
        events.register("before-send", self._send)
        events.register("after-call", self._end)
        events.register("after-call-error", self._end)

    @property
    def retries(self) -> int:
        return self.attempts - self.calls

    def _begin(self, context: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls += 1
        context["eksops_stats_started"] = self.clock()

    def _send(self, **_: Any) -> None:
        self.attempts += 1

    def _end(self, context: dict[str, Any], **kwargs: Any) -> None:
        started = context.get("eksops_stats_started")
        if started is None:
            return
        took = self.clock() - started
        if took > self.longest_s:
            model = kwargs.get("model")
            self.longest_s, self.longest = took, getattr(model, "name", "?")


class SweepTarget:
    """One function's scheduled sweep under faults. Subclasses fill in the world and the checks."""

    function: ClassVar[str]
    unit: ClassVar[str]  # what ``objects`` counts, for throughput
    continues: ClassVar[bool] = False  # its sweep checkpoints and continues over several invocations
    suite_timeout_s: ClassVar[float | None] = None  # a shorter time limit for the test suite (None: the template's)
    persistent_fault: ClassVar[str]  # an operation whose every call fails in the test of persistent faults

    def __init__(self, endpoint: str, workdir: Path, template: Template, *, clock: Clock, sleep: Sleep) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.template = template
        self.clock = clock
        self.sleep = sleep
        self.timeout_s = float(template.functions[self.function].timeout)
        self.objects = 0
        self.invocations: list[Invocation] = []
        self._stack = contextlib.ExitStack()

    # -- to fill in ---------------------------------------------------------------------------------------------

    def seed(self) -> None:
        """Build the world on moto, without faults (plain clients straight to the server)."""
        raise NotImplementedError

    def upstreams(self) -> dict[str, str]:
        """Endpoint variables to point at fault proxies, and what each proxy forwards to."""
        return {"AWS_ENDPOINT_URL": self.endpoint}

    def invoke(self, event: ScheduledRun | Continuation, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        """One invocation, as the handler makes it; raises as the handler would."""
        raise NotImplementedError

    def next_event(self) -> Continuation | None:
        """The continuation the last invocation put, if any."""
        return None

    def not_converged(self) -> list[str]:
        """What a second sweep would still change (empty: converged)."""
        raise NotImplementedError

    def half_applied(self) -> list[str]:
        """Violations of "nothing half-applied": partial state, or state reported as done that is not."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------------------

    def plain(self, service: str, endpoint: str | None = None) -> Any:
        """A boto3 client straight to the server (or ``endpoint``), for seeding and checking: never faulted."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint or self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fixed test credentials
        )

    def run(self) -> list[Invocation]:
        """A scheduled invocation and the parts it continues into, each with its own deadline."""
        done: list[Invocation] = []
        event: ScheduledRun | Continuation | None = ScheduledRun(id=str(uuid.uuid4()), rule=f"{self.function}-schedule")
        while event is not None:
            started = self.clock()
            label = "schedule" if isinstance(event, ScheduledRun) else f"part {event.part}"
            invocation = Invocation(self.function, label, started, started, self.timeout_s)
            try:
                invocation.result = self.invoke(event, self._remaining(started + self.timeout_s))
            except Exception as exc:  # the handler failed: Lambda would retry it, the run ends here
                invocation.error = f"{type(exc).__name__}: {exc}"
            invocation.ended = self.clock()
            done.append(invocation)
            self.invocations.append(invocation)
            event = self.next_event() if invocation.ok else None
            if len(done) > 100:
                raise RuntimeError(f"{self.function}: more than 100 parts in one run")
        return done

    def _remaining(self, ends_at: float) -> Callable[[], int]:
        return lambda: int((ends_at - self.clock()) * 1000)

    def close(self) -> None:
        self._stack.close()


# -- log_retention ------------------------------------------------------------------------------------------------


class _RecordingContinuer(Continuer):
    def __init__(self, events: Any, function: str) -> None:
        super().__init__(events, function=function)
        self.pending: list[Continuation] = []

    def continue_sweep(self, *, run_id: str, part: int, checkpoint: Mapping[str, Any]) -> None:
        super().continue_sweep(run_id=run_id, part=part, checkpoint=checkpoint)  # PutEvents, through the proxy
        detail = json.loads(json.dumps(checkpoint))  # as the event carries it
        self.pending.append(
            Continuation(id=str(uuid.uuid4()), function=self._function, run_id=run_id, part=part, checkpoint=detail)
        )


class LogRetentionSweep(SweepTarget):
    """Log groups of EKS clusters and applications, most never-expiring; the sweep sets 365 days (mode missing).

    Half-applied: a group reported changed that does not have the new retention, a group reported changed twice
    in one run (a part redoing an earlier part's work), or a part whose count of earlier errors is not what the
    parts before it reported (a failure lost in a checkpoint)."""

    function = "log_retention"
    unit = "log groups"
    continues = True
    suite_timeout_s = 90.0  # so that the suite's sweep of 300 groups continues over several parts, faults or not
    persistent_fault = "PutEvents"  # the part's work is done and reported, but it cannot continue
    groups = 300
    # the /app/svc-* groups get the default too: every group of the region (RetentionScope=region)
    env: ClassVar[dict[str, str]] = {"RETENTION_DEFAULT_DAYS": "365", "RETENTION_SCOPE": "region"}

    def seed(self) -> None:
        from eksops.logs.retention_config import SKIP_TAG_KEY, SKIP_TAG_VALUE

        logs = self.plain("logs")
        kinds = ("application", "host", "dataplane", "performance")
        for i in range(self.groups):
            name = f"/app/svc-{i:04d}" if i % 5 == 4 else f"/aws/containerinsights/c{i // 5:03d}/{kinds[i % 5]}"
            kind = i % 20
            tags = {"tags": {SKIP_TAG_KEY: SKIP_TAG_VALUE}} if kind == 19 else {}
            logs.create_log_group(logGroupName=name, **tags)
            if kind in (3, 7, 11, 13, 17):  # a quarter already right
                logs.put_retention_policy(logGroupName=name, retentionInDays=365)
            elif kind in (5, 15):  # a tenth keep a longer value: compliant in mode "missing"
                logs.put_retention_policy(logGroupName=name, retentionInDays=3653)
        self.objects = self.groups
        self.topic = self.plain("sns").create_topic(Name=REPORTS)["TopicArn"]
        self.reported: list[tuple[str, int]] = []  # (group, retention) of each change reported
        self.summaries: list[list[dict[str, Any]]] = []  # per run, the summary of each successful part

    def run(self) -> list[Invocation]:
        from eksops.logs import RetentionConfig, RetentionService
        from eksops.notify import Publisher

        # one service for the run's invocations, as in a warm container
        self.continuer = _RecordingContinuer(client("events"), self.function)
        self.service = RetentionService(
            RetentionConfig.from_env(self.env),
            CommonConfig.from_env({"DRY_RUN": "false", "REPORTS_TOPIC_ARN": self.topic}),
            logs=client("logs"),
            tagging=client("resourcegroupstaggingapi"),
            publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=self.topic),
            continuer=self.continuer,
            put_limiter=RateLimiter(5.0, clock=self.clock, sleep=self.sleep),
            describe_limiter=RateLimiter(10.0, clock=self.clock, sleep=self.sleep),
        )
        self.summaries.append([])
        return super().run()

    def invoke(self, event: ScheduledRun | Continuation, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        summary = self.service.handle(event, Deadline(remaining_ms))
        self.reported += [(c["group"], c["to"]) for c in summary.changed]
        result: dict[str, Any] = summary.as_dict()
        self.summaries[-1].append(result)
        summary.raise_for_errors()
        return result

    def next_event(self) -> Continuation | None:
        return self.continuer.pending.pop(0) if self.continuer.pending else None

    def _retention(self) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        for page in self.plain("logs").get_paginator("describe_log_groups").paginate():
            for group in page["logGroups"]:
                found[group["logGroupName"]] = group.get("retentionInDays")
        return found

    def _skip_tagged(self) -> set[str]:
        from eksops.logs.retention_config import SKIP_TAG_KEY, SKIP_TAG_VALUE

        found = set()
        pages = (
            self.plain("resourcegroupstaggingapi")
            .get_paginator("get_resources")
            .paginate(ResourceTypeFilters=["logs"], TagFilters=[{"Key": SKIP_TAG_KEY, "Values": [SKIP_TAG_VALUE]}])
        )
        for page in pages:
            for item in page["ResourceTagMappingList"]:
                found.add(item["ResourceARN"].split(":log-group:", 1)[1].removesuffix(":*"))
        return found

    def not_converged(self) -> list[str]:
        from eksops.logs import RetentionConfig, decide

        cfg, skip = RetentionConfig.from_env(self.env), self._skip_tagged()
        return [
            f"{name}: retention {days}"
            for name, days in sorted(self._retention().items())
            if decide(cfg, name, days, tagged_skip=name in skip).change
        ]

    def half_applied(self) -> list[str]:
        state = self._retention()
        wrong = [
            f"reported {name} set to {days}, but it has {state[name]}"
            for name, days in self.reported
            if state[name] != days
        ]
        for parts in self.summaries:
            changed = [c["group"] for part in parts for c in part["changed"]]
            twice = sorted({n for n in changed if changed.count(n) > 1})
            wrong += [f"reported changed twice in one run: {n}" for n in twice]
            for before, after in itertools.pairwise(parts):
                carried = before.get("earlier_errors", 0) + len(before["errors"])
                if after.get("earlier_errors", 0) != carried:
                    wrong.append(
                        f"part {after['part']} carries {after.get('earlier_errors')} earlier errors, not {carried}"
                    )
        return wrong


# -- error_alarms -------------------------------------------------------------------------------------------------


class ErrorAlarmsSweep(SweepTarget):
    """Container Insights application groups of several clusters, other groups, and the leftovers of a deleted
    cluster; the sweep puts each cluster's metric filter, alarm, dashboard and saved queries and removes the
    leftovers. Saved queries go to the sandbox's CloudWatch Logs shim (moto has none), behind the fault proxy too.

    Half-applied: an alarm on a cluster's metric while the cluster has no metric filter publishing it (an alarm
    that can never fire), or a change reported as made that is not in place."""

    function = "error_alarms"
    unit = "clusters"
    persistent_fault = "PutMetricFilter"  # no cluster can get the filter its alarm needs
    clusters = 8
    leftover = "gone-1"

    def seed(self) -> None:
        from eksops.logs.error_alarms import MANAGED_TAG_KEY, MANAGED_TAG_VALUE, METRIC_NAMESPACE, alarm_name
        from eksops_dev.shims import LogsShim

        self.shim = LogsShim(self.endpoint)
        self.shim.start()
        self._stack.callback(self.shim.stop)
        logs = self.plain("logs")
        self.names = [f"prod-{i:02d}" for i in range(self.clusters)]
        for name in self.names:
            for kind in ("application", "host", "performance"):
                logs.create_log_group(logGroupName=f"/aws/containerinsights/{name}/{kind}")
        logs.create_log_group(logGroupName="/app/payments")
        # what is left of a cluster deleted while no event reached eksops: its alarm
        self.plain("cloudwatch").put_metric_alarm(
            AlarmName=alarm_name(self.leftover),
            Namespace=METRIC_NAMESPACE,
            MetricName=self.leftover,
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            Tags=[{"Key": MANAGED_TAG_KEY, "Value": MANAGED_TAG_VALUE}],
        )
        self.objects = self.clusters + 1
        self.topic = self.plain("sns").create_topic(Name=REPORTS)["TopicArn"]
        self.changes: list[dict[str, str]] = []

    def upstreams(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self.shim.url}

    def invoke(self, event: ScheduledRun | Continuation, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        from eksops.logs import ErrorAlarmsConfig, ErrorAlarmsService
        from eksops.notify import Publisher

        service = ErrorAlarmsService(
            ErrorAlarmsConfig.from_env({}),
            CommonConfig.from_env({"DRY_RUN": "false", "REPORTS_TOPIC_ARN": self.topic}),
            logs=client("logs"),
            cloudwatch=client("cloudwatch"),
            publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=self.topic),
            clock=self.clock,
            sleep=self.sleep,
        )
        summary = service.handle(event, Deadline(remaining_ms))
        self.changes += summary.changed
        result: dict[str, Any] = summary.as_dict()
        summary.raise_for_errors()
        return result

    def _filters(self, cluster: str) -> dict[str, Any]:
        from eksops.logs.error_alarms import application_group

        logs = self.plain("logs")
        try:
            found = logs.describe_metric_filters(logGroupName=application_group(cluster))["metricFilters"]
        except logs.exceptions.ResourceNotFoundException:
            return {}
        return {f["filterName"]: f for f in found}

    def _alarms(self) -> dict[str, Any]:
        from eksops.logs.error_alarms import ALARM_PREFIX

        pages = self.plain("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNamePrefix=ALARM_PREFIX)
        return {a["AlarmName"]: a for page in pages for a in page["MetricAlarms"]}

    def _dashboards(self) -> set[str]:
        return {d["DashboardName"] for d in self.plain("cloudwatch").list_dashboards()["DashboardEntries"]}

    def _queries(self) -> set[str]:
        return {q["name"] for q in self.shim.store.items.values()}

    def not_converged(self) -> list[str]:
        from eksops.logs.error_alarms import FILTER_NAME, QUERY_NAMES, alarm_name, dashboard_name, query_name

        alarms, dashboards, queries = self._alarms(), self._dashboards(), self._queries()
        missing = []
        for name in self.names:
            missing += [f"{name}: metric filter"] if FILTER_NAME not in self._filters(name) else []
            missing += [f"{name}: alarm"] if alarm_name(name) not in alarms else []
            missing += [f"{name}: dashboard"] if dashboard_name(name) not in dashboards else []
            missing += [f"{name}: query {q}" for q in QUERY_NAMES if query_name(name, q) not in queries]
        if alarm_name(self.leftover) in alarms:
            missing.append(f"{self.leftover}: leftover alarm not removed")
        return missing

    def half_applied(self) -> list[str]:
        from eksops.logs.error_alarms import ALARM_PREFIX, ALARM_SUFFIX, FILTER_NAME, dashboard_name

        alarms, dashboards, queries = self._alarms(), self._dashboards(), self._queries()
        wrong = []
        for alarm in alarms:
            cluster = alarm[len(ALARM_PREFIX) : -len(ALARM_SUFFIX)]
            if cluster != self.leftover and FILTER_NAME not in self._filters(cluster):
                wrong.append(f"alarm {alarm} without the metric filter that feeds it")
        for change in self.changes:
            kind, name, action = change["kind"], change["name"], change["action"]
            if kind == "metric-filter":
                present = name in self._filters(change["cluster"])
            elif kind == "alarm":
                present = name in alarms
            elif kind == "dashboard":
                present = name in dashboards or name != dashboard_name(change["cluster"])
            else:
                present = name in queries
            if present != (action != "delete"):
                wrong.append(f"reported {action} {kind} {name}, which is {'still there' if present else 'missing'}")
        return wrong


# -- cluster_bootstrap --------------------------------------------------------------------------------------------


class ClusterBootstrapSweep(SweepTarget):
    """EKS clusters with node groups (one also with a Fargate profile), each with a Kubernetes API emulator; the
    sweep attaches the logging policies and applies the baseline. Faults hit the AWS calls only.

    Half-applied: a cluster tagged as bootstrapped with the current manifests while a policy or an object is
    missing, or reported bootstrapped/unchanged while incomplete."""

    function = "cluster_bootstrap"
    unit = "clusters"
    persistent_fault = "AttachRolePolicy"  # no node role can get the CloudWatch agent's policy
    clusters = 3

    def seed(self) -> None:
        from eksops_dev.dispatch import Dispatcher
        from eksops_dev.sandbox import Sandbox

        self.sandbox = Sandbox(
            self.template,
            parameters={"DryRun": "false"},  # bootstrap acts (the template's default is a dry run)
            endpoint=self.endpoint,
            workdir=self.workdir / "bootstrap",
        )
        self.sandbox.start()
        self._stack.callback(self.sandbox.stop)
        self._invocation_started = 0.0
        self.dispatcher = Dispatcher(self.sandbox, remaining_ms=self._remaining_for)
        self._stack.callback(self.dispatcher.close)
        self.names = [f"eks-{i}" for i in range(self.clusters)]
        self.roles: dict[str, dict[str, str]] = {}
        self.emulators: dict[str, Any] = {}
        vpc = {"subnetIds": ["subnet-0a1b2c3d", "subnet-1a2b3c4d"]}
        eks = self.sandbox.client("eks")
        for index, name in enumerate(self.names):
            self.emulators[name] = self.sandbox.add_kube_cluster(name)
            roles = {"cluster": self._role(f"{name}-cluster", "eks.amazonaws.com")}
            eks.create_cluster(name=name, roleArn=roles["cluster"], resourcesVpcConfig=vpc)
            roles["node"] = self._role(f"{name}-node", "ec2.amazonaws.com")
            eks.create_nodegroup(
                clusterName=name, nodegroupName="default", nodeRole=roles["node"], subnets=vpc["subnetIds"]
            )
            if index == 0:
                roles["pod"] = self._role(f"{name}-pod", "eks-fargate-pods.amazonaws.com")
                eks.create_fargate_profile(
                    clusterName=name,
                    fargateProfileName="default",
                    podExecutionRoleArn=roles["pod"],
                    selectors=[{"namespace": "default"}],
                )
            self.roles[name] = roles
        self.objects = self.clusters
        self.results: list[dict[str, Any]] = []

    def _role(self, name: str, service: str) -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
        iam = self.sandbox.client("iam")
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])

    def _remaining_for(self, _function: str) -> Callable[[], int]:
        started = self._invocation_started
        return lambda: int((started + self.timeout_s - self.clock()) * 1000)

    def upstreams(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_EKS": self.sandbox.eks_shim.url,  # what the sandbox points EKS at
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self.sandbox.client("logs").meta.endpoint_url,
        }

    def invoke(self, event: ScheduledRun | Continuation, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        self._invocation_started = self.clock()
        scheduled = {
            "version": "0",
            "id": event.id,
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/eksops-local-{self.function}-schedule"],
            "detail": {},
        }
        done = self.dispatcher.invoke(self.function, scheduled, "schedule (faults)", retries=0)
        if done.result is not None:
            self.results.append(done.result)
        if not done.ok:
            raise EksopsError(f"{done.error_type}: {done.error}")
        return dict(done.result)

    def _expected(self, name: str, index: int) -> set[str]:
        from eksops.kube import manifests

        docs = manifests.render_observability(name, REGION) + manifests.render_metrics_server(False)
        if index == 0:
            docs += manifests.render_fargate_logging(name, REGION)
        return {f"{d['kind']}/{d['metadata'].get('namespace') or '-'}/{d['metadata']['name']}" for d in docs}

    def _objects(self, name: str) -> set[str]:
        found = set()
        for obj in self.emulators[name].objects.values():
            if not obj.deleted:
                meta = obj.raw.get("metadata", {})
                found.add(f"{obj.raw.get('kind')}/{meta.get('namespace') or '-'}/{meta.get('name')}")
        return found

    def _incomplete(self, name: str, index: int) -> list[str]:
        iam = self.sandbox.client("iam")

        def attached(role_arn: str) -> set[str]:
            role = role_arn.rsplit("/", 1)[-1]
            return {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}

        missing = []
        if "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy" not in attached(self.roles[name]["node"]):
            missing.append(f"{name}: CloudWatchAgentServerPolicy not on the node role")
        if (
            "pod" in self.roles
            and index == 0
            and self.sandbox.refs["FargateLoggingPolicy"] not in attached(self.roles[name]["pod"])
        ):
            missing.append(f"{name}: the Fargate logging policy not on the pod execution role")
        missing += [f"{name}: {ref} not applied" for ref in sorted(self._expected(name, index) - self._objects(name))]
        return missing

    def _tagged(self, name: str) -> bool:
        from eksops.bootstrap.service import TAG
        from eksops.kube import manifests

        tags = self.sandbox.client("eks").describe_cluster(name=name)["cluster"].get("tags", {})
        return bool(tags.get(TAG) == manifests.MANIFEST_VERSION)

    def not_converged(self) -> list[str]:
        missing = []
        for index, name in enumerate(self.names):
            missing += self._incomplete(name, index)
            missing += [] if self._tagged(name) else [f"{name}: not tagged as bootstrapped"]
        return missing

    def half_applied(self) -> list[str]:
        wrong = []
        for index, name in enumerate(self.names):
            incomplete = self._incomplete(name, index)
            if incomplete and self._tagged(name):
                wrong += [f"tagged as bootstrapped, but {line}" for line in incomplete]
            for result in self.results:
                status = result.get("clusters", {}).get(name, {}).get("status")
                if incomplete and status in {"bootstrapped", "unchanged"} and result is self.results[-1]:
                    wrong += [f"reported {status}, but {line}" for line in incomplete]
        return wrong


# -- node_scaler --------------------------------------------------------------------------------------------------


class NodeScalerSweep(SweepTarget):
    """Enrolled node groups of several clusters whose Container Insights metrics show demand over their capacity
    (the Kubernetes API is not reached: ``api_client=None``), and the reserved-CPU alarm of a cluster no longer
    enrolled; the scheduled run grows each group, keeps each cluster's alarm and removes the leftover.

    Half-applied: a group reported resized that does not have that size, an alarm reported created, updated or
    deleted that is not so, or an alarm of eksops' naming that notifies anything but the scaling topic."""

    function = "node_scaler"
    unit = "node groups"
    persistent_fault = "SetDesiredCapacity"  # no group can grow; the alarms and the report still go through
    clusters = 4
    leftover = "gone-1"
    prefix = "faults-scaling-"
    reserved_percent, node_cpu, nodes = 95.0, 4000.0, 2  # 7.6 cores requested on 2 four-core nodes

    def seed(self) -> None:
        from eksops.scaling.alarms import MANAGED_TAG

        ec2, autoscaling, cloudwatch = self.plain("ec2"), self.plain("autoscaling"), self.plain("cloudwatch")
        ec2.create_launch_template(
            LaunchTemplateName="faults-nodes",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m7g.xlarge"},
        )
        self.names = [f"scale-{i}" for i in range(self.clusters)]
        for name in self.names:
            tags = {"eks:cluster-name": name, "eksops:scaling": "enabled", "eksops:scaling-autoscaler": "none"}
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=f"{name}-general",
                LaunchTemplate={"LaunchTemplateName": "faults-nodes", "Version": "$Latest"},
                MinSize=1,
                MaxSize=10,
                DesiredCapacity=self.nodes,
                AvailabilityZones=[f"{REGION}a"],
                Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in tags.items()],
            )
            values = (
                ("node_cpu_reserved_capacity", self.reserved_percent),
                ("node_cpu_limit", self.node_cpu),
                ("cluster_node_count", float(self.nodes)),
            )
            cloudwatch.put_metric_data(
                Namespace="ContainerInsights",
                MetricData=[
                    {"MetricName": m, "Dimensions": [{"Name": "ClusterName", "Value": name}], "Value": v}
                    for m, v in values
                ],
            )
        self.topic = self.plain("sns").create_topic(Name=REPORTS)["TopicArn"]
        self.scaling_topic = self.plain("sns").create_topic(Name="faults-scaling")["TopicArn"]
        cloudwatch.put_metric_alarm(  # what is left of a cluster whose groups left the scaler
            AlarmName=f"{self.prefix}{self.leftover}-cpu-reserved",
            Namespace="ContainerInsights",
            MetricName="node_cpu_reserved_capacity",
            Dimensions=[{"Name": "ClusterName", "Value": self.leftover}],
            Statistic="Average",
            Period=60,
            EvaluationPeriods=1,
            Threshold=90.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            AlarmActions=[self.scaling_topic],
            Tags=[MANAGED_TAG],
        )
        self.objects = self.clusters
        self.changes: list[dict[str, Any]] = []
        self.alarm_changes: list[dict[str, str]] = []

    def _wanted(self) -> int:
        import math

        from eksops.scaling.config import DEFAULT_TARGET_PERCENT

        demand = self.reserved_percent / 100 * self.node_cpu * self.nodes
        return math.ceil(demand / (DEFAULT_TARGET_PERCENT / 100) / self.node_cpu)

    def invoke(self, event: ScheduledRun | Continuation, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        from eksops.notify import Publisher
        from eksops.scaling import AlarmSettings, NodeScalerService, ScalerConfig

        if not isinstance(event, ScheduledRun):
            raise TypeError("node_scaler does not continue")
        service = NodeScalerService(
            ScalerConfig.from_env({}),
            CommonConfig.from_env({"DRY_RUN": "false", "REPORTS_TOPIC_ARN": self.topic}),
            autoscaling=client("autoscaling"),
            cloudwatch=client("cloudwatch"),
            ssm=client("ssm"),
            publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=self.topic),
            alarms=AlarmSettings(topic_arn=self.scaling_topic, prefix=self.prefix),
            api_client=None,  # Container Insights: faults hit the AWS calls only
            alarm_limiter=RateLimiter(3.0, clock=self.clock, sleep=self.sleep),
        )
        summary = service.handle(event, Deadline(remaining_ms))
        self.changes += summary.changed
        self.alarm_changes += summary.alarms
        result: dict[str, Any] = summary.as_dict()
        summary.raise_for_errors()
        return result

    def _desired(self) -> dict[str, int]:
        groups = self.plain("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
        return {g["AutoScalingGroupName"]: g["DesiredCapacity"] for g in groups}

    def _alarms(self) -> dict[str, Any]:
        alarms = self.plain("cloudwatch").describe_alarms(AlarmNamePrefix=self.prefix)["MetricAlarms"]
        return {a["AlarmName"]: a for a in alarms}

    def not_converged(self) -> list[str]:
        desired, alarms, wanted = self._desired(), self._alarms(), self._wanted()
        groups = [f"{n}-general" for n in self.names]
        missing = [f"{g}: {desired[g]} nodes, not {wanted}" for g in groups if desired[g] != wanted]
        missing += [f"{n}: no alarm" for n in self.names if f"{self.prefix}{n}-cpu-reserved" not in alarms]
        if f"{self.prefix}{self.leftover}-cpu-reserved" in alarms:
            missing.append(f"{self.leftover}: leftover alarm not removed")
        return missing

    def half_applied(self) -> list[str]:
        desired, alarms = self._desired(), self._alarms()
        last = {c["group"]: c for c in self.changes}  # the latest change reported for each group
        wrong = [
            f"reported {c['group']} {c['from']} -> {c['to']}, but it has {desired[c['group']]}"
            for c in last.values()
            if desired[c["group"]] != c["to"]
        ]
        for change in self.alarm_changes:
            present = change["name"] in alarms
            if present != (change["action"] != "delete"):
                wrong.append(
                    f"reported {change['action']} alarm {change['name']}, which is {'there' if present else 'missing'}"
                )
        wrong += [
            f"alarm {name} notifies {alarm.get('AlarmActions')}"
            for name, alarm in alarms.items()
            if alarm.get("AlarmActions") != [self.scaling_topic]
        ]
        return wrong


# -- image_updater ------------------------------------------------------------------------------------------------


class ImageUpdaterSweep(SweepTarget):
    """IMAGE_MAP entries of several ECR repositories, each with images newer than its kustomization names (an
    allowed newer one, the newest allowed one, one outside the semver range), all scanned; the reconcile commits
    each entry's newest allowed tag to the config repository, a real Git repository served over smart HTTP on
    127.0.0.1 (eksops_dev.gitserver). Faults hit the AWS calls (ECR, SNS): the Git server is not behind the proxies.

    Converged: every file names its newest allowed tag. Half-applied: a commit reported that is not on the branch;
    a commit that changes anything but one entry's tag lines; two commits for one entry (a duplicate); a merge."""

    function = "image_updater"
    unit = "images"
    persistent_fault = "DescribeImageScanFindings"  # no image can pass the gate: each entry fails, nothing commits
    entries = 20
    repo = "config"
    old, newer, newest, outside = "1.0.0", "1.1.0", "1.2.0", "2.0.0"

    def seed(self) -> None:
        from eksops_dev.gitserver import GitServer

        self.git = self._stack.enter_context(GitServer(self.workdir / "git"))
        self.names = [f"svc-{i}" for i in range(self.entries)]
        url = self.git.create(self.repo, {self._path(n): self._file(n, self.old).encode() for n in self.names})
        self.seed_head = self.git.head(self.repo)
        ecr = self.plain("ecr")
        layer = 0
        for name in self.names:
            ecr.create_repository(repositoryName=name)
            for tag in (self.old, self.newer, self.newest, self.outside):
                layer += 1  # moto derives an image's digest from its layers' digests: one layer of its own each
                digest = ecr.put_image(repositoryName=name, imageManifest=image_manifest(layer), imageTag=tag)["image"][
                    "imageId"
                ]["imageDigest"]
                if tag in (self.newer, self.newest):  # moto reports one HIGH finding: under the CRITICAL gate
                    ecr.start_image_scan(repositoryName=name, imageId={"imageDigest": digest})
        image_map = [
            {"repository": n, "image": n, "files": [self._path(n)], "policy": "semver", "constraint": ">=1,<2"}
            for n in self.names
        ]
        self.topic = self.plain("sns").create_topic(Name=REPORTS)["TopicArn"]
        self.env = {"CONFIG_REPO_URL": url, "IMAGE_MAP": json.dumps(image_map)}
        self.objects = self.entries
        self.committed: list[dict[str, Any]] = []

    @staticmethod
    def _path(name: str) -> str:
        return f"apps/{name}/kustomization.yaml"

    @staticmethod
    def _file(name: str, tag: str) -> str:
        return f"# {name}: production overlay\nresources:\n  - ../base\nimages:\n  - name: {name}\n    newTag: {tag}\n"

    def invoke(self, event: ScheduledRun | Continuation, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        from eksops.images.config import UpdaterConfig
        from eksops.images.registry import EcrRegistry
        from eksops.images.service import ImageUpdaterService, open_repository
        from eksops.notify import Publisher

        if not isinstance(event, ScheduledRun):
            raise TypeError("image_updater does not continue")
        cfg = UpdaterConfig.from_env(self.env)

        def no_secret(arn: str) -> str:
            raise AssertionError(f"no secret here: {arn}")

        service = ImageUpdaterService(
            cfg,
            CommonConfig.from_env({"DRY_RUN": "false", "REPORTS_TOPIC_ARN": self.topic}),
            registry=EcrRegistry(client("ecr")),
            codepipeline=client("codepipeline"),
            repository=lambda: open_repository(cfg, codecommit=lambda: client("codecommit"), get_secret=no_secret),
            publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=self.topic),
        )
        summary = service.handle(event, Deadline(remaining_ms), account=ACCOUNT, region=REGION)
        self.committed += summary.committed
        result: dict[str, Any] = summary.as_dict()
        summary.raise_for_errors()
        return result

    def not_converged(self) -> list[str]:
        return [
            f"{self._path(n)}: not at {self.newest}"
            for n in self.names
            if self.git.read(self.repo, self._path(n)).decode() != self._file(n, self.newest)
        ]

    def half_applied(self) -> list[str]:
        from dulwich.repo import Repo

        log = self.git.log(self.repo)
        ids = [c.id.decode() for c in log]
        wrong = [
            f"reported commit {c['commit']} is not on the branch" for c in self.committed if c["commit"] not in ids
        ]
        if self.seed_head not in ids:
            return [*wrong, "the branch no longer descends from the seeded commit"]
        per_entry: dict[str, int] = {}
        with Repo(str(self.git.root / self.repo)) as repo:
            for commit in log[: ids.index(self.seed_head)]:
                if len(commit.parents) != 1:
                    wrong.append(f"{commit.id.decode()} has {len(commit.parents)} parents: history not linear")
                    continue
                parent = repo[commit.parents[0]]
                changes = list(repo.object_store.tree_changes(parent.tree, commit.tree))  # type: ignore[attr-defined]
                paths = sorted((new or old or b"").decode() for (old, new), _, _ in changes)
                names = [n for n in self.names if paths == [self._path(n)]]
                if not names:
                    wrong.append(f"{commit.id.decode()} changes {paths}, not one entry's file")
                    continue
                (name,) = names
                per_entry[name] = per_entry.get(name, 0) + 1
                before = self.git.read(self.repo, self._path(name), commit=commit.parents[0].decode()).decode()
                after = self.git.read(self.repo, self._path(name), commit=commit.id.decode()).decode()
                retagged = {self._file(name, tag) for tag in (self.newer, self.newest)}
                if before not in {self._file(name, self.old), *retagged} or after not in retagged:
                    wrong.append(f"{commit.id.decode()} changes more than {name}'s tag: {after!r}")
        wrong += [f"{n}: {k} commits (one expected)" for n, k in sorted(per_entry.items()) if k > 1]
        return wrong


# -- compliance_sweep ---------------------------------------------------------------------------------------------


class ComplianceSweep(SweepTarget):
    """EKS clusters in moto, each with a node group whose role lacks the CloudWatch agent's policy and Container
    Insights log groups that never expire; REMEDIATE lists node-role-cloudwatch-policy and logs-retention. Their
    Kubernetes APIs refuse connections (a closed local port), so each sweep also takes the unreachable path: that
    finding, the Kubernetes rules not run. The schedule fans out one continuation per cluster (PutEvents, through the
    proxy), and each cluster is then swept in its own invocation, as Lambda runs them: one that fails does not stop
    the others. Faults hit the AWS calls (EKS, IAM, EC2, Logs, CloudWatch, ECR, DynamoDB, SNS, EventBridge).

    Converged: every node role has the policy, every group its retention, and every cluster's findings are in the
    state table. Half-applied: a finding reported remediated, in a report or in the state table, whose fix is not in
    place."""

    function = "compliance_sweep"
    unit = "clusters"
    continues = True  # the fan-out, then one invocation per cluster
    persistent_fault = "PutRetentionPolicy"  # no group gets its retention: remediation-failed, the rest goes on
    clusters = 3
    table = "faults-compliance"
    kinds = ("application", "host", "dataplane", "performance")

    def seed(self) -> None:
        from eksops.bootstrap.service import node_policy_arn
        from eksops_dev.moto_extras import add_aws_managed_policies

        add_aws_managed_policies(["CloudWatchAgentServerPolicy"])
        self.policy = node_policy_arn("aws")
        iam, eks, logs = self.plain("iam"), self.plain("eks"), self.plain("logs")
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        )
        self.names = [f"audit-{i}" for i in range(self.clusters)]
        self.node_roles: dict[str, str] = {}
        for name in self.names:
            role = iam.create_role(RoleName=f"{name}-cluster", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            eks.create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]})
            self.node_roles[name] = f"{name}-nodes"
            node = iam.create_role(RoleName=self.node_roles[name], AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            eks.create_nodegroup(
                clusterName=name,
                nodegroupName="general",
                nodeRole=node,
                subnets=["subnet-1"],
                scalingConfig={"minSize": 2, "maxSize": 4, "desiredSize": 2},
            )
            for kind in self.kinds:
                logs.create_log_group(logGroupName=f"/aws/containerinsights/{name}/{kind}")
        self.plain("dynamodb").create_table(
            TableName=self.table,
            KeySchema=[
                {"AttributeName": "cluster", "KeyType": "HASH"},
                {"AttributeName": "finding", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "cluster", "AttributeType": "S"},
                {"AttributeName": "finding", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self.topic = self.plain("sns").create_topic(Name=REPORTS)["TopicArn"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.workdir / "kubeconfig.json"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": n, "cluster": {"server": "http://127.0.0.1:9"}} for n in self.names],
                    "users": [{"name": "faults", "user": {"token": "faults"}}],
                    "contexts": [{"name": n, "context": {"cluster": n, "user": "faults"}} for n in self.names],
                    "current-context": self.names[0],
                }
            )
        )
        self.objects = self.clusters
        self.reports: list[dict[str, Any]] = []  # every cluster report of every invocation, failed ones included

    def run(self) -> list[Invocation]:
        """The fan-out, then every continuation it put, each its own invocation with its own deadline."""
        from eksops.compliance.gather import SweepGather
        from eksops.compliance.service import ComplianceService

        self.continuer = _RecordingContinuer(client("events"), self.function)
        self.service = ComplianceService(  # one for the run's invocations, as in a warm container
            self._tools(),
            publisher=self._publisher(),
            continuer=self.continuer,
            state=self._state(),
            gather=SweepGather(client("dynamodb"), self.table),  # one report per sweep, as the handler does
        )
        done: list[Invocation] = []
        pending: list[ScheduledRun | Continuation] = [
            ScheduledRun(id=str(uuid.uuid4()), rule=f"{self.function}-schedule")
        ]
        while pending:
            event = pending.pop(0)
            started = self.clock()
            label = "schedule" if isinstance(event, ScheduledRun) else f"cluster {event.checkpoint['cluster']}"
            invocation = Invocation(self.function, label, started, started, self.timeout_s)
            try:
                invocation.result = self.invoke(event, self._remaining(started + self.timeout_s))
            except Exception as exc:  # this invocation failed (Lambda retries it); the others are their own
                invocation.error = f"{type(exc).__name__}: {exc}"
            invocation.ended = self.clock()
            done.append(invocation)
            pending += self.continuer.pending
            self.continuer.pending.clear()
        self.invocations += done
        return done

    def _tools(self) -> Any:
        from dataclasses import replace

        from eksops.compliance.config import ComplianceConfig
        from eksops.compliance.context import Tools
        from eksops.kube.auth import api_client
        from eksops.logs import RetentionConfig

        settings = replace(
            ComplianceConfig.from_env({}),
            remediate=frozenset({"node-role-cloudwatch-policy", "logs-retention"}),
            table=self.table,
        )
        return Tools(
            aws=client,
            api_client=lambda name: api_client(name, eks_client=None, sts_client=None, kubeconfig=str(self.kubeconfig)),
            settings=settings,
            common=CommonConfig.from_env({"DRY_RUN": "false", "REPORTS_TOPIC_ARN": self.topic}),
            retention=RetentionConfig.from_env({"RETENTION_DEFAULT_DAYS": "365"}),
            clock=self.clock,
        )

    def _publisher(self) -> Any:
        from eksops.notify import Publisher

        return Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=self.topic)

    def _state(self) -> Any:
        from eksops.compliance.state import StateStore

        return StateStore(client("dynamodb"), self.table)

    def invoke(self, event: ScheduledRun | Continuation, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        from eksops.compliance.triggers import parse_trigger

        if isinstance(event, ScheduledRun):
            raw: dict[str, Any] = {
                "version": "0",
                "id": event.id,
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": ACCOUNT,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": REGION,
                "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{event.rule}"],
                "detail": {},
            }
        else:
            raw = {
                "version": "0",
                "id": event.id,
                "detail-type": "eksops sweep continuation",
                "source": "eksops",
                "account": ACCOUNT,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": REGION,
                "resources": [],
                "detail": {
                    "function": event.function,
                    "run_id": event.run_id,
                    "part": event.part,
                    "checkpoint": dict(event.checkpoint),
                },
            }
        summary = self.service.handle(parse_trigger(raw), Deadline(remaining_ms), account=ACCOUNT)
        result: dict[str, Any] = summary.as_dict()
        self.reports += result["clusters"]
        summary.raise_for_errors()
        return result

    def _attached(self, name: str) -> bool:
        policies = self.plain("iam").list_attached_role_policies(RoleName=self.node_roles[name])["AttachedPolicies"]
        return any(p["PolicyArn"] == self.policy for p in policies)

    def _retention(self) -> dict[str, int | None]:
        groups = self.plain("logs").describe_log_groups(logGroupNamePrefix="/aws/containerinsights/")["logGroups"]
        return {g["logGroupName"]: g.get("retentionInDays") for g in groups}

    def _stored(self, name: str) -> list[dict[str, Any]]:
        return list(
            self.plain("dynamodb").query(
                TableName=self.table,
                KeyConditionExpression="#c = :c",
                ExpressionAttributeNames={"#c": "cluster"},
                ExpressionAttributeValues={":c": {"S": name}},
            )["Items"]
        )

    def _fixed(self, rule: str, resource: str) -> bool | None:
        """Whether a finding's fix is in place (None for rules this world does not remediate)."""
        if rule == "logs-retention":
            return self._retention().get(resource.removeprefix("log-group/")) is not None
        if rule == "node-role-cloudwatch-policy":
            name = next((n for n, role in self.node_roles.items() if resource == f"role/{role}"), None)
            return name is not None and self._attached(name)
        return None

    def not_converged(self) -> list[str]:
        missing = [f"{n}: node role without {self.policy}" for n in self.names if not self._attached(n)]
        missing += [f"{g}: never expires" for g, days in sorted(self._retention().items()) if days is None]
        missing += [f"{n}: no findings in the state table" for n in self.names if not self._stored(n)]
        return missing

    def half_applied(self) -> list[str]:
        wrong = []
        for report in self.reports:
            for finding in report.get("findings", []):
                if finding["status"] == "remediated" and self._fixed(finding["rule"], finding["resource"]) is False:
                    wrong.append(f"{report['cluster']}: reported {finding['rule']} {finding['resource']} remediated")
        for name in self.names:
            for item in self._stored(name):
                rule, resource, status = item["rule"]["S"], item["resource"]["S"], item["status"]["S"]
                if status == "remediated" and self._fixed(rule, resource) is False:
                    wrong.append(f"{name}: the state says {rule} {resource} remediated")
        return wrong


SWEEPS: tuple[type[SweepTarget], ...] = (
    LogRetentionSweep,
    ErrorAlarmsSweep,
    ClusterBootstrapSweep,
    NodeScalerSweep,
    ImageUpdaterSweep,
    ComplianceSweep,
)


# -- driving ------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How a target fared: the runs it took, its invocations, and what the proxies and clients counted."""

    target: SweepTarget
    runs: list[list[Invocation]]
    converged: bool
    not_converged: list[str]
    half_applied: list[list[str]]  # after each run
    plan: FaultPlan
    stats: CallStats
    elapsed_s: float  # on the target's clock

    @property
    def invocations(self) -> list[Invocation]:
        return [i for run in self.runs for i in run]


@contextlib.contextmanager
def seeded(
    target_type: type[SweepTarget], endpoint: str, workdir: Path, template: Template, *, clock: Clock, sleep: Sleep
) -> Iterator[SweepTarget]:
    """A target with its world built (closed on exit)."""
    target = target_type(endpoint, workdir, template, clock=clock, sleep=sleep)
    try:
        target.seed()
        yield target
    finally:
        target.close()


def converge(target: SweepTarget, plan: FaultPlan, *, runs: int = 2) -> Outcome:
    """Run ``target`` through fault proxies until it converges, ``runs`` runs at most."""
    stats = CallStats(target.clock)
    done: list[list[Invocation]] = []
    half: list[list[str]] = []
    started = target.clock()
    with proxied(plan, target.upstreams()):
        stats.attach()
        for _ in range(runs):
            done.append(target.run())
            half.append(target.half_applied())
            left = target.not_converged()
            if not left:
                break
    return Outcome(target, done, not left, left, half, plan, stats, target.clock() - started)
