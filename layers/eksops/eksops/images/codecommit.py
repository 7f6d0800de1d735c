"""The CodeCommit backend of the config repository: read at the branch tip and commit on it through the API.

One round is GetBranch (the tip), GetFile at that tip for each file, the edit, then one CreateCommit whose
``parentCommitId`` is that tip; CodeCommit refuses it (ParentCommitIdOutdated) when the branch moved meanwhile,
which makes the commit a compare-and-set: nothing another writer committed is ever overwritten. A refused round
is redone from GetBranch on the new tip, after a jittered exponential backoff, while the caller's time allows.

Throttling and server errors are retried inside each call by botocore (the clients eksops.aws.client makes, with
their call budget); what still escapes is :class:`RepoUnavailable`, never retried a second time here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

from eksops.aws import error_code
from eksops.images.repo import (
    Author,
    CommitOutcome,
    ConcurrentUpdate,
    Edit,
    FileMissing,
    RepoError,
    RepoUnavailable,
    retry_wait,
)

ROUND_RESERVE_S = 5.0  # time a round needs (GetBranch, GetFile per file, CreateCommit): no retry with less left

# CreateCommit's answers that mean "the branch is no longer where you read it": re-read and redo the round.
# ParentCommitDoesNotExist: the tip we read left the branch's history (the branch was rewritten); BranchDoesNotExist:
# it was deleted meanwhile; the next GetBranch says whether it came back or is gone for good (then a RepoError).
_MOVED = frozenset(
    {"ParentCommitIdOutdatedException", "ParentCommitDoesNotExistException", "BranchDoesNotExistException"}
)
# Errors botocore retries itself (throttling, transient): when one escapes, its retries ran out. botocore's own lists
# (private; tests/unit/images/test_codecommit.py checks they still hold the codes CodeCommit answers with).
_UNAVAILABLE = frozenset(
    vars(ThrottledRetryableChecker)["_THROTTLED_ERROR_CODES"]
    + vars(TransientRetryableChecker)["_TRANSIENT_ERROR_CODES"]
    # KMS could not serve the repository's key right now (the other Encryption* errors are permanent)
    + ["EncryptionKeyUnavailableException"]
)
_SYMLINK = "SYMLINK"
# AWS console host per partition; another partition gets no link (CommitOutcome.url is optional)
_CONSOLE = {
    "aws": "https://{region}.console.aws.amazon.com",
    "aws-cn": "https://{region}.console.amazonaws.cn",
    "aws-us-gov": "https://console.amazonaws-us-gov.com",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _File:
    content: bytes
    mode: str  # NORMAL or EXECUTABLE (CodeCommit's names): written back unchanged


class _Moved(Exception):  # an internal signal: never leaves this module
    """CreateCommit was refused because the branch moved: redo the round."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)


class CodeCommitRepo:
    """A branch of a CodeCommit repository, as a :class:`eksops.images.repo.ConfigRepo`.

    ``client`` is a botocore codecommit client (eksops.aws.client("codecommit") in the function); ``sleep`` and
    ``rng`` (a float in [0, 1)) are the backoff's clock and jitter, replaceable in tests.
    """

    def __init__(
        self,
        client: Any,
        repository: str,
        branch: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._codecommit = client
        self.repository = repository
        self.branch = branch
        self._sleep = sleep
        self._rng = rng

    def __repr__(self) -> str:
        return f"CodeCommitRepo({self.repository!r}, branch={self.branch!r})"

    # -- the ConfigRepo contract ---------------------------------------------------------------------------------

    def read(self, path: str) -> bytes:
        """One file at the branch tip (raises FileMissing)."""
        return self._get_file(self._tip(), path).content

    def update(
        self,
        files: Sequence[str],
        edit: Edit,
        *,
        message: str | Callable[[], str],
        author: Author,
        time_left: Callable[[], float],
        dry_run: bool = False,
    ) -> CommitOutcome:
        """Edit ``files`` at the tip and commit the changed ones as one commit on it (see eksops.images.repo)."""
        paths = tuple(dict.fromkeys(files))  # CreateCommit refuses a path twice (SamePathRequestException)
        attempt = 1
        while True:
            tip = self._tip()
            changed = self._edit(tip, paths, edit)
            if not changed or dry_run:
                return CommitOutcome(None, tip, tuple(changed), attempt, dry_run=dry_run)
            try:
                commit_id = self._commit(tip, changed, message() if callable(message) else message, author)
            except _Moved as moved:
                self._wait_before_retry(attempt, moved.code, tip, time_left)
                attempt += 1
                continue
            if commit_id is None:  # NoChangeException: the tip already holds this content
                return CommitOutcome(None, tip, (), attempt)
            log.info("committed %s on %s of %s (attempt %d)", commit_id, self.branch, self.repository, attempt)
            return CommitOutcome(commit_id, tip, tuple(changed), attempt, url=self.commit_url(commit_id))

    # -- one round -----------------------------------------------------------------------------------------------

    def _edit(self, tip: str, paths: Sequence[str], edit: Edit) -> dict[str, _File]:
        """The files whose content ``edit`` changes at ``tip``, with their new content (in the order given)."""
        changed: dict[str, _File] = {}
        for path in paths:
            current = self._get_file(tip, path)
            new = edit(path, current.content)
            if new is not None and new != current.content:
                changed[path] = _File(new, current.mode)
        return changed

    def _commit(self, tip: str, changed: dict[str, _File], message: str, author: Author) -> str | None:
        """CreateCommit on ``tip``: the new commit id, None when CodeCommit finds nothing to change; raises _Moved."""
        try:
            response = self._codecommit.create_commit(
                repositoryName=self.repository,
                branchName=self.branch,
                parentCommitId=tip,
                authorName=author.name,
                email=author.email,
                commitMessage=message,
                putFiles=[
                    {"filePath": path, "fileMode": file.mode, "fileContent": file.content}
                    for path, file in changed.items()
                ],
            )
        except ClientError as exc:
            code = error_code(exc)
            if code in _MOVED:
                raise _Moved(code) from exc
            if code == "NoChangeException":
                log.info(
                    "nothing to commit on %s of %s: the tip %s has this content", self.branch, self.repository, tip
                )
                return None
            raise self._failure(exc) from exc
        except (BotocoreConnectionError, HTTPClientError) as exc:
            raise self._unreachable(exc) from exc
        return str(response["commitId"])

    def _wait_before_retry(self, attempt: int, code: str, tip: str, time_left: Callable[[], float]) -> None:
        """Sleep a jittered, exponentially growing share of BACKOFF_CAP_S before round ``attempt + 1``, or raise
        ConcurrentUpdate when the time left cannot hold the wait and one more round."""
        wait = retry_wait(attempt, time_left=time_left, reserve_s=ROUND_RESERVE_S, rng=self._rng)
        if wait is None:
            raise ConcurrentUpdate(
                f"branch {self.branch} of CodeCommit repository {self.repository} kept moving: not committed after "
                f"{attempt} attempt(s) (last: {code} on parent {tip}) and too little time left; retry later"
            )
        log.info(
            "%s on %s of %s (parent %s): re-reading at the new tip in %.2f s (attempt %d)",
            code,
            self.branch,
            self.repository,
            tip,
            wait,
            attempt + 1,
        )
        self._sleep(wait)

    # -- reads ---------------------------------------------------------------------------------------------------

    def _tip(self) -> str:
        try:
            response = self._codecommit.get_branch(repositoryName=self.repository, branchName=self.branch)
        except ClientError as exc:
            raise self._failure(exc) from exc
        except (BotocoreConnectionError, HTTPClientError) as exc:
            raise self._unreachable(exc) from exc
        return str(response["branch"]["commitId"])

    def _get_file(self, tip: str, path: str) -> _File:
        try:
            response = self._codecommit.get_file(repositoryName=self.repository, commitSpecifier=tip, filePath=path)
        except ClientError as exc:
            if error_code(exc) == "FileDoesNotExistException":
                raise FileMissing(path, self.branch) from exc
            raise self._failure(exc, path) from exc
        except (BotocoreConnectionError, HTTPClientError) as exc:
            raise self._unreachable(exc) from exc
        mode = str(response.get("fileMode") or "NORMAL")
        if mode == _SYMLINK:  # its content is the link's target path, not the kustomization it points to
            raise RepoError(
                f"{path} is a symbolic link on branch {self.branch} of CodeCommit repository {self.repository}: "
                "list the file it points to instead"
            )
        return _File(bytes(response["fileContent"]), mode)

    # -- errors and links ----------------------------------------------------------------------------------------

    def _failure(self, exc: ClientError, path: str | None = None) -> RepoError | RepoUnavailable:
        """The eksops error for a ClientError botocore did not (or no longer) retry."""
        code = error_code(exc)
        operation = exc.operation_name
        where = f"branch {self.branch} of CodeCommit repository {self.repository}" + (f", file {path}" if path else "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _UNAVAILABLE or status >= 500:
            return RepoUnavailable(f"{operation} on {where} failed ({code or status}): retry later")
        if code in ("AccessDeniedException", "AccessDenied"):
            return RepoError(f"{operation} on {where} was denied: the function's role needs codecommit:{operation}")
        if code == "RepositoryDoesNotExistException":
            return RepoError(f"CodeCommit repository {self.repository} does not exist (branch {self.branch})")
        if code == "BranchDoesNotExistException":
            return RepoError(f"branch {self.branch} does not exist in CodeCommit repository {self.repository}")
        if code.startswith("EncryptionKey"):
            return RepoError(f"{operation} on {where}: the repository's KMS key cannot be used ({code})")
        message = exc.response.get("Error", {}).get("Message", "")
        return RepoError(f"{operation} on {where} failed: {code}" + (f": {message}" if message else ""))

    def _unreachable(self, exc: Exception) -> RepoUnavailable:
        return RepoUnavailable(
            f"CodeCommit did not answer for branch {self.branch} of repository {self.repository} "
            f"({type(exc).__name__}): retry later"
        )

    def commit_url(self, commit_id: str) -> str | None:
        """The AWS console page of ``commit_id`` (None in a partition without a known console host)."""
        meta = self._codecommit.meta
        host = _CONSOLE.get(str(getattr(meta, "partition", "aws")))
        if host is None:
            return None
        region = meta.region_name
        return (
            f"{host.format(region=region)}/codesuite/codecommit/repositories/{quote(self.repository, safe='')}"
            f"/commit/{quote(commit_id, safe='')}?region={region}"
        )
