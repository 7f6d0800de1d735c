"""The notifier: SNS messages from the eksops topics to Slack, routed by severity or cluster."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eksops import config
from eksops.errors import ConfigError
from eksops.notify.formats import SlackMessage, format_sns
from eksops.notify.sns import MESSAGE_ID_LIMIT, SUBJECT_LIMIT, SnsRecord, content_key  # noqa: F401 - re-exported
from eksops.notify.webhook import SlackRejected, SlackWebhook, check_url

SLACK_WEBHOOK_SECRET_ARN = "SLACK_WEBHOOK_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
SLACK_ROUTES = "SLACK_ROUTES"
DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
SECRET_MAX_AGE_S = 300  # warm invocations reuse the webhook URL for five minutes
SEVERITIES = ("info", "ok", "unknown", "warning", "critical")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
# The notifier's role may read only secrets named so (template.yaml): a name prefix, not a secret.
SECRET_PREFIX = "eksops/slack/"  # noqa: S105

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    secret_arn: str
    severities: tuple[str, ...] = ()
    cluster: str | None = None

    def matches(self, message: SlackMessage) -> bool:
        if self.severities and message.severity not in self.severities:
            return False
        return not (self.cluster and not (message.cluster and fnmatch.fnmatchcase(message.cluster, self.cluster)))


@dataclass(frozen=True)
class NotifierConfig:
    default_secret_arn: str | None
    routes: tuple[Route, ...]
    dead_letter_queue_url: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierConfig:
        default = config.read(SLACK_WEBHOOK_SECRET_ARN, environ)
        if default and not _SECRET_ARN.match(default):
            raise ConfigError(SLACK_WEBHOOK_SECRET_ARN, "is not a Secrets Manager secret ARN")
        raw_routes = config.parse_json(SLACK_ROUTES, config.read(SLACK_ROUTES, environ) or "[]")
        routes = _parse_routes(raw_routes)
        # The role may read secrets of its own region only (template.yaml): say so now, not on the first post.
        region = config.read(config.AWS_REGION, environ)
        named = [(SLACK_WEBHOOK_SECRET_ARN, default)] if default else []
        named += [(f"{SLACK_ROUTES}[{i}].secret_arn", route.secret_arn) for i, route in enumerate(routes)]
        for variable, arn in named:
            if region and arn.split(":")[3] != region:
                raise ConfigError(variable, f"must be a secret in this function's region {region}")
        return cls(
            default_secret_arn=default or None,
            routes=routes,
            dead_letter_queue_url=config.read(DEAD_LETTER_QUEUE_URL, environ) or None,
        )

    def secret_for(self, message: SlackMessage) -> str | None:
        return next((r.secret_arn for r in self.routes if r.matches(message)), self.default_secret_arn)

    def variable_for(self, secret_arn: str) -> str:
        """The variable that named ``secret_arn``, for error messages."""
        return SLACK_WEBHOOK_SECRET_ARN if secret_arn == self.default_secret_arn else SLACK_ROUTES


def _parse_routes(raw: Any) -> tuple[Route, ...]:
    shape = '[{"severity": ["critical"] or "critical", "cluster": "<glob>", "secret_arn": "<arn>"}]'
    if not isinstance(raw, list):
        raise ConfigError(SLACK_ROUTES, f"must be a JSON list like {shape}")
    routes = []
    for index, item in enumerate(raw):
        where = f"{SLACK_ROUTES}[{index}]"
        if not isinstance(item, dict) or not set(item) <= {"severity", "cluster", "secret_arn"}:
            raise ConfigError(where, f"must be an object like {shape}")
        arn = item.get("secret_arn")
        if not isinstance(arn, str) or not _SECRET_ARN.match(arn):
            raise ConfigError(f"{where}.secret_arn", "must be a Secrets Manager secret ARN")
        if not _secret_name(arn).startswith(SECRET_PREFIX):
            raise ConfigError(
                f"{where}.secret_arn", f"must be a secret named {SECRET_PREFIX}... (the notifier may read only those)"
            )
        severities = item.get("severity", [])
        severities = [severities] if isinstance(severities, str) else severities
        if not isinstance(severities, list) or not set(severities) <= set(SEVERITIES):
            raise ConfigError(f"{where}.severity", f"use values from: {', '.join(SEVERITIES)}")
        cluster = item.get("cluster")
        if cluster is not None and (not isinstance(cluster, str) or not cluster):
            raise ConfigError(f"{where}.cluster", "must be a non-empty glob")
        routes.append(Route(secret_arn=arn, severities=tuple(severities), cluster=cluster))
    return tuple(routes)


class NotifierService:
    """Formats, routes and posts one SNS message; a refused message goes to the dead-letter queue."""

    def __init__(
        self, cfg: NotifierConfig, *, dry_run: bool, get_secret: Callable[[str], str], webhook: SlackWebhook, sqs: Any
    ) -> None:
        self.cfg = cfg
        self.dry_run = dry_run
        self._get_secret = get_secret
        self._webhook = webhook
        self._sqs = sqs

    def deliver(self, record: SnsRecord, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        message = format_sns(record.message, record.subject, record.topic_arn)
        result: dict[str, Any] = {
            "message_id": record.message_id,
            "kind": message.kind,
            "severity": message.severity,
            "cluster": message.cluster,
        }
        secret_arn = self.cfg.secret_for(message)
        if secret_arn is None:
            log.warning("no Slack webhook configured; message %s not posted", record.message_id)
            return {**result, "posted": False, "reason": "no webhook configured"}
        label = _secret_name(secret_arn)
        if self.dry_run:
            return {**result, "posted": False, "reason": "dry run", "webhook": label, "payload": message.payload()}
        url = _webhook_url(self._get_secret(secret_arn), self.cfg.variable_for(secret_arn), label)
        try:
            self._webhook.post(url, message.payload(), remaining_ms, label=label)
        except SlackRejected as exc:
            self._dead_letter(record, exc)
            return {**result, "posted": False, "reason": str(exc), "dead_lettered": True, "webhook": label}
        return {**result, "posted": True, "webhook": label}

    def _dead_letter(self, record: SnsRecord, exc: SlackRejected) -> None:
        log.error(
            "Slack refused message %s (HTTP %s: %s); sent to the dead-letter queue without retries",
            record.message_id,
            exc.status,
            exc.reason,
        )
        if not self.cfg.dead_letter_queue_url:
            raise exc  # nowhere to park it: fail loudly rather than drop it
        self._sqs.send_message(
            QueueUrl=self.cfg.dead_letter_queue_url,
            MessageBody=json.dumps(
                {
                    "reason": "SlackRejected",
                    "status": exc.status,
                    "slackError": exc.reason,
                    "sns": {
                        "MessageId": record.message_id,
                        "TopicArn": record.topic_arn,
                        "Subject": record.subject,
                        "Message": record.message,
                    },
                }
            ),
        )


def _secret_name(arn: str) -> str:
    """The secret's name (with Secrets Manager's random suffix) from its ARN: safe to log, unlike its value."""
    return arn.split(":secret:", 1)[-1]


def _webhook_url(secret: str, variable: str, label: str) -> str:
    """The secret holds the URL itself, or JSON with a "url" (or "webhook_url") key; checked before any use.

    No error raised here contains the secret's value.
    """
    value = secret.strip()
    if value.startswith("{"):
        data: Any = None
        with contextlib.suppress(ValueError):
            data = json.loads(value)
        if not isinstance(data, dict):
            raise ConfigError(variable, f"the secret {label} is neither a URL nor a JSON object")
        value = data.get("url") or data.get("webhook_url") or ""
        if not isinstance(value, str):
            raise ConfigError(variable, f'the secret {label} has a "url" that is not a string')
    if not value:
        raise ConfigError(variable, f'the secret {label} holds no URL (plain text or {{"url": ...}})')
    return check_url(value, f"{variable}: {label}")
