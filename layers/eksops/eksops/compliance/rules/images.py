"""Compliance rules about container images: scan findings and tag mutability in ECR, floating tags in workloads.

The ECR rules look at what runs (the pods' images, by the digest the kubelet reports in ``status.containerStatuses``
when there is one), in the cluster's own region: ECR is regional, and a client is bound to one region. Scans are read
through image_updater's ``EcrRegistry`` and judged by its vulnerability ``gate`` (no second copy of either).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from eksops.compliance.context import ClusterContext
from eksops.compliance.model import Category, KubePermission, Rule, Severity, Violation, register
from eksops.compliance.workloads import WORKLOAD_READS, workloads
from eksops.images.gate import Severity as ScanSeverity
from eksops.images.gate import Verdict, evaluate
from eksops.images.pipeline import parse_image_reference
from eksops.images.registry import EcrRegistry, RegistryRefused

log = logging.getLogger(__name__)

_ECR_HOST = re.compile(r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
FINISHED_SCANS = ("COMPLETE", "ACTIVE")  # basic and enhanced scanning: a verdict on the findings
MUTABLE = ("MUTABLE", "MUTABLE_WITH_EXCLUSION")
TOP_FINDINGS = 5
SAMPLE = 3  # pods named in evidence
_POD_READ = KubePermission("", "pods", ("list",))


@dataclass
class RunningImage:
    """One ECR image the cluster runs, and the pods running it ("namespace/name")."""

    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None
    pods: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"

    def where(self) -> str:
        more = f" and {len(self.pods) - SAMPLE} more" if len(self.pods) > SAMPLE else ""
        return f"pod(s) {', '.join(sorted(self.pods)[:SAMPLE])}{more}"


def _ecr_image(image: str, image_id: str) -> tuple[str, str, str, str | None, str | None] | None:
    """(account, region, repository, tag, digest) of an ECR image reference, the digest from ``image_id`` when the
    kubelet reported one; None for any other registry."""
    host = _ECR_HOST.match(image)
    if host is None:
        return None
    last = image.rsplit("/", 1)[-1]
    parsed = parse_image_reference(image if (":" in last or "@" in last) else f"{image}:latest")
    if parsed is None:
        return None
    reported = _DIGEST.search(image_id)
    return host["account"], host["region"], parsed.repository, parsed.tag, reported[1] if reported else parsed.digest


def running_ecr_images(ctx: ClusterContext) -> list[RunningImage]:
    """The ECR images of the cluster's pending and running pods, each once (by digest when known, else by tag)."""
    found: dict[tuple[str, str, str, str], RunningImage] = {}
    for pod in ctx.pods():
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        reported = {
            str(s.get("name")): str(s.get("imageID") or "")
            for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
        }
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            parsed = _ecr_image(str(container.get("image") or ""), reported.get(str(container.get("name")), ""))
            if parsed is None:
                continue
            account, region, repository, tag, digest = parsed
            key = (account, region, repository, digest or f"tag:{tag}")
            entry = found.setdefault(key, RunningImage(account, region, repository, tag, digest))
            where = f"{meta.get('namespace')}/{meta.get('name')}"
            if where not in entry.pods:
                entry.pods.append(where)
    return [found[k] for k in sorted(found)]


def _registry(ctx: ClusterContext, image: RunningImage) -> EcrRegistry:
    other = image.account if image.account != ctx.account else None
    return EcrRegistry(ctx.client("ecr"), registry_id=other)


@register
class CriticalFindings(Rule):
    """A finished scan (basic COMPLETE, enhanced ACTIVE) with findings at CRITICAL, as image_updater's gate judges
    them. Images without a scan, with a scan still running, or in a registry eksops may not read (another account's)
    are not judged: no finding. Images in other regions than the cluster's are not read."""

    id = "images-critical-findings"
    title = "Running image with CRITICAL findings in its ECR scan"
    severity = Severity.HIGH
    category = Category.IMAGES
    why = (
        "A critical vulnerability in an image that runs is exploitable now, whatever the pipeline's gate let "
        "through when it was built: new CVEs are published against old images every day."
    )
    fix = (
        "Rebuild the image on a patched base (or patched packages) and roll it out; image_updater commits the new "
        "tag once its scan passes BLOCK_ON_SEVERITY. Accept with a reason and expiry when the finding does not apply."
    )
    reference = (
        "EKS BP: Security > Image security > Scan images for vulnerabilities regularly "
        "(hardeneks: make_sure_inspector_is_enabled checks only that scanning is on)"
    )
    adds = "judges the images that actually run, by digest, with the same gate image_updater uses"
    iam_actions = ("eks:DescribeCluster", "ecr:DescribeImages", "ecr:DescribeImageScanFindings")
    kube_permissions = (_POD_READ,)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for image in self._by_digest(ctx):
            digest = str(image.digest)
            try:
                ctx.spend("ecr:DescribeImageScanFindings")
                report = _registry(ctx, image).scan_report(image.repository, digest, max_findings=TOP_FINDINGS)
            except RegistryRefused as exc:
                log.info("image %s not judged: %s", image.ref, exc)
                continue
            result = evaluate(report, ScanSeverity.CRITICAL)
            if result.verdict is Verdict.BLOCK and report is not None and report.status in FINISHED_SCANS:
                yield Violation(f"image/{image.repository}@{digest}", f"{result.reason}; running in {image.where()}")

    @staticmethod
    def _by_digest(ctx: ClusterContext) -> list[RunningImage]:
        """The running images of the cluster's region, once per digest: a tag the kubelet reported no digest for is
        resolved in ECR (a tag gone from the repository is left out: there is no scan to read for it)."""
        merged: dict[tuple[str, str, str], RunningImage] = {}
        for image in running_ecr_images(ctx):
            if image.region != ctx.region:
                continue
            digest = image.digest
            if digest is None:
                ctx.spend("ecr:DescribeImages")
                try:
                    digest = _registry(ctx, image).digest_for_tag(image.repository, str(image.tag))
                except RegistryRefused as exc:
                    log.info("image %s not judged: %s", image.ref, exc)
                    continue
                if digest is None:
                    continue
            key = (image.account, image.repository, digest)
            entry = merged.setdefault(key, RunningImage(image.account, image.region, image.repository, None, digest))
            entry.pods += [p for p in image.pods if p not in entry.pods]
        return [merged[k] for k in sorted(merged)]


@register
class EcrMutableTags(Rule):
    """The ECR repositories (in the cluster's region) of the images that run; a repository in another account is
    judged when eksops may read it, else left out. MUTABLE_WITH_EXCLUSION counts as mutable."""

    id = "ecr-mutable-tags"
    title = "ECR repository of a running image allows tags to be overwritten"
    severity = Severity.LOW
    category = Category.IMAGES
    why = (
        "With mutable tags, the image behind a tag can be replaced: a rollback, a new node pulling the same tag, "
        "or a scan may each see a different image than the one reviewed."
    )
    fix = (
        "aws ecr put-image-tag-mutability --repository-name <repo> --image-tag-mutability IMMUTABLE (first make sure "
        "no pipeline re-pushes a tag such as latest), and deploy by version tag or digest."
    )
    reference = (
        "hardeneks: use_immutable_tags_with_ecr; EKS BP: Security > Image security > Use immutable tags with ECR"
    )
    adds = "only the repositories of images that run in the cluster, not every repository in the account"
    iam_actions = ("eks:DescribeCluster", "ecr:DescribeRepositories")
    kube_permissions = (_POD_READ,)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        repositories: dict[tuple[str, str], list[RunningImage]] = {}
        for image in running_ecr_images(ctx):
            if image.region == ctx.region:
                repositories.setdefault((image.account, image.repository), []).append(image)
        for (account, repository), images in sorted(repositories.items()):
            other = account != ctx.account
            codes = ("RepositoryNotFoundException",) + (("AccessDeniedException",) if other else ())
            answer = ctx.aws_or_none(
                "ecr",
                "describe_repositories",
                *codes,
                repositoryNames=[repository],
                **({"registryId": account} if other else {}),
            )
            found = (answer or {}).get("repositories") or []
            mutability = str(found[0].get("imageTagMutability") or "") if found else ""
            if mutability in MUTABLE:
                running = ", ".join(sorted({i.tag or str(i.digest) for i in images}))
                yield Violation(
                    f"repository/{account}/{repository}" if other else f"repository/{repository}",
                    f"imageTagMutability {mutability}; running: {running}",
                )


def _floating(image: str) -> str | None:
    """Why ``image`` floats (no digest, and tag latest or none), or None when it is pinned."""
    if "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag (pulls latest)"
    return "tag latest" if last.rsplit(":", 1)[1] == "latest" else None


@register
class LatestTag(Rule):
    """The workloads eksops.compliance.workloads walks (Deployments, DaemonSets, StatefulSets, CronJobs, stand-alone
    Jobs and ReplicaSets, and pods no walked controller stands for; system namespaces left out), by their pod template:
    one finding per workload, not per replica. An image pinned by digest never floats."""

    id = "images-latest-tag"
    title = "Workload runs an image by the latest tag or without a tag"
    severity = Severity.LOW
    category = Category.IMAGES
    why = (
        "latest (or no tag, which means latest) changes under the workload: two replicas may run different code, a "
        "rollback rolls back to nothing, and nobody can say which version is deployed."
    )
    fix = (
        "Use a version tag (or a digest) in the pod template; image_updater keeps such tags current from the registry."
    )
    reference = "EKS BP: Security > Image security > Use immutable tags (no hardeneks rule for workload tags)"
    adds = "reported on the owning workload, with the containers named"
    kube_permissions = WORKLOAD_READS

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for workload in workloads(ctx):
            floating = [
                f"{c.spec.get('name')}: {c.spec.get('image')} ({why})"
                for c in workload.containers()
                if (why := _floating(str(c.spec.get("image") or "")))
            ]
            if floating:
                yield Violation(
                    workload.resource,
                    "; ".join(floating),
                    annotations=workload.annotations,
                    namespace=workload.namespace,
                )
