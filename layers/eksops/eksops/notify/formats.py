"""Turns what arrives on the eksops topics into Slack messages: one formatter per message kind.

Kinds: CloudWatch alarm notifications, eksops envelopes, ECR image scan findings, GuardDuty findings for
EKS, AWS Health events for EKS, and a readable fallback for anything else (a message is never dropped).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eksops.notify.blocks import (
    FALLBACK_TEXT_LIMIT,
    clip,
    code,
    context,
    escape,
    fields,
    header,
    limit_blocks,
    lines_section,
    link,
    section,
)

COLOURS = {"critical": "#D13212", "warning": "#FF9900", "info": "#2EA44F", "ok": "#2EA44F", "unknown": "#8D8D8D"}
EMOJI = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
    "ok": ":white_check_mark:",
    "unknown": ":grey_question:",
}
CONSOLE_DOMAINS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


@dataclass
class SlackMessage:
    """A formatted message, with what routing needs (severity, cluster)."""

    kind: str
    severity: str
    text: str  # the notification fallback text
    blocks: list[dict[str, Any]]
    cluster: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The webhook body: fallback text plus the blocks in a colour-barred attachment."""
        return {
            "text": clip(self.text, FALLBACK_TEXT_LIMIT),
            "attachments": [
                {"color": COLOURS.get(self.severity, COLOURS["unknown"]), "blocks": limit_blocks(self.blocks)}
            ],
        }


def console_url(partition: str, region: str, path: str) -> str:
    """An AWS console URL right for the partition and region; ``path`` starts after the domain."""
    domain = CONSOLE_DOMAINS.get(partition, CONSOLE_DOMAINS["aws"])
    return f"https://{region}.{domain}/{path}"


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# -- CloudWatch alarms ----------------------------------------------------------------------------------------

ALARM_STATES = {"ALARM": "critical", "OK": "ok", "INSUFFICIENT_DATA": "unknown"}
OPERATORS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside",
    "LessThanLowerThreshold": "<",
    "GreaterThanUpperThreshold": ">",
}


def _alarm(body: Mapping[str, Any], subject: str | None) -> SlackMessage:
    name = str(body.get("AlarmName", "alarm"))
    state = str(body.get("NewStateValue", "UNKNOWN"))
    severity = ALARM_STATES.get(state, "unknown")
    arn = str(body.get("AlarmArn", ""))
    parts = arn.split(":")
    partition, region = (parts[1], parts[3]) if len(parts) > 4 else ("aws", "us-east-1")
    trigger = body.get("Trigger") or {}
    metric = trigger.get("MetricName") or "(metric math)"
    namespace = trigger.get("Namespace") or ""
    dims = ", ".join(f"{d.get('name')}={d.get('value')}" for d in trigger.get("Dimensions") or [])
    op = OPERATORS.get(str(trigger.get("ComparisonOperator")), str(trigger.get("ComparisonOperator", "")))
    statistic = trigger.get("Statistic") or trigger.get("ExtendedStatistic") or ""
    condition = (
        f"{statistic} {op} {trigger.get('Threshold')} over {trigger.get('EvaluationPeriods', 1)} x "
        f"{trigger.get('Period', '?')} s"
    )
    url = console_url(partition, region, f"cloudwatch/home?region={region}#alarmsV2:alarm/{_q(name)}")
    blocks = [
        header(f"{_plain_emoji(severity)} {name} is {state}"),
        section(escape(str(body.get("NewStateReason", "")))),
        fields(
            [
                ("Metric", f"{namespace} {metric}".strip()),
                ("Condition", condition),
                ("Dimensions", dims or "-"),
                ("Previous state", str(body.get("OldStateValue", "-"))),
            ]
        ),
    ]
    if body.get("AlarmDescription"):
        blocks.append(section(escape(str(body["AlarmDescription"]))))
    blocks.append(
        context(
            f"{link(url, 'Open the alarm in the console')} · {body.get('Region', region)} · "
            f"account {body.get('AWSAccountId', '-')} · {body.get('StateChangeTime', '')}"
        )
    )
    cluster = next((d.get("value") for d in trigger.get("Dimensions") or [] if d.get("name") == "ClusterName"), None)
    return SlackMessage("cloudwatch-alarm", severity, f"{EMOJI[severity]} {name} is {state}", blocks, cluster)


def _plain_emoji(severity: str) -> str:
    return {"critical": "🔴", "warning": "🟠", "info": "🔵", "ok": "✅", "unknown": "⚪"}[severity]


# -- eksops envelopes -----------------------------------------------------------------------------------------


def _envelope(body: Mapping[str, Any], subject: str | None) -> SlackMessage:
    severity = str(body.get("severity", "info"))
    if severity not in COLOURS:
        severity = "unknown"
    kind = str(body.get("kind", "eksops"))
    blocks = [
        header(f"{_plain_emoji(severity)} {body.get('title', kind)}"),
        section(escape(str(body.get("summary", "")))),
    ]
    where = [
        (label, str(body[key]))
        for key, label in (("cluster", "Cluster"), ("account", "Account"), ("region", "Region"))
        if body.get(key)
    ]
    if where:
        blocks.append(fields(where))
    details = body.get("details") or {}
    renderer = DETAIL_RENDERERS.get(kind, _generic_details)
    blocks.extend(renderer(details))
    links = body.get("links") or {}
    if links:
        blocks.append(context(" · ".join(link(str(url), str(name)) for name, url in links.items())))
    blocks.append(context(f"eksops · {kind}"))
    return SlackMessage(
        f"eksops:{kind}", severity, f"{EMOJI[severity]} {body.get('title', kind)}", blocks, body.get("cluster")
    )


def _retention_details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    verb = "Would change" if details.get("dry_run") else "Changed"
    lines = [
        f"`{escape(str(c.get('group')))}`: {_days(c.get('from'))} → {_days(c.get('to'))}"
        for c in details.get("changed", [])
    ]
    lines += [f":x: `{escape(str(e.get('group')))}`: {escape(str(e.get('code')))}" for e in details.get("errors", [])]
    return [lines_section(lines, title=verb)] if lines else []


def _days(value: Any) -> str:
    return "never expire" if value is None else f"{value} days"


def _generic_details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    if not details:
        return []
    simple = [(str(k), str(v)) for k, v in details.items() if isinstance(v, str | int | float | bool)]
    nested = {k: v for k, v in details.items() if not isinstance(v, str | int | float | bool | type(None))}
    blocks: list[dict[str, Any]] = []
    if simple:
        blocks.append(fields(simple))
    if nested:
        blocks.append(code(json.dumps(nested, indent=1, default=str)))
    return blocks


DETAIL_RENDERERS: dict[str, Callable[[Mapping[str, Any]], list[dict[str, Any]]]] = {
    "retention.changes": _retention_details,
}


# -- EventBridge events forwarded to the alerts topic -----------------------------------------------------------


def _ecr_scan(event: Mapping[str, Any], subject: str | None) -> SlackMessage:
    detail = event.get("detail") or {}
    counts: dict[str, int] = detail.get("finding-severity-counts") or {}
    severity = "critical" if counts.get("CRITICAL") else "warning" if counts.get("HIGH") else "info"
    repo = str(detail.get("repository-name", "?"))
    tags = ", ".join(detail.get("image-tags") or []) or "untagged"
    digest = str(detail.get("image-digest", ""))
    region = str(event.get("region", "us-east-1"))
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items(), key=lambda kv: _ECR_ORDER(kv[0])))
    url = console_url(
        "aws",
        region,
        f"ecr/repositories/private/{event.get('account', '')}/{_q(repo)}/_/image/"
        f"{_q(digest)}/scan-results?region={region}",
    )
    blocks = [
        header(f"{_plain_emoji(severity)} Image scan: {repo}:{tags}"),
        section(f"Scan {escape(str(detail.get('scan-status', '')).lower())}: {escape(summary) or 'no findings'}"),
        fields(
            [
                ("Repository", repo),
                ("Tags", tags),
                ("Digest", f"`{digest[:19]}…`" if digest else "-"),
                ("Account", str(event.get("account", "-"))),
            ]
        ),
        context(f"{link(url, 'Scan results in the console')} · {region}"),
    ]
    return SlackMessage("ecr-image-scan", severity, f"{EMOJI[severity]} Image scan {repo}:{tags}: {summary}", blocks)


def _ECR_ORDER(severity: str) -> int:
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]
    return order.index(severity) if severity in order else len(order)


def _guardduty(event: Mapping[str, Any], subject: str | None) -> SlackMessage:
    detail = event.get("detail") or {}
    score = float(detail.get("severity", 0))
    severity = "critical" if score >= 7 else "warning" if score >= 4 else "info"  # GuardDuty: high / medium / low
    resource = detail.get("resource") or {}
    cluster = (resource.get("eksClusterDetails") or {}).get("name")
    k8s = resource.get("kubernetesDetails") or {}
    user = (k8s.get("kubernetesUserDetails") or {}).get("username")
    workload = k8s.get("kubernetesWorkloadDetails") or {}
    region = str(detail.get("region", event.get("region", "us-east-1")))
    url = console_url(
        "aws", region, f"guardduty/home?region={region}#/findings?macros=current&fId={_q(str(detail.get('id', '')))}"
    )
    pairs = [("Type", str(detail.get("type", "-"))), ("Severity", f"{score:g}"), ("Cluster", cluster or "-")]
    if user:
        pairs.append(("Kubernetes user", user))
    if workload:
        pairs.append(("Workload", f"{workload.get('namespace', '?')}/{workload.get('name', '?')}"))
    blocks = [
        header(f"{_plain_emoji(severity)} GuardDuty: {detail.get('title', 'finding')}"),
        section(escape(str(detail.get("description", "")))),
        fields(pairs),
        context(f"{link(url, 'Finding in the console')} · account {detail.get('accountId', '-')} · {region}"),
    ]
    return SlackMessage(
        "guardduty-finding", severity, f"{EMOJI[severity]} GuardDuty: {detail.get('title')}", blocks, cluster
    )


def _health(event: Mapping[str, Any], subject: str | None) -> SlackMessage:
    detail = event.get("detail") or {}
    category = str(detail.get("eventTypeCategory", ""))
    severity = (
        "critical"
        if category == "issue"
        else "warning"
        if category in {"scheduledChange", "accountNotification"}
        else "info"
    )
    description = next(
        (
            d.get("latestDescription", "")
            for d in detail.get("eventDescription") or []
            if d.get("language", "en_US").startswith("en")
        ),
        "",
    )
    entities = [str(e.get("entityValue")) for e in detail.get("affectedEntities") or [] if e.get("entityValue")]
    arn = str(detail.get("eventArn", ""))
    url = f"https://health.{CONSOLE_DOMAINS['aws']}/health/home#/account/event-log?eventID={_q(arn)}"
    pairs = [
        ("Event", str(detail.get("eventTypeCode", "-"))),
        ("Category", category or "-"),
        ("Starts", str(detail.get("startTime", "-"))),
        ("Service", str(detail.get("service", "-"))),
    ]
    blocks = [
        header(f"{_plain_emoji(severity)} AWS Health: {detail.get('eventTypeCode', 'event')}"),
        fields(pairs),
        section(escape(description)),
    ]
    if entities:
        blocks.append(lines_section([f"`{escape(e)}`" for e in entities], title="Affected"))
    blocks.append(context(f"{link(url, 'Event in AWS Health')} · {event.get('region', '')}"))
    cluster = entities[0].rsplit("/", 1)[-1] if entities and ":cluster/" in entities[0] else None
    return SlackMessage(
        "aws-health", severity, f"{EMOJI[severity]} AWS Health {detail.get('eventTypeCode')}", blocks, cluster
    )


# -- anything else ----------------------------------------------------------------------------------------------


def fallback(message: str, subject: str | None, topic: str) -> SlackMessage:
    try:
        pretty = json.dumps(json.loads(message), indent=1)
    except ValueError:
        pretty = message
    title = subject or f"Message on {topic}"
    blocks = [header(f"{_plain_emoji('unknown')} {title}"), code(pretty), context(f"eksops · from {topic}")]
    return SlackMessage("other", "unknown", title, blocks)


EVENT_FORMATTERS: dict[tuple[str, str], Callable[[Mapping[str, Any], str | None], SlackMessage]] = {
    ("aws.ecr", "ECR Image Scan"): _ecr_scan,
    ("aws.guardduty", "GuardDuty Finding"): _guardduty,
    ("aws.health", "AWS Health Event"): _health,
}


def format_sns(message: str, subject: str | None, topic_arn: str) -> SlackMessage:
    """The Slack message for one SNS message, whatever it is."""
    topic = topic_arn.rsplit(":", 1)[-1]
    try:
        body = json.loads(message)
    except ValueError:
        return fallback(message, subject, topic)
    if not isinstance(body, dict):
        return fallback(message, subject, topic)
    try:
        if "AlarmName" in body and "NewStateValue" in body:
            return _alarm(body, subject)
        if body.get("source") == "eksops" and "kind" in body:
            return _envelope(body, subject)
        formatter = EVENT_FORMATTERS.get((str(body.get("source")), str(body.get("detail-type"))))
        if formatter:
            return formatter(body, subject)
    except (TypeError, ValueError, AttributeError):
        pass  # a known kind with an unexpected shape still reaches people, as raw text
    return fallback(message, subject, topic)
