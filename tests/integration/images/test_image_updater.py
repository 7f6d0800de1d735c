"""image_updater end to end: the handler as the sandbox runs it (template environment, idempotency table, topics),
ECR in the moto server over HTTP, CodePipeline through the sandbox's shim, and the config repository served over
smart HTTP on 127.0.0.1 by eksops_dev.gitserver.

The module shares one sandbox and one Git server; each test has IMAGE_MAP entries (ECR repositories and files) of
its own, so tests never see each other's images.
"""

from __future__ import annotations

import copy
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.dispatch import Dispatcher, Invocation
from eksops_dev.ecr import image_manifest
from eksops_dev.gitserver import GitServer
from eksops_dev.sandbox import STACK, Sandbox
from eksops_dev.template import Template

EVENTS = Path(__file__).resolve().parents[3] / "events" / "image_updater"
ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"

KUSTOMIZATION = {
    "apps/payments/kustomization.yaml": (
        "# payments: production overlay\r\n"
        "resources:\r\n  - ../base\r\n"
        "images:\r\n"
        "  - name: payments-api   # the API\r\n"
        "    newTag: '1.42.0'\r\n"
        "  - name: sidecar\r\n    newTag: 0.3.0\r\n"
    ),
    "apps/web/kustomization.yaml": f"images:\n- name: {REGISTRY}/web\n  newTag: main-0000000\n",
    "apps/ledger/kustomization.yaml": "images:\n  - name: ledger\n    newTag: 2.0.0\n",
    "apps/orders/staging/kustomization.yaml": "images:\n  - name: orders\n    newTag: 1.0.0\n",
    "apps/orders/prod/kustomization.yaml": "images:\n  - name: orders\n    newTag: 1.0.0\n",
    "apps/pipeline/kustomization.yaml": "images:\n  - {name: checkout, newTag: 3.1.0}\n",
    "apps/broken/kustomization.yaml": "images:\n  - name: broken\n    newTag: 1.0.0\n",
    "apps/moved/kustomization.yaml": "images:\n  - name: moved\n    newTag: 1.0.0\n",
    "apps/reports/kustomization.yaml": "images:\n  - name: reports\n    newTag: 1.5.0\n",
    "apps/billing/kustomization.yaml": "images:\n  - name: billing\n    newTag: 3.1.0\n",
    "apps/feed/kustomization.yaml": "images:\n  - name: feed\n    newTag: v0\n",
}
IMAGE_MAP = [
    {
        "repository": "payments-api",
        "image": "payments-api",
        "files": ["apps/payments/kustomization.yaml"],
        "policy": "semver",
        "constraint": ">=1.4,<2",
    },
    {
        "repository": "web",
        "image": f"{REGISTRY}/web",
        "files": ["apps/web/kustomization.yaml"],
        "policy": "regex",
        "tag_pattern": "main-[0-9a-f]{7}",
        "digest": True,
    },
    {"repository": "ledger", "image": "ledger", "files": ["apps/ledger/kustomization.yaml"], "policy": "semver"},
    {
        "repository": "orders",
        "image": "orders",
        "policy": "latest",
        "files": ["apps/orders/staging/kustomization.yaml", "apps/orders/prod/kustomization.yaml"],
    },
    {"repository": "checkout", "image": "checkout", "files": ["apps/pipeline/kustomization.yaml"], "policy": "semver"},
    {"repository": "broken", "image": "broken", "files": ["apps/broken/kustomization.yaml"], "policy": "latest"},
    {"repository": "moved", "image": "moved", "files": ["apps/moved/kustomization.yaml"], "policy": "semver"},
    {"repository": "reports", "image": "reports", "files": ["apps/reports/kustomization.yaml"], "policy": "semver"},
    {"repository": "billing", "image": "billing", "files": ["apps/billing/kustomization.yaml"], "policy": "semver"},
    {"repository": "feed", "image": "feed", "files": ["apps/feed/kustomization.yaml"], "policy": "latest"},
]
REPOSITORIES = sorted({entry["repository"] for entry in IMAGE_MAP})


class Updater:
    """Pushes images, fires events at image_updater, reads the config repository and the published messages."""

    def __init__(self, sandbox: Sandbox, dispatcher: Dispatcher, git: GitServer) -> None:
        self.sandbox = sandbox
        self.dispatcher = dispatcher
        self.git = git
        self.ecr = sandbox.client("ecr")
        self._manifests = 0
        self._inboxes = {topic: self._subscribe(topic) for topic in ("ReportsTopic", "AlertsTopic")}

    def push(self, repository: str, tag: str, *, scan: bool = True, findings: dict[str, Any] | None = None) -> str:
        """Push a new image under ``tag``; ``scan`` starts its scan (moto reports one HIGH finding unless
        ``findings`` says otherwise). Returns the digest."""
        self._manifests += 1
        image = self.ecr.put_image(
            repositoryName=repository, imageManifest=image_manifest(self._manifests), imageTag=tag
        )["image"]
        digest = str(image["imageId"]["imageDigest"])
        if findings is not None:
            self.findings(repository, digest, findings)
        if scan:
            self.ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
        return digest

    def findings(self, repository: str, digest: str, counts: dict[str, int]) -> None:
        findings = [
            {
                "name": f"CVE-2026-{1000 + i}",
                "severity": severity,
                "uri": f"https://nvd.example/CVE-2026-{1000 + i}",
                "attributes": [{"key": "package_name", "value": "openssl"}],
            }
            for i, (severity, n) in enumerate(counts.items())
            for _ in range(n)
        ]
        result = {
            "registryId": ACCOUNT,
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
            "imageScanFindings": {"findings": findings, "findingSeverityCounts": counts},
        }
        request = urllib.request.Request(
            f"{self.sandbox.endpoint}/moto-api/static/ecr/scan-finding-results",
            data=json.dumps({"results": [result, result], "region": "us-east-1"}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def pushed(self, repository: str, tag: str, digest: str) -> Invocation:
        event = _event("ecr_image_push")
        event["detail"].update({"repository-name": repository, "image-tag": tag, "image-digest": digest})
        return self.dispatcher.invoke("image_updater", event, f"push {repository}:{tag}")

    def scanned(self, repository: str, tag: str, digest: str) -> Invocation:
        event = _event("ecr_image_scan_complete")
        event["detail"].update({"repository-name": repository, "image-tags": [tag], "image-digest": digest})
        return self.dispatcher.invoke("image_updater", event, f"scan {repository}:{tag}")

    def reconcile(self) -> Invocation:
        return self.dispatcher.invoke("image_updater", _event("scheduled_reconcile"), "schedule")

    def file(self, path: str) -> str:
        return self.git.read("config", path).decode()

    def commits(self) -> int:
        return len(self.git.log("config"))

    def messages(self, topic: str = "ReportsTopic") -> list[dict[str, Any]]:
        sqs, found = self.sandbox.client("sqs"), []
        while batch := sqs.receive_message(QueueUrl=self._inboxes[topic], MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                found.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(QueueUrl=self._inboxes[topic], ReceiptHandle=message["ReceiptHandle"])
        return found

    def _subscribe(self, topic: str) -> str:
        sqs = self.sandbox.client("sqs")
        url = sqs.create_queue(QueueName=f"{STACK}-test-{topic}-{uuid.uuid4().hex[:6]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sandbox.client("sns").subscribe(TopicArn=self.sandbox.refs[topic], Protocol="sqs", Endpoint=arn)
        return str(url)


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    event["id"] = str(uuid.uuid4())
    return copy.deepcopy(event)


@pytest.fixture(scope="module")
def updater(moto_endpoint: str, template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Updater]:
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    workdir = tmp_path_factory.mktemp("images")
    with GitServer(workdir / "served") as git:
        url = git.create("config", {path: text.encode() for path, text in KUSTOMIZATION.items()})
        sandbox = Sandbox(
            template,
            parameters={
                "ImageConfigRepoUrl": url,
                "ImageMap": json.dumps(IMAGE_MAP),
                "ImagePipelineStages": '["checkout/Build", "billing/Build"]',
                "DryRun": "false",  # commits for real (the template's default is a dry run)
            },
            endpoint=moto_endpoint,
            workdir=workdir,
        )
        sandbox.start()
        dispatcher = Dispatcher(sandbox)
        for repository in REPOSITORIES:
            sandbox.client("ecr").create_repository(repositoryName=repository)
        try:
            yield Updater(sandbox, dispatcher, git)
        finally:
            dispatcher.close()
            sandbox.stop()


def test_a_push_commits_the_new_tag_and_changes_no_other_byte(updater: Updater) -> None:
    before, commits = updater.file("apps/payments/kustomization.yaml"), updater.commits()
    digest = updater.push("payments-api", "1.43.0")
    run = updater.pushed("payments-api", "1.43.0", digest)
    assert run.ok, run.error
    assert [c["changes"] for c in run.result["committed"]] == [["payments-api newTag 1.42.0 -> 1.43.0"]]
    assert updater.file("apps/payments/kustomization.yaml") == before.replace("'1.42.0'", "'1.43.0'")
    log = updater.git.log("config")
    assert len(log) == commits + 1
    assert log[0].message.decode() == "payments-api: 1.42.0 -> 1.43.0\n\nPolicy semver, triggered by push.\n"
    assert log[0].author.decode() == "eksops <eksops@users.noreply.github.com>"
    report = [m for m in updater.messages() if m["kind"] == "images.update"]
    assert report and "1 update(s) committed" in report[-1]["summary"]

    # The same event again: the idempotency record answers; a new event for the same push finds nothing to do.
    again = updater.dispatcher.invoke("image_updater", run.event, "repeat")
    assert again.ok and again.result == run.result
    fresh = updater.pushed("payments-api", "1.43.0", digest)
    assert fresh.ok and fresh.result["committed"] == [] and fresh.result["unchanged"]
    assert updater.commits() == commits + 1


def test_out_of_range_prerelease_and_downgrades_are_refused(updater: Updater) -> None:
    commits = updater.commits()
    for tag, refusal in (("2.0.0", "out-of-range"), ("1.44.0-rc.1", "prerelease"), ("1.40.0", "downgrade")):
        digest = updater.push("payments-api", tag)
        run = updater.pushed("payments-api", tag, digest)
        assert run.ok, run.error
        assert [r["refusal"] for r in run.result["refused"]] == [refusal], tag
    assert updater.commits() == commits
    refused = [m for m in updater.messages() if m["kind"] == "images.update"]
    assert any("refused" in line for m in refused for line in m.get("lines", []))


def test_critical_findings_block_and_alert_with_the_findings(updater: Updater) -> None:
    commits = updater.commits()
    digest = updater.push("ledger", "2.1.0", findings={"CRITICAL": 2, "HIGH": 1})
    run = updater.pushed("ledger", "2.1.0", digest)
    assert run.ok, run.error
    assert len(run.result["blocked"]) == 1 and "2 findings at or above CRITICAL" in run.result["blocked"][0]["reason"]
    assert updater.commits() == commits
    alerts = [m for m in updater.messages("AlertsTopic") if m["kind"] == "images.blocked"]
    assert alerts and any("CVE-2026-1000" in line for line in alerts[-1]["lines"])
    assert "newTag: 2.0.0" in updater.file("apps/ledger/kustomization.yaml")


def test_an_unscanned_image_is_held_until_its_scan_completes(updater: Updater) -> None:
    commits = updater.commits()
    digest = updater.push("ledger", "2.2.0", scan=False)
    held = updater.pushed("ledger", "2.2.0", digest)
    assert held.ok and [h["tag"] for h in held.result["held"]] == ["2.2.0"]
    assert updater.commits() == commits
    updater.ecr.start_image_scan(repositoryName="ledger", imageId={"imageDigest": digest})  # one HIGH: passes
    released = updater.scanned("ledger", "2.2.0", digest)
    assert released.ok, released.error
    assert [c["changes"] for c in released.result["committed"]] == [["ledger newTag 2.0.0 -> 2.2.0"]]
    assert updater.commits() == commits + 1


def test_regex_policy_writes_tag_and_digest_for_a_registry_prefixed_name(updater: Updater) -> None:
    updater.push("web", "feature-x")  # does not match the pattern
    digest = updater.push("web", "main-1a2b3c4")
    run = updater.pushed("web", "main-1a2b3c4", digest)
    assert run.ok, run.error
    text = updater.file("apps/web/kustomization.yaml")
    assert text == f"images:\n- name: {REGISTRY}/web\n  newTag: main-1a2b3c4\n  digest: {digest}\n"


def test_latest_policy_updates_every_file_of_the_entry_in_one_commit(updater: Updater) -> None:
    commits = updater.commits()
    updater.push("orders", "build-7")
    digest = updater.push("orders", "build-8")
    run = updater.reconcile()
    assert run.ok, run.error
    mine = [c for c in run.result["committed"] if c["repository"] == "orders"]
    assert len(mine) == 1 and len(mine[0]["files"]) == 2
    assert updater.commits() == commits + 1 + sum(1 for c in run.result["committed"] if c["repository"] != "orders")
    for path in ("apps/orders/staging/kustomization.yaml", "apps/orders/prod/kustomization.yaml"):
        assert updater.file(path) == "images:\n  - name: orders\n    newTag: build-8\n"
    assert digest


def test_a_pipeline_stage_names_the_image_and_its_source_revision(updater: Updater) -> None:
    digest = updater.push("checkout", "3.2.0")
    execution = str(uuid.uuid4())
    updater.sandbox.codepipeline_shim.record(
        "checkout",
        execution,
        stage="Build",
        action="Image",
        variables={"IMAGE_URI": f"{REGISTRY}/checkout:3.2.0@{digest}"},
        revision="8d2c1f0e9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
    )
    event = _event("pipeline_stage_succeeded")
    event["detail"].update({"pipeline": "checkout", "stage": "Build", "execution-id": execution})
    run = updater.dispatcher.invoke("image_updater", event, "pipeline")
    assert run.ok, run.error
    assert updater.file("apps/pipeline/kustomization.yaml") == "images:\n  - {name: checkout, newTag: 3.2.0}\n"
    message = updater.git.log("config")[0].message.decode()
    assert f"Pipeline execution: checkout {execution}" in message
    assert "Source revision: 8d2c1f0e9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d" in message

    other = _event("pipeline_stage_succeeded")
    other["detail"].update({"pipeline": "checkout", "stage": "Deploy", "execution-id": execution})
    skipped = updater.dispatcher.invoke("image_updater", other, "pipeline")
    assert skipped.ok and "not in PIPELINE_STAGES" in skipped.result["ignored"]


def test_an_image_the_file_does_not_name_is_an_error_and_nothing_is_appended(updater: Updater) -> None:
    good = updater.file("apps/broken/kustomization.yaml")
    wrong = b"images:\n  - name: something-else  # renamed by hand\n    newTag: 1.0.0\n"
    updater.git.commit("config", {"apps/broken/kustomization.yaml": wrong})
    commits = updater.commits()
    try:
        digest = updater.push("broken", "1.1.0")
        run = updater.pushed("broken", "1.1.0", digest)
        assert not run.ok and run.error_type == "PartialFailure"
        assert run.dead_lettered  # after the function's retries, in the on-failure destination
        assert updater.git.read("config", "apps/broken/kustomization.yaml") == wrong
        assert updater.commits() == commits
        alerts = [m for m in updater.messages("AlertsTopic") if m["kind"] == "images.error"]
        assert alerts and any("ImageNotInFile" in line for line in alerts[-1]["lines"])
    finally:
        updater.git.commit("config", {"apps/broken/kustomization.yaml": good.encode()})


def test_a_second_reconcile_changes_nothing(updater: Updater) -> None:
    first = updater.reconcile()
    assert first.ok, first.error
    commits = updater.commits()
    second = updater.reconcile()
    assert second.ok, second.error
    assert second.result["committed"] == []
    assert updater.commits() == commits


def test_a_push_whose_tag_now_names_another_image_commits_nothing(updater: Updater) -> None:
    """The event names a tag and the digest pushed under it; a mutable tag may name another image by the time the
    event is handled. The gate judges the event's digest, so committing the tag would release an image it never
    judged (here unscanned): nothing is committed, and the reconcile decides from the registry. (Found by the fuzz
    test: a push event whose tag the image does not carry committed that tag.)"""
    commits = updater.commits()
    judged = updater.push("moved", "1.1.0")  # scanned: passes the gate
    manifest = updater.ecr.batch_get_image(repositoryName="moved", imageIds=[{"imageDigest": judged}])
    updater.ecr.put_image(
        repositoryName="moved", imageManifest=manifest["images"][0]["imageManifest"], imageTag="build-1"
    )
    updater.push("moved", "1.1.0", scan=False)  # the tag moves to a new, unscanned image
    run = updater.pushed("moved", "1.1.0", judged)
    assert run.ok, run.error
    assert run.result["committed"] == [] and any("1.1.0" in note for note in run.result["notes"])
    assert updater.file("apps/moved/kustomization.yaml") == "images:\n  - name: moved\n    newTag: 1.0.0\n"
    assert updater.commits() == commits
    held = updater.reconcile()  # the registry's 1.1.0 is the unscanned image: held, not committed
    assert any(h["repository"] == "moved" and h["tag"] == "1.1.0" for h in held.result["held"]), held.result
    assert updater.file("apps/moved/kustomization.yaml").endswith("newTag: 1.0.0\n")


def test_a_stage_of_an_execution_codepipeline_does_not_know_falls_back_to_the_registry(updater: Updater) -> None:
    """A stage event for an execution CodePipeline does not know (a deleted pipeline, or another account's routed
    to this bus) is no reason to fail and be retried: like a stage that exported no image, every entry is reconciled
    from the registry. (Found by the fuzz test: it raised PipelineNotFoundException.)"""
    event = _event("pipeline_stage_succeeded")
    event["detail"].update({"pipeline": "checkout", "stage": "Build", "execution-id": str(uuid.uuid4())})
    run = updater.dispatcher.invoke("image_updater", event, "pipeline", retries=0)
    assert run.ok, run.error
    assert any("PipelineNotFoundException" in note for note in run.result["notes"]), run.result["notes"]
    assert any("reconciled from the registry" in note for note in run.result["notes"])


def test_a_newer_image_held_or_blocked_does_not_starve_an_older_clean_one(updater: Updater) -> None:
    """1.6.0 waits for its scan, 1.7.0 has critical findings: when 1.6.0's scan passes, 1.6.0 goes out (the
    reconcile path looks past the blocked 1.7.0), and 1.7.0 is listed as blocked."""
    held = updater.push("reports", "1.6.0", scan=False)
    updater.push("reports", "1.7.0", findings={"CRITICAL": 1})
    assert updater.pushed("reports", "1.6.0", held).result["held"]
    updater.ecr.start_image_scan(repositoryName="reports", imageId={"imageDigest": held})  # one HIGH: passes
    released = updater.scanned("reports", "1.6.0", held)
    assert released.ok, released.error
    assert [c["changes"] for c in released.result["committed"]] == [["reports newTag 1.5.0 -> 1.6.0"]]
    assert [b["tag"] for b in released.result["blocked"]] == ["1.7.0"]
    assert updater.file("apps/reports/kustomization.yaml") == "images:\n  - name: reports\n    newTag: 1.6.0\n"


def test_a_pipeline_commits_the_image_it_built_not_the_newest_in_the_registry(updater: Updater) -> None:
    built = updater.push("billing", "3.3.0")
    updater.push("billing", "3.4.0")  # another build, newer: not what this execution built
    execution = str(uuid.uuid4())
    updater.sandbox.codepipeline_shim.record(
        "billing",
        execution,
        stage="Build",
        action="Image",
        variables={"IMAGE_REPO_NAME": "billing", "IMAGE_TAG": "3.3.0", "IMAGE_DIGEST": built},
        revision="1111111111111111111111111111111111111111",
    )
    event = _event("pipeline_stage_succeeded")
    event["detail"].update({"pipeline": "billing", "stage": "Build", "execution-id": execution})
    run = updater.dispatcher.invoke("image_updater", event, "pipeline")
    assert run.ok, run.error
    assert updater.file("apps/billing/kustomization.yaml") == "images:\n  - name: billing\n    newTag: 3.3.0\n"
    assert f"Pipeline execution: billing {execution}" in updater.git.log("config")[0].message.decode()


def test_a_tag_too_long_for_an_image_reference_is_no_candidate_and_stops_nothing(updater: Updater) -> None:
    updater.push("feed", "v1")
    updater.push("feed", "v" + "1" * 199)  # ECR accepts 300 characters; an image reference's tag holds 128
    run = updater.reconcile()
    assert run.ok, run.error
    assert updater.file("apps/feed/kustomization.yaml") == "images:\n  - name: feed\n    newTag: v1\n"


def test_a_pipeline_exporting_only_a_digest_commits_its_version_tag(updater: Updater) -> None:
    """The build exported `...billing@sha256:...`; the image carries `3.5.0` and `sha-1a2b3c4`: its version goes out,
    not the newer 3.6.0 another build pushed."""
    built = updater.push("billing", "3.5.0")
    updater.ecr.put_image(
        repositoryName="billing", imageManifest=image_manifest(updater._manifests), imageTag="sha-1a2b3c4"
    )
    updater.push("billing", "3.6.0")
    execution = str(uuid.uuid4())
    updater.sandbox.codepipeline_shim.record(
        "billing", execution, stage="Build", action="Image", variables={"IMAGE_URI": f"{REGISTRY}/billing@{built}"}
    )
    event = _event("pipeline_stage_succeeded")
    event["detail"].update({"pipeline": "billing", "stage": "Build", "execution-id": execution})
    run = updater.dispatcher.invoke("image_updater", event, "pipeline")
    assert run.ok, run.error
    assert updater.file("apps/billing/kustomization.yaml") == "images:\n  - name: billing\n    newTag: 3.5.0\n"
