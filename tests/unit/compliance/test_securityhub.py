"""The Security Hub export against botocore's Stubber: every call is validated against the service model (moto has no
BatchImportFindings worth the name), and the ASFF fields Security Hub requires are checked here too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from eksops.compliance.model import Acceptance, Category, Finding, Severity
from eksops.compliance.report import ClusterReport
from eksops.compliance.securityhub import SecurityHubExport, finding_id, product_arn
from eksops.compliance.state import StoredFinding

NOW = "2026-06-15T06:00:00.000Z"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/prod"
PRODUCT = f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REQUIRED = {
    "SchemaVersion",
    "Id",
    "ProductArn",
    "GeneratorId",
    "AwsAccountId",
    "Types",
    "CreatedAt",
    "UpdatedAt",
    "Severity",
    "Title",
    "Description",
    "Resources",
    "Compliance",
    "Workflow",
    "RecordState",
    "Remediation",
}


SESSION = botocore.session.get_session()  # one session: the service model is loaded once for the module


class Recorder:
    """A Security Hub client stubbed with Stubber, recording the parameters of each call."""

    def __init__(self) -> None:
        self.client = SESSION.create_client(
            "securityhub", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.stub = Stubber(self.client)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register("before-parameter-build.securityhub.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, params))

    def imported(self) -> list[dict[str, Any]]:
        return [f for name, params in self.calls if name == "BatchImportFindings" for f in params["Findings"]]


@pytest.fixture
def hub() -> Iterator[Recorder]:
    recorder = Recorder()
    with recorder.stub:
        yield recorder
        recorder.stub.assert_no_pending_responses()


def finding(resource: str, *, status: str = "open", severity: Severity = Severity.HIGH, **changes: Any) -> Finding:
    found = Finding(
        rule="pod-privileged",
        title="Privileged containers",
        severity=severity,
        category=Category.SECURITY,
        cluster="prod",
        resource=resource,
        evidence=f"{resource}: privileged: true",
        fix="Set privileged: false.",
        status=status,
    )
    for key, value in changes.items():
        setattr(found, key, value)
    return found


def report(findings: list[Finding], resolved: list[StoredFinding] | None = None) -> ClusterReport:
    return ClusterReport(
        cluster="prod",
        run_id="r",
        dry_run=False,
        account=ACCOUNT,
        region=REGION,
        partition="aws",
        cluster_arn=ARN,
        findings=findings,
        resolved=resolved or [],
    )


def ok(count: int) -> dict[str, Any]:
    return {"FailedCount": 0, "SuccessCount": count, "FailedFindings": []}


def test_findings_are_imported_100_per_call_with_the_required_asff_fields(hub: Recorder) -> None:
    findings = [finding(f"deployment/shop/app-{i}") for i in range(250)]
    for size in (100, 100, 50):
        hub.stub.add_response("batch_import_findings", ok(size))
    result = SecurityHubExport(hub.client).export(report(findings), previous=None, now=NOW)
    assert [len(p["Findings"]) for _, p in hub.calls] == [100, 100, 50]
    assert result.imported == 250 and result.failed == []
    asff = hub.imported()
    assert len({a["Id"] for a in asff}) == 250  # one stable Id per finding
    first = asff[0]
    assert set(first) >= REQUIRED
    assert first["SchemaVersion"] == "2018-10-08"
    assert first["ProductArn"] == PRODUCT == product_arn("aws", REGION, ACCOUNT)
    assert first["Id"] == finding_id(REGION, ACCOUNT, "prod", "pod-privileged|deployment/shop/app-0")
    assert first["GeneratorId"] == "eksops/compliance/pod-privileged"
    assert first["AwsAccountId"] == ACCOUNT
    assert first["Types"] == ["Software and Configuration Checks/AWS Security Best Practices"]
    assert ISO.match(first["CreatedAt"]) and first["CreatedAt"] == first["UpdatedAt"] == NOW  # no state: first seen now
    assert first["Severity"] == {"Label": "HIGH", "Original": "high"}
    assert first["Title"] == "Privileged containers (deployment/shop/app-0)"
    assert first["Description"] == "deployment/shop/app-0: privileged: true"
    assert first["Remediation"] == {"Recommendation": {"Text": "Set privileged: false."}}
    assert first["Compliance"] == {"Status": "FAILED"}
    assert first["Workflow"] == {"Status": "NEW"}
    assert first["RecordState"] == "ACTIVE"
    other, cluster = first["Resources"]
    assert cluster == {
        "Type": "AwsEksCluster",
        "Id": ARN,
        "Partition": "aws",
        "Region": REGION,
        "Details": {"AwsEksCluster": {"Name": "prod"}},
    }
    assert other["Type"] == "Other" and other["Id"] == f"{ARN}/deployment/shop/app-0"


def test_statuses_map_to_compliance_workflow_and_record_state(hub: Recorder) -> None:
    accepted = finding(
        "daemonset/kube-system/cni", status="accepted", accepted=Acceptance("the CNI needs it", None, "config")
    )
    fixed = finding("namespace/shop", status="remediated", severity=Severity.MEDIUM, remediation="applied default-deny")
    critical = finding("pod/shop/debug", severity=Severity.CRITICAL)
    info = finding("deployment/shop/web", severity=Severity.INFO)
    gone = StoredFinding(
        "pod-host-path",
        "pod/shop/old",
        "high",
        "hostPath volumes",
        "open",
        "2026-01-01T00:00:00.000Z",
        "2026-06-14T06:00:00.000Z",
        "security",
        "mounts /var/run",
        "Remove hostPath.",
    )
    hub.stub.add_response("batch_import_findings", ok(5))
    result = SecurityHubExport(hub.client).export(
        report([accepted, fixed, critical, info], [gone]), previous=None, now=NOW
    )
    by_title = {a["Title"]: a for a in hub.imported()}
    suppressed = by_title["Privileged containers (daemonset/kube-system/cni)"]
    assert suppressed["Workflow"] == {"Status": "SUPPRESSED"}
    assert suppressed["Compliance"] == {"Status": "FAILED"}
    assert suppressed["Description"].startswith("Accepted (config): the CNI needs it.")
    remediated = by_title["Privileged containers (namespace/shop)"]
    assert remediated["Compliance"] == {"Status": "PASSED"} and remediated["Workflow"] == {"Status": "RESOLVED"}
    assert remediated["Resources"][0]["Type"] == "Other"
    assert by_title["Privileged containers (pod/shop/debug)"]["Severity"]["Label"] == "CRITICAL"
    assert by_title["Privileged containers (deployment/shop/web)"]["Severity"]["Label"] == "INFORMATIONAL"
    archived = by_title["hostPath volumes (pod/shop/old)"]
    assert archived["RecordState"] == "ARCHIVED"
    assert archived["Compliance"] == {"Status": "PASSED"}
    assert archived["CreatedAt"] == "2026-01-01T00:00:00.000Z"
    assert archived["Remediation"]["Recommendation"]["Text"] == "Remove hostPath."
    assert (result.imported, result.archived) == (5, 1)


def test_a_cluster_finding_names_only_the_cluster(hub: Recorder) -> None:
    hub.stub.add_response("batch_import_findings", ok(1))
    SecurityHubExport(hub.client).export(report([finding("cluster/prod")]), previous=None, now=NOW)
    assert [r["Type"] for r in hub.imported()[0]["Resources"]] == ["AwsEksCluster"]


def test_failed_findings_in_the_response_are_reported(hub: Recorder) -> None:
    findings = [finding("pod/a/one"), finding("pod/a/two")]
    failed_id = finding_id(REGION, ACCOUNT, "prod", "pod-privileged|pod/a/two")
    hub.stub.add_response(
        "batch_import_findings",
        {
            "FailedCount": 1,
            "SuccessCount": 1,
            "FailedFindings": [{"Id": failed_id, "ErrorCode": "InvalidInput", "ErrorMessage": "Finding too large"}],
        },
    )
    result = SecurityHubExport(hub.client).export(report(findings), previous=None, now=NOW)
    assert result.imported == 1
    assert result.failed == [{"id": failed_id, "code": "InvalidInput", "message": "Finding too large"}]


def test_an_api_error_fails_the_rest_without_more_calls(hub: Recorder) -> None:
    findings = [finding(f"pod/a/p{i}") for i in range(150)]
    hub.stub.add_client_error(
        "batch_import_findings", service_error_code="InvalidAccessException", service_message="not subscribed"
    )
    result = SecurityHubExport(hub.client).export(report(findings), previous=None, now=NOW)
    assert len(hub.calls) == 1
    assert result.imported == 0
    assert len(result.failed) == 150 and {f["code"] for f in result.failed} == {"InvalidAccessException"}


def stored(resource: str, status: str) -> StoredFinding:
    return StoredFinding(
        "pod-privileged", resource, "high", "Privileged containers", status, "2026-03-01T00:00:00.000Z", "x"
    )


def test_acceptance_begun_or_ended_since_the_first_import_updates_the_workflow(hub: Recorder) -> None:
    now_accepted = finding("pod/a/one", status="accepted", accepted=Acceptance("approved in OPS-7", None, "config"))
    no_longer = finding("pod/a/two", acceptance_note="acceptance expired on 2026-06-01")
    unchanged = finding("pod/a/three")
    previous = {
        "pod-privileged|pod/a/one": stored("pod/a/one", "open"),
        "pod-privileged|pod/a/two": stored("pod/a/two", "accepted"),
        "pod-privileged|pod/a/three": stored("pod/a/three", "open"),
    }
    hub.stub.add_response("batch_import_findings", ok(3))
    processed: dict[str, list[Any]] = {"ProcessedFindings": [], "UnprocessedFindings": []}
    id_one = finding_id(REGION, ACCOUNT, "prod", now_accepted.key)
    id_two = finding_id(REGION, ACCOUNT, "prod", no_longer.key)
    hub.stub.add_response(
        "batch_update_findings",
        {**processed, "ProcessedFindings": [{"Id": id_one, "ProductArn": PRODUCT}]},
        {
            "FindingIdentifiers": [{"Id": id_one, "ProductArn": PRODUCT}],
            "Workflow": {"Status": "SUPPRESSED"},
            "Note": {"Text": "Accepted: approved in OPS-7", "UpdatedBy": "eksops"},
        },
    )
    hub.stub.add_response(
        "batch_update_findings",
        {**processed, "ProcessedFindings": [{"Id": id_two, "ProductArn": PRODUCT}]},
        {
            "FindingIdentifiers": [{"Id": id_two, "ProductArn": PRODUCT}],
            "Workflow": {"Status": "NEW"},
            "Note": {"Text": "No longer accepted (the acceptance expired or was removed)", "UpdatedBy": "eksops"},
        },
    )
    result = SecurityHubExport(hub.client).export(
        report([now_accepted, no_longer, unchanged]), previous=previous, now=NOW
    )
    assert result.workflow_updated == 2
    assert {a["CreatedAt"] for a in hub.imported()} == {"2026-03-01T00:00:00.000Z"}  # first seen, from the state
    assert [name for name, _ in hub.calls] == ["BatchImportFindings", "BatchUpdateFindings", "BatchUpdateFindings"]


def test_unprocessed_workflow_updates_are_reported(hub: Recorder) -> None:
    accepted = finding("pod/a/one", status="accepted", accepted=Acceptance("ok", None, "config"))
    hub.stub.add_response("batch_import_findings", ok(1))
    ident = {"Id": finding_id(REGION, ACCOUNT, "prod", accepted.key), "ProductArn": PRODUCT}
    hub.stub.add_response(
        "batch_update_findings",
        {
            "ProcessedFindings": [],
            "UnprocessedFindings": [{"FindingIdentifier": ident, "ErrorCode": "FindingNotFound", "ErrorMessage": "?"}],
        },
    )
    result = SecurityHubExport(hub.client).export(
        report([accepted]), previous={accepted.key: stored("pod/a/one", "open")}, now=NOW
    )
    assert result.failed == [{"id": ident["Id"], "code": "FindingNotFound", "message": "?"}]


def test_long_ids_stay_within_512_characters() -> None:
    long_id = finding_id(REGION, ACCOUNT, "prod", "pod-privileged|image/" + "r" * 600)
    assert len(long_id) == 512
    assert long_id != finding_id(REGION, ACCOUNT, "prod", "pod-privileged|image/" + "r" * 601)
