"""cluster_bootstrap: IAM for node and Fargate logging, and the Kubernetes baseline, on every EKS cluster."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from eksops.aws import client
from eksops.bootstrap import BootstrapConfig, BootstrapService
from eksops.config import CommonConfig
from eksops.events import parse_eventbridge
from eksops.kube.auth import KubeConfig, api_client
from eksops.notify import Publisher
from eksops.observability import TRACED_MODULES, log_failures, log_json, record
from eksops.sweeps import Deadline

logger = Logger(json_serializer=log_json)
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

# Configuration is validated here, at start-up: a bad value fails the cold start naming the variable.
common = CommonConfig.from_env()
kubeconfig = KubeConfig.from_env()
service = BootstrapService(
    BootstrapConfig.from_env(),
    common,
    eks=client("eks"),
    iam=client("iam"),
    sts=client("sts"),
    publisher=Publisher(
        client("sns"), alerts_topic_arn=common.alerts_topic_arn, reports_topic_arn=common.reports_topic_arn
    ),
    api_client=lambda name: api_client(
        name, eks_client=client("eks"), sts_client=client("sts"), kubeconfig=kubeconfig.kubeconfig
    ),
)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@log_failures(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = service.handle(parse_eventbridge(event), Deadline(context.get_remaining_time_in_millis))
    record(metrics, summary.counts(), prefix="Clusters")
    logger.info("cluster bootstrap done", extra={"counts": summary.counts(), "dry_run": summary.dry_run})
    summary.raise_for_errors()
    return summary.as_dict()
