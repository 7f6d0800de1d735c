"""Compliance rules about the cluster's log groups: Container Insights groups, their retention, the error alarm.

Retention is decided by log_retention's own ``decide`` with its settings (``ctx.tools.retention``), and the error
filter and alarm are error_alarms' Blueprint put in place by ``ErrorAlarmsService.ensure``: no second copy of either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.compliance.context import ClusterContext
from eksops.compliance.model import Category, Rule, Severity, Violation, register
from eksops.compliance.rules.nodes import cluster_instances
from eksops.errors import PermanentError, TemporaryError
from eksops.logs.error_alarms import (
    CONTAINER_INSIGHTS_PREFIX,
    FILTER_NAME,
    METRIC_NAMESPACE,
    alarm_name,
    application_group,
)
from eksops.logs.error_alarms import Summary as AlarmSummary
from eksops.logs.groups import describe_log_group
from eksops.logs.retention_config import SKIP_TAG_KEY, SKIP_TAG_VALUE, RetentionConfig, decide

NODE_GROUPS = ("host", "dataplane", "performance")  # written from nodes: Fluent Bit and the CloudWatch agent


def _prefix(ctx: ClusterContext) -> str:
    return f"{CONTAINER_INSIGHTS_PREFIX}{ctx.name}/"


def insights_groups(ctx: ClusterContext) -> dict[str, dict[str, Any]]:
    """The cluster's Container Insights log groups by name (DescribeLogGroups by prefix, memoised)."""
    items = ctx.aws_pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=_prefix(ctx))
    return {str(g["logGroupName"]): g for g in items}


def _control_plane_group(ctx: ClusterContext) -> dict[str, Any] | None:
    name = f"/aws/eks/{ctx.name}/cluster"
    items = ctx.aws_pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
    return next((dict(g) for g in items if g["logGroupName"] == name), None)


@register
class ContainerInsightsGroups(Rule):
    """The application group is expected of every cluster (Fargate pods log there too); host, dataplane and
    performance only where the cluster has nodes (a managed node group, or instances tagged for it)."""

    id = "logs-container-insights-groups"
    title = "Container Insights log groups missing"
    severity = Severity.MEDIUM
    category = Category.LOGS
    why = (
        "Fluent Bit and the CloudWatch agent create these groups when they first write: a missing group means "
        "container, node or performance logs are not reaching CloudWatch, so errors go unseen and the error alarm "
        "has nothing to count."
    )
    fix = (
        "Check the observability rules' findings (CloudWatch agent, Fluent Bit or the amazon-cloudwatch-observability "
        "add-on) and the node role's CloudWatchAgentServerPolicy; cluster_bootstrap installs both. Fargate: the "
        "aws-logging ConfigMap (fargate-logging-configmap)."
    )
    reference = "EKS BP: Observability > Logging (Container Insights log groups); no hardeneks rule"
    adds = "checks that logs arrive, from the AWS side, per log group"
    iam_actions = (
        "logs:DescribeLogGroups",
        "eks:ListNodegroups",
        "eks:DescribeNodegroup",
        "ec2:DescribeInstances",
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        groups = insights_groups(ctx)
        wanted = ["application"]
        if ctx.nodegroups() or cluster_instances(ctx):
            wanted += NODE_GROUPS
        missing = [kind for kind in wanted if f"{_prefix(ctx)}{kind}" not in groups]
        if missing:
            yield Violation(
                f"cluster/{ctx.name}",
                f"missing: {', '.join(f'{_prefix(ctx)}{kind}' for kind in missing)}",
            )


@register
class LogsRetention(Rule):
    """The cluster's Container Insights groups and its control-plane group /aws/eks/<cluster>/cluster, judged by
    log_retention's ``decide`` with ``ctx.tools.retention``. When that is None (the function was given no retention
    settings), log_retention's defaults decide (RetentionConfig.from_env on an empty environment: its default rules,
    mode "missing"), and the evidence says so. The eksops:retention=skip tag and RETENTION_EXCLUDE are honoured."""

    id = "logs-retention"
    title = "Cluster log group without the retention log_retention sets"
    severity = Severity.LOW
    category = Category.LOGS
    why = (
        "A log group that never expires grows (and bills) forever; one kept longer or shorter than the policy "
        "breaks cost or evidence-keeping commitments. log_retention fixes this on its own sweep; a finding means it "
        "has not run, failed, or is not deployed in this account and region."
    )
    fix = (
        "Let log_retention's sweep run (or check its errors), or aws logs put-retention-policy --log-group-name "
        "<group> --retention-in-days <days>; tag the group eksops:retention=skip to keep it as it is. REMEDIATE sets "
        "the retention log_retention would set."
    )
    reference = "EKS BP: Observability > Logging (log retention); no hardeneks rule"
    adds = "the same decision as log_retention (RETENTION_RULES, RETENTION_MODE, exclusions), for this cluster's groups"
    iam_actions = ("logs:DescribeLogGroups", "logs:ListTagsForResource")
    remediation_iam_actions = ("logs:DescribeLogGroups", "logs:PutRetentionPolicy")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        cfg, source = _retention(ctx)
        groups = list(insights_groups(ctx).values())
        control_plane = _control_plane_group(ctx)
        if control_plane:
            groups.append(control_plane)
        for group in groups:
            name = str(group["logGroupName"])
            current = group.get("retentionInDays")
            decision = decide(cfg, name, current, group_class=group.get("logGroupClass"))
            if decision.change and _tagged_skip(ctx, group):
                continue
            if decision.target is not None:
                now = f"{current} days" if current else "never expires"
                yield Violation(
                    f"log-group/{name}",
                    f"retention {now}; {source} set {decision.target} days (mode {cfg.mode})",
                    data={"group": name},
                )

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        cfg, _ = _retention(ctx)
        name = str(violation.data["group"])
        logs = ctx.client("logs")
        ctx.spend("logs:DescribeLogGroups")
        group = describe_log_group(logs, name)
        if group is None:
            return f"log group {name} no longer exists"
        decision = decide(cfg, name, group.get("retentionInDays"), group_class=group.get("logGroupClass"))
        if decision.target is None:
            return f"log group {name} already has the retention the policy sets ({decision.reason})"
        if ctx.dry_run:
            return f"would set the retention of {name} to {decision.target} days"
        ctx.spend("logs:PutRetentionPolicy")
        logs.put_retention_policy(logGroupName=name, retentionInDays=decision.target)
        return f"set the retention of {name} to {decision.target} days"


def _retention(ctx: ClusterContext) -> tuple[RetentionConfig, str]:
    if ctx.tools.retention is not None:
        return ctx.tools.retention, "RETENTION_RULES would"
    return RetentionConfig.from_env({}), "log_retention's defaults (no RETENTION_* given to compliance_sweep) would"


def _tagged_skip(ctx: ClusterContext, group: Mapping[str, Any]) -> bool:
    arn = group.get("logGroupArn")
    if not arn:
        return False
    try:
        tags = ctx.aws("logs", "list_tags_for_resource", resourceArn=arn).get("tags") or {}
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return bool(tags.get(SKIP_TAG_KEY) == SKIP_TAG_VALUE)


@register
class ErrorAlarm(Rule):
    """Checks the application group of the cluster for error_alarms' metric filter (eksops-application-errors,
    publishing the cluster's metric in eksops/ApplicationErrors) and alarm (eksops-<cluster>-application-errors on
    that metric). With ``ctx.tools.error_alarms`` the filter pattern is compared with ERROR_FILTER_PATTERN too;
    without it the pattern is not judged (the evidence never guesses a pattern). A cluster without the application
    group is logs-container-insights-groups' finding, not this rule's. Remediation is ErrorAlarmsService.ensure for
    the cluster (filter, alarm, dashboard, saved queries); it needs ``ctx.tools.error_alarms``."""

    id = "logs-error-alarm"
    title = "Application log group without the eksops error filter and alarm"
    severity = Severity.MEDIUM
    category = Category.LOGS
    why = (
        "Without the metric filter and alarm, errors in the cluster's applications reach nobody: error_alarms puts "
        "them on every Container Insights application group; a finding means it has not run, failed, or someone "
        "removed or changed them."
    )
    fix = (
        "Let error_alarms' sweep run (or check its errors); REMEDIATE puts error_alarms' blueprint for the cluster "
        "(metric filter, alarm, dashboard, saved queries)."
    )
    reference = "EKS BP: Observability > Alerting on application errors from logs; no hardeneks rule"
    adds = "checks the alerting path (filter and alarm) end to end per cluster, and repairs it with error_alarms"
    iam_actions = ("logs:DescribeLogGroups", "logs:DescribeMetricFilters", "cloudwatch:DescribeAlarms")
    remediation_iam_actions = (  # what ErrorAlarmsService.ensure calls
        "logs:DescribeMetricFilters",
        "logs:PutMetricFilter",
        "logs:DeleteMetricFilter",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:ListTagsForResource",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:TagResource",
        "cloudwatch:GetDashboard",
        "cloudwatch:PutDashboard",
        "logs:DescribeQueryDefinitions",
        "logs:PutQueryDefinition",
        "logs:DeleteQueryDefinition",
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        group = application_group(ctx.name)
        if group not in insights_groups(ctx):
            return
        problems: list[str] = []
        filters = ctx.aws_pages(
            "logs", "describe_metric_filters", "metricFilters", logGroupName=group, filterNamePrefix=FILTER_NAME
        )
        ours = next((f for f in filters if f.get("filterName") == FILTER_NAME), None)
        if ours is None:
            problems.append(f"no metric filter {FILTER_NAME}")
        else:
            if not any(
                t.get("metricNamespace") == METRIC_NAMESPACE and t.get("metricName") == ctx.name
                for t in ours.get("metricTransformations") or []
            ):
                problems.append(f"metric filter {FILTER_NAME} does not publish {METRIC_NAMESPACE}/{ctx.name}")
            pattern = self._pattern(ctx)
            if pattern is not None and ours.get("filterPattern") != pattern:
                problems.append(f"metric filter {FILTER_NAME} has another pattern than ERROR_FILTER_PATTERN")
        name = alarm_name(ctx.name)
        alarms = ctx.aws("cloudwatch", "describe_alarms", AlarmNames=[name], AlarmTypes=["MetricAlarm"])
        alarm = next(iter(alarms.get("MetricAlarms") or []), None)
        if alarm is None:
            problems.append(f"no alarm {name}")
        elif alarm.get("Namespace") != METRIC_NAMESPACE or alarm.get("MetricName") != ctx.name:
            problems.append(f"alarm {name} is not on {METRIC_NAMESPACE}/{ctx.name}")
        if problems:
            yield Violation(f"log-group/{group}", "; ".join(problems))

    @staticmethod
    def _pattern(ctx: ClusterContext) -> str | None:
        factory = ctx.tools.error_alarms
        return factory().cfg.filter_pattern if factory is not None else None

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        factory = ctx.tools.error_alarms
        if factory is None:
            raise PermanentError(
                f"cannot put the error alarm of {ctx.name}: compliance_sweep was given no error_alarms settings"
            )
        service = factory()
        if ctx.dry_run and not service.common.dry_run:
            # A service that would write: say what it would put, without asking it.
            return f"would put error_alarms' metric filter, alarm, dashboard and saved queries for {ctx.name}"
        summary = AlarmSummary(dry_run=ctx.dry_run)
        ctx.spend("error_alarms:ensure")
        service.ensure(ctx.name, summary)
        if summary.errors:
            failed = ", ".join(f"{e.get('kind')} {e.get('code')}" for e in summary.errors)
            raise TemporaryError(f"error_alarms could not put everything for {ctx.name}: {failed}")
        verb = "would " if ctx.dry_run else ""
        changes = [f"{verb}{c['action']} {c['kind']} {c['name']}" for c in summary.changed]
        left = f"; not eksops' own, left alone: {', '.join(summary.not_owned)}" if summary.not_owned else ""
        return ("; ".join(changes) or "nothing to change") + left
