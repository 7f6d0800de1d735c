"""ErrorAlarmsService against the moto server over HTTP: creation, re-runs, repair, cleanup, dry-run, scope.

moto has no Describe/Put/DeleteQueryDefinition (HTTP 500), so saved queries go to an in-memory port here;
their production adapter is tested with botocore's Stubber in tests/unit/logs/test_error_alarms_calls.py. moto
neither feeds log events to metric filters nor evaluates alarms: what the installed filter would count is
checked with the filter pattern emulation (eksops_dev.filter_pattern) on the events stored in moto.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import json
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksops.aws import RateLimiter, client
from eksops.config import CommonConfig
from eksops.errors import ConfigError, InvalidEvent, PartialFailure, UnsupportedEvent
from eksops.events import CloudTrailCall, Continuation, ScheduledRun, parse_eventbridge
from eksops.logs import ErrorAlarmsConfig, ErrorAlarmsService, QueryDefinition
from eksops.logs.error_alarms import (
    DASHBOARD_MARKER,
    FILTER_NAME,
    METRIC_NAMESPACE,
    NAMESPACE_FILTER_NAME,
    alarm_name,
    application_group,
)
from eksops.logs.error_alarms_config import DEFAULT_FILTER_PATTERN
from eksops.notify import Publisher
from eksops.sweeps import Deadline
from eksops_dev.cloudtrail import cloudtrail_event
from eksops_dev.filter_pattern import count
from tests.integration.conftest import CallCounter, FaultProxy
from tests.unit.logs.test_filter_pattern import TABLE

ROOT = Path(__file__).resolve().parents[3]
FOREVER = Deadline(lambda: 900_000)


def hand_put_alarm(name: str, *, namespace: str = METRIC_NAMESPACE, metric: str = "prod-eu", **changes: Any) -> None:
    """An alarm put by a person (no eksops tag): Sum over 300 s, 1 period, >= 1, unless ``changes`` say otherwise."""
    alarm = {
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        **changes,
    }
    client("cloudwatch").put_metric_alarm(AlarmName=name, Namespace=namespace, MetricName=metric, **alarm)


ALERTS = "arn:aws:sns:us-east-1:123456789012:eksops-alerts"


class MemoryQueries:
    """The QueryDefinitions port in memory, with CloudWatch Logs' behaviour: ids assigned, put replaces."""

    def __init__(self) -> None:
        self.items: dict[str, QueryDefinition] = {}
        self.calls: collections.Counter[str] = collections.Counter()

    def list(self, prefix: str) -> list[QueryDefinition]:
        self.calls["list"] += 1
        return [q for q in self.items.values() if q.name.startswith(prefix)]

    def put(self, definition: QueryDefinition) -> str:
        self.calls["put"] += 1
        if definition.id and definition.id not in self.items:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "PutQueryDefinition")
        definition_id = definition.id or str(uuid.uuid4())
        self.items[definition_id] = replace(definition, id=definition_id)
        return definition_id

    def delete(self, definition_id: str) -> None:
        self.calls["delete"] += 1
        del self.items[definition_id]

    def names(self) -> set[str]:
        return {q.name for q in self.items.values()}


class Operations:
    """Counts the API operations a client calls (any protocol; CloudWatch speaks CBOR, without X-Amz-Target)."""

    def __init__(self, *clients: Any) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        for c in clients:
            c.meta.events.register("before-call", self._on_call)

    def _on_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def mutations(self) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if k.startswith(("Put", "Delete", "Tag"))}


@pytest.fixture
def inbox(aws: str) -> tuple[str, str]:
    """A reports topic with an SQS subscription to read what was published."""
    topic = client("sns").create_topic(Name="reports")["TopicArn"]
    url = client("sqs").create_queue(QueueName="reports-inbox")["QueueUrl"]
    arn = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, url


def received(url: str) -> list[dict[str, Any]]:
    messages = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def make_service(
    env: dict[str, str] | None = None,
    *,
    queries: MemoryQueries | None = None,
    reports: str | None = None,
    dry_run: bool = False,
    counter: CallCounter | None = None,
    filter_limiter: RateLimiter | None = None,
    alarm_limiter: RateLimiter | None = None,
) -> ErrorAlarmsService:
    logs = client("logs")
    if counter:
        counter.attach(logs)
    return ErrorAlarmsService(
        ErrorAlarmsConfig.from_env(env or {}),
        CommonConfig.from_env(
            {
                "DRY_RUN": "true" if dry_run else "false",
                "ALERTS_TOPIC_ARN": ALERTS,
                **({"REPORTS_TOPIC_ARN": reports} if reports else {}),
            }
        ),
        logs=logs,
        cloudwatch=client("cloudwatch"),
        publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=reports),
        queries=queries if queries is not None else MemoryQueries(),
        filter_limiter=filter_limiter or RateLimiter(1000),
        alarm_limiter=alarm_limiter or RateLimiter(1000),
        describe_limiter=RateLimiter(1000),
    )


def call(event_name: str, group: str, **kwargs: Any) -> CloudTrailCall:
    event = parse_eventbridge(cloudtrail_event("logs", event_name, {"logGroupName": group}, **kwargs))
    assert isinstance(event, CloudTrailCall)
    return event


def sweep() -> ScheduledRun:
    return ScheduledRun(id=str(uuid.uuid4()), rule="reconcile")


def seed(*groups: str) -> None:
    for group in groups:
        client("logs").create_log_group(logGroupName=group)


def filters(group: str) -> dict[str, dict[str, Any]]:
    found = client("logs").describe_metric_filters(logGroupName=group)["metricFilters"]
    return {f["filterName"]: f for f in found}


def alarm(cluster: str) -> dict[str, Any] | None:
    alarms = client("cloudwatch").describe_alarms(AlarmNames=[alarm_name(cluster)])["MetricAlarms"]
    return alarms[0] if alarms else None


def dashboard(name: str) -> dict[str, Any] | None:
    try:
        return json.loads(client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"])  # type: ignore[no-any-return]
    except ClientError:
        return None


def actions(summary: Any) -> list[tuple[str, str, str]]:
    return [(c["cluster"], c["kind"], c["action"]) for c in summary.changed]


PROD = application_group("prod-eu")
STAGING = application_group("staging")


def test_create_event_sets_up_filter_alarm_dashboard_and_queries(aws: str, inbox: tuple[str, str]) -> None:
    seed(PROD)
    queries = MemoryQueries()
    summary = make_service(queries=queries, reports=inbox[0]).handle(call("CreateLogGroup", PROD), FOREVER)
    assert summary.errors == []
    assert actions(summary) == [
        ("prod-eu", "metric-filter", "create"),
        ("prod-eu", "alarm", "create"),
        ("prod-eu", "dashboard", "create"),
        ("prod-eu", "query", "create"),
        ("prod-eu", "query", "create"),
    ]
    [installed] = filters(PROD).values()
    assert installed["filterName"] == FILTER_NAME and installed["filterPattern"] == DEFAULT_FILTER_PATTERN
    [transformation] = installed["metricTransformations"]
    assert (transformation["metricNamespace"], transformation["metricName"]) == (METRIC_NAMESPACE, "prod-eu")
    assert transformation["metricValue"] == "1" and "dimensions" not in transformation

    created = alarm("prod-eu")
    assert created is not None
    assert (created["Namespace"], created["MetricName"], created["Statistic"]) == (METRIC_NAMESPACE, "prod-eu", "Sum")
    assert (created["Threshold"], created["Period"], created["EvaluationPeriods"]) == (1.0, 300, 1)
    assert created["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert created["TreatMissingData"] == "notBreaching"
    assert created["AlarmActions"] == created["OKActions"] == [ALERTS]
    assert PROD in created["AlarmDescription"] and "| filter " in created["AlarmDescription"]
    tags = client("cloudwatch").list_tags_for_resource(ResourceARN=created["AlarmArn"])["Tags"]
    assert {"Key": "eksops:managed-by", "Value": "error_alarms"} in tags

    body = dashboard("eksops-prod-eu")
    assert body is not None and DASHBOARD_MARKER in json.dumps(body)
    assert {q.name: q.log_groups for q in queries.items.values()} == {
        "eksops/prod-eu/recent-errors": (PROD,),
        "eksops/prod-eu/errors-by-namespace-and-pod": (PROD,),
    }
    [report] = received(inbox[1])
    envelope = json.loads(report["Message"])
    assert envelope["kind"] == "error_alarms.changes" and envelope["cluster"] == "prod-eu"
    assert "changed 5 resource(s)" in report["Subject"]


def test_a_second_run_changes_nothing(aws: str, counter: CallCounter, inbox: tuple[str, str]) -> None:
    seed(PROD, STAGING)
    queries = MemoryQueries()
    service = make_service(queries=queries, reports=inbox[0], counter=counter)
    first = service.handle(sweep(), FOREVER)
    assert {c for c, _, _ in actions(first)} == {"prod-eu", "staging"}
    assert received(inbox[1])  # the first run reported its changes
    ops = Operations(client("cloudwatch"))
    puts_before, query_puts_before = counter.sends["PutMetricFilter"], queries.calls["put"]
    for again in (service.handle(call("CreateLogGroup", PROD), FOREVER), service.handle(sweep(), FOREVER)):
        assert again.changed == [] and again.errors == []
        assert again.unchanged == 5 * len(again.clusters)  # filter, alarm, dashboard, two queries per cluster
    assert counter.sends["PutMetricFilter"] == puts_before
    assert ops.mutations() == {}
    assert queries.calls["put"] == query_puts_before
    assert received(inbox[1]) == []  # nothing changed: nothing reported


def test_hand_edits_are_put_back(aws: str) -> None:
    seed(PROD)
    queries = MemoryQueries()
    service = make_service(queries=queries)
    service.handle(call("CreateLogGroup", PROD), FOREVER)
    desired_alarm, desired_dashboard = alarm("prod-eu"), dashboard("eksops-prod-eu")
    # Someone raises the threshold, silences the alarm, loosens the filter and edits dashboard and query.
    cw = client("cloudwatch")
    hand_put_alarm(
        alarm_name("prod-eu"),
        Period=60,
        EvaluationPeriods=3,
        Threshold=50.0,
        ComparisonOperator="GreaterThanThreshold",
        Unit="Count",
    )
    client("logs").put_metric_filter(
        logGroupName=PROD,
        filterName=FILTER_NAME,
        filterPattern="?ERROR ?error",
        metricTransformations=[{"metricName": "prod-eu", "metricNamespace": METRIC_NAMESPACE, "metricValue": "1"}],
    )
    assert desired_dashboard is not None
    trimmed = {"widgets": desired_dashboard["widgets"][:2]}  # the marker widget kept, the rest deleted
    cw.put_dashboard(DashboardName="eksops-prod-eu", DashboardBody=json.dumps(trimmed))
    edited = next(q for q in queries.items.values() if q.name.endswith("recent-errors"))
    queries.items[edited.id or ""] = replace(edited, query="fields @message | limit 5")

    summary = service.handle(sweep(), FOREVER)
    assert sorted((kind, action) for _, kind, action in actions(summary)) == [
        ("alarm", "update"),
        ("dashboard", "update"),
        ("metric-filter", "update"),
        ("query", "update"),
    ]
    repaired = alarm("prod-eu")
    assert repaired is not None and desired_alarm is not None
    for key in ("Threshold", "Period", "EvaluationPeriods", "ComparisonOperator", "AlarmActions", "OKActions"):
        assert repaired[key] == desired_alarm[key], key
    assert "Unit" not in repaired
    assert filters(PROD)[FILTER_NAME]["filterPattern"] == DEFAULT_FILTER_PATTERN
    assert dashboard("eksops-prod-eu") == desired_dashboard
    assert len(queries.items) == 2 and edited.id in queries.items  # updated in place, not duplicated
    assert service.handle(sweep(), FOREVER).changed == []


def tags_of(cluster: str) -> list[dict[str, str]]:
    current = alarm(cluster)
    assert current is not None
    return client("cloudwatch").list_tags_for_resource(ResourceARN=current["AlarmArn"])["Tags"]  # type: ignore[no-any-return]


MANAGED = {"Key": "eksops:managed-by", "Value": "error_alarms"}


def test_a_removed_ownership_tag_is_put_back_and_cleanup_still_works(aws: str) -> None:
    seed(PROD)
    queries = MemoryQueries()
    service = make_service(queries=queries)
    service.handle(call("CreateLogGroup", PROD), FOREVER)
    arn = (alarm("prod-eu") or {})["AlarmArn"]
    client("cloudwatch").untag_resource(ResourceARN=arn, TagKeys=["eksops:managed-by"])
    assert MANAGED not in tags_of("prod-eu")

    summary = service.handle(sweep(), FOREVER)
    assert actions(summary) == [("prod-eu", "alarm", "tag")] and summary.not_owned == []
    assert MANAGED in tags_of("prod-eu")
    assert service.handle(sweep(), FOREVER).changed == []

    client("logs").delete_log_group(logGroupName=PROD)
    deleted = service.handle(call("DeleteLogGroup", PROD), FOREVER)
    assert ("prod-eu", "alarm", "delete") in actions(deleted) and deleted.not_owned == []
    assert alarm("prod-eu") is None and dashboard("eksops-prod-eu") is None and queries.items == {}


def test_an_untagged_alarm_on_eksops_metric_is_tagged_and_repaired_in_one_run(aws: str) -> None:
    seed(PROD)
    service = make_service()
    service.handle(call("CreateLogGroup", PROD), FOREVER)
    arn = (alarm("prod-eu") or {})["AlarmArn"]
    cw = client("cloudwatch")
    cw.untag_resource(ResourceARN=arn, TagKeys=["eksops:managed-by"])
    # and silenced by raising the threshold: still eksops' metric, so still eksops' alarm
    hand_put_alarm(alarm_name("prod-eu"), Threshold=1000.0)
    summary = service.handle(sweep(), FOREVER)
    assert ("prod-eu", "alarm", "update") in actions(summary)
    repaired = alarm("prod-eu")
    assert repaired is not None and repaired["Threshold"] == 1.0 and MANAGED in tags_of("prod-eu")


def test_resources_with_eksops_names_that_are_not_eksops_own_are_left_alone(aws: str) -> None:
    """An alarm of eksops' name on another metric without the tag, a dashboard without the marker: reported."""
    cw = client("cloudwatch")
    theirs_alarm = dict(
        AlarmName=alarm_name("prod-eu"),
        Namespace="Team/Checkout",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cw.put_metric_alarm(**theirs_alarm)
    theirs_dashboard = {
        "widgets": [{"type": "text", "x": 0, "y": 0, "width": 6, "height": 2, "properties": {"markdown": "team"}}]
    }
    cw.put_dashboard(DashboardName="eksops-prod-eu", DashboardBody=json.dumps(theirs_dashboard))
    seed(PROD)
    ops = Operations(cw)
    summary = make_service().handle(call("CreateLogGroup", PROD), FOREVER)
    assert sorted(summary.not_owned) == sorted([alarm_name("prod-eu"), "eksops-prod-eu"])
    assert [(kind, action) for _, kind, action in actions(summary)] == [
        ("metric-filter", "create"),
        ("query", "create"),
        ("query", "create"),
    ]
    assert ops.mutations() == {}
    kept = alarm("prod-eu")
    assert kept is not None and (kept["Namespace"], kept["Threshold"]) == ("Team/Checkout", 5.0)
    assert MANAGED not in tags_of("prod-eu")
    assert dashboard("eksops-prod-eu") == theirs_dashboard

    client("logs").delete_log_group(logGroupName=PROD)
    removed = make_service().handle(call("DeleteLogGroup", PROD), FOREVER)
    assert removed.not_owned == [alarm_name("prod-eu")] and alarm("prod-eu") is not None
    assert dashboard("eksops-prod-eu") == theirs_dashboard


def test_delete_event_removes_what_eksops_created_and_nothing_else(aws: str) -> None:
    seed(PROD)
    queries = MemoryQueries()
    service = make_service(queries=queries)
    service.handle(call("CreateLogGroup", PROD), FOREVER)
    cw = client("cloudwatch")
    # the team's own alarm on the same metric
    hand_put_alarm("prod-eu-error-burst", Period=60, Threshold=100.0, ComparisonOperator="GreaterThanThreshold")
    cw.put_dashboard(DashboardName="prod-eu-ops", DashboardBody=json.dumps({"widgets": []}))
    queries.put(QueryDefinition("eksops/prod-eu/my-investigation", "fields @message", (PROD,)))

    client("logs").delete_log_group(logGroupName=PROD)
    summary = service.handle(call("DeleteLogGroup", PROD), FOREVER)
    assert sorted((kind, action) for _, kind, action in actions(summary)) == [
        ("alarm", "delete"),
        ("dashboard", "delete"),
        ("query", "delete"),
        ("query", "delete"),
    ]
    assert alarm("prod-eu") is None and dashboard("eksops-prod-eu") is None
    assert queries.names() == {"eksops/prod-eu/my-investigation"}
    assert [a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]] == ["prod-eu-error-burst"]
    assert dashboard("prod-eu-ops") is not None
    assert service.handle(call("DeleteLogGroup", PROD), FOREVER).changed == []  # a duplicate is a no-op


def test_a_delete_event_for_a_group_created_again_keeps_everything(aws: str) -> None:
    seed(PROD)
    service = make_service()
    service.handle(call("CreateLogGroup", PROD), FOREVER)
    summary = service.handle(call("DeleteLogGroup", PROD), FOREVER)  # the group exists again by now
    assert summary.changed == [] and summary.unchanged == 5
    assert alarm("prod-eu") is not None


def test_dry_run_reports_and_changes_nothing(aws: str, counter: CallCounter, inbox: tuple[str, str]) -> None:
    seed(PROD, STAGING)
    queries = MemoryQueries()
    ops = Operations(client("cloudwatch"))
    summary = make_service(queries=queries, reports=inbox[0], dry_run=True, counter=counter).handle(sweep(), FOREVER)
    assert summary.dry_run and len(summary.changed) == 10
    assert filters(PROD) == {} and filters(STAGING) == {}
    assert client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert client("cloudwatch").list_dashboards()["DashboardEntries"] == []
    assert queries.items == {} and queries.calls["put"] == 0
    assert counter.sends["PutMetricFilter"] == 0 and ops.mutations() == {}
    [report] = received(inbox[1])
    assert "would change 10" in report["Subject"]


def test_dry_run_cleanup_deletes_nothing(aws: str) -> None:
    seed(PROD)
    queries = MemoryQueries()
    make_service(queries=queries).handle(call("CreateLogGroup", PROD), FOREVER)
    client("logs").delete_log_group(logGroupName=PROD)
    summary = make_service(queries=queries, dry_run=True).handle(call("DeleteLogGroup", PROD), FOREVER)
    assert len(summary.changed) == 4 and all(c["action"] == "delete" for c in summary.changed)
    assert alarm("prod-eu") is not None and dashboard("eksops-prod-eu") is not None and len(queries.items) == 2


OTHER_GROUPS = (
    "/aws/containerinsights/prod-eu/host",
    "/aws/containerinsights/prod-eu/performance",
    "/aws/containerinsights/prod-eu/dataplane",
    "/aws/containerinsights/prod-eu/application-archive",
    "/aws/containerinsights-legacy/prod-eu/application",
    "/aws/eks/prod-eu/cluster",
    "/custom/aws/containerinsights/prod-eu/application",
)


def test_other_log_groups_are_left_alone(aws: str, counter: CallCounter) -> None:
    seed(STAGING, *OTHER_GROUPS)
    service = make_service(counter=counter)
    for group in OTHER_GROUPS:
        for event_name in ("CreateLogGroup", "DeleteLogGroup"):
            summary = service.handle(call(event_name, group), FOREVER)
            assert summary.ignored == [group] and summary.changed == [] and summary.clusters == []
    assert counter.sends["PutMetricFilter"] == 0
    summary = service.handle(sweep(), FOREVER)
    assert summary.clusters == ["staging"]
    assert {c for c, _, _ in actions(summary)} == {"staging"}
    assert all(filters(group) == {} for group in OTHER_GROUPS)
    assert [a["AlarmName"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]] == [alarm_name("staging")]


def test_the_sweep_removes_leftovers_of_a_lost_delete_event_and_only_those(aws: str) -> None:
    seed(PROD, STAGING)
    queries = MemoryQueries()
    service = make_service(queries=queries)
    service.handle(sweep(), FOREVER)
    cw = client("cloudwatch")
    # Names that look like eksops' but were not made by it: no tag, no marker.
    cw.put_metric_alarm(
        AlarmName=alarm_name("legacy"),
        Namespace="Legacy",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cw.put_dashboard(DashboardName="eksops-overview", DashboardBody=json.dumps({"widgets": []}))
    client("logs").delete_log_group(logGroupName=STAGING)  # and the DeleteLogGroup event is lost

    summary = service.handle(sweep(), FOREVER)
    assert sorted(actions(summary)) == [
        ("staging", "alarm", "delete"),
        ("staging", "dashboard", "delete"),
        ("staging", "query", "delete"),
        ("staging", "query", "delete"),
    ]
    assert summary.not_owned == [alarm_name("legacy")]
    names = {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
    assert names == {alarm_name("prod-eu"), alarm_name("legacy")}
    assert {d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]} == {
        "eksops-prod-eu",
        "eksops-overview",
    }
    assert {q.split("/")[1] for q in queries.names()} == {"prod-eu"}


def test_dashboards_of_another_region_are_left_alone(aws: str) -> None:
    """Dashboards are global: eksops in eu-west-1 may own eksops-prod-eu; us-east-1 must neither fight nor sweep it."""
    theirs = {"widgets": [{"type": "text", "properties": {"markdown": f"{DASHBOARD_MARKER} region=eu-west-1"}}]}
    cw = client("cloudwatch")
    cw.put_dashboard(DashboardName="eksops-prod-eu", DashboardBody=json.dumps(theirs))
    cw.put_dashboard(DashboardName="eksops-dr", DashboardBody=json.dumps(theirs))
    seed(PROD)
    service = make_service()
    summary = service.handle(sweep(), FOREVER)
    assert summary.not_owned == ["eksops-prod-eu"]
    assert ("prod-eu", "dashboard", "create") not in actions(summary) and alarm("prod-eu") is not None
    assert dashboard("eksops-prod-eu") == theirs and dashboard("eksops-dr") == theirs


def test_per_namespace_metric_is_a_second_filter_that_can_be_turned_off(aws: str) -> None:
    seed(PROD)
    queries = MemoryQueries()
    summary = make_service({"ERROR_METRIC_BY_NAMESPACE": "true"}, queries=queries).handle(sweep(), FOREVER)
    assert ("prod-eu", "metric-filter", "create") in actions(summary)
    installed = filters(PROD)
    assert set(installed) == {FILTER_NAME, NAMESPACE_FILTER_NAME}
    [by_namespace] = installed[NAMESPACE_FILTER_NAME]["metricTransformations"]
    assert by_namespace["dimensions"] == {"Namespace": "$.kubernetes.namespace_name"}
    assert by_namespace["metricName"] == "prod-eu" and "defaultValue" not in by_namespace
    assert "SEARCH(" in json.dumps(dashboard("eksops-prod-eu"))
    alarm_before = alarm("prod-eu")

    off = make_service(queries=queries).handle(sweep(), FOREVER)
    assert sorted(actions(off)) == [("prod-eu", "dashboard", "update"), ("prod-eu", "metric-filter", "delete")]
    assert set(filters(PROD)) == {FILTER_NAME}
    after = alarm("prod-eu")
    assert after is not None and alarm_before is not None
    assert after["AlarmConfigurationUpdatedTimestamp"] == alarm_before["AlarmConfigurationUpdatedTimestamp"]


def test_settings_flow_into_filter_and_alarm(aws: str) -> None:
    seed(PROD)
    env = {
        "ERROR_FILTER_PATTERN": '{ $.log = "*OOMKilled*" }',
        "ERROR_ALARM_THRESHOLD": "5",
        "ERROR_ALARM_PERIOD": "900",
    }
    make_service(env).handle(sweep(), FOREVER)
    assert filters(PROD)[FILTER_NAME]["filterPattern"] == '{ $.log = "*OOMKilled*" }'
    configured = alarm("prod-eu")
    assert configured is not None and (configured["Threshold"], configured["Period"]) == (5.0, 900)


def test_the_installed_filter_counts_errors_in_the_records_fluent_bit_ships(aws: str) -> None:
    """What the alarm would see, by the emulation: moto stores the events but does not feed metric filters."""
    seed(PROD)
    make_service().handle(call("CreateLogGroup", PROD), FOREVER)
    logs = client("logs")
    logs.create_log_stream(logGroupName=PROD, logStreamName="ip-10-0-12-34.application.var.log.containers")
    now = int(time.time() * 1000)
    records = [message for _, messages, _ in TABLE for message in messages]
    logs.put_log_events(
        logGroupName=PROD,
        logStreamName="ip-10-0-12-34.application.var.log.containers",
        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(records)],
    )
    stored = logs.get_log_events(
        logGroupName=PROD, logStreamName="ip-10-0-12-34.application.var.log.containers", startFromHead=True
    )["events"]
    pattern = filters(PROD)[FILTER_NAME]["filterPattern"]
    assert count(pattern, [e["message"] for e in stored]) == sum(expected for _, _, expected in TABLE)


def test_throttled_put_metric_filter_is_retried(fault_proxy: FaultProxy) -> None:
    seed(PROD)
    fault_proxy.fail("PutMetricFilter", times=2)
    summary = make_service().handle(call("CreateLogGroup", PROD), FOREVER)
    assert summary.errors == [] and FILTER_NAME in filters(PROD)
    assert fault_proxy.seen.count("Logs_20140328.PutMetricFilter") == 3


def test_a_failing_resource_does_not_stop_the_others(fault_proxy: FaultProxy) -> None:
    seed(PROD, STAGING)
    fault_proxy.fail("PutMetricFilter", times=1, code="AccessDeniedException", body_contains="staging")
    service = make_service()
    summary = service.handle(sweep(), FOREVER)
    assert [(e["cluster"], e["kind"], e["code"]) for e in summary.errors] == [
        ("staging", "metric-filter", "AccessDeniedException")
    ]
    assert FILTER_NAME in filters(PROD) and alarm("prod-eu") is not None
    # staging's other resources are in place, but not an alarm no filter would feed (issue 9: nothing half-applied)
    assert alarm("staging") is None and ("staging", "metric-filter", "create") not in actions(summary)
    with pytest.raises(PartialFailure):
        summary.raise_for_errors()
    retried = actions(service.handle(sweep(), FOREVER))  # the retry
    assert retried == [("staging", "metric-filter", "create"), ("staging", "alarm", "create")]


class FakeTime:
    """A clock that moves only when slept on: the limiters' waits, without waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def test_puts_are_paced_at_the_account_quotas(aws: str) -> None:
    """The service's own limiters (not injected ones), on a fake clock: when each Put is sent, in fake seconds."""
    seed(*(application_group(f"c{i}") for i in range(4)))
    fake = FakeTime()
    logs, cloudwatch = client("logs"), client("cloudwatch")
    sent: dict[str, list[float]] = collections.defaultdict(list)

    def on_call(model: Any, **_: Any) -> None:
        sent[model.name].append(fake.clock())

    for c in (logs, cloudwatch):
        c.meta.events.register("before-call", on_call)
    service = ErrorAlarmsService(
        ErrorAlarmsConfig.from_env({"ERROR_METRIC_BY_NAMESPACE": "true"}),  # two filters per cluster
        CommonConfig.from_env({"ALERTS_TOPIC_ARN": ALERTS}),
        logs=logs,
        cloudwatch=cloudwatch,
        publisher=Publisher(None, alerts_topic_arn=None, reports_topic_arn=None),
        queries=MemoryQueries(),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    summary = service.handle(sweep(), FOREVER)
    assert summary.errors == [] and len(sent["PutMetricFilter"]) == 8 and len(sent["PutMetricAlarm"]) == 4

    def gaps(times: list[float]) -> list[float]:
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    assert min(gaps(sent["PutMetricFilter"])) >= 1 / 5 - 1e-9  # PutMetricFilter: 5 per second
    assert min(gaps(sent["PutMetricAlarm"])) >= 1 / 3 - 1e-9  # PutMetricAlarm: 3 per second
    assert fake.now - 1_000.0 >= 7 / 5  # 8 filter puts cannot take less than 7 intervals


def test_clusters_whose_names_share_a_prefix_are_independent(aws: str) -> None:
    """Deleting cluster `prod` leaves everything of `prod-eu` (names, query folders and alarms share a prefix)."""
    prod = application_group("prod")
    seed(prod, PROD)
    queries = MemoryQueries()
    service = make_service(queries=queries)
    service.handle(sweep(), FOREVER)

    def prod_eu() -> tuple[Any, ...]:
        saved = {i: q for i, q in queries.items.items() if q.name.startswith("eksops/prod-eu/")}
        return filters(PROD), alarm("prod-eu"), dashboard("eksops-prod-eu"), saved

    before = prod_eu()
    assert all(before) and len(before[3]) == 2

    client("logs").delete_log_group(logGroupName=prod)
    deleted = service.handle(call("DeleteLogGroup", prod), FOREVER)
    assert {c for c, _, _ in actions(deleted)} == {"prod"} and len(deleted.changed) == 4
    assert service.handle(sweep(), FOREVER).changed == []  # the sweep finds nothing else to remove either
    assert alarm("prod") is None and dashboard("eksops-prod") is None
    assert prod_eu() == before
    assert queries.names() == {"eksops/prod-eu/recent-errors", "eksops/prod-eu/errors-by-namespace-and-pod"}


def test_the_sweep_stops_cleanly_when_time_runs_out(aws: str) -> None:
    seed(PROD, STAGING)
    checks = iter([900_000, 1_000, 1_000])
    summary = make_service().handle(sweep(), Deadline(lambda: next(checks)))
    assert summary.clusters == ["prod-eu"]
    assert [(e["cluster"], e["code"]) for e in summary.errors] == [("staging", "OutOfTime")]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (cloudtrail_event("logs", "CreateLogGroup", {}), InvalidEvent),
        (cloudtrail_event("logs", "CreateLogGroup", {"logGroupName": "bad name"}), InvalidEvent),
        (cloudtrail_event("logs", "PutMetricFilter", {"logGroupName": PROD}), UnsupportedEvent),
        (cloudtrail_event("ec2", "RunInstances", {"instanceType": "m7g.large"}), UnsupportedEvent),
    ],
)
def test_bad_events_change_nothing(
    aws: str, counter: CallCounter, event: dict[str, Any], error: type[Exception]
) -> None:
    seed(PROD)
    with pytest.raises(error):
        make_service(counter=counter).handle(parse_eventbridge(event), FOREVER)
    assert counter.sends["PutMetricFilter"] == 0 and alarm("prod-eu") is None


def test_a_continuation_is_not_ours(aws: str) -> None:
    continuation = Continuation(id="x", function="log_retention", run_id="r", part=2, checkpoint={})
    with pytest.raises(UnsupportedEvent):
        make_service().handle(continuation, FOREVER)


def test_a_failed_api_call_event_is_a_no_op(aws: str) -> None:
    seed(PROD)
    summary = make_service().handle(call("CreateLogGroup", PROD, error_code="ResourceAlreadyExistsException"), FOREVER)
    assert summary.changed == [] and summary.clusters == [] and alarm("prod-eu") is None


def test_the_sample_events_drive_the_service(aws: str, load_event: Any) -> None:
    seed(PROD)
    queries = MemoryQueries()
    service = make_service(queries=queries)
    created = service.handle(parse_eventbridge(load_event("error_alarms", "create_application_log_group")), FOREVER)
    assert created.clusters == ["prod-eu"] and len(created.changed) == 5
    client("logs").delete_log_group(logGroupName=PROD)
    deleted = service.handle(parse_eventbridge(load_event("error_alarms", "delete_application_log_group")), FOREVER)
    assert len(deleted.changed) == 4 and alarm("prod-eu") is None and queries.items == {}
    scheduled = service.handle(parse_eventbridge(load_event("error_alarms", "scheduled_reconcile")), FOREVER)
    assert scheduled.changed == [] and scheduled.run_id
    host = service.handle(parse_eventbridge(load_event("error_alarms", "unmatched/create_host_log_group")), FOREVER)
    assert host.ignored == ["/aws/containerinsights/prod-eu/host"]


# -- the handler as Lambda imports it ---------------------------------------------------------------------------


def load_handler(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "error_alarms")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "eksops")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = ROOT / "functions" / "error_alarms" / "app.py"
    spec = importlib.util.spec_from_file_location(f"error_alarms_app_{uuid.uuid4().hex[:8]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_handler_reconciles_and_returns_its_summary(
    aws: str, monkeypatch: pytest.MonkeyPatch, load_event: Any, lambda_context: Any
) -> None:
    seed(PROD)
    app = load_handler(monkeypatch, {"ALERTS_TOPIC_ARN": ALERTS})
    assert isinstance(app.service, ErrorAlarmsService)
    monkeypatch.setattr(app, "service", make_service())  # saved queries: moto has no such API
    result = app.handler(load_event("error_alarms", "create_application_log_group"), lambda_context)
    assert result["clusters"] == ["prod-eu"] and len(result["changed"]) == 5 and result["errors"] == []
    json.dumps(result)  # the summary is what Lambda returns: it must serialise


def test_the_handler_fails_the_invocation_after_partial_work(
    fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, load_event: Any, lambda_context: Any
) -> None:
    seed(PROD)
    fault_proxy.fail("PutMetricFilter", times=1, code="AccessDeniedException")
    app = load_handler(monkeypatch, {})
    monkeypatch.setattr(app, "service", make_service())
    with pytest.raises(PartialFailure):
        app.handler(load_event("error_alarms", "create_application_log_group"), lambda_context)
    assert dashboard("eksops-prod-eu") is not None  # the rest was done before the invocation failed
    assert alarm("prod-eu") is None  # but not an alarm that its missing metric filter would never feed


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ERROR_ALARM_PERIOD", "45"), ("ERROR_ALARM_THRESHOLD", "none"), ("ERROR_METRIC_BY_NAMESPACE", "maybe")],
)
def test_invalid_configuration_fails_the_cold_start(
    aws: str, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_handler(monkeypatch, {variable: value})
    assert info.value.variable == variable
