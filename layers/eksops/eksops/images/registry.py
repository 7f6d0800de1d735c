"""Reads of ECR for image_updater: the tags of a repository, one image, and an image's scan.

The ECR client comes in (``eksops.aws.client("ecr")`` in the function). Errors: a repository that does not exist
or that the role may not read is :class:`RegistryRefused` (permanent: report it); anything else that fails after
botocore's retries is :class:`RegistryUnavailable` (retryable). A missing image or scan is not an error: ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from eksops.aws import error_code
from eksops.errors import PermanentError, TemporaryError
from eksops.images.gate import ScanReport
from eksops.images.policy import Candidate

__all__ = ["EcrRegistry", "ImageInfo", "RegistryRefused", "RegistryUnavailable"]

PAGE_SIZE = 1000  # DescribeImages and DescribeImageScanFindings return at most 1000 per page
MAX_FINDINGS = 1000  # findings read per scan: the counts cover all of them, the list only names the worst
_REFUSED = frozenset(
    {"RepositoryNotFoundException", "AccessDeniedException", "InvalidParameterException", "ValidationException"}
)


class RegistryRefused(PermanentError):
    """ECR refused the read (no such repository, access denied, invalid request): a retry will not help."""


class RegistryUnavailable(TemporaryError):
    """ECR did not answer after botocore's retries: retry later."""


@dataclass(frozen=True)
class ImageInfo:
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime

    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(Candidate(tag, self.digest, self.pushed_at) for tag in self.tags)


class EcrRegistry:
    """Thin ECR reads. ``registry_id``: another account's registry (cross-account repositories), else the caller's."""

    def __init__(self, ecr: Any, *, registry_id: str | None = None) -> None:
        self._ecr = ecr
        self._registry = {"registryId": registry_id} if registry_id else {}

    def list_images(self, repository: str) -> list[Candidate]:
        """Every tag of the repository's images: one Candidate per tag.

        Left out: untagged images, archived images (ECR archive: not pullable until restored), and referrers
        (signatures, SBOMs and other artifacts attached to an image through ``subjectManifestDigest``).
        """
        return [candidate for image in self._images(repository) for candidate in image.candidates()]

    def describe_image(self, repository: str, *, tag: str | None = None, digest: str | None = None) -> ImageInfo | None:
        """One image by tag or digest, or None when the repository has no such image."""
        if (tag is None) == (digest is None):
            raise ValueError("give exactly one of tag and digest")
        image_id = {"imageTag": tag} if tag is not None else {"imageDigest": digest}
        try:
            response = self._ecr.describe_images(repositoryName=repository, imageIds=[image_id], **self._registry)
        except ClientError as exc:
            if error_code(exc) == "ImageNotFoundException":
                return None
            raise _wrap(exc, f"DescribeImages of {repository} {tag or digest}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"DescribeImages of {repository} {tag or digest} failed: {exc}") from exc
        details = response.get("imageDetails") or []
        return _info(details[0]) if details else None

    def digest_for_tag(self, repository: str, tag: str) -> str | None:
        image = self.describe_image(repository, tag=tag)
        return image.digest if image else None

    def tags_for_digest(self, repository: str, digest: str) -> tuple[str, ...]:
        image = self.describe_image(repository, digest=digest)
        return image.tags if image else ()

    def scan_report(self, repository: str, digest: str, *, max_findings: int = MAX_FINDINGS) -> ScanReport | None:
        """The image's scan (status, severity counts, up to ``max_findings`` findings), or None: no scan."""
        pages: list[Mapping[str, Any]] = []
        read = 0
        kwargs: dict[str, Any] = {
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "maxResults": min(PAGE_SIZE, max(1, max_findings)),
            **self._registry,
        }
        what = f"DescribeImageScanFindings of {repository}@{digest}"
        try:
            while True:
                page = self._ecr.describe_image_scan_findings(**kwargs)
                pages.append(page)
                body = page.get("imageScanFindings") or {}
                read += len(body.get("findings") or []) + len(body.get("enhancedFindings") or [])
                token = page.get("nextToken")
                if not token or read >= max_findings or token == kwargs.get("nextToken"):
                    break
                kwargs["nextToken"] = token
        except ClientError as exc:
            if error_code(exc) in {"ScanNotFoundException", "ImageNotFoundException"}:
                return None
            raise _wrap(exc, what) from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"{what} failed: {exc}") from exc
        return ScanReport.from_pages(pages)

    def _images(self, repository: str) -> Iterator[ImageInfo]:
        paginator = self._ecr.get_paginator("describe_images")
        pages = paginator.paginate(
            repositoryName=repository,
            filter={"tagStatus": "TAGGED"},
            PaginationConfig={"PageSize": PAGE_SIZE},
            **self._registry,
        )
        try:
            for page in pages:
                for detail in page.get("imageDetails") or []:
                    if _listable(detail):
                        yield _info(detail)
        except ClientError as exc:
            raise _wrap(exc, f"DescribeImages of {repository}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"DescribeImages of {repository} failed: {exc}") from exc


def _listable(detail: Mapping[str, Any]) -> bool:
    """Whether an image can be a candidate: tagged, pullable (not archived) and not a referrer artifact."""
    return bool(
        detail.get("imageTags")
        and not detail.get("subjectManifestDigest")
        and detail.get("imageStatus", "ACTIVE") == "ACTIVE"
    )


def _info(detail: Mapping[str, Any]) -> ImageInfo:
    return ImageInfo(str(detail["imageDigest"]), tuple(detail.get("imageTags") or ()), detail["imagePushedAt"])


def _wrap(exc: ClientError, what: str) -> Exception:
    code = error_code(exc)
    if code in _REFUSED:
        return RegistryRefused(f"{what} refused: {code}: {exc}")
    return RegistryUnavailable(f"{what} failed: {code or 'error'}: {exc}")
