"""log_retention: set CloudWatch Logs retention when a log group appears, and sweep every group daily."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from eksops.aws import client, lazy_client
from eksops.config import CommonConfig
from eksops.events import parse_eventbridge
from eksops.logs import RetentionConfig, RetentionService
from eksops.notify import Publisher
from eksops.observability import TRACED_MODULES, account_of, log_failures, log_json, record
from eksops.sweeps import Continuer, Deadline

logger = Logger(json_serializer=log_json)
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

# Configuration is validated here, at start-up: a bad value fails the cold start naming the variable.
common = CommonConfig.from_env()
service = RetentionService(
    RetentionConfig.from_env(),
    common,
    logs=client("logs"),
    # The tagging API (read by the daily sweep only), reports (only when something changed) and continuations (only
    # when a sweep runs out of time) are paths most invocations never take: their clients are made on first use.
    tagging=lazy_client("resourcegroupstaggingapi"),
    publisher=Publisher(
        lazy_client("sns"), alerts_topic_arn=common.alerts_topic_arn, reports_topic_arn=common.reports_topic_arn
    ),
    continuer=Continuer(lazy_client("events"), function="log_retention", bus_name=common.event_bus_name),
)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@log_failures(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = service.handle(
        parse_eventbridge(event), Deadline(context.get_remaining_time_in_millis), account=account_of(context)
    )
    record(metrics, summary.counts(), prefix="LogGroups")
    logger.info("log retention done", extra={"counts": summary.counts(), "dry_run": summary.dry_run})
    summary.raise_for_errors()
    return summary.as_dict()
