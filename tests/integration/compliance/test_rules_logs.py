"""Log rules against moto over HTTP: Container Insights groups, retention decided by log_retention's settings, and the
error filter and alarm put by error_alarms' service."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from eksops.aws import RateLimiter, client
from eksops.compliance.model import rules
from eksops.errors import PermanentError
from eksops.logs.error_alarms import ErrorAlarmsService, alarm_name
from eksops.logs.error_alarms import Summary as AlarmSummary
from eksops.logs.error_alarms_config import ErrorAlarmsConfig
from eksops.logs.retention_config import RetentionConfig
from eksops.notify import Publisher
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.logs.test_error_alarms import MemoryQueries


def group(name: str, days: int | None = None, tags: dict[str, str] | None = None) -> None:
    client("logs").create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
    if days:
        client("logs").put_retention_policy(logGroupName=name, retentionInDays=days)


def insights(cluster: ClusterUnderTest, kind: str) -> str:
    return f"/aws/containerinsights/{cluster.name}/{kind}"


def with_nodes(cluster: ClusterUnderTest) -> None:
    client("eks").create_nodegroup(
        clusterName=cluster.name,
        nodegroupName="a",
        nodeRole=cluster.role(service="ec2.amazonaws.com"),
        subnets=["subnet-1"],
    )


def retention(cluster: ClusterUnderTest, name: str) -> int | None:
    [found] = client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    days = found.get("retentionInDays")
    return int(days) if days is not None else None


def error_alarms(cluster: ClusterUnderTest, *, dry_run: bool = False, queries: MemoryQueries | None = None) -> Any:
    """error_alarms' own service, as the handler gives it to the rules (tools.error_alarms)."""

    def make() -> ErrorAlarmsService:
        return ErrorAlarmsService(
            ErrorAlarmsConfig(),
            replace(cluster.common, dry_run=dry_run),
            logs=client("logs"),
            cloudwatch=client("cloudwatch"),
            publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=None),
            queries=queries if queries is not None else MemoryQueries(),
            filter_limiter=RateLimiter(1000),
            alarm_limiter=RateLimiter(1000),
            describe_limiter=RateLimiter(1000),
        )

    return make


# -- logs-container-insights-groups ---------------------------------------------------------------------------


def test_logs_container_insights_groups_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    group(insights(cluster, "application"))  # no nodes (Fargate only): the application group is all there is
    assert cluster.violations("logs-container-insights-groups") == []
    with_nodes(cluster)
    for kind in ("host", "dataplane", "performance"):
        group(insights(cluster, kind))
    assert cluster.violations("logs-container-insights-groups") == []


def test_logs_container_insights_groups_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    with_nodes(cluster)
    group(insights(cluster, "application"))
    group(insights(cluster, "performance"))
    group(f"/aws/containerinsights/{cluster.name}-other/host")  # another cluster's, though its name starts alike
    [found] = cluster.violations("logs-container-insights-groups")
    assert found.resource == f"cluster/{cluster.name}"
    assert found.evidence == f"missing: {insights(cluster, 'host')}, {insights(cluster, 'dataplane')}"


# -- logs-retention -------------------------------------------------------------------------------------------


def test_logs_retention_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    group(insights(cluster, "application"), 30)  # log_retention's default rule for application groups
    group(insights(cluster, "performance"), 7)
    group(insights(cluster, "host"), tags={"eksops:retention": "skip"})  # its owner opted out
    group(f"/aws/eks/{cluster.name}/cluster", 90)
    assert cluster.violations("logs-retention") == []


def test_logs_retention_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    group(insights(cluster, "application"))
    group(f"/aws/eks/{cluster.name}/cluster", 3)  # shorter than the rule: mode "missing" leaves it
    found = cluster.violations("logs-retention")
    assert [(v.resource, v.evidence) for v in found] == [
        (
            f"log-group/{insights(cluster, 'application')}",
            "retention never expires; log_retention's defaults (no RETENTION_* given to compliance_sweep) would set "
            "30 days (mode missing)",
        )
    ]
    # With the function's own settings (RETENTION_MODE=exact), the control-plane group is judged too.
    cluster.tools_extra["retention"] = RetentionConfig.from_env({"RETENTION_MODE": "exact"})
    assert {v.resource for v in cluster.violations("logs-retention")} == {
        f"log-group/{insights(cluster, 'application')}",
        f"log-group//aws/eks/{cluster.name}/cluster",
    }


def test_logs_retention_remediation(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    name = insights(cluster, "application")
    group(name)
    rule = rules()["logs-retention"]
    [found] = cluster.violations(rule.id)

    cluster.common = replace(cluster.common, dry_run=True)
    assert rule.remediate(cluster.context(), found) == f"would set the retention of {name} to 30 days"
    assert retention(cluster, name) is None

    cluster.common = replace(cluster.common, dry_run=False)
    assert rule.remediate(cluster.context(), found) == f"set the retention of {name} to 30 days"
    assert retention(cluster, name) == 30
    assert cluster.violations(rule.id) == []
    assert "already has the retention" in rule.remediate(cluster.context(), found)


# -- logs-error-alarm -----------------------------------------------------------------------------------------


def test_logs_error_alarm_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    assert cluster.violations("logs-error-alarm") == []  # no application group: the groups rule's finding
    group(insights(cluster, "application"))
    make = error_alarms(cluster)
    make().ensure(cluster.name, AlarmSummary(dry_run=False))  # what error_alarms puts
    cluster.tools_extra["error_alarms"] = make  # the pattern is judged too
    assert cluster.violations("logs-error-alarm") == []


def test_logs_error_alarm_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    name = insights(cluster, "application")
    group(name)
    [found] = cluster.violations("logs-error-alarm")
    assert found.resource == f"log-group/{name}"
    assert found.evidence == (f"no metric filter eksops-application-errors; no alarm {alarm_name(cluster.name)}")
    # A filter someone loosened, and an alarm of eksops' name on another metric.
    client("logs").put_metric_filter(
        logGroupName=name,
        filterName="eksops-application-errors",
        filterPattern="ERROR",
        metricTransformations=[
            {"metricName": cluster.name, "metricNamespace": "eksops/ApplicationErrors", "metricValue": "1"}
        ],
    )
    client("cloudwatch").put_metric_alarm(
        AlarmName=alarm_name(cluster.name),
        MetricName="Errors",
        Namespace="Team",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cluster.tools_extra["error_alarms"] = error_alarms(cluster)
    [found] = cluster.violations("logs-error-alarm")
    assert found.evidence == (
        "metric filter eksops-application-errors has another pattern than ERROR_FILTER_PATTERN; "
        f"alarm {alarm_name(cluster.name)} is not on eksops/ApplicationErrors/{cluster.name}"
    )


def test_logs_error_alarm_remediation(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    group(insights(cluster, "application"))
    rule = rules()["logs-error-alarm"]
    [found] = cluster.violations(rule.id)
    with pytest.raises(PermanentError, match="no error_alarms settings"):
        rule.remediate(cluster.context(), found)

    queries = MemoryQueries()
    cluster.common = replace(cluster.common, dry_run=True)
    cluster.tools_extra["error_alarms"] = error_alarms(cluster, dry_run=True, queries=queries)
    done = rule.remediate(cluster.context(), found)
    assert "would create metric-filter eksops-application-errors" in done and "would create alarm" in done
    assert client("cloudwatch").describe_alarms()["MetricAlarms"] == [] and queries.items == {}

    cluster.common = replace(cluster.common, dry_run=False)
    cluster.tools_extra["error_alarms"] = error_alarms(cluster, queries=queries)
    done = rule.remediate(cluster.context(), found)
    assert done.startswith("create metric-filter eksops-application-errors; create alarm")
    assert [a["AlarmName"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]] == [
        alarm_name(cluster.name)
    ]
    assert cluster.violations(rule.id) == []
    assert rule.remediate(cluster.context(), found) == "nothing to change"
