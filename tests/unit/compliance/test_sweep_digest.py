"""The gather's pure parts: the compact report (bounded, so a 100-cluster sweep fits one DynamoDB item), the digest
message (one per sweep, within SNS's limit), and the state table's IAM statement (exactly what the code calls)."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from eksops.compliance.gather import (
    COMPACT_BYTES,
    DIGEST_LINES,
    GATHER_MAX_CLUSTERS,
    Gathered,
    compact,
    digest_message,
)
from eksops.compliance.model import Category, Finding, Severity
from eksops.compliance.report import ClusterReport
from eksops.notify import Message
from eksops.notify import Severity as MessageSeverity
from eksops.notify.publish import MESSAGE_BUDGET, sns_body
from tests.unit.compliance.test_registry import STATE_TABLE, actions, as_list, statements

ROOT = Path(__file__).resolve().parents[3]
COMPLIANCE = ROOT / "layers" / "eksops" / "eksops" / "compliance"
DYNAMODB_ITEM_LIMIT = 400 * 1024


def finding(cluster: str, resource: str, *, severity: Severity = Severity.HIGH, evidence: str = "x") -> Finding:
    return Finding(
        rule="pod-privileged",
        title="Privileged containers",
        severity=severity,
        category=Category.SECURITY,
        cluster=cluster,
        resource=resource,
        evidence=evidence,
        fix="Drop privileged.",
        new=True,
    )


def report(cluster: str, *, findings: int = 3, status: str = "swept") -> ClusterReport:
    return ClusterReport(
        cluster=cluster,
        run_id="run",
        dry_run=False,
        status=status,
        state=True,
        findings=[
            finding(cluster, f"deployment/shop/api-{i}", evidence="privileged: true " * 80) for i in range(findings)
        ],
    )


def message(cluster: str, lines: int = 60, severity: MessageSeverity = MessageSeverity.WARNING) -> Message:
    return Message(
        kind="compliance.sweep",
        severity=severity,
        title=f"Compliance sweep of {cluster}: 3 open, 3 new, 0 resolved",
        summary="3 open finding(s) (3 high); 3 new, 0 resolved " * 40,
        lines=tuple(
            f"[high] open NEW pod-privileged deployment/shop/api-{i}: " + "privileged: true " * 80 for i in range(lines)
        ),
    )


def test_a_compact_report_keeps_the_headline_and_at_most_ten_short_lines() -> None:
    name = "c" * 100  # EKS's longest cluster name
    data = compact(report(name), message(name))
    assert len(json.dumps(data).encode()) <= COMPACT_BYTES
    assert 1 <= len(data["lines"]) <= 10 and all(len(line) <= 300 for line in data["lines"])
    assert data["title"] == f"Compliance sweep of {name}: 3 open, 3 new, 0 resolved"
    assert len(data["summary"]) <= 500
    assert (data["severity"], data["counts"]["open"], data["counts"]["by_severity"]["high"]) == ("warning", 3, 3)
    gone = compact(report("old", findings=0, status="gone"), message("old", lines=1))
    assert gone["title"] == "Compliance sweep of old: not swept (gone)"


def test_a_sweep_of_the_most_clusters_fits_one_dynamodb_item() -> None:
    """Attribute names and values, as DynamoDB counts an item's size, with every cluster at its worst."""
    names = [f"{i:03d}" + "c" * 97 for i in range(GATHER_MAX_CLUSTERS)]
    reports = {n: json.dumps(compact(report(n), message(n))) for n in names}
    size = sum(len(n.encode()) + len(r.encode()) + 3 for n, r in reports.items())  # the map's entries
    size += 2 * sum(len(n.encode()) for n in names)  # expected and done
    size += len("#sweep") + 64 + 200  # the key, started_at, expires_at, posted and the attribute names
    assert size < DYNAMODB_ITEM_LIMIT * 0.9, size


def gathered(count: int, *, missing: int = 0) -> Gathered:
    names = [f"cluster-{i:03d}" for i in range(count)]
    reports = {
        n: compact(report(n), message(n, severity=MessageSeverity.INFO if i else MessageSeverity.WARNING))
        for i, n in enumerate(names)
    }
    extra = [f"dead-{i}" for i in range(missing)]
    return Gathered(
        run_id="2f6c1d0a-sweep",
        expected=frozenset(names + extra),
        done=frozenset(names),
        reports=reports,
        started_at="2026-07-01T06:00:00.000Z",
    )


def test_the_digest_takes_the_highest_severity_and_puts_every_headline_first() -> None:
    digest = digest_message(gathered(3), dry_run=False)
    assert digest.kind == "compliance.sweep" and digest.cluster is None
    assert digest.severity is MessageSeverity.WARNING  # cluster-000's
    assert digest.title == "Compliance sweep 2f6c1d0a: 3 cluster(s), 9 open (9 new, 0 resolved)"
    assert digest.lines[:3] == tuple(f"cluster-{i:03d}: 3 open, 3 new, 0 resolved" for i in range(3))
    assert digest.details["missing"] == [] and digest.details["reported"] == 3


def test_a_digest_with_clusters_missing_is_a_warning_and_names_them_first() -> None:
    quiet = gathered(2, missing=1)
    quiet = replace(quiet, reports={k: {**v, "severity": "info"} for k, v in quiet.reports.items()})
    digest = digest_message(quiet, dry_run=True, stale=True)
    assert digest.severity is MessageSeverity.WARNING
    assert digest.lines[0].startswith("not reported: dead-0 (")
    assert digest.details["missing"] == ["dead-0"]
    assert digest.title.endswith(", 1 not reported")  # the clusters' reports say whether it was a dry run


def test_the_digest_of_the_most_clusters_stays_within_the_envelope_and_sns() -> None:
    digest = digest_message(gathered(GATHER_MAX_CLUSTERS), dry_run=False)
    assert len(digest.lines) == DIGEST_LINES
    assert all(not line.startswith("cluster-000: [") for line in digest.lines)  # headlines only: no room for more
    assert len(sns_body(digest).encode()) <= MESSAGE_BUDGET
    some = digest_message(gathered(20), dry_run=False)
    assert len(some.lines) <= DIGEST_LINES and any(line.startswith("cluster-019: [high]") for line in some.lines)


# -- IAM: the state table's statement is what the code calls ---------------------------------------------------------


def dynamodb_calls(path: Path) -> set[str]:
    """``self._dynamodb.<operation>(...)`` and ``self._dynamodb.get_paginator("<operation>")`` in ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Attribute) and owner.attr == "_dynamodb"):
            continue
        name: Any = node.func.attr
        if name == "get_paginator":
            name = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
        if isinstance(name, str) and name != "exceptions":
            found.add("dynamodb:" + "".join(part.title() for part in name.split("_")))
    return found


def test_the_state_table_statement_grants_exactly_what_state_and_gather_call() -> None:
    calls = dynamodb_calls(COMPLIANCE / "state.py") | dynamodb_calls(COMPLIANCE / "gather.py")
    assert {"dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"} <= calls
    granted = [st for st in statements() if STATE_TABLE in as_list(st["Resource"])]
    assert actions(granted) == calls
    assert all(re.fullmatch(r"dynamodb:[A-Z][A-Za-z]+", a) for a in calls)


def test_alerts_about_different_findings_of_a_cluster_never_look_identical_to_burst_dedup() -> None:
    """Review of issue 13: the alert's summary names its findings, so burst dedup (which compares kind, severity,
    title, cluster and summary) holds back only a true copy, never an alert about another finding."""
    from types import SimpleNamespace

    from eksops.compliance.service import ComplianceService
    from eksops.notify.formats import format_sns

    def alert(*resources: str) -> str:
        report = ClusterReport(cluster="prod-eu", run_id="r", dry_run=False)
        findings = [finding("prod-eu", resource, severity=Severity.CRITICAL) for resource in resources]
        fake = SimpleNamespace(tools=SimpleNamespace(settings=SimpleNamespace(alert_severity=Severity.HIGH)))
        message = ComplianceService._alert_message(fake, report, findings)  # type: ignore[arg-type]
        return format_sns(json.dumps(message.envelope()), message.subject(), "arn:aws:sns:us-east-1:1:a").dedup_key()

    assert alert("deployment/a/x") != alert("deployment/a/y")
    assert alert("deployment/a/x") == alert("deployment/a/x")  # a true copy is still held back
    many = [f"deployment/a/{i}" for i in range(5)]
    assert alert(*many) != alert(*many[:4], "deployment/a/other")  # beyond the names shown, the set still counts


def test_a_compact_report_keeps_errors_news_and_resolutions_before_other_open_findings() -> None:
    """Review of issue 13: the digest said "1 resolved" but no kept line said which; a cluster's first ten lines were
    its open findings in severity order."""
    lines = (
        *(f"[critical] open pod-privileged deployment/shop/api-{i}: privileged: true" for i in range(12)),
        "[low] open NEW pod-latest-tag deployment/shop/web: image tag latest",
        "resolved [medium] namespace-pod-security namespace/checkout",
    )
    kept = compact(report("prod"), replace(message("prod"), lines=("error rbac (check): Throttling: x", *lines)))
    assert kept["lines"][:3] == [
        "error rbac (check): Throttling: x",
        "[low] open NEW pod-latest-tag deployment/shop/web: image tag latest",
        "resolved [medium] namespace-pod-security namespace/checkout",
    ]
    assert len(kept["lines"]) == 10 and kept["lines"][3].startswith("[critical] open pod-privileged")


def test_a_clusters_report_puts_what_changed_before_what_stays_open() -> None:
    """Review of issue 13: a cluster's report cut its lines at 60 with the resolved ones after every open finding,
    so a busy cluster's report (and the sweep's one report, built from it) never said what was resolved."""
    from types import SimpleNamespace

    from eksops.compliance.service import ComplianceService
    from eksops.compliance.state import StoredFinding

    old = [replace(finding("prod", f"deployment/shop/old-{i}"), new=False) for i in range(70)]
    new = finding("prod", "deployment/shop/fresh", severity=Severity.LOW)
    report = ClusterReport(cluster="prod", run_id="r", dry_run=False, state=True, findings=[*old, new])
    report.resolved = [
        StoredFinding("pod-host-path", "deployment/shop/gone", "high", "t", "open", "2026-11-01", "2026-11-27")
    ]
    fake = SimpleNamespace(tools=SimpleNamespace(settings=SimpleNamespace(alert_severity=Severity.HIGH)))
    message = ComplianceService._report_message(fake, report)  # type: ignore[arg-type]
    assert " NEW pod-privileged deployment/shop/fresh" in message.lines[0]
    assert message.lines[1] == "resolved [high] pod-host-path deployment/shop/gone"
    kept = compact(report, message)["lines"]
    assert kept[0] == message.lines[0] and kept[1] == message.lines[1]
