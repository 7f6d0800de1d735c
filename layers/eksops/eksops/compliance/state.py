"""The findings each cluster's last sweep saw, in DynamoDB: what is new, and what was resolved since.

Table (COMPLIANCE_TABLE): partition key ``cluster`` (S), sort key ``finding`` (S, the finding's key
``<rule>|<resource>``), TTL attribute ``expires_at`` (epoch seconds). Every sweep that sees a finding writes it again
with a fresh ``expires_at`` (now + COMPLIANCE_STATE_DAYS), so only the state of clusters (and rules) no sweep has
seen for that long expires. ``first_seen`` is kept across sweeps (Security Hub's CreatedAt).

The service decides; this module reads and writes: a finding is *new* when the previous state does not hold its key;
it is *resolved* when the previous state holds it, this sweep did not find it, and its rule ran to the end (a rule
not run, or failed, proves nothing: its findings are left as they were). Remediated findings are written too, so the
next sweep, not finding them, reports them resolved.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eksops.compliance.model import Finding
from eksops.errors import TemporaryError

__all__ = ["StateStore", "StoredFinding", "sort_key"]

BATCH = 25  # BatchWriteItem's limit
MAX_SORT_KEY_BYTES = 1024  # DynamoDB's limit for a sort key
UNPROCESSED_TRIES = 5
EVIDENCE_CHARS = 1000  # evidence kept in the state (it is shown again only for a resolved finding)


def sort_key(key: str) -> str:
    """The item's sort key: the finding key, or for a key over DynamoDB's 1024 bytes its start and a hash."""
    if len(key.encode()) <= MAX_SORT_KEY_BYTES:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return key.encode()[: MAX_SORT_KEY_BYTES - 66].decode(errors="ignore") + "#" + digest


@dataclass(frozen=True)
class StoredFinding:
    """A finding as the last sweep left it."""

    rule: str
    resource: str
    severity: str
    title: str
    status: str
    first_seen: str  # ISO 8601, UTC
    last_seen: str
    category: str = ""
    evidence: str = ""
    fix: str = ""

    @property
    def key(self) -> str:
        return f"{self.rule}|{self.resource}"

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "resource": self.resource,
            "severity": self.severity,
            "title": self.title,
            "status": self.status,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StoredFinding:
        def text(name: str) -> str:
            return str((item.get(name) or {}).get("S", ""))

        return cls(
            rule=text("rule"),
            resource=text("resource"),
            severity=text("severity"),
            title=text("title"),
            status=text("status"),
            first_seen=text("first_seen"),
            last_seen=text("last_seen"),
            category=text("category"),
            evidence=text("evidence"),
            fix=text("fix"),
        )


class StateStore:
    """Reads and writes one table through a DynamoDB client (the low-level API: no boto3 resource layer)."""

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        days: int = 30,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dynamodb = dynamodb
        self.table = table_name
        self.days = days
        self._clock = clock
        self._sleep = sleep

    def load(self, cluster: str) -> dict[str, StoredFinding]:
        """Every finding stored for ``cluster``, by key (consistent read: a sweep right after another sees it)."""
        found: dict[str, StoredFinding] = {}
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#c = :c",
            ExpressionAttributeNames={"#c": "cluster"},
            ExpressionAttributeValues={":c": {"S": cluster}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                stored = StoredFinding.from_item(item)
                found[stored.key] = stored
        return found

    def save(
        self,
        cluster: str,
        findings: Iterable[Finding],
        *,
        previous: Mapping[str, StoredFinding],
        resolved: Iterable[str],
        now: str,
    ) -> int:
        """Write ``findings`` (first_seen kept from ``previous``) and delete the ``resolved`` keys; returns the
        number of items written or deleted. Findings of rules that did not run are not touched."""
        expires_at = str(int(self._clock()) + self.days * 86_400)
        requests: list[dict[str, Any]] = []
        written: set[str] = set()
        for finding in findings:
            if finding.key in written:
                continue
            written.add(finding.key)
            before = previous.get(finding.key)
            requests.append({"PutRequest": {"Item": self._item(cluster, finding, before, now, expires_at)}})
        for key in resolved:
            if key not in written:
                requests.append(
                    {"DeleteRequest": {"Key": {"cluster": {"S": cluster}, "finding": {"S": sort_key(key)}}}}
                )
        for start in range(0, len(requests), BATCH):
            self._write(requests[start : start + BATCH])
        return len(requests)

    def _item(
        self, cluster: str, finding: Finding, before: StoredFinding | None, now: str, expires_at: str
    ) -> dict[str, Any]:
        return {
            "cluster": {"S": cluster},
            "finding": {"S": sort_key(finding.key)},
            "rule": {"S": finding.rule},
            "resource": {"S": finding.resource},
            "severity": {"S": str(finding.severity)},
            "category": {"S": str(finding.category)},
            "title": {"S": finding.title},
            "status": {"S": finding.status},
            "evidence": {"S": finding.evidence[:EVIDENCE_CHARS] or "-"},
            "fix": {"S": finding.fix or "-"},
            "first_seen": {"S": before.first_seen if before and before.first_seen else now},
            "last_seen": {"S": now},
            "expires_at": {"N": expires_at},
        }

    def _write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self.table: requests}
        for attempt in range(UNPROCESSED_TRIES):
            response = self._dynamodb.batch_write_item(RequestItems=pending)
            pending = {k: v for k, v in (response.get("UnprocessedItems") or {}).items() if v}
            if not pending:
                return
            self._sleep(min(2.0, 0.1 * 2**attempt))  # DynamoDB returns unprocessed items when throttled
        left = sum(len(v) for v in pending.values())
        raise TemporaryError(f"DynamoDB table {self.table}: {left} finding(s) left unprocessed after retries")
