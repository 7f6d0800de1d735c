"""compliance_sweep: every cluster against eksops' compliance rules, daily and on demand, one invocation per cluster."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from eksops.aws import client
from eksops.bootstrap import BootstrapConfig
from eksops.compliance.config import ComplianceConfig
from eksops.compliance.context import Tools
from eksops.compliance.gather import SweepGather
from eksops.compliance.securityhub import SecurityHubExport
from eksops.compliance.service import ComplianceService
from eksops.compliance.state import StateStore
from eksops.compliance.triggers import parse_trigger
from eksops.config import CommonConfig
from eksops.errors import PartialFailure
from eksops.kube.auth import KubeConfig, api_client
from eksops.logs import ErrorAlarmsConfig, ErrorAlarmsService, RetentionConfig
from eksops.notify import Publisher
from eksops.observability import TRACED_MODULES, account_of, log_failures, log_json, record
from eksops.sweeps import Continuer, Deadline

FUNCTION = "compliance_sweep"

logger = Logger(json_serializer=log_json)
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

# Configuration is validated here, at start-up: a bad value fails the cold start naming the variable (REMEDIATE
# against the rule registry, COMPLIANCE_ACCEPT's entries, and the settings the rules reuse from the other functions).
common = CommonConfig.from_env()
settings = ComplianceConfig.from_env()
kubeconfig = KubeConfig.from_env()
error_alarms = ErrorAlarmsConfig.from_env()
publisher = Publisher(
    client("sns"), alerts_topic_arn=common.alerts_topic_arn, reports_topic_arn=common.reports_topic_arn
)
tools = Tools(
    aws=client,
    api_client=lambda name: api_client(
        name, eks_client=client("eks"), sts_client=client("sts"), kubeconfig=kubeconfig.kubeconfig
    ),
    settings=settings,
    common=common,
    bootstrap=BootstrapConfig.from_env(),
    retention=RetentionConfig.from_env(),
    error_alarms=lambda: ErrorAlarmsService(
        error_alarms, common, logs=client("logs"), cloudwatch=client("cloudwatch"), publisher=publisher
    ),
)


def emit_finding_metric(rule: str, severity: str, count: int) -> None:
    """One EMF metric per rule and severity: the open findings a cluster's sweep left (dimensions rule, severity)."""
    with single_metric(
        name="OpenFindings", unit=MetricUnit.Count, value=count, default_dimensions={"rule": rule, "severity": severity}
    ):
        pass  # written when the block ends


service = ComplianceService(
    tools,
    publisher=publisher,
    continuer=Continuer(client("events"), function=FUNCTION, bus_name=common.event_bus_name),
    state=StateStore(client("dynamodb"), settings.table, days=settings.state_days) if settings.table else None,
    security_hub=SecurityHubExport(client("securityhub")) if settings.security_hub else None,
    gather=SweepGather(client("dynamodb"), settings.table) if settings.table else None,  # one report per sweep
    emit_metric=emit_finding_metric,
)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@log_failures(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = service.handle(
        parse_trigger(event), Deadline(context.get_remaining_time_in_millis), account=account_of(context)
    )
    record(metrics, summary.counts(), prefix="Compliance")
    logger.info("compliance sweep done", extra={"counts": summary.counts(), "dry_run": summary.dry_run})
    try:
        summary.raise_for_errors()
    except PartialFailure as exc:
        exc.summary = summary.as_dict()  # type: ignore[attr-defined]  # for `eksops sweep`: the report of a run that failed in part
        raise
    return summary.as_dict()
