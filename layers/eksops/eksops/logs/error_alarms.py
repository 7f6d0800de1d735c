"""Error alarms: a metric filter, an alarm, a dashboard and saved queries for each EKS cluster's application logs.

Container Insights writes a cluster's container logs to ``/aws/containerinsights/<cluster>/application``. For
each such log group eksops keeps, by name:

* metric filter ``eksops-application-errors`` (ERROR_FILTER_PATTERN, metric ``<cluster>`` in namespace
  ``eksops/ApplicationErrors``) and, with ERROR_METRIC_BY_NAMESPACE, ``eksops-application-errors-by-namespace``
  (the same metric with a ``Namespace`` dimension from the record's Kubernetes namespace);
* alarm ``eksops-<cluster>-application-errors`` (tagged ``eksops:managed-by=error_alarms``);
* dashboard ``eksops-<cluster>`` (its text widget carries the marker ``eksops:error_alarms``);
* Logs Insights query definitions ``eksops/<cluster>/recent-errors`` and ``.../errors-by-namespace-and-pod``.

A CloudTrail CreateLogGroup or DeleteLogGroup for such a group reconciles that cluster: everything is put in
place if the group exists, and removed if it does not. The scheduled sweep reconciles every cluster and removes
what is left of clusters whose group is gone (a lost DeleteLogGroup event). Each resource is read first and
written only when it differs, so a second run changes nothing and a hand edit is put back. Creation, repair
and removal only touch what is eksops' own: an alarm tagged as eksops', or (its tag removed by hand, which the
reconcile puts back) alarming on eksops' metric namespace; a dashboard carrying this region's marker; the
query names above. A resource of eksops' name that is not eksops' own is left alone and listed in
``not_owned``: eksops never claims a resource by its name alone.

A metric filter's dimensions can only come from fields of the log event, so the cluster is the metric *name*
rather than a ``ClusterName`` dimension.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from botocore.exceptions import ClientError

from eksops.aws import RateLimiter, error_code
from eksops.aws.alarms import same_alarm
from eksops.config import CommonConfig
from eksops.errors import InvalidEvent, PartialFailure, UnsupportedEvent
from eksops.events import AnyEvent, CloudTrailCall, ScheduledRun
from eksops.logs.error_alarms_config import ErrorAlarmsConfig
from eksops.logs.groups import describe_log_group
from eksops.names import CLUSTER_NAME_PATTERN
from eksops.notify import Message, Publisher, Severity
from eksops.sweeps import Deadline

FUNCTION = "error_alarms"
EVENT_NAMES = frozenset({"CreateLogGroup", "DeleteLogGroup"})
CONTAINER_INSIGHTS_PREFIX = "/aws/containerinsights/"
_CLUSTER = CLUSTER_NAME_PATTERN  # EKS cluster names: one definition, in eksops.names
_APPLICATION_GROUP = re.compile(rf"^/aws/containerinsights/({_CLUSTER})/application$")
_CLUSTER_NAME = re.compile(rf"^{_CLUSTER}$")
_GROUP_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")

METRIC_NAMESPACE = "eksops/ApplicationErrors"
FILTER_NAME = "eksops-application-errors"
NAMESPACE_FILTER_NAME = "eksops-application-errors-by-namespace"
NAMESPACE_DIMENSION = "Namespace"
NAMESPACE_FIELD = "$.kubernetes.namespace_name"
MANAGED_TAG_KEY = "eksops:managed-by"
MANAGED_TAG_VALUE = FUNCTION
_MANAGED_TAG = {"Key": MANAGED_TAG_KEY, "Value": MANAGED_TAG_VALUE}
ALARM_PREFIX = "eksops-"
ALARM_SUFFIX = "-application-errors"
DASHBOARD_PREFIX = "eksops-"
DASHBOARD_MARKER = "eksops:error_alarms"
# Dashboards are global to the account, not regional: the marker names the region whose eksops owns one, so a
# deployment in another region never overwrites or removes it.
_DASHBOARD_OWNER = re.compile(rf"{DASHBOARD_MARKER} region=([a-z0-9-]+)")
QUERY_PREFIX = "eksops/"
QUERY_RECENT = "recent-errors"
QUERY_BY_POD = "errors-by-namespace-and-pod"
QUERY_NAMES = (QUERY_RECENT, QUERY_BY_POD)

PUT_FILTER_RATE = 5.0  # PutMetricFilter quota, requests per second per account and region
PUT_ALARM_RATE = 3.0  # PutMetricAlarm quota
DESCRIBE_RATE = 10.0  # DescribeLogGroups quota
PAGE_SIZE = 50
MAX_DESCRIPTION = 1024  # PutMetricAlarm's limit on AlarmDescription
_NOT_FOUND = frozenset({"ResourceNotFound", "ResourceNotFoundException"})

log = logging.getLogger(__name__)


def cluster_of(group_name: str) -> str | None:
    """The cluster of a Container Insights application log group, None for any other group."""
    match = _APPLICATION_GROUP.match(group_name)
    return match.group(1) if match else None


def application_group(cluster: str) -> str:
    return f"{CONTAINER_INSIGHTS_PREFIX}{cluster}/application"


def alarm_name(cluster: str) -> str:
    return f"{ALARM_PREFIX}{cluster}{ALARM_SUFFIX}"


def dashboard_name(cluster: str) -> str:
    return f"{DASHBOARD_PREFIX}{cluster}"


def query_name(cluster: str, query: str) -> str:
    return f"{QUERY_PREFIX}{cluster}/{query}"


# -- saved Logs Insights queries: a port, because the API has no moto emulation -------------------------------


@dataclass(frozen=True)
class QueryDefinition:
    """A saved Logs Insights query (``id`` is None until CloudWatch Logs has assigned one)."""

    name: str
    query: str
    log_groups: tuple[str, ...] = ()
    id: str | None = None


class QueryDefinitions(Protocol):
    """Where saved queries live: CloudWatch Logs in production, an in-memory fake in tests against moto."""

    def list(self, prefix: str) -> list[QueryDefinition]: ...

    def put(self, definition: QueryDefinition) -> str: ...

    def delete(self, definition_id: str) -> None: ...


class LogsQueryDefinitions:
    """The QueryDefinitions port over a CloudWatch Logs client (Describe/Put/DeleteQueryDefinition)."""

    def __init__(self, logs: Any) -> None:
        self._logs = logs

    def list(self, prefix: str) -> list[QueryDefinition]:
        found: list[QueryDefinition] = []
        kwargs: dict[str, Any] = {"queryDefinitionNamePrefix": prefix, "maxResults": 1000}
        while True:
            page = self._logs.describe_query_definitions(**kwargs)
            for item in page.get("queryDefinitions", []):
                found.append(
                    QueryDefinition(
                        name=item["name"],
                        query=item.get("queryString", ""),
                        log_groups=tuple(item.get("logGroupNames", [])),
                        id=item.get("queryDefinitionId"),
                    )
                )
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]

    def put(self, definition: QueryDefinition) -> str:
        """Create the definition, or replace the one with ``definition.id`` (every field is replaced)."""
        kwargs: dict[str, Any] = {
            "name": definition.name,
            "queryString": definition.query,
            "logGroupNames": list(definition.log_groups),
        }
        if definition.id:
            kwargs["queryDefinitionId"] = definition.id
        return str(self._logs.put_query_definition(**kwargs)["queryDefinitionId"])

    def delete(self, definition_id: str) -> None:
        self._logs.delete_query_definition(queryDefinitionId=definition_id)


# -- what each cluster should have --------------------------------------------------------------------------


@dataclass(frozen=True)
class Blueprint:
    """The desired resources of one cluster: pure data, built from the configuration."""

    cfg: ErrorAlarmsConfig
    cluster: str
    region: str
    alerts_topic_arn: str | None

    @property
    def group(self) -> str:
        return application_group(self.cluster)

    def metric_filters(self) -> dict[str, dict[str, Any]]:
        """filterName -> the metric transformation, for every filter the cluster should have."""
        total = {
            "metricName": self.cluster,
            "metricNamespace": METRIC_NAMESPACE,
            "metricValue": "1",
            "defaultValue": 0.0,  # a zero for each non-matching event: the graph shows 0 instead of gaps
            "unit": "Count",
        }
        filters = {FILTER_NAME: total}
        if self.cfg.by_namespace:
            # No default value: CloudWatch Logs does not publish one for a filter with dimensions.
            filters[NAMESPACE_FILTER_NAME] = {
                "metricName": self.cluster,
                "metricNamespace": METRIC_NAMESPACE,
                "metricValue": "1",
                "dimensions": {NAMESPACE_DIMENSION: NAMESPACE_FIELD},
                "unit": "Count",
            }
        return filters

    def recent_errors_query(self) -> str:
        return (
            "fields @timestamp, kubernetes.namespace_name, kubernetes.pod_name, kubernetes.container_name, log"
            f" | filter {self.cfg.insights_filter} | sort @timestamp desc | limit 200"
        )

    def errors_by_pod_query(self) -> str:
        return (
            f"filter {self.cfg.insights_filter}"
            " | stats count(*) as errors by kubernetes.namespace_name, kubernetes.pod_name"
            " | sort errors desc | limit 100"
        )

    def queries(self) -> list[QueryDefinition]:
        return [
            QueryDefinition(query_name(self.cluster, QUERY_RECENT), self.recent_errors_query(), (self.group,)),
            QueryDefinition(query_name(self.cluster, QUERY_BY_POD), self.errors_by_pod_query(), (self.group,)),
        ]

    def alarm(self) -> dict[str, Any]:
        """PutMetricAlarm parameters (without tags)."""
        actions = [self.alerts_topic_arn] if self.alerts_topic_arn else []
        return {
            "AlarmName": alarm_name(self.cluster),
            "AlarmDescription": self.alarm_description(),
            "ActionsEnabled": True,
            "AlarmActions": actions,
            "OKActions": actions,
            "InsufficientDataActions": [],
            "MetricName": self.cluster,
            "Namespace": METRIC_NAMESPACE,
            "Statistic": "Sum",
            "Dimensions": [],
            "Period": self.cfg.period,
            "EvaluationPeriods": 1,
            "Threshold": float(self.cfg.threshold),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        }

    def alarm_description(self) -> str:
        """What on-call reads first: what fired, where the lines are, the query to run (fits the 1024 limit).

        The Logs Insights query is spelled out when it fits; with a long cluster name the description names the
        saved query that holds it instead.
        """
        approximate = " (approximates the custom pattern)" if self.cfg.custom_pattern else ""
        head = (
            f"Errors in the application logs of EKS cluster {self.cluster}: >= {self.cfg.threshold} in "
            f"{self.cfg.period} s. Log group {self.group}."
        )
        inline = (
            f" Run Logs Insights on it over the alarm period{approximate}: fields @timestamp,"
            f" kubernetes.namespace_name, kubernetes.pod_name, log | filter {self.cfg.insights_filter}"
            " | sort @timestamp desc ."
        )
        saved = (
            f" Run the saved Logs Insights query {query_name(self.cluster, QUERY_RECENT)} over the alarm period"
            f"{approximate}."
        )
        tail = (
            f" Dashboard {dashboard_name(self.cluster)} shows errors by namespace; saved queries are under "
            f"{QUERY_PREFIX}{self.cluster}/. Runbook: docs/error-alarms.md. Managed by eksops."
        )
        full = head + inline + tail
        return full if len(full) <= MAX_DESCRIPTION else head + saved + tail

    def dashboard(self) -> dict[str, Any]:
        source = f"SOURCE '{self.group}'"
        text = (
            f"## eksops: application errors of cluster `{self.cluster}`\n"
            f"Log group `{self.group}`, alarm `{alarm_name(self.cluster)}` (Sum >= {self.cfg.threshold} in "
            f"{self.cfg.period} s), saved queries `{QUERY_PREFIX}{self.cluster}/`. "
            f"Managed by eksops ({DASHBOARD_MARKER} region={self.region}): edits are overwritten by the next "
            "reconcile."
        )
        widgets: list[dict[str, Any]] = [
            {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": text}},
            {
                "type": "metric",
                "x": 0,
                "y": 2,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Application errors",
                    "region": self.region,
                    "view": "timeSeries",
                    "stat": "Sum",
                    "period": self.cfg.period,
                    "metrics": [[METRIC_NAMESPACE, self.cluster, {"label": "errors"}]],
                    "annotations": {"horizontal": [{"label": "alarm threshold", "value": self.cfg.threshold}]},
                    "yAxis": {"left": {"min": 0}},
                },
            },
            {
                "type": "log",
                "x": 12,
                "y": 2,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Errors by namespace (Logs Insights)",
                    "region": self.region,
                    "view": "table",
                    "query": f"{source} | filter {self.cfg.insights_filter}"
                    " | stats count(*) as errors by kubernetes.namespace_name | sort errors desc | limit 20",
                },
            },
            {
                "type": "metric",
                "x": 0,
                "y": 8,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Node reserved capacity (%)",
                    "region": self.region,
                    "view": "timeSeries",
                    "stat": "Average",
                    "period": 300,
                    "metrics": [
                        ["ContainerInsights", "node_cpu_reserved_capacity", "ClusterName", self.cluster],
                        ["ContainerInsights", "node_memory_reserved_capacity", "ClusterName", self.cluster],
                    ],
                    "yAxis": {"left": {"min": 0, "max": 100}},
                },
            },
            {
                "type": "log",
                "x": 12,
                "y": 8,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Recent errors",
                    "region": self.region,
                    "view": "table",
                    "query": f"{source} | {self.recent_errors_query()}",
                },
            },
        ]
        if self.cfg.by_namespace:
            search = (
                f"SEARCH('{{{METRIC_NAMESPACE},{NAMESPACE_DIMENSION}}} MetricName=\"{self.cluster}\"', "
                f"'Sum', {self.cfg.period})"
            )
            widgets.append(
                {
                    "type": "metric",
                    "x": 0,
                    "y": 14,
                    "width": 24,
                    "height": 6,
                    "properties": {
                        "title": "Errors by namespace (metric)",
                        "region": self.region,
                        "view": "timeSeries",
                        "metrics": [[{"expression": search, "id": "e1"}]],
                    },
                }
            )
        return {"widgets": widgets}


# -- the service ------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """What one invocation did (or, under dry-run, would do)."""

    dry_run: bool
    clusters: list[str] = field(default_factory=list)
    changed: list[dict[str, str]] = field(default_factory=list)
    unchanged: int = 0
    ignored: list[str] = field(default_factory=list)
    not_owned: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def raise_for_errors(self) -> None:
        """Fail the invocation when any resource failed, after the work and the report are done."""
        if self.errors:
            raise PartialFailure(f"{len(self.errors)} resource(s) failed; see the report", self.errors)

    def counts(self) -> dict[str, int]:
        return {
            "clusters": len(self.clusters),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "ignored": len(self.ignored),
            "not_owned": len(self.not_owned),
            "errors": len(self.errors),
        }


class ErrorAlarmsService:
    """Keeps each cluster's error resources as the configuration says, with the clients and ports it is given."""

    def __init__(
        self,
        cfg: ErrorAlarmsConfig,
        common: CommonConfig,
        *,
        logs: Any,
        cloudwatch: Any,
        publisher: Publisher,
        queries: QueryDefinitions | None = None,
        filter_limiter: RateLimiter | None = None,
        alarm_limiter: RateLimiter | None = None,
        describe_limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Limiters not given are made at the account quotas, on ``clock`` and ``sleep`` (a test can fake time)."""
        self.cfg = cfg
        self.common = common
        self._logs = logs
        self._cloudwatch = cloudwatch
        self._publisher = publisher
        self._queries: QueryDefinitions = queries if queries is not None else LogsQueryDefinitions(logs)
        self._filter_limiter = filter_limiter or RateLimiter(PUT_FILTER_RATE, clock=clock, sleep=sleep)
        self._alarm_limiter = alarm_limiter or RateLimiter(PUT_ALARM_RATE, clock=clock, sleep=sleep)
        self._describe_limiter = describe_limiter or RateLimiter(DESCRIBE_RATE, clock=clock, sleep=sleep)
        self._account = ""

    # -- entry point ------------------------------------------------------------------------------------------

    def handle(self, event: AnyEvent, deadline: Deadline, *, account: str = "") -> Summary:
        """Act on a parsed event: one cluster for a CloudTrail call, every cluster for a schedule."""
        self._account = account
        with deadline.bounding_calls():  # AWS calls leave the margin to the report (eksops.aws.budget)
            if isinstance(event, CloudTrailCall):
                summary = self.reconcile_event(event)
            elif isinstance(event, ScheduledRun):
                summary = self.sweep(run_id=event.id or uuid.uuid4().hex, deadline=deadline)
            else:
                raise UnsupportedEvent(
                    f"{FUNCTION} does not continue sweeps; got a continuation for {event.function!r}"
                )
            self._report(summary)
        return summary

    def blueprint(self, cluster: str) -> Blueprint:
        return Blueprint(self.cfg, cluster, self._cloudwatch.meta.region_name, self.common.alerts_topic_arn)

    # -- event path -------------------------------------------------------------------------------------------

    def reconcile_event(self, call: CloudTrailCall) -> Summary:
        if call.source != "aws.logs" or call.event_name not in EVENT_NAMES:
            raise UnsupportedEvent(
                f"{FUNCTION} handles aws.logs {sorted(EVENT_NAMES)}, not {call.source} {call.event_name}"
            )
        name = call.request_parameters.get("logGroupName")
        if not isinstance(name, str) or not _GROUP_NAME.match(name):
            raise InvalidEvent("must be a log group name", field="detail.requestParameters.logGroupName")
        summary = Summary(dry_run=self.common.dry_run)
        if call.error_code:
            log.info("the %s call for %s failed (%s): nothing to do", call.event_name, name, call.error_code)
            return summary
        cluster = cluster_of(name)
        if cluster is None:
            log.info("%s is not a Container Insights application log group: nothing to do", name)
            summary.ignored.append(name)
            return summary
        # Level-triggered: whichever call it was, converge on what exists now. A Delete delivered after the
        # group was created again keeps everything; a late Create for a group deleted since cleans up.
        summary.clusters.append(cluster)
        if self._group_exists(application_group(cluster)):
            self.ensure(cluster, summary)
        else:
            self.remove(cluster, summary)
        return summary

    def _group_exists(self, name: str) -> bool:
        self._describe_limiter.acquire()
        return describe_log_group(self._logs, name) is not None

    # -- sweep ------------------------------------------------------------------------------------------------

    def sweep(self, *, run_id: str, deadline: Deadline) -> Summary:
        """Reconcile every cluster's application group, then remove what is left of clusters that are gone.

        EKS allows 100 clusters per region, so one invocation suffices; if the time still runs low, the rest is
        reported as failed and the retry finishes it (what is already converged costs only reads).
        """
        summary = Summary(dry_run=self.common.dry_run, run_id=run_id)
        live = self._application_clusters()
        work: list[tuple[str, Callable[[str, Summary], None]]] = [(c, self.ensure) for c in live]
        work += [(c, self.remove) for c in sorted(self._managed_clusters(summary) - set(live))]
        for index, (cluster, step) in enumerate(work):
            if deadline.low():
                for left, _ in work[index:]:
                    summary.errors.append(
                        {"cluster": left, "kind": "sweep", "code": "OutOfTime", "message": "not reached; retried"}
                    )
                break
            summary.clusters.append(cluster)
            step(cluster, summary)
        return summary

    def _application_clusters(self) -> list[str]:
        clusters: list[str] = []
        kwargs: dict[str, Any] = {"logGroupNamePrefix": CONTAINER_INSIGHTS_PREFIX, "limit": PAGE_SIZE}
        while True:
            self._describe_limiter.acquire()
            page = self._logs.describe_log_groups(**kwargs)
            for group in page.get("logGroups", []):
                cluster = cluster_of(group["logGroupName"])
                if cluster:
                    clusters.append(cluster)
            if not page.get("nextToken"):
                return clusters
            kwargs["nextToken"] = page["nextToken"]

    def _managed_clusters(self, summary: Summary) -> set[str]:
        """Clusters that still have an eksops alarm, dashboard or saved query (candidates for removal)."""
        clusters: set[str] = set()
        listings: tuple[tuple[str, Callable[[], set[str]]], ...] = (
            ("alarm", self._alarm_clusters),
            ("dashboard", self._dashboard_clusters),
            ("query", self._query_clusters),
        )
        for kind, listing in listings:
            try:
                clusters |= listing()
            except ClientError as exc:  # this only hides leftovers until the next sweep; live clusters converge
                _record_error(summary, "*", kind, exc)
        return {c for c in clusters if _CLUSTER_NAME.match(c)}

    def _alarm_clusters(self) -> set[str]:
        clusters = set()
        paginator = self._cloudwatch.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNamePrefix=ALARM_PREFIX, AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                name = alarm["AlarmName"]
                if name.endswith(ALARM_SUFFIX):
                    clusters.add(name[len(ALARM_PREFIX) : -len(ALARM_SUFFIX)])
        return clusters

    def _dashboard_clusters(self) -> set[str]:
        paginator = self._cloudwatch.get_paginator("list_dashboards")
        return {
            entry["DashboardName"][len(DASHBOARD_PREFIX) :]
            for page in paginator.paginate(DashboardNamePrefix=DASHBOARD_PREFIX)
            for entry in page.get("DashboardEntries", [])
        }

    def _query_clusters(self) -> set[str]:
        parts = [definition.name.split("/") for definition in self._queries.list(QUERY_PREFIX)]
        return {p[1] for p in parts if len(p) == 3 and p[2] in QUERY_NAMES}

    # -- one cluster ------------------------------------------------------------------------------------------

    def ensure(self, cluster: str, summary: Summary) -> None:
        """Put every resource of ``cluster`` in its desired state, one resource kind at a time (the alarm only once
        its metric filter is in place)."""
        plan = self.blueprint(cluster)
        steps: tuple[tuple[str, Callable[[Blueprint, Summary], None]], ...] = (
            ("metric-filter", self._ensure_filters),
            ("alarm", self._ensure_alarm),
            ("dashboard", self._ensure_dashboard),
            ("query", self._ensure_queries),
        )
        for kind, step in steps:
            if kind == "alarm" and any(
                e["cluster"] == cluster and e["kind"] == "metric-filter" for e in summary.errors
            ):
                # An alarm on a metric that no filter publishes could never fire: it waits for its filter (the
                # retry this failure causes puts both).
                log.warning("alarm of cluster %s not put: its metric filter failed", cluster)
                continue
            self._guarded(cluster, kind, functools.partial(step, plan, summary), summary)

    def remove(self, cluster: str, summary: Summary) -> None:
        """Remove what eksops created for ``cluster`` (its log group is gone, and its metric filters with it)."""
        self._guarded(cluster, "alarm", lambda: self._remove_alarm(cluster, summary), summary)
        self._guarded(cluster, "dashboard", lambda: self._remove_dashboard(cluster, summary), summary)
        self._guarded(cluster, "query", lambda: self._remove_queries(cluster, summary), summary)

    @staticmethod
    def _guarded(cluster: str, kind: str, action: Callable[[], None], summary: Summary) -> None:
        # One failing resource (AccessDenied, a quota) must not stop the others; the report lists it and the
        # invocation fails at the end so Lambda retries it.
        try:
            action()
        except ClientError as exc:
            _record_error(summary, cluster, kind, exc)

    def _apply(
        self, summary: Summary, cluster: str, kind: str, name: str, action: str, *calls: Callable[[], object]
    ) -> None:
        """Make a change with ``calls`` (not under dry-run), then record it: a call that fails raises, and the change
        is reported as an error only, never as made."""
        if not self.common.dry_run:
            for make in calls:
                make()
        summary.changed.append({"cluster": cluster, "kind": kind, "name": name, "action": action})

    # -- metric filters ---------------------------------------------------------------------------------------

    def _ensure_filters(self, plan: Blueprint, summary: Summary) -> None:
        existing: dict[str, Mapping[str, Any]] = {}
        for page in self._logs.get_paginator("describe_metric_filters").paginate(
            logGroupName=plan.group, filterNamePrefix=FILTER_NAME
        ):
            for item in page.get("metricFilters", []):
                existing[item["filterName"]] = item
        desired = plan.metric_filters()
        for name, transformation in desired.items():
            current = existing.get(name)
            if current is not None and _same_filter(current, self.cfg.filter_pattern, transformation):
                summary.unchanged += 1
                continue
            put = functools.partial(
                self._logs.put_metric_filter,
                logGroupName=plan.group,
                filterName=name,
                filterPattern=self.cfg.filter_pattern,
                metricTransformations=[transformation],
            )
            action = "update" if current else "create"
            self._apply(summary, plan.cluster, "metric-filter", name, action, self._filter_limiter.acquire, put)
        for name in sorted({FILTER_NAME, NAMESPACE_FILTER_NAME} - desired.keys()):
            if name in existing:
                delete = functools.partial(self._logs.delete_metric_filter, logGroupName=plan.group, filterName=name)
                self._apply(
                    summary, plan.cluster, "metric-filter", name, "delete", self._filter_limiter.acquire, delete
                )

    # -- alarm ------------------------------------------------------------------------------------------------

    def _describe_alarm(self, name: str) -> Mapping[str, Any] | None:
        alarms = self._cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"]).get("MetricAlarms", [])
        return alarms[0] if alarms else None

    def _alarm_tags(self, alarm: Mapping[str, Any]) -> list[dict[str, str]]:
        return list(self._cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", []))

    def _ensure_alarm(self, plan: Blueprint, summary: Summary) -> None:
        desired = plan.alarm()
        name = desired["AlarmName"]
        current = self._describe_alarm(name)
        tagged = False
        if current is not None:
            tagged = _MANAGED_TAG in self._alarm_tags(current)
            if not _alarm_is_ours(current, tagged=tagged):
                log.warning(
                    "alarm %s is someone else's (no %s tag, not on eksops' metric): left alone", name, MANAGED_TAG_KEY
                )
                summary.not_owned.append(name)
                return
            if tagged and same_alarm(current, desired):
                summary.unchanged += 1
                return
        same = current is not None and same_alarm(current, desired)
        action = "create" if current is None else ("tag" if same else "update")
        calls: list[Callable[[], object]] = []
        if not same:
            calls += [
                self._alarm_limiter.acquire,
                functools.partial(self._cloudwatch.put_metric_alarm, **desired, Tags=[_MANAGED_TAG]),
            ]
        if current is not None and not tagged:  # PutMetricAlarm ignores Tags on an existing alarm
            calls.append(
                functools.partial(self._cloudwatch.tag_resource, ResourceARN=current["AlarmArn"], Tags=[_MANAGED_TAG])
            )
        self._apply(summary, plan.cluster, "alarm", name, action, *calls)

    def _remove_alarm(self, cluster: str, summary: Summary) -> None:
        name = alarm_name(cluster)
        current = self._describe_alarm(name)
        if current is None:
            return
        if not _alarm_is_ours(current, tagged=_MANAGED_TAG in self._alarm_tags(current)):
            log.warning(
                "alarm %s is someone else's (no %s tag, not on eksops' metric): left alone", name, MANAGED_TAG_KEY
            )
            summary.not_owned.append(name)
            return
        delete = functools.partial(self._cloudwatch.delete_alarms, AlarmNames=[name])
        self._apply(summary, cluster, "alarm", name, "delete", self._alarm_limiter.acquire, delete)

    # -- dashboard --------------------------------------------------------------------------------------------

    def _get_dashboard(self, name: str) -> str | None:
        try:
            return str(self._cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return None
            raise

    def _ensure_dashboard(self, plan: Blueprint, summary: Summary) -> None:
        name = dashboard_name(plan.cluster)
        desired = plan.dashboard()
        current = self._get_dashboard(name)
        if current is not None and _json_or_none(current) == desired:
            summary.unchanged += 1
            return
        owner = _dashboard_owner(current)
        if current is not None and owner != plan.region:
            # Another region's eksops made it (dashboards are global), or a person did (no marker): not ours.
            log.warning("dashboard %s is not marked as this region's eksops' (%s): left alone", name, owner)
            summary.not_owned.append(name)
            return
        put = functools.partial(self._cloudwatch.put_dashboard, DashboardName=name, DashboardBody=json.dumps(desired))
        self._apply(summary, plan.cluster, "dashboard", name, "update" if current is not None else "create", put)

    def _remove_dashboard(self, cluster: str, summary: Summary) -> None:
        name = dashboard_name(cluster)
        body = self._get_dashboard(name)
        if body is None:
            return
        owner = _dashboard_owner(body)
        if owner != self._cloudwatch.meta.region_name:  # another region's, or a person's: not ours to remove
            log.info("dashboard %s is not marked as this region's (%s): left alone", name, owner)
            return
        delete = functools.partial(self._cloudwatch.delete_dashboards, DashboardNames=[name])
        self._apply(summary, cluster, "dashboard", name, "delete", delete)

    # -- saved queries ----------------------------------------------------------------------------------------

    def _ours(self, cluster: str) -> dict[str, list[QueryDefinition]]:
        mine = {query_name(cluster, q) for q in QUERY_NAMES}
        found: dict[str, list[QueryDefinition]] = {}
        for definition in self._queries.list(f"{QUERY_PREFIX}{cluster}/"):
            if definition.name in mine:  # other queries a person saved in the folder are theirs
                found.setdefault(definition.name, []).append(definition)
        return found

    def _ensure_queries(self, plan: Blueprint, summary: Summary) -> None:
        existing = self._ours(plan.cluster)
        for desired in plan.queries():
            found = existing.get(desired.name, [])
            current = found[0] if found else None
            for extra in found[1:]:  # a second copy (two runs at once): keep one
                if extra.id:
                    delete = functools.partial(self._queries.delete, extra.id)
                    self._apply(summary, plan.cluster, "query", extra.name, "delete", delete)
            if current is not None and current.query == desired.query and set(current.log_groups) == {plan.group}:
                summary.unchanged += 1
                continue
            action = "update" if current else "create"
            put = functools.partial(self._queries.put, replace(desired, id=current.id if current else None))
            self._apply(summary, plan.cluster, "query", desired.name, action, put)

    def _remove_queries(self, cluster: str, summary: Summary) -> None:
        for definitions in self._ours(cluster).values():
            for definition in definitions:
                if definition.id:
                    delete = functools.partial(self._queries.delete, definition.id)
                    self._apply(summary, cluster, "query", definition.name, "delete", delete)

    # -- reporting --------------------------------------------------------------------------------------------

    def _report(self, summary: Summary) -> None:
        if not summary.changed and not summary.errors:
            return
        verb = "would change" if summary.dry_run else "changed"
        lines = tuple(f"{c['cluster']}: {c['action']} {c['kind']} {c['name']}" for c in summary.changed)
        lines += tuple(f"ERROR {e['cluster']} {e['kind']}: {e['code']}" for e in summary.errors)
        lines += tuple(f"not eksops' own, left alone: {name}" for name in summary.not_owned)
        part = f" (sweep {summary.run_id[:8]})" if summary.run_id else ""
        self._publisher.report(
            Message(
                kind="error_alarms.changes",
                severity=Severity.WARNING if summary.errors else Severity.INFO,
                title=f"Error alarms: {verb} {len(summary.changed)} resource(s){part}",
                summary=f"{verb} {len(summary.changed)}, unchanged {summary.unchanged}, errors {len(summary.errors)} "
                f"across {len(summary.clusters)} cluster(s){', dry run' if summary.dry_run else ''}.",
                details=summary.as_dict(),
                cluster=summary.clusters[0] if len(summary.clusters) == 1 else None,
                account=self._account or None,
                region=self._cloudwatch.meta.region_name,
                lines=lines,
            )
        )


def _record_error(summary: Summary, cluster: str, kind: str, exc: ClientError) -> None:
    summary.errors.append({"cluster": cluster, "kind": kind, "code": error_code(exc), "message": str(exc)})
    log.warning("%s of cluster %s failed: %s", kind, cluster, error_code(exc))


def _dashboard_owner(body: str | None) -> str | None:
    """The region named in a dashboard's eksops marker, None for a dashboard eksops did not make."""
    match = _DASHBOARD_OWNER.search(body or "")
    return match.group(1) if match else None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _same_filter(current: Mapping[str, Any], pattern: str, transformation: Mapping[str, Any]) -> bool:
    transformations = current.get("metricTransformations") or []
    if current.get("filterPattern") != pattern or len(transformations) != 1:
        return False
    return _normalised(transformations[0]) == _normalised(transformation)


def _normalised(transformation: Mapping[str, Any]) -> tuple[Any, ...]:
    default = transformation.get("defaultValue")
    return (
        transformation.get("metricName"),
        transformation.get("metricNamespace"),
        str(transformation.get("metricValue")),
        None if default is None else float(default),
        dict(transformation.get("dimensions") or {}),
        transformation.get("unit") or "None",
    )


def _alarm_is_ours(current: Mapping[str, Any], *, tagged: bool) -> bool:
    """eksops' alarm: tagged as such, or (the tag removed by hand) still alarming on eksops' own metric.

    The name alone is not enough: an untagged alarm of that name on another metric is someone else's and is left
    alone. Nothing but eksops' metric filters publishes to METRIC_NAMESPACE, so an alarm of eksops' name on it is
    eksops' alarm that lost its tag: the reconcile tags it again, and removal deletes it.
    """
    return tagged or current.get("Namespace") == METRIC_NAMESPACE
