"""notifier: messages from the alerts and reports topics to Slack (email goes through SNS subscriptions)."""

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
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from eksops.aws import client
from eksops.config import CommonConfig
from eksops.notify.notifier import SECRET_MAX_AGE_S, NotifierConfig, NotifierService, SnsRecord
from eksops.notify.webhook import SlackWebhook
from eksops.observability import TRACED_MODULES, log_failures, log_json

logger = Logger(json_serializer=log_json)
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

common = CommonConfig.from_env()
# Powertools' own stores would each open another boto3 session (about 65 ms of cold start): hand them ours.
secrets = SecretsProvider(boto3_client=client("secretsmanager"))
service = NotifierService(
    NotifierConfig.from_env(),
    dry_run=common.dry_run,
    get_secret=lambda arn: str(secrets.get(arn, max_age=SECRET_MAX_AGE_S)),
    webhook=SlackWebhook(),
    sqs=client("sqs"),
)
# A duplicate delivery of the same SNS message (same MessageId; without one, the same content and time) returns
# the first result and posts nothing.
idempotency = IdempotencyConfig(event_key_jmespath="idempotency_key", expires_after_seconds=24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=common.require_idempotency_table(), boto3_client=client("dynamodb"))
_remaining: dict[str, Callable[[], int]] = {}


@idempotent_function(data_keyword_argument="record", config=idempotency, persistence_store=persistence)
def deliver(record: SnsRecord) -> dict[str, Any]:
    return service.deliver(record, _remaining["ms"])


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@log_failures(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    record = SnsRecord.parse(event)
    idempotency.register_lambda_context(context)
    _remaining["ms"] = context.get_remaining_time_in_millis
    result = deliver(record=record)
    metrics.add_metric(name="SlackPosted" if result.get("posted") else "SlackNotPosted", unit=MetricUnit.Count, value=1)
    logger.info("notification handled", extra={k: v for k, v in result.items() if k != "payload"})
    return result
