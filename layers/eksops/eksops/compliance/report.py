"""One cluster's sweep as reported: findings with their status, what is new and resolved, the rules not run, and
``render`` for ``eksops sweep`` (a table for people, JSON, or SARIF 2.1.0 for code-scanning tools)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eksops import __version__
from eksops.compliance.model import Finding, Rule, Severity

if TYPE_CHECKING:
    from eksops.compliance.state import StoredFinding

__all__ = ["FORMATS", "OPEN_STATUSES", "ClusterReport", "artifact_uri", "render", "sarif"]

FORMATS = ("table", "json", "sarif")
# Statuses of a finding still in place after the sweep (accepted ones are in place too, but accepted).
OPEN_STATUSES = frozenset({"open", "would-remediate", "remediation-failed"})
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads a rule's "security-severity" (0-10) to rank results.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
_CELL = {"rule": 36, "resource": 48, "evidence": 90}


@dataclass
class ClusterReport:
    """What one cluster's sweep found and did."""

    cluster: str
    run_id: str
    dry_run: bool
    status: str = "swept"  # swept, gone (deleted since the fan-out), not-active (CREATING, DELETING, FAILED), failed
    account: str = ""
    region: str = ""
    partition: str = "aws"
    cluster_arn: str = ""
    started_at: str = ""
    finished_at: str = ""
    state: bool = False  # whether the previous sweep's state was compared (new and resolved are known)
    findings: list[Finding] = field(default_factory=list)
    resolved: list[StoredFinding] = field(default_factory=list)
    rules_run: list[str] = field(default_factory=list)  # rules that ran to the end
    not_run: list[dict[str, str]] = field(default_factory=list)  # {"rule", "reason"}
    errors: list[dict[str, str]] = field(default_factory=list)  # {"rule", "stage", "code", "message"}
    notes: list[str] = field(default_factory=list)
    calls: int = 0  # AWS and Kubernetes API calls the rules made
    security_hub: dict[str, Any] | None = None

    # -- views --------------------------------------------------------------------------------------------------

    @property
    def open(self) -> list[Finding]:
        return [f for f in self.findings if f.status in OPEN_STATUSES]

    @property
    def new(self) -> list[Finding]:
        return [f for f in self.findings if f.new]

    @property
    def accepted(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "accepted"]

    @property
    def remediated(self) -> list[Finding]:
        """Findings fixed in this sweep (or, under dry run, that would have been)."""
        return [f for f in self.findings if f.status in ("remediated", "would-remediate")]

    @property
    def reopened(self) -> list[Finding]:
        """Findings accepted in the last sweep and not now (their acceptance expired or was removed)."""
        return [f for f in self.findings if f.reopened]

    def alertable(self, threshold: Severity) -> list[Finding]:
        """Findings still open at or above ``threshold`` that are new, or reopened (accepted in the last sweep: an
        acceptance that ends is news too); without state, every such open finding."""
        return [f for f in self.open if f.severity.rank >= threshold.rank and (f.new or f.reopened or not self.state)]

    def counts(self) -> dict[str, Any]:
        """Open findings by severity, all findings by status, and the totals reports and metrics show."""
        by_severity = Counter(str(f.severity) for f in self.open)
        return {
            "findings": len(self.findings),
            "open": len(self.open),
            "by_severity": {str(s): by_severity.get(str(s), 0) for s in Severity},
            "by_status": dict(sorted(Counter(f.status for f in self.findings).items())),
            "new": len(self.new),
            "reopened": len(self.reopened),
            "resolved": len(self.resolved),
            "accepted": len(self.accepted),
            "remediated": len(self.remediated),
            "not_run": len(self.not_run),
            "errors": len(self.errors),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "account": self.account,
            "region": self.region,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "state": "compared" if self.state else "off",
            "counts": self.counts(),
            "findings": [f.as_dict() for f in _ordered(self.findings)],
            "resolved": [r.as_dict() for r in self.resolved],
            "rules_run": list(self.rules_run),
            "not_run": list(self.not_run),
            "errors": list(self.errors),
            "notes": list(self.notes),
            "calls": self.calls,
            **({"security_hub": self.security_hub} if self.security_hub is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterReport:
        """The report back from ``as_dict`` (a handler's result), so ``eksops sweep`` renders what the function
        returned. Counts are recomputed from the findings."""
        from eksops.compliance.model import Acceptance, Category
        from eksops.compliance.state import StoredFinding

        findings = []
        for raw in data.get("findings") or []:
            accepted = raw.get("accepted")
            findings.append(
                Finding(
                    rule=raw["rule"],
                    title=raw.get("title", ""),
                    severity=Severity(raw["severity"]),
                    category=Category(raw["category"]),
                    cluster=raw.get("cluster", data.get("cluster", "")),
                    resource=raw["resource"],
                    evidence=raw.get("evidence", ""),
                    fix=raw.get("fix", ""),
                    status=raw.get("status", "open"),
                    accepted=Acceptance(accepted["reason"], accepted.get("expires"), accepted.get("source", ""))
                    if accepted
                    else None,
                    remediation=raw.get("remediation"),
                    new=bool(raw.get("new")),
                    acceptance_note=raw.get("acceptance_note"),
                    reopened=bool(raw.get("reopened")),
                )
            )
        resolved = [
            StoredFinding(
                rule=r["rule"],
                resource=r["resource"],
                severity=r.get("severity", ""),
                title=r.get("title", ""),
                status=r.get("status", ""),
                first_seen=r.get("first_seen", ""),
                last_seen=r.get("last_seen", ""),
            )
            for r in data.get("resolved") or []
        ]
        return cls(
            cluster=data["cluster"],
            run_id=data.get("run_id", ""),
            dry_run=bool(data.get("dry_run")),
            status=data.get("status", "swept"),
            account=data.get("account", ""),
            region=data.get("region", ""),
            started_at=data.get("started_at", ""),
            finished_at=data.get("finished_at", ""),
            state=data.get("state") == "compared",
            findings=findings,
            resolved=resolved,
            rules_run=list(data.get("rules_run") or []),
            not_run=list(data.get("not_run") or []),
            errors=list(data.get("errors") or []),
            notes=list(data.get("notes") or []),
            calls=int(data.get("calls") or 0),
            security_hub=data.get("security_hub"),
        )

    def summary_line(self) -> str:
        """One sentence: open findings by severity, then what changed."""
        counts = self.counts()
        severities = ", ".join(f"{n} {s}" for s, n in counts["by_severity"].items() if n) or "none"
        parts = [f"{counts['open']} open finding(s) ({severities})"]
        if self.state:
            reopened = f"{counts['reopened']} reopened, " if counts["reopened"] else ""
            parts.append(f"{counts['new']} new, {reopened}{counts['resolved']} resolved")
        parts += [
            f"{counts[k]} {k.replace('_', ' ')}" for k in ("accepted", "remediated", "not_run", "errors") if counts[k]
        ]
        return "; ".join(parts) + (" (dry run)" if self.dry_run else "")


def _ordered(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.status not in OPEN_STATUSES, f.rule, f.resource))


# -- rendering ----------------------------------------------------------------------------------------------------


def render(reports: Iterable[ClusterReport], fmt: str, *, rules: Mapping[str, Rule] | None = None) -> str:
    """The reports as ``fmt``: "table", "json" or "sarif" (rules: the registry, for SARIF's rule metadata)."""
    reports = list(reports)
    if fmt == "json":
        return json.dumps([r.as_dict() for r in reports], indent=2, default=str)
    if fmt == "sarif":
        if rules is None:
            from eksops.compliance.model import rules as registry

            rules = registry()
        return json.dumps(sarif(reports, rules), indent=2)
    if fmt == "table":
        return "\n\n".join(_table(r) for r in reports) if reports else "no cluster swept"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(report: ClusterReport) -> str:
    where = ", ".join(x for x in (f"account {report.account}" if report.account else "", report.region) if x)
    lines = [f"cluster {report.cluster}" + (f" ({where})" if where else "") + f": {report.status}"]
    if report.status != "swept":
        lines += [f"  {n}" for n in report.notes]
        return "\n".join(lines)
    lines.append(f"  {report.summary_line()}")
    if report.findings:
        rows = [("SEVERITY", "STATUS", "NEW", "RULE", "RESOURCE", "EVIDENCE")]
        details: dict[int, list[str]] = {}
        for finding in _ordered(report.findings):
            rows.append(
                (
                    str(finding.severity),
                    finding.status,
                    "new" if finding.new else "reopened" if finding.reopened else "",
                    _cut(finding.rule, _CELL["rule"]),
                    _cut(finding.resource, _CELL["resource"]),
                    _cut(finding.evidence, _CELL["evidence"]),
                )
            )
            details[len(rows) - 1] = _finding_details(finding)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
            lines += [f"      {d}" for d in details.get(index, [])]
    sections = (
        ("resolved since the last sweep", [f"{r.severity} {r.rule} {r.resource}" for r in report.resolved]),
        ("rules not run", [f"{n['rule']}: {n['reason']}" for n in report.not_run]),
        ("errors", [f"{e['rule']} ({e['stage']}): {e['code']}: {e['message']}" for e in report.errors]),
        ("notes", report.notes),
    )
    for title, items in sections:
        if items:
            lines.append(f"  {title}:")
            lines += [f"    {_cut(item, 200)}" for item in items]
    return "\n".join(lines)


def _finding_details(finding: Finding) -> list[str]:
    out = []
    if finding.accepted:
        until = f", until {finding.accepted.expires}" if finding.accepted.expires else ""
        out.append(f"accepted: {_cut(finding.accepted.reason, 160)} ({finding.accepted.source}{until})")
    if finding.acceptance_note:
        out.append(_cut(finding.acceptance_note, 200))
    if finding.remediation:
        out.append(f"remediation: {_cut(finding.remediation, 200)}")
    return out


def sarif(reports: Iterable[ClusterReport], rules: Mapping[str, Rule]) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run: the rules of the registry, one result per finding (accepted findings carry
    an accepted external suppression with its justification; the rest none)."""
    reports = list(reports)
    ids = sorted(set(rules) | {f.rule for r in reports for f in r.findings})
    index = {rule_id: i for i, rule_id in enumerate(ids)}
    results = [_result(r, f, index[f.rule]) for r in reports for f in _ordered(r.findings)]
    notifications = [
        {"level": "warning", "message": {"text": f"{r.cluster}: {n['rule']} not run: {n['reason']}"}}
        for r in reports
        for n in r.not_run
    ] + [
        {"level": "error", "message": {"text": f"{r.cluster}: {e['rule']} ({e['stage']}): {e['code']}: {e['message']}"}}
        for r in reports
        for e in r.errors
    ]
    invocation: dict[str, Any] = {"executionSuccessful": not any(r.errors for r in reports)}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "eksops",
                        "version": __version__,
                        "rules": [_rule_descriptor(rule_id, rules.get(rule_id)) for rule_id in ids],
                    }
                },
                "invocations": [invocation],
                "results": results,
            }
        ],
    }


def _rule_descriptor(rule_id: str, rule: Rule | None) -> dict[str, Any]:
    if rule is None:  # a finding of a rule this registry does not have (reports read back from elsewhere)
        return {"id": rule_id}
    severity = Severity(rule.severity)
    return {
        "id": rule_id,
        "name": "".join(part.capitalize() for part in rule_id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": {"text": rule.fix},
        "defaultConfiguration": {"level": SARIF_LEVELS[severity]},
        "properties": {
            "category": str(rule.category),
            "severity": str(severity),
            "security-severity": SECURITY_SEVERITY[severity],
            "reference": rule.reference,
            "tags": ["eks", str(rule.category)],
        },
    }


def artifact_uri(cluster: str, resource: str) -> str:
    """Where a finding lies, as SARIF's artifactLocation.uri: ``eks/<cluster>/<resource>``, percent-encoded.

    A relative reference on purpose: SARIF 2.1.0 allows any URI, but GitHub code scanning (the main reader of this
    output) refuses a whole upload whose results lack a physicalLocation, or name one with a scheme other than its
    checkout's ("SARIF URI scheme ... did not match the checkout URI scheme file"), so ``eks://...`` would be lost.
    The region is line 1: code scanning places every result on a line."""
    from urllib.parse import quote

    kind, _, name = resource.partition("/")
    return quote(f"eks/{cluster}/{kind}/{name.lstrip('/')}" if name else f"eks/{cluster}/{kind}", safe="/@:")


def _result(report: ClusterReport, finding: Finding, rule_index: int) -> dict[str, Any]:
    text = f"{finding.title}: {finding.evidence}" if finding.evidence else finding.title
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": SARIF_LEVELS[finding.severity],
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(report.cluster, finding.resource)},
                    "region": {"startLine": 1},
                },
                "logicalLocations": [
                    {
                        "name": finding.resource,
                        "fullyQualifiedName": f"{report.cluster}/{finding.resource}",
                        "kind": "resource",
                    }
                ],
            }
        ],
        "partialFingerprints": {"eksopsFinding/v1": f"{report.cluster}|{finding.key}"},
        "properties": {
            "cluster": report.cluster,
            "severity": str(finding.severity),
            "status": finding.status,
            "new": finding.new,
        },
    }
    if finding.reopened:
        result["properties"]["reopened"] = True
    if finding.remediation:
        result["properties"]["remediation"] = finding.remediation
    if finding.acceptance_note:
        result["properties"]["acceptance_note"] = finding.acceptance_note
    if finding.accepted:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": finding.accepted.reason,
                "properties": {"source": finding.accepted.source, "expires": finding.accepted.expires},
            }
        ]
    return result
