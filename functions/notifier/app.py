"""notifier: alerts (SNS, one at a time) and reports (SQS batches, one digest each) to Slack; email goes through SNS
subscriptions."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from eksops.aws import client, lazy_client
from eksops.aws.secrets import SecretCache
from eksops.config import CommonConfig
from eksops.notify.notifier import SECRET_MAX_AGE_S, BurstDedup, NotifierConfig, NotifierService
from eksops.notify.once import InProgress, Once, PostedReports, RepeatCounter
from eksops.notify.queue import is_sqs_batch, parse_sqs_batch
from eksops.notify.sns import SnsRecord
from eksops.notify.webhook import SlackWebhook
from eksops.observability import TRACED_AWS_ONLY, log_failures, log_json

logger = Logger(json_serializer=log_json)
tracer = Tracer(patch_modules=TRACED_AWS_ONLY)  # no http.client: X-Ray would record the webhook URLs
metrics = Metrics()

common = CommonConfig.from_env()
settings = NotifierConfig.from_env()
table = common.require_idempotency_table()
# Not Powertools' SecretsProvider nor its idempotency: importing either imports boto3, which alone would put this
# light function's cold start over its target (eksops.notify.once says more).
secrets = SecretCache(client("secretsmanager"), max_age_s=SECRET_MAX_AGE_S)
# Identical alerts (same kind, severity, title, cluster and summary) within SLACK_DEDUP_SECONDS are posted once; 0 off.
dedup = (
    BurstDedup(
        Once(
            table=table,
            dynamodb=client("dynamodb"),
            key_prefix=f"{common.function_name}.alert-dedup",
            expires_after_seconds=settings.dedup_seconds,
        ),
        RepeatCounter(table=table, dynamodb=client("dynamodb"), key_prefix=f"{common.function_name}.alert-repeats"),
        settings.dedup_seconds,
    )
    if settings.dedup_seconds
    else None
)
# The same reports redelivered together (a batch retried after a timeout) make one digest, not two.
digest_once = Once(
    table=table,
    dynamodb=client("dynamodb"),
    key_prefix=f"{common.function_name}.digest",
    expires_after_seconds=24 * 3600,
)
# A report that comes again (a retried invocation's, a duplicate delivery's, a copy in another batch) is posted once.
posted = PostedReports(table=table, dynamodb=client("dynamodb"), key_prefix=f"{common.function_name}.report-posted")
service = NotifierService(
    settings,
    dry_run=common.dry_run,
    get_secret=secrets.get,
    webhook=SlackWebhook(),
    sqs=lazy_client("sqs"),  # only for a message Slack refuses (to the dead-letter queue): made on first use
    alerts_topic_arn=common.alerts_topic_arn,
    dedup=dedup,
    digest_once=digest_once,
    posted=posted,
)
# A duplicate delivery of the same SNS message (same MessageId; without one, the same content and time) returns
# the first result and posts nothing.
delivered = Once(
    table=table,
    dynamodb=client("dynamodb"),
    key_prefix=f"{common.function_name}.delivery",
    expires_after_seconds=24 * 3600,
)
# A claim lapses with the invocation that holds it (one that timed out holds its key no longer).
claims = [store for store in (delivered, digest_once, posted, dedup.once if dedup else None) if store is not None]


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@log_failures(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    for once in claims:
        once.register_lambda_context(context)
    if is_sqs_batch(event):
        return _reports(event, context)
    record = SnsRecord.parse(event)
    replayed = False
    try:
        result, replayed = delivered.run(
            record.idempotency_key, lambda: service.deliver(record, context.get_remaining_time_in_millis)
        )
    except InProgress:
        # The same delivery is being posted by another invocation right now (SNS delivered it twice at once). That
        # one posts it, or fails and is retried: this copy is acknowledged, not an error that would page anyone.
        result = {
            "message_id": record.message_id,
            "posted": False,
            "deduplicated": True,
            "duplicate_of": record.message_id,
            "reason": "the same delivery is being posted by another invocation",
        }
    # a repeated delivery returns the first one's result: counted as what it is, not as another post
    metrics.add_metric(name="SlackDeduplicated" if replayed else _outcome(result), unit=MetricUnit.Count, value=1)
    logger.info("notification handled", extra={k: v for k, v in result.items() if k != "payload"})
    return result


def _outcome(result: dict[str, Any]) -> str:
    if result.get("posted"):
        return "SlackPosted"
    if result.get("filtered"):
        return "SlackFiltered"
    return "SlackDeduplicated" if result.get("deduplicated") else "SlackNotPosted"


def _reports(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A batch from the reports queue: one digest per webhook, then the partial batch response (the records of a
    digest that could not be posted are retried by SQS; when none got through, the invocation fails).

    The response is written here, not through Powertools' BatchProcessor: the outcome already names the records to
    retry, and importing the batch utility (47 modules) cost each reports cold start about 24 ms."""
    records = parse_sqs_batch(event)
    outcome = service.deliver_batch(records, context.get_remaining_time_in_millis)
    posted = [d for d in outcome.digests if d.get("posted")]
    metrics.add_metric(name="SlackPosted", unit=MetricUnit.Count, value=len(posted))
    metrics.add_metric(name="ReportsDigested", unit=MetricUnit.Count, value=sum(d["reports"] for d in posted))
    metrics.add_metric(name="ReportsCopies", unit=MetricUnit.Count, value=outcome.copies)
    metrics.add_metric(name="SlackFiltered", unit=MetricUnit.Count, value=outcome.filtered)
    metrics.add_metric(name="ReportsRetried", unit=MetricUnit.Count, value=len(outcome.failures))
    logger.info("reports handled", extra=outcome.summary())

    retried = [{"itemIdentifier": r.queue_message_id} for r in records if r.queue_message_id in outcome.failures]
    if outcome.failures and len(outcome.failures) == len(records):
        # Nothing got through (Slack down, a dead webhook, a bad secret): fail the invocation, so the error alarm
        # fires with the real error; SQS makes the whole batch visible again.
        raise next(iter(outcome.failures.values()))
    return {"batchItemFailures": retried}
