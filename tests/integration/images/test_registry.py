"""ECR reads against the moto server over HTTP: tags, one image, scans and their findings, errors; and the policy
and the gate deciding on what ECR answered.

moto's DescribeImages ignores ``maxResults`` and ``filter`` (one page, untagged images included) and its scan
findings cannot page, so paging is checked against botocore's Stubber, which validates every call and answer
against the ECR service model.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from eksops.aws import client
from eksops.images.config import parse_image_map
from eksops.images.gate import Severity, Verdict, evaluate
from eksops.images.policy import Candidate, Current, Outcome, select
from eksops.images.registry import MAX_FINDINGS, EcrRegistry, RegistryRefused, RegistryUnavailable
from eksops_dev.faults import FaultProxy

REPOSITORY = "team/web"
SIGNATURE_TAG = "sha256-" + "cd" * 32 + ".sig"


def manifest(n: int) -> str:
    """A distinct image manifest (moto derives the digest from the layers)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1469,
                "digest": f"sha256:{n:064x}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 2 << 20,
                    "digest": f"sha256:{n + 10_000:064x}",
                }
            ],
        }
    )


class Pusher:
    def __init__(self, ecr: Any) -> None:
        self.ecr = ecr
        self.digests: dict[str, str] = {}

    def push(self, n: int, *tags: str, repository: str = REPOSITORY) -> str:
        """Push image ``n`` under ``tags`` (none: untagged); returns its digest."""
        if not tags:
            return str(
                self.ecr.put_image(repositoryName=repository, imageManifest=manifest(n))["image"]["imageId"][
                    "imageDigest"
                ]
            )
        for tag in tags:
            image = self.ecr.put_image(repositoryName=repository, imageManifest=manifest(n), imageTag=tag)["image"]
            self.digests[tag] = image["imageId"]["imageDigest"]
        return self.digests[tags[0]]


@pytest.fixture
def ecr(aws: str) -> Any:
    ecr = client("ecr")
    ecr.create_repository(repositoryName=REPOSITORY)
    return ecr


@pytest.fixture
def pusher(ecr: Any) -> Pusher:
    return Pusher(ecr)


def post_findings(endpoint: str, *results: dict[str, Any]) -> None:
    """Queue custom DescribeImageScanFindings answers in moto (each image takes the first one meant for it)."""
    body = json.dumps({"results": list(results), "region": "us-east-1"}).encode()
    request = urllib.request.Request(
        f"{endpoint}/moto-api/static/ecr/scan-finding-results",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def scan_result(digest: str, status: str, findings: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "registryId": "123456789012",
        "repositoryName": REPOSITORY,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": status, "description": f"scan {status.lower()}"},
        "imageScanFindings": findings or {},
    }


# --- tags and images ------------------------------------------------------------------------------------------


def test_list_images_gives_one_candidate_per_tag_of_tagged_images(ecr: Any, pusher: Pusher) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    one = pusher.push(1, "1.4.2", "latest")
    two = pusher.push(2, "v1.5.0")
    pusher.push(3)  # untagged: never a candidate
    candidates = EcrRegistry(ecr).list_images(REPOSITORY)
    assert sorted((c.tag, c.digest) for c in candidates) == [("1.4.2", one), ("latest", one), ("v1.5.0", two)]
    assert all(before <= c.pushed_at <= datetime.now(UTC) + timedelta(seconds=2) for c in candidates)
    assert all(c.digest.startswith("sha256:") and len(c.digest) == 71 for c in candidates)


def test_the_policy_decides_on_what_ecr_lists(ecr: Any, pusher: Pusher) -> None:
    for n, tag in enumerate(["1.3.0", "1.4.2", "v1.5.0", "2.0.0-rc.1", "2.0.0", "main-5114f85", SIGNATURE_TAG]):
        pusher.push(n + 1, tag)
    candidates = EcrRegistry(ecr).list_images(REPOSITORY)
    semver_entry, regex_entry = parse_image_map(
        json.dumps(
            [
                {"repository": REPOSITORY, "image": "web", "files": ["a.yaml"], "policy": "semver", "constraint": "<2"},
                {
                    "repository": REPOSITORY,
                    "image": "web",
                    "files": ["b.yaml"],
                    "policy": "regex",
                    "tag_pattern": "main-.*",
                },
            ]
        )
    )
    decision = select(semver_entry, candidates, Current(tag="1.4.2"))
    assert decision.outcome is Outcome.UPDATE and decision.target is not None
    assert (decision.target.tag, decision.target.digest) == ("v1.5.0", pusher.digests["v1.5.0"])
    down = select(semver_entry, candidates, Current(tag="2.0.0"))
    assert down.outcome is Outcome.REFUSED
    picked = select(regex_entry, candidates, Current())
    assert picked.target is not None and picked.target.tag == "main-5114f85"


def test_describe_one_image_by_tag_or_digest(ecr: Any, pusher: Pusher) -> None:
    digest = pusher.push(1, "1.4.2", "latest")
    registry = EcrRegistry(ecr)
    by_tag = registry.describe_image(REPOSITORY, tag="latest")
    assert by_tag is not None and by_tag.digest == digest and set(by_tag.tags) == {"1.4.2", "latest"}
    assert set(by_tag.candidates()) == {Candidate(t, digest, by_tag.pushed_at) for t in ("1.4.2", "latest")}
    assert registry.describe_image(REPOSITORY, digest=digest) == by_tag
    assert registry.digest_for_tag(REPOSITORY, "1.4.2") == digest
    assert set(registry.tags_for_digest(REPOSITORY, digest)) == {"1.4.2", "latest"}


def test_a_missing_image_is_none_and_a_missing_repository_is_refused(ecr: Any, pusher: Pusher) -> None:
    pusher.push(1, "1.0.0")
    registry = EcrRegistry(ecr)
    assert registry.describe_image(REPOSITORY, tag="9.9.9") is None
    assert registry.digest_for_tag(REPOSITORY, "9.9.9") is None
    assert registry.tags_for_digest(REPOSITORY, "sha256:" + "0" * 64) == ()
    with pytest.raises(RegistryRefused, match="RepositoryNotFoundException"):
        registry.list_images("no-such-repo")
    with pytest.raises(RegistryRefused, match="RepositoryNotFoundException"):
        registry.describe_image("no-such-repo", tag="1.0.0")
    with pytest.raises(ValueError, match="exactly one of tag and digest"):
        registry.describe_image(REPOSITORY)


def test_another_accounts_registry_is_read_with_its_id(ecr: Any, pusher: Pusher) -> None:
    pusher.push(1, "1.0.0")
    assert [c.tag for c in EcrRegistry(ecr, registry_id="123456789012").list_images(REPOSITORY)] == ["1.0.0"]
    with pytest.raises(RegistryRefused):  # moto keeps the repository under the caller's account only
        EcrRegistry(ecr, registry_id="210987654321").list_images(REPOSITORY)


# --- scans ----------------------------------------------------------------------------------------------------


def test_no_scan_holds_and_a_finished_scan_releases(ecr: Any, pusher: Pusher) -> None:
    digest = pusher.push(1, "1.4.2")
    registry = EcrRegistry(ecr)
    assert registry.scan_report(REPOSITORY, digest) is None  # ScanNotFoundException
    assert evaluate(None, Severity.CRITICAL).verdict is Verdict.HOLD
    ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageDigest": digest})
    report = registry.scan_report(REPOSITORY, digest)
    assert report is not None and report.status == "COMPLETE" and report.counts == {"HIGH": 1}
    assert evaluate(report, Severity.CRITICAL).verdict is Verdict.PASS  # moto's one finding is HIGH
    blocked = evaluate(report, Severity.HIGH)
    assert blocked.verdict is Verdict.BLOCK
    assert [(f.name, f.severity, f.package) for f in blocked.blocking] == [("CVE-9999-9999", "HIGH", "moto_fake")]
    assert blocked.blocking[0].uri == "https://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-9999-9999"


def test_critical_findings_block_with_their_names_and_links(aws: str, ecr: Any, pusher: Pusher) -> None:
    digest = pusher.push(1, "1.5.0")
    findings = {
        "imageScanCompletedAt": "2025-03-01T12:00:00Z",
        "findingSeverityCounts": {"CRITICAL": 1, "MEDIUM": 1},
        "findings": [
            {"name": "CVE-2023-4911", "severity": "MEDIUM", "uri": "https://example.com/CVE-2023-4911"},
            {
                "name": "CVE-2024-3094",
                "severity": "CRITICAL",
                "uri": "https://nvd.nist.gov/vuln/detail/CVE-2024-3094",
                "attributes": [{"key": "package_name", "value": "xz-utils"}],
            },
        ],
    }
    post_findings(aws, scan_result(digest, "COMPLETE", findings))
    ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageDigest": digest})
    report = EcrRegistry(ecr).scan_report(REPOSITORY, digest)
    assert report is not None and report.completed_at == datetime(2025, 3, 1, 12, tzinfo=UTC)
    result = evaluate(report, Severity.CRITICAL)
    assert result.verdict is Verdict.BLOCK
    assert result.reason == "1 finding at or above CRITICAL (CRITICAL: 1): CVE-2024-3094 (CRITICAL)"
    assert [(f.uri, f.package) for f in result.blocking] == [
        ("https://nvd.nist.gov/vuln/detail/CVE-2024-3094", "xz-utils")
    ]


def test_a_scan_in_progress_holds(aws: str, ecr: Any, pusher: Pusher) -> None:
    digest = pusher.push(1, "1.5.0")
    post_findings(aws, scan_result(digest, "IN_PROGRESS"))
    ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageDigest": digest})
    report = EcrRegistry(ecr).scan_report(REPOSITORY, digest)
    assert report is not None and report.status == "IN_PROGRESS"
    assert evaluate(report, Severity.CRITICAL).verdict is Verdict.HOLD


def test_enhanced_scanning_findings_are_read(aws: str, ecr: Any, pusher: Pusher) -> None:
    digest = pusher.push(1, "1.5.0")
    findings = {
        "findingSeverityCounts": {"HIGH": 1, "UNTRIAGED": 1},
        "enhancedFindings": [
            {
                "title": "CVE-2023-38545 - curl",
                "severity": "HIGH",
                "status": "ACTIVE",
                "packageVulnerabilityDetails": {
                    "vulnerabilityId": "CVE-2023-38545",
                    "sourceUrl": "https://nvd.nist.gov/vuln/detail/CVE-2023-38545",
                    "vulnerablePackages": [{"name": "curl", "version": "7.88.1"}],
                },
            },
            {"title": "untriaged", "severity": "UNTRIAGED", "status": "ACTIVE"},
        ],
    }
    post_findings(aws, scan_result(digest, "ACTIVE", findings))
    ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageDigest": digest})
    report = EcrRegistry(ecr).scan_report(REPOSITORY, digest)
    assert report is not None and report.enhanced and len(report.findings) == 2
    assert evaluate(report, Severity.CRITICAL).verdict is Verdict.PASS
    high = evaluate(report, Severity.HIGH)
    assert high.verdict is Verdict.BLOCK and [f.name for f in high.blocking] == ["CVE-2023-38545"]


def test_a_failed_scan_blocks(aws: str, ecr: Any, pusher: Pusher) -> None:
    digest = pusher.push(1, "1.5.0")
    post_findings(aws, scan_result(digest, "UNSUPPORTED_IMAGE"))
    ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageDigest": digest})
    result = evaluate(EcrRegistry(ecr).scan_report(REPOSITORY, digest), Severity.CRITICAL)
    assert result.verdict is Verdict.BLOCK and result.status == "UNSUPPORTED_IMAGE"


# --- errors through a fault proxy -----------------------------------------------------------------------------


@pytest.fixture
def proxy(aws: str) -> Iterator[FaultProxy]:
    with FaultProxy(aws) as running:
        yield running


def proxied_ecr(proxy: FaultProxy, attempts: int) -> Any:
    session = botocore.session.get_session()
    return session.create_client(
        "ecr",
        region_name="us-east-1",
        endpoint_url=proxy.url,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def operation(name: str) -> Any:
    return lambda request: request.operation == name


def test_access_denied_is_refused_and_server_errors_are_retryable(ecr: Any, pusher: Pusher, proxy: FaultProxy) -> None:
    digest = pusher.push(1, "1.0.0")
    registry = EcrRegistry(proxied_ecr(proxy, attempts=2))
    proxy.fail_next(operation("DescribeImages"), times=1, status=400, code="AccessDeniedException")
    with pytest.raises(RegistryRefused, match="AccessDeniedException"):
        registry.list_images(REPOSITORY)
    proxy.fail_next(operation("DescribeImageScanFindings"), times=2, status=500, code="ServerException")
    with pytest.raises(RegistryUnavailable, match="ServerException"):
        registry.scan_report(REPOSITORY, digest)
    scans = [r for r in proxy.requests if r.operation == "DescribeImageScanFindings"]
    assert len(scans) == 2  # botocore retried once, then the error was wrapped
    proxy.fail_next(operation("DescribeImages"), times=1, status=500, code="ServerException")
    seen = len(proxy.requests)
    assert registry.digest_for_tag(REPOSITORY, "1.0.0") == digest  # one 5xx: botocore's retry gets through
    assert [r.operation for r in proxy.requests[seen:]] == ["DescribeImages", "DescribeImages"]


# --- paging (Stubber: validated against the service model) ----------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    ecr = botocore.session.get_session().create_client(
        "ecr", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(ecr) as stubber:
        yield ecr, stubber
        stubber.assert_no_pending_responses()


def detail(n: int, *tags: str, **extra: Any) -> dict[str, Any]:
    return {
        "repositoryName": REPOSITORY,
        "imageDigest": f"sha256:{n:064x}",
        "imagePushedAt": datetime(2025, 3, 1, 12, n, tzinfo=UTC),
        **({"imageTags": list(tags)} if tags else {}),
        **extra,
    }


def test_list_images_reads_every_page_and_skips_what_is_not_a_candidate(stubbed: tuple[Any, Stubber]) -> None:
    ecr, stubber = stubbed
    request = {"repositoryName": REPOSITORY, "filter": {"tagStatus": "TAGGED"}, "maxResults": 1000}
    stubber.add_response(
        "describe_images",
        {"imageDetails": [detail(1, "1.0.0"), detail(2, "old", imageStatus="ARCHIVED")], "nextToken": "page-2"},
        request,
    )
    stubber.add_response(
        "describe_images",
        {
            "imageDetails": [
                detail(3, "sig", subjectManifestDigest=f"sha256:{1:064x}"),
                detail(4, "2.0.0", "stable"),
                detail(5),
            ]
        },
        {**request, "nextToken": "page-2"},
    )
    tags = [c.tag for c in EcrRegistry(ecr).list_images(REPOSITORY)]
    assert tags == ["1.0.0", "2.0.0", "stable"]


def findings_page(names: list[str], token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "imageScanStatus": {"status": "COMPLETE"},
        "imageScanFindings": {
            "findingSeverityCounts": {"CRITICAL": 3},
            "findings": [{"name": n, "severity": "CRITICAL"} for n in names],
        },
    }
    return {**page, "nextToken": token} if token else page


def test_scan_findings_are_read_across_pages_up_to_the_cap(stubbed: tuple[Any, Stubber]) -> None:
    ecr, stubber = stubbed
    digest = f"sha256:{7:064x}"
    request = {"repositoryName": REPOSITORY, "imageId": {"imageDigest": digest}, "maxResults": MAX_FINDINGS}
    stubber.add_response("describe_image_scan_findings", findings_page(["CVE-1", "CVE-2"], "t2"), request)
    stubber.add_response("describe_image_scan_findings", findings_page(["CVE-3"]), {**request, "nextToken": "t2"})
    report = EcrRegistry(ecr).scan_report(REPOSITORY, digest)
    assert report is not None and [f.name for f in report.findings] == ["CVE-1", "CVE-2", "CVE-3"]
    # a small cap stops after the page that reaches it
    stubber.add_response(
        "describe_image_scan_findings", findings_page(["CVE-1", "CVE-2"], "t2"), {**request, "maxResults": 2}
    )
    capped = EcrRegistry(ecr).scan_report(REPOSITORY, digest, max_findings=2)
    assert capped is not None and len(capped.findings) == 2 and capped.counts == {"CRITICAL": 3}
