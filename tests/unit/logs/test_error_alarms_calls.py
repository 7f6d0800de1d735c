"""ErrorAlarmsService calls against botocore's Stubber, which checks every request against the service model.

The query definition calls (Describe/Put/DeleteQueryDefinition) have no moto emulation, so this is where their
production path is tested; the moto integration tests inject an in-memory QueryDefinitions port instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from eksops.aws import RateLimiter
from eksops.config import CommonConfig
from eksops.logs import ErrorAlarmsConfig, ErrorAlarmsService, LogsQueryDefinitions, QueryDefinition
from eksops.logs.error_alarms import (
    DASHBOARD_MARKER,
    FILTER_NAME,
    METRIC_NAMESPACE,
    Blueprint,
    Summary,
    alarm_name,
    application_group,
    cluster_of,
)
from eksops.notify import Publisher

ALERTS = "arn:aws:sns:eu-west-1:123456789012:eksops-alerts"
GROUP = "/aws/containerinsights/prod-eu/application"


def make_client(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def logs() -> Iterator[tuple[Any, Stubber]]:
    client = make_client("logs")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def cloudwatch() -> Iterator[tuple[Any, Stubber]]:
    client = make_client("cloudwatch")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_cluster_of_accepts_only_application_groups() -> None:
    assert cluster_of(GROUP) == "prod-eu"
    assert cluster_of(application_group("a_b-9")) == "a_b-9"
    for other in (
        "/aws/containerinsights/prod-eu/host",
        "/aws/containerinsights/prod-eu/performance",
        "/aws/containerinsights/prod-eu/application-archive",
        "/aws/containerinsights/a/b/application",
        "/custom/aws/containerinsights/prod/application",
        "/aws/eks/prod-eu/cluster",
        "/aws/containerinsights/-bad/application",
        f"/aws/containerinsights/{'c' * 101}/application",
    ):
        assert cluster_of(other) is None, other


# -- the query definitions adapter ----------------------------------------------------------------------------


def test_list_pages_through_query_definitions(logs: tuple[Any, Stubber]) -> None:
    client, stubber = logs
    prefix = "eksops/prod-eu/"
    stubber.add_response(
        "describe_query_definitions",
        {
            "queryDefinitions": [
                {
                    "queryDefinitionId": "q1",
                    "name": f"{prefix}recent-errors",
                    "queryString": "a",
                    "logGroupNames": [GROUP],
                }
            ],
            "nextToken": "t2",
        },
        {"queryDefinitionNamePrefix": prefix, "maxResults": 1000},
    )
    stubber.add_response(
        "describe_query_definitions",
        {"queryDefinitions": [{"queryDefinitionId": "q2", "name": f"{prefix}mine", "queryString": "b"}]},
        {"queryDefinitionNamePrefix": prefix, "maxResults": 1000, "nextToken": "t2"},
    )
    assert LogsQueryDefinitions(client).list(prefix) == [
        QueryDefinition(f"{prefix}recent-errors", "a", (GROUP,), "q1"),
        QueryDefinition(f"{prefix}mine", "b", (), "q2"),
    ]


def test_put_creates_or_replaces_and_delete_deletes(logs: tuple[Any, Stubber]) -> None:
    client, stubber = logs
    port = LogsQueryDefinitions(client)
    definition = QueryDefinition("eksops/prod-eu/recent-errors", "fields @timestamp | limit 5", (GROUP,))
    stubber.add_response(
        "put_query_definition",
        {"queryDefinitionId": "new-id"},
        {"name": definition.name, "queryString": definition.query, "logGroupNames": [GROUP]},
    )
    stubber.add_response(
        "put_query_definition",
        {"queryDefinitionId": "q1"},
        {"name": definition.name, "queryString": definition.query, "logGroupNames": [GROUP], "queryDefinitionId": "q1"},
    )
    stubber.add_response("delete_query_definition", {"success": True}, {"queryDefinitionId": "q1"})
    assert port.put(definition) == "new-id"
    assert port.put(QueryDefinition(definition.name, definition.query, (GROUP,), "q1")) == "q1"
    port.delete("q1")


# -- a whole cluster, every call checked against the service models ---------------------------------------------


def service(logs: Any, cloudwatch: Any, *, dry_run: bool = False) -> ErrorAlarmsService:
    return ErrorAlarmsService(
        ErrorAlarmsConfig.from_env({}),
        CommonConfig.from_env({"ALERTS_TOPIC_ARN": ALERTS, "DRY_RUN": "true" if dry_run else "false"}),
        logs=logs,
        cloudwatch=cloudwatch,
        publisher=Publisher(None, alerts_topic_arn=None, reports_topic_arn=None),
        filter_limiter=RateLimiter(1000),
        alarm_limiter=RateLimiter(1000),
        describe_limiter=RateLimiter(1000),
    )


def test_ensure_creates_everything_with_valid_requests(
    logs: tuple[Any, Stubber], cloudwatch: tuple[Any, Stubber]
) -> None:
    (logs_client, logs_stub), (cw_client, cw_stub) = logs, cloudwatch
    svc = service(logs_client, cw_client)
    plan = svc.blueprint("prod-eu")
    logs_stub.add_response(
        "describe_metric_filters", {"metricFilters": []}, {"logGroupName": GROUP, "filterNamePrefix": FILTER_NAME}
    )
    logs_stub.add_response(
        "put_metric_filter",
        {},
        {
            "logGroupName": GROUP,
            "filterName": FILTER_NAME,
            "filterPattern": svc.cfg.filter_pattern,
            "metricTransformations": [plan.metric_filters()[FILTER_NAME]],
        },
    )
    cw_stub.add_response(
        "describe_alarms", {"MetricAlarms": []}, {"AlarmNames": [alarm_name("prod-eu")], "AlarmTypes": ["MetricAlarm"]}
    )
    cw_stub.add_response(
        "put_metric_alarm", {}, {**plan.alarm(), "Tags": [{"Key": "eksops:managed-by", "Value": "error_alarms"}]}
    )
    cw_stub.add_client_error("get_dashboard", "ResourceNotFound", "Dashboard does not exist", 404)
    cw_stub.add_response(
        "put_dashboard",
        {"DashboardValidationMessages": []},
        {"DashboardName": "eksops-prod-eu", "DashboardBody": json.dumps(plan.dashboard())},
    )
    logs_stub.add_response(
        "describe_query_definitions",
        {"queryDefinitions": []},
        {"queryDefinitionNamePrefix": "eksops/prod-eu/", "maxResults": 1000},
    )
    for definition in plan.queries():
        logs_stub.add_response(
            "put_query_definition",
            {"queryDefinitionId": f"id-{definition.name}"},
            {"name": definition.name, "queryString": definition.query, "logGroupNames": [GROUP]},
        )
    summary = Summary(dry_run=False)
    svc.ensure("prod-eu", summary)
    assert summary.errors == []
    assert [(c["kind"], c["action"]) for c in summary.changed] == [
        ("metric-filter", "create"),
        ("alarm", "create"),
        ("dashboard", "create"),
        ("query", "create"),
        ("query", "create"),
    ]


def test_remove_deletes_only_what_is_marked_as_ours(logs: tuple[Any, Stubber], cloudwatch: tuple[Any, Stubber]) -> None:
    (logs_client, logs_stub), (cw_client, cw_stub) = logs, cloudwatch
    svc = service(logs_client, cw_client)
    arn = f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{alarm_name('gone')}"
    alarm = {"AlarmName": alarm_name("gone"), "AlarmArn": arn}
    cw_stub.add_response("describe_alarms", {"MetricAlarms": [alarm]})
    cw_stub.add_response("list_tags_for_resource", {"Tags": []}, {"ResourceARN": arn})  # not tagged: kept
    cw_stub.add_response(
        "get_dashboard", {"DashboardBody": json.dumps({"widgets": []})}, {"DashboardName": "eksops-gone"}
    )
    logs_stub.add_response(
        "describe_query_definitions",
        {
            "queryDefinitions": [
                {"queryDefinitionId": "q1", "name": "eksops/gone/recent-errors", "queryString": "x"},
                {"queryDefinitionId": "q2", "name": "eksops/gone/my-own-query", "queryString": "y"},
            ]
        },
    )
    logs_stub.add_response("delete_query_definition", {"success": True}, {"queryDefinitionId": "q1"})
    summary = Summary(dry_run=False)
    svc.remove("gone", summary)
    assert summary.not_owned == [alarm_name("gone")]
    assert [(c["kind"], c["name"]) for c in summary.changed] == [("query", "eksops/gone/recent-errors")]


def test_a_failing_query_api_is_one_error_not_a_crash(
    logs: tuple[Any, Stubber], cloudwatch: tuple[Any, Stubber]
) -> None:
    (logs_client, logs_stub), (cw_client, cw_stub) = logs, cloudwatch
    svc = service(logs_client, cw_client)
    cw_stub.add_response("describe_alarms", {"MetricAlarms": []})
    cw_stub.add_client_error("get_dashboard", "ResourceNotFound", "gone", 404)
    logs_stub.add_client_error("describe_query_definitions", "AccessDeniedException", "no", 400)
    summary = Summary(dry_run=False)
    svc.remove("gone", summary)
    assert [(e["kind"], e["code"]) for e in summary.errors] == [("query", "AccessDeniedException")]


# -- the blueprint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env", [{}, {"ERROR_FILTER_PATTERN": '{ $.log = "*boom*" }', "ERROR_METRIC_BY_NAMESPACE": "true"}]
)
@pytest.mark.parametrize("cluster", ["prod-eu", "c" * 85, "c" * 100])  # 100: the longest EKS cluster name
def test_alarm_description_tells_on_call_what_to_do_within_the_limit(env: dict[str, str], cluster: str) -> None:
    cfg = ErrorAlarmsConfig.from_env(env)
    plan = Blueprint(cfg, cluster, "eu-west-1", ALERTS)
    description = plan.alarm()["AlarmDescription"]
    assert len(description) <= 1024  # PutMetricAlarm's limit
    assert application_group(cluster) in description and "Logs Insights" in description
    if len(cluster) <= 85 or cfg.custom_pattern:  # the query itself, when it fits
        assert f"| filter {cfg.insights_filter} |" in description
    else:  # otherwise the saved query that holds it
        assert (
            "| filter " not in description
            and f"saved Logs Insights query eksops/{cluster}/recent-errors" in description
        )
    assert plan.alarm()["AlarmActions"] == plan.alarm()["OKActions"] == [ALERTS]


def test_dashboard_shows_errors_namespaces_and_node_capacity() -> None:
    plan = Blueprint(ErrorAlarmsConfig.from_env({"ERROR_METRIC_BY_NAMESPACE": "true"}), "prod-eu", "eu-west-1", None)
    body = plan.dashboard()
    assert len(json.dumps(body)) < 1_000_000
    widgets = {w["properties"].get("title", "text"): w for w in body["widgets"]}
    assert DASHBOARD_MARKER in widgets["text"]["properties"]["markdown"]
    assert widgets["Application errors"]["properties"]["metrics"][0][:2] == [METRIC_NAMESPACE, "prod-eu"]
    assert f"SOURCE '{GROUP}'" in widgets["Errors by namespace (Logs Insights)"]["properties"]["query"]
    assert "by kubernetes.namespace_name" in widgets["Errors by namespace (Logs Insights)"]["properties"]["query"]
    capacity = widgets["Node reserved capacity (%)"]["properties"]["metrics"]
    assert [m[1] for m in capacity] == ["node_cpu_reserved_capacity", "node_memory_reserved_capacity"]
    assert all(m[0] == "ContainerInsights" and m[2:] == ["ClusterName", "prod-eu"] for m in capacity)
    assert "SEARCH(" in json.dumps(widgets["Errors by namespace (metric)"])
    assert plan.alarm()["AlarmActions"] == []  # no alerts topic configured: no actions
