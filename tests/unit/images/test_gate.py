"""The vulnerability gate on DescribeImageScanFindings answers (basic and enhanced scanning shapes)."""

from __future__ import annotations

from typing import Any

import pytest

from eksops.images.gate import Finding, ScanReport, Severity, Verdict, evaluate, rank


def basic(status: str = "COMPLETE", counts: dict[str, int] | None = None, findings: list[Any] | None = None) -> Any:
    """A DescribeImageScanFindings response page of basic scanning."""
    return {
        "imageScanStatus": {"status": status, "description": f"The scan is {status}."},
        "imageScanFindings": {"findingSeverityCounts": counts or {}, "findings": findings or []},
    }


def cve(name: str, severity: str, package: str = "openssl") -> dict[str, Any]:
    return {
        "name": name,
        "severity": severity,
        "uri": f"https://security-tracker.debian.org/tracker/{name}",
        "attributes": [{"key": "package_name", "value": package}, {"key": "package_version", "value": "3.0.2"}],
    }


def enhanced(name: str, severity: str, status: str = "ACTIVE") -> dict[str, Any]:
    return {
        "title": f"{name} - libcurl",
        "severity": severity,
        "status": status,
        "type": "PACKAGE_VULNERABILITY",
        "packageVulnerabilityDetails": {
            "vulnerabilityId": name,
            "sourceUrl": f"https://nvd.nist.gov/vuln/detail/{name}",
            "vulnerablePackages": [{"name": "curl", "version": "7.88.1"}],
        },
    }


CRITICAL_IMAGE = basic(
    counts={"CRITICAL": 2, "HIGH": 1, "LOW": 4},
    findings=[
        cve("CVE-2024-0001", "LOW"),
        cve("CVE-2024-3094", "CRITICAL", "xz-utils"),
        cve("CVE-2023-4863", "HIGH", "libwebp"),
        cve("CVE-2024-2961", "CRITICAL", "glibc"),
    ],
)


def test_critical_findings_block_and_the_alert_names_them() -> None:
    result = evaluate(ScanReport.from_pages([CRITICAL_IMAGE]), Severity.CRITICAL)
    assert result.verdict is Verdict.BLOCK and not result.passed
    assert [f.name for f in result.blocking] == ["CVE-2024-2961", "CVE-2024-3094"]
    assert result.blocking[1] == Finding(
        "CVE-2024-3094", "CRITICAL", "https://security-tracker.debian.org/tracker/CVE-2024-3094", "xz-utils"
    )
    assert (
        result.reason
        == "2 findings at or above CRITICAL (CRITICAL: 2): CVE-2024-2961 (CRITICAL); CVE-2024-3094 (CRITICAL)"
    )
    assert result.status == "COMPLETE" and result.counts == {"CRITICAL": 2, "HIGH": 1, "LOW": 4}


def test_a_lower_threshold_blocks_more_worst_first() -> None:
    result = evaluate(ScanReport.from_pages([CRITICAL_IMAGE]), Severity.HIGH)
    assert result.verdict is Verdict.BLOCK
    assert [f.severity for f in result.blocking] == ["CRITICAL", "CRITICAL", "HIGH"]
    assert result.reason.startswith("3 findings at or above HIGH (CRITICAL: 2, HIGH: 1): ")


def test_findings_below_the_threshold_pass() -> None:
    report = ScanReport.from_pages([basic(counts={"HIGH": 3, "MEDIUM": 1})])
    result = evaluate(report, Severity.CRITICAL)
    assert result.verdict is Verdict.PASS and result.passed
    assert result.reason == "no finding at or above CRITICAL (4 below it)"
    assert evaluate(ScanReport.from_pages([basic()]), Severity.CRITICAL).reason == "no finding at or above CRITICAL"


def test_top_findings_are_capped() -> None:
    findings = [cve(f"CVE-2024-{n:04d}", "CRITICAL") for n in range(20)]
    result = evaluate(ScanReport.from_pages([basic(counts={"CRITICAL": 20}, findings=findings)]), Severity.HIGH, top=3)
    assert len(result.blocking) == 3 and result.reason.startswith("20 findings at or above HIGH")


@pytest.mark.parametrize("status", ["IN_PROGRESS", "PENDING", "LIMIT_EXCEEDED"])
def test_a_scan_that_has_not_finished_holds(status: str) -> None:
    result = evaluate(ScanReport.from_pages([basic(status)]), Severity.CRITICAL)
    assert result.verdict is Verdict.HOLD
    assert result.reason == f"scan {status}: waiting for its result" and result.status == status


def test_a_pending_scan_holds_then_its_completion_releases() -> None:
    held = evaluate(ScanReport.from_pages([basic("IN_PROGRESS")]), Severity.CRITICAL)
    released = evaluate(ScanReport.from_pages([basic("COMPLETE", counts={"MEDIUM": 2})]), Severity.CRITICAL)
    blocked = evaluate(ScanReport.from_pages([CRITICAL_IMAGE]), Severity.CRITICAL)
    assert (held.verdict, released.verdict, blocked.verdict) == (Verdict.HOLD, Verdict.PASS, Verdict.BLOCK)


def test_an_image_with_no_scan_is_held_not_passed() -> None:
    result = evaluate(None, Severity.CRITICAL)
    assert result.verdict is Verdict.HOLD and result.status is None
    assert "no scan" in result.reason and "NONE" in result.reason


@pytest.mark.parametrize(
    "status",
    ["FAILED", "UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE", "SCAN_ELIGIBILITY_EXPIRED", "IMAGE_ARCHIVED", "NEW_STATUS"],
)
def test_a_scan_without_a_verdict_blocks(status: str) -> None:
    result = evaluate(ScanReport.from_pages([basic(status)]), Severity.CRITICAL)
    assert result.verdict is Verdict.BLOCK and result.blocking == ()
    assert result.reason.startswith(f"scan {status}: The scan is {status}.; no verdict")


def test_the_gate_off_passes_everything() -> None:
    for report in (None, ScanReport.from_pages([CRITICAL_IMAGE]), ScanReport.from_pages([basic("FAILED")])):
        result = evaluate(report, None)
        assert result.verdict is Verdict.PASS and result.threshold is None
    assert evaluate(ScanReport.from_pages([CRITICAL_IMAGE]), None).status == "COMPLETE"


def test_enhanced_scanning_is_read_and_suppressed_findings_are_not_named() -> None:
    page = {
        "imageScanStatus": {"status": "ACTIVE", "description": "Continuous scan is selected."},
        "imageScanFindings": {
            "findingSeverityCounts": {"CRITICAL": 1, "UNTRIAGED": 1},
            "enhancedFindings": [
                enhanced("CVE-2023-38545", "CRITICAL"),
                enhanced("CVE-2023-38546", "CRITICAL", status="SUPPRESSED"),
                enhanced("CVE-2024-0000", "UNTRIAGED"),
            ],
        },
    }
    report = ScanReport.from_pages([page])
    assert report.enhanced and report.status == "ACTIVE"
    assert report.findings[0] == Finding(
        "CVE-2023-38545", "CRITICAL", "https://nvd.nist.gov/vuln/detail/CVE-2023-38545", "curl", "ACTIVE"
    )
    result = evaluate(report, Severity.CRITICAL)
    assert result.verdict is Verdict.BLOCK
    assert [f.name for f in result.blocking] == ["CVE-2023-38545"]


def test_enhanced_scanning_with_only_untriaged_findings_passes_a_critical_gate() -> None:
    page = {
        "imageScanStatus": {"status": "ACTIVE"},
        "imageScanFindings": {"findingSeverityCounts": {"UNTRIAGED": 2}, "enhancedFindings": []},
    }
    assert evaluate(ScanReport.from_pages([page]), Severity.CRITICAL).verdict is Verdict.PASS


def test_undefined_as_threshold_blocks_on_any_finding() -> None:
    report = ScanReport.from_pages([basic(counts={"UNDEFINED": 1})])
    assert evaluate(report, Severity.UNDEFINED).verdict is Verdict.BLOCK
    assert evaluate(report, Severity.INFORMATIONAL).verdict is Verdict.PASS
    assert evaluate(ScanReport.from_pages([basic(counts={"INFORMATIONAL": 1})]), Severity.UNDEFINED).verdict is (
        Verdict.BLOCK
    )


def test_an_unknown_severity_fails_closed() -> None:
    assert rank("SEVERE") > rank("CRITICAL")
    report = ScanReport.from_pages([basic(counts={"SEVERE": 1})])
    assert evaluate(report, Severity.CRITICAL).verdict is Verdict.BLOCK


def test_findings_decide_when_counts_are_missing() -> None:
    report = ScanReport.from_pages([basic(findings=[cve("CVE-2024-3094", "CRITICAL")])])
    result = evaluate(report, Severity.CRITICAL)
    assert result.verdict is Verdict.BLOCK and result.reason.startswith("1 finding at or above CRITICAL")


def test_pages_are_merged_and_counts_come_from_the_first() -> None:
    first = basic(counts={"CRITICAL": 2}, findings=[cve("CVE-1", "LOW")])
    second = {"imageScanFindings": {"findings": [cve("CVE-2", "CRITICAL")]}}
    report = ScanReport.from_pages([first, second])
    assert [f.name for f in report.findings] == ["CVE-1", "CVE-2"] and report.counts == {"CRITICAL": 2}
    assert [f.name for f in evaluate(report, Severity.CRITICAL).blocking] == ["CVE-2"]


def test_severity_order() -> None:
    order = ["UNDEFINED", "INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
    assert sorted(order, key=rank) == order and rank("UNTRIAGED") == rank("UNDEFINED")
    assert rank("critical") == rank("CRITICAL")
