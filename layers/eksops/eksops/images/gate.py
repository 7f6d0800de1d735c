"""The vulnerability gate: may an image be committed, given its ECR scan?

:func:`evaluate` turns a :class:`ScanReport` (DescribeImageScanFindings, basic or enhanced scanning) and the
threshold (``BLOCK_ON_SEVERITY``, or an entry's own ``block_on_severity``) into a :class:`GateResult`:

- ``PASS``: the scan finished (basic ``COMPLETE``, enhanced ``ACTIVE``) with no finding at or above the threshold,
  or the gate is off (``NONE``).
- ``HOLD``: not yet known; the update waits, the ``ECR Image Scan`` event or the reconcile releases it. That is a
  scan ``IN_PROGRESS`` or ``PENDING``, a basic scan refused for ``LIMIT_EXCEEDED`` (a later scan will run), and an
  image with **no scan at all**. The last one is held rather than passed on purpose: with the gate on, an
  unscanned image is not known to be clean, and passing it would silently turn the gate off for every repository
  without scan on push. Holding makes that visible in the first report ("no scan"); a scan started later (manual
  StartImageScan, or scan on push switched on) releases it, and an operator who does not scan says so with
  ``NONE``.
- ``BLOCK``: findings at or above the threshold (the alert names the worst of them), or a scan that ended without
  a verdict: ``FAILED``, ``UNSUPPORTED_IMAGE`` (basic scanning cannot read the image, e.g. ``FROM scratch``),
  ``FINDINGS_UNAVAILABLE``, ``SCAN_ELIGIBILITY_EXPIRED``, ``IMAGE_ARCHIVED`` or a status this code does not know.
  Failing closed is the safe side; the alert tells the operator, who can rescan, or set the entry's own
  ``block_on_severity`` to ``NONE`` for an image the scanner cannot read.

Severities rank ``UNDEFINED`` and ``UNTRIAGED`` (unrated) < ``INFORMATIONAL`` < ``LOW`` < ``MEDIUM`` < ``HIGH`` <
``CRITICAL``: a threshold of ``UNDEFINED`` blocks on any finding at all. A severity this code does not know ranks
above ``CRITICAL`` (fail closed). ``findingSeverityCounts`` decides (it counts every finding, while the findings
list is paged); the findings read name the worst ones in the alert. Enhanced findings that are not ``ACTIVE``
(``SUPPRESSED``, ``CLOSED``) are left out of the alert's list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "GateResult", "ScanReport", "Severity", "Verdict", "evaluate", "rank"]

TOP_FINDINGS = 5  # findings named in a block's reason and alert


class Severity(StrEnum):
    """ECR's finding severities, as BLOCK_ON_SEVERITY accepts them."""

    INFORMATIONAL = "INFORMATIONAL"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"
    UNDEFINED = "UNDEFINED"


_RANK = {"UNDEFINED": 0, "UNTRIAGED": 0, "INFORMATIONAL": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4, "CRITICAL": 5}
_UNKNOWN_RANK = 6

_FINISHED = frozenset({"COMPLETE", "ACTIVE"})
_WAITING = frozenset({"IN_PROGRESS", "PENDING", "LIMIT_EXCEEDED"})


def rank(severity: str) -> int:
    """Order of a severity string (unknown ones rank above CRITICAL)."""
    return _RANK.get(severity.upper(), _UNKNOWN_RANK)


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    HOLD = "hold"
    BLOCK = "block"


@dataclass(frozen=True)
class Finding:
    name: str  # the CVE (or other) id; the title when an enhanced finding has no id
    severity: str
    uri: str | None = None
    package: str | None = None
    status: str | None = None  # enhanced scanning: ACTIVE, SUPPRESSED, CLOSED

    @classmethod
    def from_basic(cls, raw: Mapping[str, Any]) -> Finding:
        attributes = {a.get("key"): a.get("value") for a in raw.get("attributes") or [] if isinstance(a, Mapping)}
        return cls(
            name=str(raw.get("name") or "unnamed finding"),
            severity=str(raw.get("severity") or "UNDEFINED"),
            uri=raw.get("uri") or None,
            package=attributes.get("package_name"),
        )

    @classmethod
    def from_enhanced(cls, raw: Mapping[str, Any]) -> Finding:
        details = raw.get("packageVulnerabilityDetails") or {}
        packages = details.get("vulnerablePackages") or []
        uri = details.get("sourceUrl") or next(iter(details.get("referenceUrls") or []), None)
        return cls(
            name=str(details.get("vulnerabilityId") or raw.get("title") or "unnamed finding"),
            severity=str(raw.get("severity") or "UNTRIAGED"),
            uri=uri,
            package=(packages[0].get("name") if packages and isinstance(packages[0], Mapping) else None),
            status=raw.get("status"),
        )


@dataclass(frozen=True)
class ScanReport:
    """An image's scan as DescribeImageScanFindings returns it (findings of every page read)."""

    status: str
    description: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    completed_at: datetime | None = None
    enhanced: bool = False

    @classmethod
    def from_pages(cls, pages: Sequence[Mapping[str, Any]]) -> ScanReport:
        """Build a report from the response pages (status and counts come with the first)."""
        first = pages[0] if pages else {}
        scan = first.get("imageScanStatus") or {}
        body = first.get("imageScanFindings") or {}
        counts = {str(k): int(v) for k, v in (body.get("findingSeverityCounts") or {}).items() if int(v) > 0}
        findings: list[Finding] = []
        enhanced = False
        for page in pages:
            part = page.get("imageScanFindings") or {}
            findings.extend(Finding.from_basic(f) for f in part.get("findings") or [])
            if part.get("enhancedFindings"):
                enhanced = True
                findings.extend(Finding.from_enhanced(f) for f in part["enhancedFindings"])
        return cls(
            status=str(scan.get("status") or "UNKNOWN"),
            description=str(scan.get("description") or ""),
            counts=counts,
            findings=tuple(findings),
            completed_at=body.get("imageScanCompletedAt"),
            enhanced=enhanced or scan.get("status") == "ACTIVE",
        )


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    reason: str
    threshold: Severity | None  # None: the gate is off
    status: str | None = None  # the scan's status; None when the image has no scan
    counts: Mapping[str, int] = field(default_factory=dict)
    blocking: tuple[Finding, ...] = ()  # the worst findings at or above the threshold, for the alert

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


def evaluate(report: ScanReport | None, threshold: Severity | None, *, top: int = TOP_FINDINGS) -> GateResult:
    """The gate's verdict on one image: ``report`` None means the image has no scan (ScanNotFoundException)."""
    if threshold is None:
        status = report.status if report else None
        return GateResult(Verdict.PASS, "the vulnerability gate is off (NONE)", None, status)
    if report is None:
        return GateResult(
            Verdict.HOLD,
            "no scan: waiting for one (turn on scan on push, start a scan, or set the threshold to NONE)",
            threshold,
        )
    status = report.status
    if status in _WAITING:
        return GateResult(Verdict.HOLD, f"scan {status}: waiting for its result", threshold, status, report.counts)
    if status not in _FINISHED:
        detail = f": {report.description}" if report.description else ""
        return GateResult(
            Verdict.BLOCK,
            f"scan {status}{detail}; no verdict on its vulnerabilities, so no commit (fail closed)",
            threshold,
            status,
            report.counts,
        )
    limit = rank(threshold)
    over = {severity: n for severity, n in report.counts.items() if n > 0 and rank(severity) >= limit}
    listed = [
        f for f in report.findings if rank(f.severity) >= limit and (f.status is None or f.status.upper() == "ACTIVE")
    ]
    if not over and listed:  # counts missing but findings listed: the findings decide
        for finding in listed:
            over[finding.severity] = over.get(finding.severity, 0) + 1
    if not over:
        found = sum(report.counts.values())
        note = f" ({found} below it)" if found else ""
        return GateResult(Verdict.PASS, f"no finding at or above {threshold}{note}", threshold, status, report.counts)
    worst = tuple(sorted(listed, key=lambda f: (-rank(f.severity), f.name))[:top])
    total = sum(over.values())
    by_severity = ", ".join(f"{s}: {n}" for s, n in sorted(over.items(), key=lambda item: -rank(item[0])))
    names = "; ".join(f"{f.name} ({f.severity})" for f in worst)
    reason = f"{total} finding{'s' if total != 1 else ''} at or above {threshold} ({by_severity})"
    return GateResult(Verdict.BLOCK, reason + (f": {names}" if names else ""), threshold, status, report.counts, worst)
