"""The notifier: SNS messages from the eksops topics to Slack, routed by severity or cluster."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eksops import config
from eksops.errors import ConfigError
from eksops.notify.blocks import context, escape
from eksops.notify.digest import digest
from eksops.notify.formats import SlackMessage, format_sns
from eksops.notify.identity import REPORT_ID_CHARS
from eksops.notify.once import InProgress, Once, PostedReports, RepeatCounter, Repeats
from eksops.notify.queue import QueuedRecord
from eksops.notify.severity import SEVERITIES, at_least
from eksops.notify.sns import MESSAGE_ID_LIMIT, SUBJECT_LIMIT, SnsRecord, content_key  # noqa: F401 - re-exported
from eksops.notify.webhook import SlackRejected, SlackWebhook, check_url

SLACK_WEBHOOK_SECRET_ARN = "SLACK_WEBHOOK_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
SLACK_ROUTES = "SLACK_ROUTES"
SLACK_MIN_SEVERITY = "SLACK_MIN_SEVERITY"
SLACK_DEDUP_SECONDS = "SLACK_DEDUP_SECONDS"
DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
SECRET_MAX_AGE_S = 300  # warm invocations reuse the webhook URL for five minutes
DEFAULT_DEDUP_S = 600
MAX_DEDUP_S = 24 * 3600
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
# The notifier's role may read only secrets named so (template.yaml): a name prefix, not a secret.
SECRET_PREFIX = "eksops/slack/"  # noqa: S105
ROUTE_KEYS = frozenset({"severity", "cluster", "secret_arn", "min_severity"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    secret_arn: str
    severities: tuple[str, ...] = ()
    cluster: str | None = None
    min_severity: str = "info"
    index: int = 0

    def matches(self, message: SlackMessage) -> bool:
        if self.severities and message.severity not in self.severities:
            return False
        return not (self.cluster and not (message.cluster and fnmatch.fnmatchcase(message.cluster, self.cluster)))


@dataclass(frozen=True)
class Destination:
    """Where a message goes (a webhook's secret; None when none is configured) and the threshold set there."""

    secret_arn: str | None
    min_severity: str
    setting: str  # what set the threshold: SLACK_MIN_SEVERITY or SLACK_ROUTES[i].min_severity

    def admits(self, message: SlackMessage) -> bool:
        return at_least(message.severity, self.min_severity)


@dataclass(frozen=True)
class NotifierConfig:
    default_secret_arn: str | None
    routes: tuple[Route, ...]
    dead_letter_queue_url: str | None
    min_severity: str = "info"
    dedup_seconds: int = DEFAULT_DEDUP_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierConfig:
        default = config.read(SLACK_WEBHOOK_SECRET_ARN, environ)
        if default and not _SECRET_ARN.match(default):
            raise ConfigError(SLACK_WEBHOOK_SECRET_ARN, "is not a Secrets Manager secret ARN")
        if default and not _secret_name(default).startswith(SECRET_PREFIX):
            # As for the routes: the role could not read it, so say so at start-up rather than on the first post.
            reason = f"must be a secret named {SECRET_PREFIX}... (the notifier may read only those)"
            raise ConfigError(SLACK_WEBHOOK_SECRET_ARN, reason)
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
            min_severity=config.parse_choice(
                SLACK_MIN_SEVERITY, config.read(SLACK_MIN_SEVERITY, environ) or "info", SEVERITIES
            ),
            dedup_seconds=config.parse_int(
                SLACK_DEDUP_SECONDS,
                config.read(SLACK_DEDUP_SECONDS, environ) or str(DEFAULT_DEDUP_S),
                minimum=0,
                maximum=MAX_DEDUP_S,
            ),
        )

    def destination_for(self, message: SlackMessage) -> Destination:
        """The first route that matches (severity list, cluster glob) decides, with its own threshold; otherwise the
        default webhook with SLACK_MIN_SEVERITY. A message below the threshold is posted nowhere: it does not fall
        through to the next route."""
        route = next((r for r in self.routes if r.matches(message)), None)
        if route is not None:
            return Destination(route.secret_arn, route.min_severity, f"{SLACK_ROUTES}[{route.index}].min_severity")
        return Destination(self.default_secret_arn, self.min_severity, SLACK_MIN_SEVERITY)

    def secret_for(self, message: SlackMessage) -> str | None:
        return self.destination_for(message).secret_arn

    def variable_for(self, secret_arn: str) -> str:
        """The variable that named ``secret_arn``, for error messages."""
        return SLACK_WEBHOOK_SECRET_ARN if secret_arn == self.default_secret_arn else SLACK_ROUTES


def _parse_routes(raw: Any) -> tuple[Route, ...]:
    shape = (
        '[{"severity": ["critical"] or "critical", "cluster": "<glob>", "min_severity": "warning", '
        '"secret_arn": "<arn>"}]'
    )
    if not isinstance(raw, list):
        raise ConfigError(SLACK_ROUTES, f"must be a JSON list like {shape}")
    routes = []
    for index, item in enumerate(raw):
        where = f"{SLACK_ROUTES}[{index}]"
        if not isinstance(item, dict) or not set(item) <= ROUTE_KEYS:
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
        minimum = item.get("min_severity", "info")
        if minimum not in SEVERITIES:
            raise ConfigError(
                f"{where}.min_severity",
                f"use one of, lowest first: {', '.join(SEVERITIES)} (ok and unknown rank alike)",
            )
        if severities and not any(at_least(s, minimum) for s in severities):
            raise ConfigError(
                f"{where}.min_severity",
                f"{minimum} is above every severity the route takes ({', '.join(severities)}): it would post nothing",
            )
        routes.append(
            Route(secret_arn=arn, severities=tuple(severities), cluster=cluster, min_severity=minimum, index=index)
        )
    return tuple(routes)


@dataclass(frozen=True)
class BurstDedup:
    """Identical alerts within ``window_s`` are posted once (``once``); the copies are counted (``repeats``) and the
    next post of the same alert says how many there were."""

    once: Once
    repeats: RepeatCounter
    window_s: int


@dataclass
class BatchOutcome:
    """What a batch of reports came to: the digests posted (or not), and the records that must be retried."""

    records: int
    digests: list[dict[str, Any]] = field(default_factory=list)
    filtered: int = 0
    copies: int = 0  # reports already posted (a retried invocation's, a duplicate delivery's): acknowledged, not posted
    failures: dict[str, Exception] = field(default_factory=dict)  # SQS messageId -> why it is retried

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "digests": [{k: v for k, v in d.items() if k != "payload"} for d in self.digests],
            "filtered": self.filtered,
            "copies": self.copies,
            "failed": len(self.failures),
            "errors": sorted({type(e).__name__ for e in self.failures.values()}),
        }


class NotifierService:
    """Formats, routes, filters and posts SNS messages: alerts one by one (identical ones once per window), reports
    in digests. A message Slack refuses goes to the dead-letter queue."""

    def __init__(
        self,
        cfg: NotifierConfig,
        *,
        dry_run: bool,
        get_secret: Callable[[str], str],
        webhook: SlackWebhook,
        sqs: Any,
        alerts_topic_arn: str | None = None,
        dedup: BurstDedup | None = None,
        digest_once: Once | None = None,
        posted: PostedReports | None = None,
    ) -> None:
        self.cfg = cfg
        self.dry_run = dry_run
        self._get_secret = get_secret
        self._webhook = webhook
        self._sqs = sqs
        self._alerts_topic_arn = alerts_topic_arn
        self._dedup = dedup
        self._digest_once = digest_once
        self._posted = posted

    # -- one SNS message ---------------------------------------------------------------------------------------

    def deliver(self, record: SnsRecord, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        message = format_sns(record.message, record.subject, record.topic_arn)
        result: dict[str, Any] = {
            "message_id": record.message_id,
            "kind": message.kind,
            "severity": message.severity,
            "cluster": message.cluster,
        }
        destination = self.cfg.destination_for(message)
        if not destination.admits(message):
            log.info("message %s is %s, below %s: not posted", record.message_id, message.severity, destination.setting)
            return {**result, "posted": False, "filtered": True, "reason": _below(destination)}
        secret_arn = destination.secret_arn
        if secret_arn is None:
            log.warning("no Slack webhook configured; message %s not posted", record.message_id)
            return {**result, "posted": False, "reason": "no webhook configured"}
        label = _secret_name(secret_arn)
        if self.dry_run:
            return {**result, "posted": False, "reason": "dry run", "webhook": label, "payload": message.payload()}
        try:
            if self._dedup is not None and record.topic_arn == self._alerts_topic_arn:
                return {**result, **self._post_alert_once(self._dedup, record, message, secret_arn, remaining_ms)}
            self._post(message, secret_arn, remaining_ms)
        except SlackRejected as exc:
            self._dead_letter(record, exc)
            return {**result, "posted": False, "reason": str(exc), "dead_lettered": True, "webhook": label}
        return {**result, "posted": True, "webhook": label}

    def _post_alert_once(
        self,
        dedup: BurstDedup,
        record: SnsRecord,
        message: SlackMessage,
        secret_arn: str,
        remaining_ms: Callable[[], int],
    ) -> dict[str, Any]:
        """Post an alert unless the same alert was posted within the window; a copy is counted instead."""
        key = message.dedup_key()
        label = _secret_name(secret_arn)

        def post() -> dict[str, Any]:
            seen = dedup.repeats.peek(key)
            if seen is not None:
                message.blocks.insert(1, context(_repeated(seen, dedup.window_s)))
            self._post(message, secret_arn, remaining_ms)
            if seen is not None:
                try:
                    dedup.repeats.settle(key, seen)
                except Exception as exc:  # posted: failing now would post it again; the copies are told twice at worst
                    log.warning(
                        "alert posted, but its %s held-back copies not taken off the count: %s", seen.count, exc
                    )
            return {
                "delivery": record.idempotency_key,
                "message_id": record.message_id,
                "repeats_reported": (seen.count if seen else 0),
            }

        try:
            first, replayed = dedup.once.run(key, post)
        except InProgress:
            first, replayed = {"message_id": None}, True  # a concurrent copy is being posted: this one is a repeat
        if replayed and first.get("delivery") != record.idempotency_key:
            count = dedup.repeats.add(key)
            log.info(
                "message %s repeats an alert posted within %s s (%s copies so far): not posted",
                record.message_id,
                dedup.window_s,
                count,
            )
            return {
                "posted": False,
                "deduplicated": True,
                "duplicate_of": first.get("message_id"),
                "repeats": count,
                "reason": f"identical to an alert posted within the last {dedup.window_s} s",
                "webhook": label,
            }
        shown = {"repeats_reported": first["repeats_reported"]} if first.get("repeats_reported") else {}
        return {"posted": True, "webhook": label, **shown}

    # -- a batch of reports from the reports queue ---------------------------------------------------------------

    def deliver_batch(self, records: list[QueuedRecord], remaining_ms: Callable[[], int]) -> BatchOutcome:
        """One digest per webhook for the reports of a batch (below-threshold ones left out). A digest that cannot
        be posted now fails its records (retried by SQS); one Slack refuses sends its reports to the dead-letter
        queue."""
        outcome = BatchOutcome(records=len(records))
        groups: dict[str | None, list[tuple[QueuedRecord, SlackMessage]]] = {}
        identities: dict[str, str] = {}  # SQS messageId -> the identity of a report this invocation posts
        claimed: set[str] = set()  # of those, the ones it holds a claim on (the store answered)
        for queued in records:
            sns = queued.sns
            message = format_sns(sns.message, sns.subject, sns.topic_arn)
            destination = self.cfg.destination_for(message)
            if not destination.admits(message):
                log.info("report %s is %s, below %s: not posted", sns.message_id, message.severity, destination.setting)
                outcome.filtered += 1
                continue
            identity = report_identity(sns)
            claim = "copy" if identity in identities.values() else self._claim_report(identity)
            if claim == "copy":
                log.info("report %s is a copy of one posted or being posted (%s): not posted", sns.message_id, identity)
                outcome.copies += 1
                continue
            identities[queued.queue_message_id] = identity
            if claim == "claimed":
                claimed.add(identity)
            groups.setdefault(destination.secret_arn, []).append((queued, message))
        for secret_arn, members in groups.items():
            delivered = self._deliver_digest(secret_arn, members, remaining_ms, outcome)
            outcome.digests.append(delivered)
            posted = bool(delivered["posted"])
            reports = [identities[q.queue_message_id] for q, _ in members]
            self._settle_reports([i for i in reports if posted or i in claimed], posted=posted)
        return outcome

    def _claim_report(self, identity: str) -> str:
        """Whether this invocation posts the report: "claimed" (it holds the claim), "copy" (posted, or being posted
        elsewhere), or "unchecked" when the store did not answer: posted all the same (a report posted twice beats a
        report lost), and never released, since the record there may be another invocation's claim."""
        if self._posted is None:
            return "unchecked"
        try:
            return "claimed" if self._posted.claim(identity) else "copy"
        except Exception as exc:
            log.warning("could not check whether report %s was posted before: %s", identity, exc)
            return "unchecked"

    def _settle_reports(self, identities: list[str], *, posted: bool) -> None:
        """Posted: remembered for a day. Not posted: the claims released, so SQS's redelivery (or a redrive) posts
        them."""
        if self._posted is None:
            return
        for identity in identities:
            try:
                if posted:
                    self._posted.done(identity)
                else:
                    self._posted.release(identity)
            except Exception as exc:  # a claim left behind lapses at this invocation's deadline
                log.warning("could not record report %s as %s: %s", identity, "posted" if posted else "free", exc)

    def _deliver_digest(
        self,
        secret_arn: str | None,
        members: list[tuple[QueuedRecord, SlackMessage]],
        remaining_ms: Callable[[], int],
        outcome: BatchOutcome,
    ) -> dict[str, Any]:
        message = digest([m for _, m in members])
        result: dict[str, Any] = {
            "kind": message.kind,
            "severity": message.severity,
            "reports": len(members),
            "message_ids": [q.sns.message_id for q, _ in members],
        }
        if secret_arn is None:
            log.warning("no Slack webhook configured; %s report(s) not posted", len(members))
            return {**result, "posted": False, "reason": "no webhook configured"}
        label = _secret_name(secret_arn)
        if self.dry_run:
            return {**result, "posted": False, "reason": "dry run", "webhook": label, "payload": message.payload()}

        def post() -> dict[str, Any]:
            self._post(message, secret_arn, remaining_ms)
            return {"posted": True}

        try:
            if self._digest_once is None:
                post()
            else:  # the same reports redelivered together (a retry after a timeout) are not posted twice
                self._digest_once.run(_digest_key(secret_arn, [q.sns.idempotency_key for q, _ in members]), post)
        except SlackRejected as exc:
            for queued, _ in members:
                self._dead_letter(queued.sns, exc)
            return {**result, "posted": False, "reason": str(exc), "dead_lettered": True, "webhook": label}
        except Exception as exc:
            # Any failure of one digest (Slack down or rate-limited, a dead webhook, a secret that is missing or holds
            # no URL, the same digest in progress, DynamoDB) fails its own reports only: SQS retries them, and the
            # other digests of the batch stay posted.
            log.error("digest of %s report(s) to %s not posted: %s", len(members), label, exc)
            for queued, _ in members:
                outcome.failures[queued.queue_message_id] = exc
            return {**result, "posted": False, "reason": str(exc), "error": type(exc).__name__, "webhook": label}
        return {**result, "posted": True, "webhook": label}

    # -- posting -------------------------------------------------------------------------------------------------

    def _post(self, message: SlackMessage, secret_arn: str, remaining_ms: Callable[[], int]) -> None:
        label = _secret_name(secret_arn)
        url = _webhook_url(self._get_secret(secret_arn), self.cfg.variable_for(secret_arn), label)
        self._webhook.post(url, message.payload(), remaining_ms, label=label)

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


def _below(destination: Destination) -> str:
    return f"{destination.setting} is {destination.min_severity}"


def _repeated(seen: Repeats, window_s: int) -> str:
    times = "once" if seen.count == 1 else f"{seen.count} times"
    return (
        f":repeat: The same alert came {times} more after it was last posted (last at {escape(seen.last_seen)}); "
        f"copies within {window_s} s of a post are not posted."
    )


def report_identity(sns: SnsRecord) -> str:
    """What makes two reports the same report: the ``report_id`` eksops' Publisher gives it (its function and
    invocation, what it is about and its place among that invocation's reports about it: a retried invocation's copy
    has the same), else the SNS delivery (a duplicate delivery of one SNS message)."""
    try:
        body = json.loads(sns.message)
    except (ValueError, RecursionError):
        body = None
    found = body.get("report_id") if isinstance(body, dict) else None
    if isinstance(found, str) and 0 < len(found) <= REPORT_ID_CHARS:
        return f"report:{found}"
    return f"sns:{sns.idempotency_key}"


def _digest_key(secret_arn: str, deliveries: list[str]) -> str:
    """The same reports for the same webhook are one digest, whichever order the batch had them in."""
    content = json.dumps([secret_arn, sorted(deliveries)])
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


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
