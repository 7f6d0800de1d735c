"""Exports one cluster's findings to AWS Security Hub in the AWS Security Finding Format (COMPLIANCE_SECURITY_HUB).

Each finding is imported (BatchImportFindings, 100 per call) under the account's default product
``arn:<partition>:securityhub:<region>:<account>:product/<account>/default``, with a stable Id per cluster and
finding key, so a later sweep updates the same Security Hub finding:

* open findings: Compliance FAILED, RecordState ACTIVE; remediated in this sweep: Compliance PASSED;
* accepted findings: Compliance FAILED with Workflow SUPPRESSED, the reason in the description;
* resolved findings (in the last sweep's state, not found now): Compliance PASSED, RecordState ARCHIVED.

BatchImportFindings sets Workflow only when it creates a finding (afterwards the field belongs to Security Hub's
users), so a finding whose acceptance began or ended after it was first imported has its workflow set through
BatchUpdateFindings (SUPPRESSED with the reason as a note, or back to NEW). Failed findings of a batch are returned,
never dropped silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.compliance.model import Finding, Severity

if TYPE_CHECKING:
    from eksops.compliance.report import ClusterReport
    from eksops.compliance.state import StoredFinding

__all__ = ["BATCH", "ExportResult", "SecurityHubExport", "finding_id", "product_arn"]

BATCH = 100  # BatchImportFindings and BatchUpdateFindings take at most 100 findings per call
SCHEMA_VERSION = "2018-10-08"
TYPES = ["Software and Configuration Checks/AWS Security Best Practices"]
MAX_ID = 512
MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_RECOMMENDATION = 512
MAX_NOTE = 512
LABELS = {
    Severity.CRITICAL: "CRITICAL",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MEDIUM",
    Severity.LOW: "LOW",
    Severity.INFO: "INFORMATIONAL",
}
_PASSED = frozenset({"remediated"})  # fixed in this sweep: the finding's control passes now
_SUPPRESSED = "accepted"


def product_arn(partition: str, region: str, account: str) -> str:
    """The account's own default product: findings a customer imports about its own resources."""
    return f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"


def finding_id(region: str, account: str, cluster: str, key: str) -> str:
    """The stable ASFF Id of a finding (at most 512 characters: a long key is cut and hashed)."""
    full = f"eksops/{region}/{account}/{cluster}/{key}"
    if len(full) <= MAX_ID:
        return full
    return full[: MAX_ID - 65] + "#" + hashlib.sha256(full.encode()).hexdigest()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ExportResult:
    """What one export did: findings imported, workflow updates made, and every finding that failed."""

    imported: int = 0
    archived: int = 0  # resolved findings imported as ARCHIVED (part of imported)
    workflow_updated: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {"id", "code", "message"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "archived": self.archived,
            "workflow_updated": self.workflow_updated,
            "failed": self.failed,
        }


class SecurityHubExport:
    """Imports findings through a Security Hub client (the region of the client is where they land)."""

    def __init__(self, securityhub: Any) -> None:
        self._securityhub = securityhub

    @property
    def region(self) -> str:
        return str(self._securityhub.meta.region_name)

    def export(self, report: ClusterReport, *, previous: Mapping[str, StoredFinding] | None, now: str) -> ExportResult:
        """Import ``report``'s findings and its resolved ones (archived); ``previous`` is the last sweep's state
        (first seen dates, and which findings were accepted then), None without state; ``now`` is ISO 8601 UTC."""
        previous = previous or {}
        product = product_arn(report.partition, self.region, report.account)
        result = ExportResult()
        asff = [self._asff(report, f, previous.get(f.key), product, now) for f in report.findings]
        asff += [self._resolved(report, r, product, now) for r in report.resolved]
        self._import(asff, result)
        result.archived = sum(1 for a in asff if a["RecordState"] == "ARCHIVED" and a["Id"] not in _ids(result.failed))
        self._workflows(report, previous, product, result)
        return result

    # -- ASFF -----------------------------------------------------------------------------------------------

    def _base(
        self, report: ClusterReport, *, key: str, rule: str, severity: Severity, product: str, created: str, now: str
    ) -> dict[str, Any]:
        return {
            "SchemaVersion": SCHEMA_VERSION,
            "Id": finding_id(self.region, report.account, report.cluster, key),
            "ProductArn": product,
            "ProductName": "eksops",
            "CompanyName": "eksops",
            "GeneratorId": f"eksops/compliance/{rule}",
            "AwsAccountId": report.account,
            "Types": list(TYPES),
            "CreatedAt": created,
            "UpdatedAt": now,
            "FirstObservedAt": created,
            "Severity": {"Label": LABELS[severity], "Original": str(severity)},
            "FindingProviderFields": {
                "Severity": {"Label": LABELS[severity], "Original": str(severity)},
                "Types": list(TYPES),
            },
        }

    def _resources(self, report: ClusterReport, resource: str) -> list[dict[str, Any]]:
        cluster = {
            "Type": "AwsEksCluster",
            "Id": report.cluster_arn
            or f"arn:{report.partition}:eks:{report.region}:{report.account}:cluster/{report.cluster}",
            "Partition": report.partition,
            "Region": report.region or self.region,
            "Details": {"AwsEksCluster": {"Name": report.cluster}},
        }
        if resource == f"cluster/{report.cluster}":
            return [cluster]
        other = {
            "Type": "Other",
            "Id": _cut(f"{cluster['Id']}/{resource}", MAX_ID),
            "Partition": report.partition,
            "Region": cluster["Region"],
            "Details": {"Other": {"cluster": report.cluster, "resource": _cut(resource, 1024)}},
        }
        return [other, cluster]

    def _asff(
        self, report: ClusterReport, finding: Finding, before: StoredFinding | None, product: str, now: str
    ) -> dict[str, Any]:
        created = before.first_seen if before and before.first_seen else now
        asff = self._base(
            report,
            key=finding.key,
            rule=finding.rule,
            severity=finding.severity,
            product=product,
            created=created,
            now=now,
        )
        description = finding.evidence or finding.title
        if finding.accepted:
            until = f" until {finding.accepted.expires}" if finding.accepted.expires else ""
            description = f"Accepted ({finding.accepted.source}{until}): {finding.accepted.reason}. {description}"
        if finding.remediation:
            description = f"{description} Remediation: {finding.remediation}"
        status = "PASSED" if finding.status in _PASSED else "FAILED"
        workflow = "SUPPRESSED" if finding.status == _SUPPRESSED else "RESOLVED" if status == "PASSED" else "NEW"
        asff.update(
            Title=_cut(f"{finding.title} ({finding.resource})", MAX_TITLE),
            Description=_cut(description, MAX_DESCRIPTION),
            Remediation={"Recommendation": {"Text": _cut(finding.fix or "-", MAX_RECOMMENDATION)}},
            Resources=self._resources(report, finding.resource),
            Compliance={"Status": status},
            Workflow={"Status": workflow},
            RecordState="ACTIVE",
            LastObservedAt=now,
            ProductFields=_product_fields(report.cluster, finding.rule, finding.status, str(finding.category)),
        )
        return asff

    def _resolved(self, report: ClusterReport, stored: StoredFinding, product: str, now: str) -> dict[str, Any]:
        try:
            severity = Severity(stored.severity)
        except ValueError:
            severity = Severity.INFO
        asff = self._base(
            report,
            key=stored.key,
            rule=stored.rule,
            severity=severity,
            product=product,
            created=stored.first_seen or now,
            now=now,
        )
        asff.update(
            Title=_cut(f"{stored.title or stored.rule} ({stored.resource})", MAX_TITLE),
            Description=_cut(
                f"Resolved: not found by the sweep of {now}. Last seen: {stored.evidence or '-'}", MAX_DESCRIPTION
            ),
            Remediation={"Recommendation": {"Text": _cut(stored.fix or "-", MAX_RECOMMENDATION)}},
            Resources=self._resources(report, stored.resource),
            Compliance={"Status": "PASSED"},
            Workflow={"Status": "RESOLVED"},
            RecordState="ARCHIVED",
            LastObservedAt=stored.last_seen or now,
            ProductFields=_product_fields(report.cluster, stored.rule, "resolved", stored.category),
        )
        return asff

    # -- calls ----------------------------------------------------------------------------------------------

    def _import(self, asff: list[dict[str, Any]], result: ExportResult) -> None:
        for start in range(0, len(asff), BATCH):
            batch = asff[start : start + BATCH]
            try:
                response = self._securityhub.batch_import_findings(Findings=batch)
            except ClientError as exc:
                # The same error (Security Hub not enabled, access denied) would meet every later batch.
                result.failed += [
                    {"id": a["Id"], "code": error_code(exc), "message": "BatchImportFindings failed"}
                    for a in asff[start:]
                ]
                return
            result.imported += int(response.get("SuccessCount", 0))
            result.failed += [
                {
                    "id": str(f.get("Id", "")),
                    "code": str(f.get("ErrorCode", "")),
                    "message": str(f.get("ErrorMessage", "")),
                }
                for f in response.get("FailedFindings", [])
            ]

    def _workflows(
        self, report: ClusterReport, previous: Mapping[str, StoredFinding], product: str, result: ExportResult
    ) -> None:
        """Workflow changes BatchImportFindings cannot make on an existing finding: acceptance began or ended."""
        failed = _ids(result.failed)
        suppress: dict[str, list[Finding]] = {}
        reopen: list[Finding] = []
        for finding in report.findings:
            before = previous.get(finding.key)
            if before is None:
                continue  # created by this import with its workflow already
            if finding.status == _SUPPRESSED and before.status != _SUPPRESSED and finding.accepted:
                suppress.setdefault(finding.accepted.reason, []).append(finding)
            elif before.status == _SUPPRESSED and finding.status != _SUPPRESSED and finding.status not in _PASSED:
                reopen.append(finding)
        for reason, findings in suppress.items():
            self._update(report, findings, product, failed, result, status="SUPPRESSED", note=f"Accepted: {reason}")
        if reopen:
            note = "No longer accepted (the acceptance expired or was removed)"
            self._update(report, reopen, product, failed, result, status="NEW", note=note)

    def _update(
        self,
        report: ClusterReport,
        findings: Iterable[Finding],
        product: str,
        failed: set[str],
        result: ExportResult,
        *,
        status: str,
        note: str,
    ) -> None:
        ids = [finding_id(self.region, report.account, report.cluster, f.key) for f in findings]
        ids = [i for i in ids if i not in failed]
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            try:
                response = self._securityhub.batch_update_findings(
                    FindingIdentifiers=[{"Id": i, "ProductArn": product} for i in batch],
                    Workflow={"Status": status},
                    Note={"Text": _cut(note, MAX_NOTE), "UpdatedBy": "eksops"},
                )
            except ClientError as exc:
                result.failed += [
                    {"id": i, "code": error_code(exc), "message": "BatchUpdateFindings failed"} for i in batch
                ]
                continue
            result.workflow_updated += len(response.get("ProcessedFindings", []))
            result.failed += [
                {
                    "id": str(u.get("FindingIdentifier", {}).get("Id", "")),
                    "code": str(u.get("ErrorCode", "")),
                    "message": str(u.get("ErrorMessage", "")),
                }
                for u in response.get("UnprocessedFindings", [])
            ]


def _ids(failed: Iterable[Mapping[str, str]]) -> set[str]:
    return {f["id"] for f in failed}


def _product_fields(cluster: str, rule: str, status: str, category: str) -> dict[str, str]:
    return {"eksops/Cluster": cluster, "eksops/Rule": rule, "eksops/Status": status, "eksops/Category": category or "-"}
