"""Turns what arrives on the eksops topics into Slack messages: one formatter per message kind.

Kinds: CloudWatch alarm notifications, eksops envelopes, ECR image scan findings, GuardDuty findings for
EKS, AWS Health events for EKS, and a readable fallback for anything else (a message is never dropped).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eksops.names import is_cluster_name
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
    well_formed,
)

log = logging.getLogger(__name__)

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
# Where an envelope's ``links`` may point: the console of the topic's partition (above) and the AWS
# documentation. eksops' own docs live in its repository, which has no published address yet; when it has one,
# add its host here. Any other link is shown as its label only.
DOCS_HOSTS = frozenset({"docs.aws.amazon.com", "docs.amazonaws.cn"})
KIND_LIMIT = 100  # a message kind goes into the result, the idempotency record and a log line
MAX_LINKS = 10
DIGEST_LINES_KEPT = 10  # a digest shows the first few lines of each report; more are never needed


@dataclass
class SlackMessage:
    """A formatted message, with what routing needs (severity, cluster) and what identifies it.

    ``title`` and ``summary`` are plain text (not mrkdwn): with ``kind``, ``severity`` and ``cluster`` they are
    what burst dedup compares (``dedup_key``); a digest shows ``title`` with the first ``lines`` (or the summary).
    """

    kind: str
    severity: str
    text: str  # the notification fallback text
    blocks: list[dict[str, Any]]
    cluster: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    summary: str = ""
    lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Both come from the payload and go into the result, its log line and routing: bounded, well-formed, and
        # a cluster only when it is a name EKS accepts (a route's glob never sees a list or 300 KB of text).
        self.kind = well_formed(clip(self.kind, KIND_LIMIT, "…"))
        self.cluster = self.cluster if is_cluster_name(self.cluster) else None
        self.title = well_formed(self.title or self.text)
        self.summary = well_formed(self.summary)
        self.lines = tuple(well_formed(str(line)) for line in self.lines[:DIGEST_LINES_KEPT])

    def dedup_key(self) -> str:
        """What makes two messages "the same alert": kind, severity, title, cluster and summary (never the SNS
        MessageId or the time it was published). Each formatter puts what tells two alerts apart in the summary
        (an alarm's state change time, a finding's id, an image digest)."""
        content = json.dumps([self.kind, self.severity, self.title, self.cluster, self.summary])
        return "sha256:" + hashlib.sha256(content.encode()).hexdigest()

    def payload(self) -> dict[str, Any]:
        """The webhook body: fallback text plus the blocks in a colour-barred attachment."""
        body = {
            "text": clip(self.text, FALLBACK_TEXT_LIMIT),
            "attachments": [
                {"color": COLOURS.get(self.severity, COLOURS["unknown"]), "blocks": limit_blocks(self.blocks)}
            ],
        }
        return well_formed(body)  # type: ignore[no-any-return]


def console_url(partition: str, region: str, path: str) -> str:
    """An AWS console URL right for the partition and region; ``path`` starts after the domain."""
    domain = CONSOLE_DOMAINS.get(partition, CONSOLE_DOMAINS["aws"])
    return f"https://{_region(region)}.{domain}/{path}"


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def _region(value: Any, default: str = "us-east-1") -> str:
    """A region name fit for a URL: payload text that is not one becomes ``default``."""
    text = str(value or "")
    return text if _REGION.match(text) else default


def partition_of(arn: Any) -> str | None:
    """The partition of an ARN (``arn:aws-cn:...`` gives aws-cn), None when it is not an ARN we know."""
    parts = str(arn or "").split(":")
    return parts[1] if len(parts) > 5 and parts[0] == "arn" and parts[1] in CONSOLE_DOMAINS else None


def event_partition(event: Mapping[str, Any], *arns: Any) -> str:
    """The partition of an EventBridge event: ``detail.partition``, else the ARN in ``resources[0]``, else the
    other ``arns`` given, else the region's (cn-* and us-gov-* regions have their own), else aws."""
    raw_detail = event.get("detail")
    detail: Mapping[str, Any] = raw_detail if isinstance(raw_detail, Mapping) else {}
    if str(detail.get("partition")) in CONSOLE_DOMAINS:
        return str(detail["partition"])
    raw_resources = event.get("resources")
    resources: list[Any] = raw_resources if isinstance(raw_resources, list) else []
    for arn in [*resources[:1], *arns]:
        found = partition_of(arn)
        if found:
            return found
    region = str(event.get("region", ""))
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="", errors="replace")  # a lone surrogate cannot be UTF-8 encoded


def _shown(value: Any, limit: int = 200) -> str:
    """Any JSON value as short text: a string as it is, null as "-", anything else as its JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return clip(value, limit)
    try:
        return clip(json.dumps(value, ensure_ascii=False), limit)
    except (TypeError, ValueError, RecursionError):
        return type(value).__name__


def own_link(url: str, partition: str) -> bool:
    """Whether ``url`` is a link eksops itself builds: https to the partition's AWS console (global or one
    region's) or to the AWS documentation, with no user information or port that could lead elsewhere."""
    if not url or any(not ("!" <= ch <= "~") for ch in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    if parts.scheme != "https" or port is not None or parts.netloc.lower() != host:
        return False  # netloc is more than the host: user information, a port, or an empty "@"
    console = CONSOLE_DOMAINS.get(partition, CONSOLE_DOMAINS["aws"])
    region, _, domain = host.partition(".")
    return host in DOCS_HOSTS or host == console or (domain == console and _REGION.match(region) is not None)


def _links(links: Mapping[str, Any], partition: str) -> str:
    """An envelope's links: eksops' own as links, any other as its label, never with the address."""
    shown = []
    for name, url in list(links.items())[:MAX_LINKS]:
        label = str(name) or "link"
        if isinstance(url, str) and own_link(url, partition):
            shown.append(link(url, label))
        else:
            shown.append(f"{escape(label)} (link not shown: not an AWS console or documentation address)")
    if len(links) > MAX_LINKS:
        shown.append(f"… and {len(links) - MAX_LINKS} more links")
    return " · ".join(shown)


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
    partition = partition_of(arn) or "aws"
    region = _region(parts[3] if len(parts) > 4 else body.get("Region"))
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
            f"{link(url, 'Open the alarm in the console')} · {escape(str(body.get('Region', region)))} · "
            f"account {escape(str(body.get('AWSAccountId', '-')))} · {escape(str(body.get('StateChangeTime', '')))}"
        )
    )
    cluster = next((d.get("value") for d in trigger.get("Dimensions") or [] if d.get("name") == "ClusterName"), None)
    text = f"{EMOJI[severity]} {escape(name)} is {escape(state)}"
    # CloudWatch notifies once per state change: the change's time keeps two changes (ALARM, OK, ALARM again with
    # the same reason) from counting as one alert repeated, so a dedup never hides that the alarm fired again.
    summary = f"{body.get('NewStateReason', '')} (at {body.get('StateChangeTime', '-')})"
    return SlackMessage(
        "cloudwatch-alarm", severity, text, blocks, cluster, title=f"{name} is {state}", summary=summary
    )


def plain_emoji(severity: str) -> str:
    """The emoji for a severity in plain text (headers)."""
    return {"critical": "🔴", "warning": "🟠", "info": "🔵", "ok": "✅", "unknown": "⚪"}[severity]


_plain_emoji = plain_emoji


# -- eksops envelopes -----------------------------------------------------------------------------------------


def _envelope(body: Mapping[str, Any], subject: str | None, partition: str = "aws") -> SlackMessage:
    severity = str(body.get("severity", "info"))
    if severity not in COLOURS:
        severity = "unknown"
    kind = str(body.get("kind", "eksops"))
    title = str(body.get("title", kind))
    blocks = [header(f"{_plain_emoji(severity)} {title}"), section(escape(str(body.get("summary", ""))))]
    where = [
        (label, str(body[key]))
        for key, label in (("cluster", "Cluster"), ("account", "Account"), ("region", "Region"))
        if body.get(key)
    ]
    if where:
        blocks.append(fields(where))
    details = body.get("details") or {}
    if not isinstance(details, Mapping):
        details = {"details": details}
    lines = body.get("lines")
    renderer = DETAIL_RENDERERS.get(kind)
    if kind == "compliance.sweep" and "clusters" not in details:
        renderer = None  # one cluster's own report (swept on its own, or beyond the gather): its lines, below
    if renderer is not None:
        blocks.extend(renderer(details))
    elif isinstance(lines, list) and lines:  # a kind without a renderer of its own: the publisher's lines
        blocks.extend(_scalar_fields(details))
        blocks.append(lines_section([escape(str(line)) for line in lines], title="Details"))
    else:
        blocks.extend(_generic_details(details))
    if details.get(TRUNCATED_KEY):
        blocks.append(context(f":scissors: {escape(str(details[TRUNCATED_KEY]))}"))
    links = body.get("links") or {}
    if isinstance(links, Mapping) and links:
        blocks.append(context(_links(links, partition)))
    blocks.append(context(f"eksops · {escape(kind)}"))
    cluster = body.get("cluster")
    return SlackMessage(
        f"eksops:{kind}",
        severity,
        f"{EMOJI[severity]} {escape(title)}",
        blocks,
        cluster if isinstance(cluster, str) and cluster else None,
        title=title,
        summary=str(body.get("summary", "")),
        lines=tuple(str(line) for line in lines[:DIGEST_LINES_KEPT]) if isinstance(lines, list) else (),
    )


TRUNCATED_KEY = "truncated"  # set by the publisher when details were trimmed to fit SNS's message limit


def _more(details: Mapping[str, Any], key: str) -> int:
    """How many items of ``details[key]`` the publisher left out (it sends ``<key>_count`` when it cut)."""
    total = details.get(f"{key}_count")
    shown = len(details.get(key) or [])
    return total - shown if isinstance(total, int) and total > shown else 0


def _with_more(lines: list[str], more: int) -> list[str]:
    return [*lines, f"… and {more} more not in this message"] if more else lines


def _retention_details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    verb = "Would change" if details.get("dry_run") else "Changed"
    if details.get("dry_run") and details.get("applied"):  # a live chain a dry-run deployment finished
        verb = "Changed, then would change (dry run)"
    lines = [
        f"`{escape(str(c.get('group')))}`: {_days(c.get('from'))} → {_days(c.get('to'))}"
        for c in details.get("changed") or []
    ]
    lines = _with_more(lines, _more(details, "changed"))
    errors = [f":x: `{escape(str(e.get('group')))}`: {escape(str(e.get('code')))}" for e in details.get("errors") or []]
    lines += _with_more(errors, _more(details, "errors"))
    return [lines_section(lines, title=verb)] if lines else []


def _days(value: Any) -> str:
    return "never expire" if value is None else f"{escape(str(value))} days"


def _error_alarms_details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    verb = "Would change" if details.get("dry_run") else "Changed"
    lines = [
        f"`{escape(str(c.get('cluster')))}`: {escape(str(c.get('action')))} {escape(str(c.get('kind')))} "
        f"`{escape(str(c.get('name')))}`"
        for c in details.get("changed") or []
    ]
    lines = _with_more(lines, _more(details, "changed"))
    lines += [
        f":x: `{escape(str(e.get('cluster')))}` {escape(str(e.get('kind')))}: {escape(str(e.get('code')))}"
        for e in details.get("errors") or []
    ]
    lines = _with_more(lines, _more(details, "errors"))
    counts = [
        ("Clusters", ", ".join(str(c) for c in details.get("clusters") or []) or "-"),
        ("Unchanged", str(details.get("unchanged", 0))),
    ]
    for key, label in (("ignored", "Ignored"), ("not_owned", "Not eksops'")):
        if details.get(key):
            counts.append((label, ", ".join(str(v) for v in details[key])))
    blocks = [fields(counts)]
    if lines:
        blocks.append(lines_section(lines, title=verb))
    return blocks


def _bootstrap_details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    verb = "Would bootstrap" if details.get("dry_run") else "Bootstrapped"
    clusters = details.get("clusters") or {}
    lines: list[str] = []
    for name, item in clusters.items() if isinstance(clusters, Mapping) else []:
        result: Mapping[str, Any] = item if isinstance(item, Mapping) else {}
        changes = [*(result.get("aws") or []), *(result.get("changed_objects") or [])]
        kube = result.get("kubernetes") or {}
        counted = ", ".join(f"{n} {o}" for o, n in kube.items() if n) if isinstance(kube, Mapping) else ""
        what = ", ".join(str(c) for c in changes[:20]) + (f" (+{len(changes) - 20} more)" if len(changes) > 20 else "")
        lines.append(
            f"`{escape(str(name))}` {escape(str(result.get('status', '?')))}"
            + (f": {escape(what)}" if what else "")
            + (f" · Kubernetes objects: {escape(counted)}" if counted else "")
        )
        lines += [f":warning: `{escape(str(name))}` {escape(str(w))}" for w in result.get("warnings") or []]
    lines += [
        f":x: `{escape(str(e.get('cluster')))}` {escape(str(e.get('error')))}: {escape(str(e.get('message')))}"
        for e in details.get("errors") or []
    ]
    pairs = [
        (label, str(details[key]))
        for key, label in (("manifest_version", "Manifests"), ("run_id", "Run"))
        if details.get(key)
    ]
    if details.get("deferred"):
        pairs.append(("Deferred", ", ".join(str(d) for d in details["deferred"])))
    blocks = [fields(pairs)] if pairs else []
    if lines:
        blocks.append(lines_section(lines, title=verb))
    return blocks


def _compliance_sweep_details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A compliance sweep's one report: a line per cluster (most severe first, as gathered), the clusters that never
    reported, then the first findings of each cluster."""
    clusters = [c for c in details.get("clusters") or [] if isinstance(c, Mapping)]
    heads: list[str] = []
    findings: list[str] = []
    for report in clusters:
        name = escape(str(report.get("cluster", "?")))
        severity = str(report.get("severity", "info"))
        raw_counts = report.get("counts")
        counts: Mapping[str, Any] = raw_counts if isinstance(raw_counts, Mapping) else {}
        if report.get("status") in ("gone", "not-active"):
            heads.append(f"{_plain_emoji('unknown')} `{name}` not swept ({escape(str(report.get('status')))})")
            continue
        what = [f"{counts.get('open', 0)} open"]
        what += [f"{counts[k]} {k}" for k in ("new", "resolved", "remediated", "errors") if counts.get(k)]
        emoji = _plain_emoji(severity if severity in COLOURS else "unknown")
        heads.append(f"{emoji} `{name}`: {escape(', '.join(str(w) for w in what))}")
        findings += [f"`{name}` {escape(str(line))}" for line in list(report.get("lines") or [])[:3]]
    heads = _with_more(heads, _more(details, "clusters"))
    missing = [str(m) for m in details.get("missing") or []]
    if missing:
        heads.append(f":x: not reported: {escape(', '.join(missing))} (see the compliance_sweep dead-letter queue)")
    pairs = [
        (label, str(details[key])) for key, label in (("run_id", "Sweep"), ("reported", "Clusters")) if details.get(key)
    ]
    blocks = [fields(pairs)] if pairs else []
    if heads:
        blocks.append(lines_section(heads, title="Clusters"))
    if findings:
        blocks.append(lines_section(findings, title="First findings"))
    return blocks


def _scalar_fields(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    simple = [
        (str(k), str(v)) for k, v in details.items() if isinstance(v, str | int | float | bool) and k != TRUNCATED_KEY
    ]
    return [fields(simple)] if simple else []


def _generic_details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    nested = {k: v for k, v in details.items() if not isinstance(v, str | int | float | bool | type(None))}
    blocks = _scalar_fields(details)
    if nested:
        blocks.append(code(json.dumps(nested, indent=1, default=str)))
    return blocks


DETAIL_RENDERERS: dict[str, Callable[[Mapping[str, Any]], list[dict[str, Any]]]] = {
    "retention.changes": _retention_details,
    "error_alarms.changes": _error_alarms_details,
    "bootstrap.changes": _bootstrap_details,
    "compliance.sweep": _compliance_sweep_details,
}


# -- EventBridge events forwarded to the alerts topic -----------------------------------------------------------


def _ecr_scan(event: Mapping[str, Any], subject: str | None) -> SlackMessage:
    detail = event.get("detail") or {}
    counts: dict[str, int] = detail.get("finding-severity-counts") or {}
    severity = "critical" if counts.get("CRITICAL") else "warning" if counts.get("HIGH") else "info"
    repo = str(detail.get("repository-name", "?"))
    tags = ", ".join(str(t) for t in detail.get("image-tags") or []) or "untagged"
    digest = str(detail.get("image-digest", ""))
    region = _region(event.get("region"))
    account = str(event.get("account", ""))
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items(), key=lambda kv: _ECR_ORDER(kv[0])))
    url = console_url(
        event_partition(event),
        region,
        f"ecr/repositories/private/{_q(account)}/{_q(repo)}/_/image/{_q(digest)}/scan-results?region={region}",
    )
    blocks = [
        header(f"{_plain_emoji(severity)} Image scan: {repo}:{tags}"),
        section(f"Scan {escape(str(detail.get('scan-status', '')).lower())}: {escape(summary) or 'no findings'}"),
        fields(
            [
                ("Repository", repo),
                ("Tags", tags),
                ("Digest", f"`{digest[:19]}…`" if digest else "-"),
                ("Account", account or "-"),
            ]
        ),
        context(f"{link(url, 'Scan results in the console')} · {region}"),
    ]
    text = f"{EMOJI[severity]} Image scan {escape(repo)}:{escape(tags)}: {escape(summary) or 'no findings'}"
    return SlackMessage(
        "ecr-image-scan",
        severity,
        text,
        blocks,
        title=f"Image scan: {repo}:{tags}",
        summary=f"{summary or 'no findings'}; image {digest or '-'}",  # another image with the same counts differs
    )


def _ECR_ORDER(severity: str) -> int:
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]
    return order.index(severity) if severity in order else len(order)


def _score(value: Any) -> float | None:
    """A GuardDuty severity score (0 to 10, a number or a numeric string); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        score = float(value)
    except (ValueError, OverflowError):  # text that is not a number; an integer of hundreds of digits
        return None
    return score if 0 <= score <= 10 else None  # NaN compares false: None too


def _guardduty(event: Mapping[str, Any], subject: str | None) -> SlackMessage:
    detail = event.get("detail") or {}
    score = _score(detail.get("severity"))
    # GuardDuty: high / medium / low; a score that is not one is shown as it came
    severity = "unknown" if score is None else "critical" if score >= 7 else "warning" if score >= 4 else "info"
    resource = detail.get("resource") or {}
    cluster = (resource.get("eksClusterDetails") or {}).get("name")
    k8s = resource.get("kubernetesDetails") or {}
    user = (k8s.get("kubernetesUserDetails") or {}).get("username")
    workload = k8s.get("kubernetesWorkloadDetails") or {}
    region = _region(detail.get("region", event.get("region")))
    partition = event_partition(event, detail.get("arn"))
    finding = _q(str(detail.get("id", "")))
    url = console_url(partition, region, f"guardduty/home?region={region}#/findings?macros=current&fId={finding}")
    shown = _shown(detail.get("severity")) if score is None else f"{score:g}"
    pairs = [("Type", str(detail.get("type", "-"))), ("Severity", shown), ("Cluster", str(cluster or "-"))]
    if user:
        pairs.append(("Kubernetes user", str(user)))
    if workload:
        pairs.append(("Workload", f"{workload.get('namespace', '?')}/{workload.get('name', '?')}"))
    title = str(detail.get("title", "finding"))
    blocks = [
        header(f"{_plain_emoji(severity)} GuardDuty: {title}"),
        section(escape(str(detail.get("description", "")))),
        fields(pairs),
        context(
            f"{link(url, 'Finding in the console')} · account {escape(str(detail.get('accountId', '-')))} · {region}"
        ),
    ]
    return SlackMessage(
        "guardduty-finding",
        severity,
        f"{EMOJI[severity]} GuardDuty: {escape(title)}",
        blocks,
        cluster,
        title=f"GuardDuty: {title}",
        # GuardDuty publishes a finding again as it recurs (same id): those are the repeats a dedup should fold
        summary=f"{detail.get('description', '')} (finding {detail.get('id', '-')})",
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
    region = _region(event.get("region"))
    partition = event_partition(event, arn, *entities[:1])
    url = console_url(partition, region, f"health/home?region={region}#/account/event-log?eventID={_q(arn)}")
    code_name = str(detail.get("eventTypeCode", "event"))
    pairs = [
        ("Event", code_name),
        ("Category", category or "-"),
        ("Starts", str(detail.get("startTime", "-"))),
        ("Service", str(detail.get("service", "-"))),
    ]
    blocks = [
        header(f"{_plain_emoji(severity)} AWS Health: {code_name}"),
        fields(pairs),
        section(escape(str(description))),
    ]
    if entities:
        blocks.append(lines_section([f"`{escape(e)}`" for e in entities], title="Affected"))
    blocks.append(context(f"{link(url, 'Event in AWS Health')} · {region}"))
    cluster = entities[0].rsplit("/", 1)[-1] if entities and ":cluster/" in entities[0] else None
    return SlackMessage(
        "aws-health",
        severity,
        f"{EMOJI[severity]} AWS Health {escape(code_name)}",
        blocks,
        cluster,
        title=f"AWS Health: {code_name}",
        summary=f"{description} ({arn or '-'})",  # an update of the event has a new description: not a repeat
    )


# -- anything else ----------------------------------------------------------------------------------------------


def fallback(message: str, subject: str | None, topic: str) -> SlackMessage:
    """The message as it came (pretty-printed when it is JSON), under its subject."""
    try:
        pretty = json.dumps(json.loads(message), indent=1, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser or the printer goes
        pretty = message
    title = subject or f"Message on {topic}"
    blocks = [header(f"{_plain_emoji('unknown')} {title}"), code(pretty), context(f"eksops · from {escape(topic)}")]
    return SlackMessage("other", "unknown", escape(title), blocks, title=title, summary=message)


EVENT_FORMATTERS: dict[tuple[str, str], Callable[[Mapping[str, Any], str | None], SlackMessage]] = {
    ("aws.ecr", "ECR Image Scan"): _ecr_scan,
    ("aws.guardduty", "GuardDuty Finding"): _guardduty,
    ("aws.health", "AWS Health Event"): _health,
}


def format_sns(message: str, subject: str | None, topic_arn: str) -> SlackMessage:
    """The Slack message for one SNS message, whatever it is: its own layout when the kind is known and the
    message fits it, otherwise the message as it came. Never raises for what the message holds."""
    topic = topic_arn.rsplit(":", 1)[-1]
    try:
        body = json.loads(message)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes ("[" * 100000)
        body = None
    formatter = _formatter_for(body, topic_arn) if isinstance(body, dict) else None
    if formatter is not None:
        try:
            return formatter(body, subject)
        except Exception as exc:  # any shape a layout did not expect (or a bug in one): shown as text, never lost
            log.warning("a message did not fit its layout (%s); posted as text", type(exc).__name__)
    return fallback(message, subject, topic)


def _formatter_for(
    body: Mapping[str, Any], topic_arn: str
) -> Callable[[Mapping[str, Any], str | None], SlackMessage] | None:
    if "AlarmName" in body and "NewStateValue" in body:
        return _alarm
    if body.get("source") == "eksops" and "kind" in body:
        # eksops links to the console of its own partition: the topic's
        return functools.partial(_envelope, partition=partition_of(topic_arn) or "aws")
    return EVENT_FORMATTERS.get((str(body.get("source")), str(body.get("detail-type"))))
