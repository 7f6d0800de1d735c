"""node_scaler: grows node groups ahead of demand, every minute and when a cluster's reserved-CPU alarm fires."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from eksops.aws import client
from eksops.config import CommonConfig
from eksops.kube.auth import KubeConfig, api_client
from eksops.notify import Publisher
from eksops.observability import TRACED_MODULES, account_of, log_failures, log_json, record
from eksops.scaling import AlarmSettings, AlarmTrigger, NodeScalerService, ScalerConfig, Summary, parse_trigger
from eksops.sweeps import Deadline

logger = Logger(json_serializer=log_json)
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

# Configuration is validated here, at start-up: a bad value fails the cold start naming the variable.
common = CommonConfig.from_env()
kubeconfig = KubeConfig.from_env()
service = NodeScalerService(
    ScalerConfig.from_env(),
    common,
    autoscaling=client("autoscaling"),
    cloudwatch=client("cloudwatch"),
    ssm=client("ssm"),
    publisher=Publisher(
        client("sns"), alerts_topic_arn=common.alerts_topic_arn, reports_topic_arn=common.reports_topic_arn
    ),
    alarms=AlarmSettings.from_env(),
    api_client=lambda name: api_client(
        name, eks_client=client("eks"), sts_client=client("sts"), kubeconfig=kubeconfig.kubeconfig
    ),
)
# The same alarm notification delivered twice (same MessageId; without one, the same content and time) acts once:
# the second delivery returns the first one's summary. Scheduled runs need no key: each decides on fresh state and
# sets an absolute size, so a repeated one changes nothing the first did not.
idempotency = IdempotencyConfig(event_key_jmespath="idempotency_key", expires_after_seconds=24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=common.require_idempotency_table(), boto3_client=client("dynamodb"))
_invocation: dict[str, Any] = {}


def _run(trigger: Any) -> dict[str, Any]:
    remaining: Callable[[], int] = _invocation["remaining_ms"]
    summary: Summary = service.handle(trigger, Deadline(remaining), account=_invocation["account"])
    record(metrics, summary.counts(), prefix="NodeGroups")
    logger.info("node scaling done", extra={"counts": summary.counts(), "dry_run": summary.dry_run})
    summary.raise_for_errors()
    return summary.as_dict()


@idempotent_function(data_keyword_argument="trigger", config=idempotency, persistence_store=persistence)
def on_alarm(trigger: AlarmTrigger) -> dict[str, Any]:
    return _run(trigger)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@log_failures(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    trigger = parse_trigger(event)
    _invocation.update(remaining_ms=context.get_remaining_time_in_millis, account=account_of(context))
    if isinstance(trigger, AlarmTrigger) and trigger.acts:  # an alarm going back to OK is only logged
        idempotency.register_lambda_context(context)
        metrics.add_metric(name="AlarmTriggers", unit=MetricUnit.Count, value=1)  # a repeat runs nothing else
        return on_alarm(trigger=trigger)
    return _run(trigger)
