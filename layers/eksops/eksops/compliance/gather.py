"""One report per compliance sweep: each cluster's part records a compact report, the part that completes the sweep
posts one digest.

The parts of a sweep run in separate invocations, minutes apart, retried and dead-lettered on their own, so what they
share lives in DynamoDB: the state table (COMPLIANCE_TABLE), partition ``cluster = "#sweep"`` (no EKS cluster name can
start with '#', so these items never mix with a cluster's findings), sort key ``finding`` = the sweep's run_id:

* ``expected`` (SS): the clusters the fan-out put a continuation for; ``done`` (SS): those that reported;
* ``reports`` (M): cluster -> the JSON of its compact report (:func:`compact`, at most COMPACT_BYTES, so 100 clusters
  stay well under DynamoDB's 400 KB item limit);
* ``started_at`` (S, ISO 8601), ``expires_at`` (N, the table's TTL: GATHER_DAYS after the fan-out);
* ``posted`` (S): set by whoever claimed the digest (a stamp and a token, so a failed publish releases its own claim
  only).

Every write is one UpdateItem, atomic and conditional: a retried part adds itself to ``done`` again (a set: no
change), a part of a sweep whose digest was posted already is told so, and of two parts that both see the sweep
complete, or a part and a fan-out posting a stale sweep, exactly one wins the claim.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from eksops.notify import Message
from eksops.notify import Severity as MessageSeverity
from eksops.notify.publish import ENVELOPE_LINES
from eksops.notify.severity import rank

if TYPE_CHECKING:
    from eksops.compliance.report import ClusterReport

__all__ = [
    "GATHER_MAX_CLUSTERS",
    "PARTITION",
    "STALE_AFTER",
    "Gathered",
    "SweepGather",
    "compact",
    "digest_message",
    "iso",
]

PARTITION = "#sweep"
GATHER_MAX_CLUSTERS = 100  # more clusters than this: one report per cluster (the item must stay under 400 KB)
GATHER_DAYS = 3  # TTL of a sweep's item: long after its digest, short enough that the partition stays small
STALE_AFTER = timedelta(hours=3)  # a sweep not complete by then has a part that died: the next fan-out posts it
COMPACT_LINES = 10  # lines of a cluster's report kept for the digest
LINE_CHARS = 300
SUMMARY_CHARS = 500
COMPACT_BYTES = 3000  # one cluster's compact report, as JSON
DIGEST_LINES = ENVELOPE_LINES  # the lines an envelope carries
KEPT_COUNTS = ("open", "new", "reopened", "resolved", "accepted", "remediated", "not_run", "errors")
NOT_REPORTED = "their part never reported: see the compliance_sweep dead-letter queue and the function's logs"


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and Z (the shape Security Hub's ASFF dates take; sorts as text)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(report: ClusterReport, message: Message) -> dict[str, Any]:
    """What the digest keeps of one cluster's report: its message's severity, title, summary and first lines, and
    the counts; at most COMPACT_BYTES as JSON (lines are dropped from the end until it fits)."""
    counts = report.counts()
    title = message.title
    if report.status in ("gone", "not-active"):  # its message would say "0 open": it was not checked at all
        title = f"Compliance sweep of {report.cluster}: not swept ({report.status})"
    data: dict[str, Any] = {
        "cluster": report.cluster,
        "status": report.status,
        "severity": str(message.severity),
        "title": _clip(title, LINE_CHARS),
        "summary": _clip(message.summary, SUMMARY_CHARS),
        "counts": {k: counts[k] for k in (*KEPT_COUNTS, "by_severity")},
        "state": report.state,
        "dry_run": report.dry_run,
        "account": report.account,
        "region": report.region,
        "lines": [_clip(line, LINE_CHARS) for line in sorted(message.lines, key=_news_first)[:COMPACT_LINES]],
    }
    while len(json.dumps(data).encode()) > COMPACT_BYTES and data["lines"]:
        data["lines"].pop()
    return data


def _news_first(line: str) -> int:
    """What a digest keeps of a cluster's lines, first: errors, then new and reopened findings, then what was resolved,
    then the other open findings, not-run rules and notes (the report's own order within each)."""
    if line.startswith("error "):
        return 0
    if " NEW " in line or " REOPENED " in line:
        return 1
    return 2 if line.startswith("resolved ") else 3


@dataclass(frozen=True)
class Gathered:
    """A sweep's item as DynamoDB returned it."""

    run_id: str
    expected: frozenset[str] = frozenset()
    done: frozenset[str] = frozenset()
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: str = ""
    posted: str | None = None

    @property
    def complete(self) -> bool:
        """Every cluster the fan-out dispatched has reported (a sweep that dispatched nothing never completes)."""
        return bool(self.expected) and self.expected <= self.done

    @property
    def missing(self) -> list[str]:
        return sorted(self.expected - self.done)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Gathered:
        reports: dict[str, dict[str, Any]] = {}
        for cluster, value in ((item.get("reports") or {}).get("M") or {}).items():
            try:
                data = json.loads(value.get("S", ""))
            except (ValueError, AttributeError):
                data = None
            reports[cluster] = data if isinstance(data, dict) else {"cluster": cluster, "title": cluster, "lines": []}
        posted = (item.get("posted") or {}).get("S")
        return cls(
            run_id=str((item.get("finding") or {}).get("S", "")),
            expected=frozenset((item.get("expected") or {}).get("SS", [])),
            done=frozenset((item.get("done") or {}).get("SS", [])),
            reports=reports,
            started_at=str((item.get("started_at") or {}).get("S", "")),
            posted=str(posted) if posted else None,
        )


class SweepGather:
    """The "#sweep" items of the state table, through a DynamoDB client (the low-level API, as StateStore)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self.table = table_name

    def _key(self, run_id: str) -> dict[str, Any]:
        return {"cluster": {"S": PARTITION}, "finding": {"S": run_id}}

    def _conditional(self, run_id: str, **params: Any) -> Gathered | None:
        """UpdateItem returning the item after it; None when its condition does not hold."""
        try:
            response = self._dynamodb.update_item(
                TableName=self.table, Key=self._key(run_id), ReturnValues="ALL_NEW", **params
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return Gathered.from_item(response.get("Attributes") or {})

    def open(self, run_id: str, clusters: Iterable[str], *, now: datetime) -> None:
        """Expect ``clusters`` in sweep ``run_id``. A retried fan-out (same run_id) adds to ``expected`` and keeps
        ``started_at``, ``done`` and ``reports``."""
        names = sorted(set(clusters))
        if not names:
            return
        self._dynamodb.update_item(
            TableName=self.table,
            Key=self._key(run_id),
            UpdateExpression="SET started_at = if_not_exists(started_at, :now), "
            "expires_at = if_not_exists(expires_at, :expires), reports = if_not_exists(reports, :none) "
            "ADD expected :names",
            ExpressionAttributeValues={
                ":now": {"S": iso(now)},
                ":expires": {"N": str(int(now.timestamp()) + GATHER_DAYS * 86_400)},
                ":none": {"M": {}},
                ":names": {"SS": names},
            },
        )

    def forget(self, run_id: str, clusters: Iterable[str]) -> Gathered | None:
        """No longer expect ``clusters`` (their continuation could not be put): the item after, or None if absent."""
        names = sorted(set(clusters))
        if not names:
            return None
        return self._conditional(
            run_id,
            UpdateExpression="DELETE expected :names",
            ConditionExpression="attribute_exists(#k)",
            ExpressionAttributeNames={"#k": "cluster"},
            ExpressionAttributeValues={":names": {"SS": names}},
        )

    def record(self, run_id: str, cluster: str, report: Mapping[str, Any]) -> Gathered | None:
        """Record ``cluster``'s compact report; the item after, or None when the sweep has no open item for it: no
        item (a sweep on its own), or its digest was posted without this cluster (a part that came too late)."""
        return self._conditional(
            run_id,
            UpdateExpression="SET reports.#c = :report ADD done :cluster",
            ConditionExpression="attribute_exists(#k) AND (attribute_not_exists(posted) OR contains(done, :name))",
            ExpressionAttributeNames={"#k": "cluster", "#c": cluster},
            ExpressionAttributeValues={
                ":report": {"S": json.dumps(dict(report), default=str)},
                ":cluster": {"SS": [cluster]},
                ":name": {"S": cluster},
            },
        )

    def claim(self, run_id: str, *, now: datetime) -> Gathered | None:
        """Claim the sweep's digest: the item after (with this claim's ``posted``), or None when another part or
        fan-out has it."""
        return self._conditional(
            run_id,
            UpdateExpression="SET posted = :claim",
            ConditionExpression="attribute_exists(#k) AND attribute_not_exists(posted)",
            ExpressionAttributeNames={"#k": "cluster"},
            ExpressionAttributeValues={":claim": {"S": f"{iso(now)} {uuid.uuid4().hex[:12]}"}},
        )

    def release(self, claimed: Gathered) -> bool:
        """Give up a claim whose digest could not be published, so a retry can claim it; False if it was not ours."""
        if claimed.posted is None:
            return False
        return (
            self._conditional(
                claimed.run_id,
                UpdateExpression="REMOVE posted",
                ConditionExpression="posted = :claim",
                ExpressionAttributeValues={":claim": {"S": claimed.posted}},
            )
            is not None
        )

    def stale(self, *, before: datetime) -> list[Gathered]:
        """Sweeps started before ``before`` whose digest nobody claimed (a part died, or never ran)."""
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#k = :partition",
            FilterExpression="attribute_not_exists(posted) AND started_at < :before",
            ExpressionAttributeNames={"#k": "cluster"},
            ExpressionAttributeValues={":partition": {"S": PARTITION}, ":before": {"S": iso(before)}},
            ConsistentRead=True,
        )
        return [Gathered.from_item(item) for page in pages for item in page.get("Items", [])]


# -- the digest ---------------------------------------------------------------------------------------------------


def _order(report: Mapping[str, Any]) -> tuple[int, int, str]:
    counts = report.get("counts") or {}
    return (-rank(str(report.get("severity", "info"))), -int(counts.get("open") or 0), str(report.get("cluster")))


def _totals(reports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    for report in reports:
        counts = report.get("counts") or {}
        totals.update({k: int(v) for k, v in counts.items() if isinstance(v, int)})
        by_severity.update({k: int(v) for k, v in (counts.get("by_severity") or {}).items()})
    return {**totals, "by_severity": {k: n for k, n in by_severity.items() if n}}


def _lines(reports: Sequence[Mapping[str, Any]], missing: list[str]) -> list[str]:
    """One line per cluster first (its title), then each cluster's first lines: Slack shows the lines of a kind
    without its own layout in one section of 3,000 characters, so every cluster's headline comes before details."""
    head = [_clip(f"not reported: {', '.join(missing)} ({NOT_REPORTED})", 1000)] if missing else []
    head += [str(r.get("title", r.get("cluster"))).removeprefix("Compliance sweep of ") for r in reports]
    each = min(COMPACT_LINES, max(0, DIGEST_LINES - len(head)) // max(1, len(reports)))
    details = [f"{r.get('cluster')}: {line}" for r in reports for line in list(r.get("lines") or [])[:each]]
    return (head + details)[:DIGEST_LINES]


def digest_message(item: Gathered, *, dry_run: bool, stale: bool = False) -> Message:
    """The one report of sweep ``item``: kind ``compliance.sweep``, the highest severity of its clusters' reports
    (warning at least when a cluster did not report), a line per cluster, then their first lines."""
    reports = sorted(item.reports.values(), key=_order)
    missing = item.missing
    totals = _totals(reports)
    dry_run = any(r.get("dry_run") for r in reports) if reports else dry_run
    with_state = any(r.get("state") for r in reports)
    severity = max((str(r.get("severity", "info")) for r in reports), key=rank, default="info")
    if missing and rank(severity) < rank(MessageSeverity.WARNING):
        severity = MessageSeverity.WARNING
    title = f"Compliance sweep {item.run_id[:8]}: {len(reports)} cluster(s), {totals.get('open', 0)} open"
    if with_state:
        title += f" ({totals.get('new', 0)} new, {totals.get('resolved', 0)} resolved)"
    if missing:
        title += f", {len(missing)} not reported"
    severities = ", ".join(f"{n} {s}" for s, n in totals["by_severity"].items()) or "none"
    summary = f"{len(reports)} cluster(s) swept: {totals.get('open', 0)} open finding(s) ({severities})"
    if with_state:
        summary += f", {totals.get('new', 0)} new, {totals.get('resolved', 0)} resolved"
    if missing:
        summary += f"; {len(missing)} cluster(s) not reported" + (" after 3 hours" if stale else "")
    alone = str(reports[0].get("cluster")) if len(reports) == 1 and not missing else None  # Slack shows it
    accounts = {r.get("account") for r in reports if r.get("account")}
    regions = {r.get("region") for r in reports if r.get("region")}
    return Message(
        kind="compliance.sweep",
        severity=MessageSeverity(severity if severity in set(MessageSeverity) else "info"),
        title=title + (" (dry run)" if dry_run else ""),
        summary=summary + ".",
        details={
            "run_id": item.run_id,
            "started_at": item.started_at,
            "dry_run": dry_run,
            "reported": len(reports),
            "counts": totals,
            "missing": missing,
            "clusters": reports,
        },
        cluster=alone,
        account=str(next(iter(accounts))) if len(accounts) == 1 else None,
        region=str(next(iter(regions))) if len(regions) == 1 else None,
        lines=tuple(_lines(reports, missing)),
    )
