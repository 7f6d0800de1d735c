"""image_updater: commits new image tags or digests to the GitOps config repository when images are pushed."""

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

from eksops.aws import client, lazy_client
from eksops.aws.secrets import SecretCache
from eksops.config import CommonConfig
from eksops.events import ScheduledRun
from eksops.images.config import UpdaterConfig
from eksops.images.registry import EcrRegistry
from eksops.images.service import ImageUpdaterService, Summary, open_repository
from eksops.images.triggers import EventTrigger, parse_trigger
from eksops.notify import Publisher
from eksops.observability import TRACED_MODULES, account_of, log_failures, log_json, record
from eksops.sweeps import Deadline

logger = Logger(json_serializer=log_json)
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

SECRET_MAX_AGE_S = 300  # a rotated token is picked up within five minutes, without a cold start

# Configuration is validated here, at start-up: a bad value fails the cold start naming the variable.
common = CommonConfig.from_env()
cfg = UpdaterConfig.from_env()
# The remote's credentials, never logged; the client is made on first use (a CodeCommit repository has no secret).
secrets = SecretCache(lazy_client("secretsmanager"), max_age_s=SECRET_MAX_AGE_S)


service = ImageUpdaterService(
    cfg,
    common,
    registry=EcrRegistry(client("ecr")),
    codepipeline=client("codepipeline"),
    repository=lambda: open_repository(cfg, codecommit=lambda: client("codecommit"), get_secret=secrets.get),
    publisher=Publisher(
        client("sns"), alerts_topic_arn=common.alerts_topic_arn, reports_topic_arn=common.reports_topic_arn
    ),
)
# The same event delivered twice (same id and content) commits once: the second delivery returns the first one's
# summary. Beyond that, every decision reads the file on the branch tip: a repeat finds nothing to change.
idempotency = IdempotencyConfig(event_key_jmespath="idempotency_key", expires_after_seconds=24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=common.require_idempotency_table(), boto3_client=client("dynamodb"))
_invocation: dict[str, Any] = {}


def _run(trigger: Any) -> dict[str, Any]:
    remaining: Callable[[], int] = _invocation["remaining_ms"]
    summary: Summary = service.handle(
        trigger, Deadline(remaining), account=_invocation["account"], region=client("ecr").meta.region_name
    )
    record(metrics, summary.counts(), prefix="Images")
    logger.info("image updates done", extra={"counts": summary.counts(), "dry_run": summary.dry_run})
    summary.raise_for_errors()
    return summary.as_dict()


@idempotent_function(data_keyword_argument="trigger", config=idempotency, persistence_store=persistence)
def on_event(trigger: EventTrigger) -> dict[str, Any]:
    return _run(trigger)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@log_failures(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    trigger = parse_trigger(event)
    _invocation.update(remaining_ms=context.get_remaining_time_in_millis, account=account_of(context))
    if isinstance(trigger, ScheduledRun) or not trigger.acts:  # the schedule decides on fresh state anyway
        return _run(trigger)
    idempotency.register_lambda_context(context)
    metrics.add_metric(name="EventTriggers", unit=MetricUnit.Count, value=1)  # a repeat runs nothing else
    return on_event(trigger=trigger)
