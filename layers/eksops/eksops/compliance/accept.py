"""Accepted findings: COMPLIANCE_ACCEPT entries and ``eksops.io/accept-<rule-id>`` annotations, and whether they hold.

A finding can be accepted as it is, with a reason and an optional expiry, in two ways:

* a COMPLIANCE_ACCEPT entry: ``{"rule": "<rule id>", "resource": "<glob>", "cluster": "<glob>", "reason": "...",
  "expires": "YYYY-MM-DD"}`` (``cluster`` and ``expires`` optional). Entries are checked at start-up: an unknown
  rule id, a missing reason or a malformed date is a ConfigError naming COMPLIANCE_ACCEPT and the entry's index.
  Globs are ``fnmatch`` patterns matched against the whole resource string (``*`` also matches ``/``).
* an annotation on the Kubernetes object or on its namespace: ``eksops.io/accept-<rule-id>: "<reason>[;
  expires=YYYY-MM-DD]"``.

An acceptance holds through its expiry date (UTC) and has expired from the next day on. An accepted finding is
reported as accepted with its reason, never hidden; a finding whose only acceptances expired (or are malformed
annotations) stays open and its report says why the acceptance did not hold.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from eksops import config
from eksops.compliance.config import COMPLIANCE_ACCEPT
from eksops.compliance.model import Acceptance, Violation
from eksops.errors import ConfigError

__all__ = ["ANNOTATION_PREFIX", "AcceptEntry", "Acceptances", "Verdict", "parse_annotation", "parse_entries"]

ANNOTATION_PREFIX = "eksops.io/accept-"
MAX_REASON = 500  # characters of a reason kept in reports (an annotation can hold far more)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EXPIRES = re.compile(r"expires\s*=\s*(?P<date>\S*)", re.IGNORECASE)
_KEYS = frozenset({"rule", "resource", "cluster", "reason", "expires"})


@dataclass(frozen=True)
class AcceptEntry:
    """One COMPLIANCE_ACCEPT entry: ``rule`` accepted on resources matching ``resource`` (in clusters matching
    ``cluster``; None: every cluster), for ``reason``, until ``expires`` (None: no expiry)."""

    index: int
    rule: str
    resource: str
    reason: str
    cluster: str | None = None
    expires: date | None = None

    def matches(self, rule: str, cluster: str, resource: str) -> bool:
        return (
            rule == self.rule
            and fnmatch.fnmatchcase(resource, self.resource)
            and (self.cluster is None or fnmatch.fnmatchcase(cluster, self.cluster))
        )

    @property
    def source(self) -> str:
        return f"config {COMPLIANCE_ACCEPT}[{self.index}]"


def _date(raw: str) -> date:
    """A YYYY-MM-DD date (date.fromisoformat alone also takes other ISO shapes, such as 20250101)."""
    if not _DATE.fullmatch(raw):
        raise ValueError(f"{raw[:40]!r} is not a date of the form YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a valid date") from None


def _shape_problem(item: Mapping[str, Any]) -> str | None:
    unknown = sorted(str(k) for k in set(item) - _KEYS)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}"
    for key in ("rule", "resource", "reason"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            return f'"{key}" is missing or not a non-empty string'
    for key in ("cluster", "expires"):
        if key in item and (not isinstance(item[key], str) or not item[key].strip()):
            return f'"{key}" must be a non-empty string when given'
    return None


def _entry(index: int, item: Any, known: Collection[str]) -> AcceptEntry:
    def fail(problem: str) -> ConfigError:
        return ConfigError(COMPLIANCE_ACCEPT, f"entry {index}: {problem}")

    if not isinstance(item, Mapping):
        raise fail('must be a JSON object {"rule", "resource", "reason", optional "cluster" and "expires"}')
    problem = _shape_problem(item)
    if problem:
        raise fail(problem)
    rule = item["rule"].strip()
    if rule not in known:
        raise fail(f'"rule": unknown rule id {rule[:80]!r}; see docs/compliance.md for the rule ids')
    expires = None
    if "expires" in item:
        try:
            expires = _date(item["expires"].strip())
        except ValueError as exc:
            raise fail(f'"expires": {exc}') from None
    return AcceptEntry(
        index=index,
        rule=rule,
        resource=item["resource"].strip(),
        reason=item["reason"].strip()[:MAX_REASON],
        cluster=item["cluster"].strip() if "cluster" in item else None,
        expires=expires,
    )


def parse_entries(raw: str, known: Collection[str]) -> tuple[AcceptEntry, ...]:
    """COMPLIANCE_ACCEPT parsed and checked against the rule ids in ``known``; ConfigError names the bad entry."""
    if not raw.strip():
        return ()
    items = config.parse_json(COMPLIANCE_ACCEPT, raw)
    if not isinstance(items, list):
        raise ConfigError(COMPLIANCE_ACCEPT, 'must be a JSON list of {"rule", "resource", "reason", ...} objects')
    return tuple(_entry(index, item, known) for index, item in enumerate(items))


def parse_annotation(value: str) -> tuple[str, date | None]:
    """``"<reason>[; expires=YYYY-MM-DD]"`` -> (reason, expiry); ValueError says what is wrong with it."""
    reason, expires = value.strip(), None
    head, sep, tail = reason.rpartition(";")
    match = _EXPIRES.fullmatch(tail.strip()) if sep else None
    if match:
        reason, expires = head.strip(), _date(match["date"])
    if not reason:
        raise ValueError("it gives no reason")
    return reason[:MAX_REASON], expires


@dataclass(frozen=True)
class Verdict:
    """Whether a finding is accepted (``accepted``), and why an acceptance that applies did not hold (``note``)."""

    accepted: Acceptance | None = None
    note: str | None = None


class Acceptances:
    """Judges the violations of one cluster's sweep against the config entries and the annotations, on ``today``."""

    def __init__(self, entries: tuple[AcceptEntry, ...], *, cluster: str, today: date) -> None:
        self._entries = entries
        self._cluster = cluster
        self._today = today

    def judge(self, rule: str, violation: Violation, namespace_annotations: Mapping[str, str] | None) -> Verdict:
        """The first acceptance that holds (the object's annotation, its namespace's, then COMPLIANCE_ACCEPT in
        order); else a note on the first one that applied but expired or could not be read."""
        notes: list[str] = []
        key = ANNOTATION_PREFIX + rule
        where = f"namespace/{violation.namespace}" if violation.namespace else ""
        candidates = [
            (violation.annotations.get(key), f"annotation {key} on {violation.resource}"),
            ((namespace_annotations or {}).get(key) if where else None, f"annotation {key} on {where}"),
        ]
        for value, source in candidates:
            if value is None:
                continue
            try:
                reason, expires = parse_annotation(str(value))
            except ValueError as exc:
                notes.append(f"{source} ignored: {exc}")
                continue
            verdict = self._hold(reason, expires, source, notes)
            if verdict:
                return verdict
        for entry in self._entries:
            if entry.matches(rule, self._cluster, violation.resource):
                verdict = self._hold(entry.reason, entry.expires, entry.source, notes)
                if verdict:
                    return verdict
        return Verdict(note="; ".join(notes) or None)

    def _hold(self, reason: str, expires: date | None, source: str, notes: list[str]) -> Verdict | None:
        if expires is not None and expires < self._today:
            notes.append(f"acceptance by {source} ({reason}) expired on {expires.isoformat()}")
            return None
        return Verdict(Acceptance(reason=reason, expires=expires.isoformat() if expires else None, source=source))
