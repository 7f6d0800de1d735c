"""ClusterReport's views and render(): the table people read, JSON, and SARIF 2.1.0."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from eksops.compliance.model import Acceptance, Category, Finding, Rule, Severity
from eksops.compliance.report import ClusterReport, render, sarif
from eksops.compliance.state import StoredFinding

SARIF_LEVELS = {"none", "note", "warning", "error"}
# A relative URI reference's characters (RFC 3986: unreserved, sub-delims, ":", "@", "/" and percent-encodings).
URI_REFERENCE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})+")


class Privileged(Rule):
    id = "test-privileged"
    title = "Privileged containers"
    severity = Severity.HIGH
    category = Category.SECURITY
    why = "A privileged container is root on its node."
    fix = "Set securityContext.privileged to false."
    reference = "hardeneks: disallow_privileged_containers"


class Replicas(Rule):
    id = "test-single-replica"
    title = "Single-replica Deployments"
    severity = Severity.LOW
    category = Category.RELIABILITY
    why = "One replica means downtime on every node drain."
    fix = "Run at least two replicas."
    reference = "EKS BP: Reliability > Applications"


class Unused(Rule):
    id = "test-unused"
    title = "A rule that found nothing"
    severity = Severity.INFO
    category = Category.CLUSTER
    why = "It is in the registry, so SARIF lists it."
    fix = "Nothing to do."
    reference = "EKS BP: nothing"


RULES: dict[str, Rule] = {r.id: r() for r in (Privileged, Replicas, Unused)}


def finding(rule: type[Rule], resource: str, **changes: Any) -> Finding:
    base = Finding(
        rule=rule.id,
        title=rule.title,
        severity=rule.severity,
        category=rule.category,
        cluster="prod",
        resource=resource,
        evidence=f"seen on {resource}",
        fix=rule.fix,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


@pytest.fixture
def report() -> ClusterReport:
    return ClusterReport(
        cluster="prod",
        run_id="run-1",
        dry_run=False,
        account="123456789012",
        region="eu-west-1",
        state=True,
        findings=[
            finding(Replicas, "deployment/shop/cart", new=True),
            finding(
                Privileged,
                "daemonset/kube-system/cni",
                status="accepted",
                accepted=Acceptance("the CNI needs it", "2026-12-31", "config COMPLIANCE_ACCEPT[0]"),
            ),
            finding(
                Privileged,
                "deployment/shop/api",
                new=True,
                acceptance_note="acceptance by annotation x on deployment/shop/api (old) expired on 2026-01-01",
            ),
            finding(Replicas, "deployment/shop/web", status="remediated", remediation="scaled to 2 replicas"),
        ],
        resolved=[
            StoredFinding(
                "test-privileged",
                "pod/shop/debug",
                "high",
                "Privileged containers",
                "open",
                "2026-01-01T00:00:00.000Z",
                "2026-06-01T00:00:00.000Z",
            )
        ],
        rules_run=["test-privileged", "test-single-replica"],
        not_run=[{"rule": "test-unused", "reason": "budget spent"}],
        errors=[{"rule": "test-other", "stage": "check", "code": "RuntimeError", "message": "boom"}],
    )


def test_counts_by_severity_and_status(report: ClusterReport) -> None:
    counts = report.counts()
    assert counts["findings"] == 4
    assert counts["open"] == 2  # accepted and remediated ones are not open
    assert counts["by_severity"] == {"critical": 0, "high": 1, "medium": 0, "low": 1, "info": 0}
    assert counts["by_status"] == {"accepted": 1, "open": 2, "remediated": 1}
    assert (counts["new"], counts["resolved"], counts["accepted"], counts["remediated"]) == (2, 1, 1, 1)
    assert (counts["not_run"], counts["errors"]) == (1, 1)


def test_alertable_findings_are_new_open_and_severe_enough(report: ClusterReport) -> None:
    assert [f.resource for f in report.alertable(Severity.HIGH)] == ["deployment/shop/api"]
    assert {f.resource for f in report.alertable(Severity.LOW)} == {"deployment/shop/api", "deployment/shop/cart"}
    report.state = False  # no state: every open finding at the threshold
    report.findings[2].new = False
    assert [f.resource for f in report.alertable(Severity.HIGH)] == ["deployment/shop/api"]


def test_a_finding_whose_acceptance_ended_alerts_though_it_is_not_new(report: ClusterReport) -> None:
    reopened = finding(Privileged, "deployment/shop/legacy", reopened=True, acceptance_note="acceptance expired")
    report.findings.append(reopened)
    assert [f.resource for f in report.alertable(Severity.HIGH)] == ["deployment/shop/api", "deployment/shop/legacy"]
    assert report.counts()["reopened"] == 1
    (back,) = [f for f in ClusterReport.from_dict(report.as_dict()).findings if f.resource == "deployment/shop/legacy"]
    assert back.reopened and not back.new


def test_the_table_shows_every_finding_the_accepted_reason_and_what_changed(report: ClusterReport) -> None:
    text = render([report], "table")
    lines = text.splitlines()
    assert lines[0] == "cluster prod (account 123456789012, eu-west-1): swept"
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("SEVERITY"))
    rows = [line.split() for line in lines[header + 1 :] if line.startswith("  ") and not line.startswith("      ")]
    assert [r[:2] for r in rows[:4]] == [["high", "open"], ["high", "accepted"], ["low", "open"], ["low", "remediated"]]
    assert "accepted: the CNI needs it (config COMPLIANCE_ACCEPT[0], until 2026-12-31)" in text
    assert "expired on 2026-01-01" in text
    assert "remediation: scaled to 2 replicas" in text
    assert "resolved since the last sweep:\n    high test-privileged pod/shop/debug" in text
    assert "rules not run:\n    test-unused: budget spent" in text
    assert "test-other (check): RuntimeError: boom" in text


def test_json_is_the_reports_as_dicts(report: ClusterReport) -> None:
    body = json.loads(render([report], "json"))
    assert body == [json.loads(json.dumps(report.as_dict()))]
    accepted = next(f for f in body[0]["findings"] if f["status"] == "accepted")
    assert accepted["accepted"] == {
        "reason": "the CNI needs it",
        "expires": "2026-12-31",
        "source": "config COMPLIANCE_ACCEPT[0]",
    }
    assert body[0]["state"] == "compared"


def test_sarif_has_one_run_with_the_registry_rules_and_a_result_per_finding(report: ClusterReport) -> None:
    log = json.loads(render([report], "sarif", rules=RULES))
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    descriptors = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "eksops"
    assert [d["id"] for d in descriptors] == sorted(RULES)  # every registered rule, also those that found nothing
    unused = descriptors[[d["id"] for d in descriptors].index("test-unused")]
    assert unused["shortDescription"]["text"] == Unused.title
    assert unused["help"]["text"] == Unused.fix
    assert unused["defaultConfiguration"]["level"] == "note"
    results = run["results"]
    assert len(results) == 4
    for result in results:
        assert descriptors[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in SARIF_LEVELS
        assert result["message"]["text"]
        assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].startswith("prod/")
    by_resource = {r["locations"][0]["logicalLocations"][0]["name"]: r for r in results}
    assert by_resource["deployment/shop/api"]["level"] == "error"  # high
    assert by_resource["deployment/shop/cart"]["level"] == "note"  # low
    suppressed = by_resource["daemonset/kube-system/cni"]["suppressions"]
    assert suppressed == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "the CNI needs it",
            "properties": {"source": "config COMPLIANCE_ACCEPT[0]", "expires": "2026-12-31"},
        }
    ]
    assert "suppressions" not in by_resource["deployment/shop/api"]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False  # a rule failed
    texts = [n["message"]["text"] for n in invocation["toolExecutionNotifications"]]
    assert "prod: test-unused not run: budget spent" in texts


def test_sarif_results_have_a_physical_location_code_scanning_accepts(report: ClusterReport) -> None:
    """GitHub code scanning rejects results without physicalLocation.artifactLocation.uri, and a URI with a scheme
    other than the checkout's ("SARIF URI scheme ... did not match the checkout URI scheme file"): a relative
    reference, eks/<cluster>/<resource>, percent-encoded where a resource name holds what a URI may not."""
    report.findings.append(finding(Replicas, "log-group/app #1 [eu]"))
    results = sarif([report], RULES)["runs"][0]["results"]
    uris = {}
    for result in results:
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["region"] == {"startLine": 1}
        uri = physical["artifactLocation"]["uri"]
        assert urlsplit(uri).scheme == "" and not uri.startswith("/"), uri
        assert URI_REFERENCE.fullmatch(uri), uri
        (logical,) = location["logicalLocations"]  # kept, for tools that read them
        uris[logical["name"]] = uri
    assert uris["deployment/shop/api"] == "eks/prod/deployment/shop/api"
    assert uris["log-group/app #1 [eu]"] == "eks/prod/log-group/app%20%231%20%5Beu%5D"
    assert unquote(uris["log-group/app #1 [eu]"]) == "eks/prod/log-group/app #1 [eu]"
    # a log group's own leading slash gives no empty path segment
    from eksops.compliance.report import artifact_uri

    assert artifact_uri("prod", "log-group//aws/containerinsights/prod/host") == (
        "eks/prod/log-group/aws/containerinsights/prod/host"
    )


def test_sarif_names_rules_the_registry_lacks() -> None:
    report = ClusterReport(cluster="c", run_id="r", dry_run=False, findings=[finding(Privileged, "pod/a/b")])
    log = sarif([report], {})
    assert log["runs"][0]["tool"]["driver"]["rules"] == [{"id": "test-privileged"}]
    assert log["runs"][0]["results"][0]["ruleIndex"] == 0
    assert log["runs"][0]["invocations"][0] == {"executionSuccessful": True}


def test_a_cluster_not_swept_says_why() -> None:
    gone = ClusterReport(
        cluster="old", run_id="r", dry_run=False, status="gone", notes=["the cluster no longer exists"]
    )
    assert render([gone], "table") == "cluster old: gone\n  the cluster no longer exists"
    assert render([], "table") == "no cluster swept"


def test_an_unknown_format_is_refused(report: ClusterReport) -> None:
    with pytest.raises(ValueError, match="table, json, sarif"):
        render([report], "xml")
