"""The config repository as image_updater sees it: read files at the branch tip, change them, commit on that tip.

Two backends implement :class:`ConfigRepo`: CodeCommit through its API (eksops.images.codecommit) and any Git
remote over HTTPS through dulwich (eksops.images.gitremote). Both follow the same contract:

- ``update`` reads ``files`` at the tip of the branch, calls ``edit(path, content)`` for each, and commits the
  files whose content changed as ONE commit whose parent is that tip. When nothing changed, no commit is made
  (``CommitOutcome.commit_id`` is None) and that is success.
- When the branch moved meanwhile (CodeCommit ParentCommitIdOutdated, a rejected non-fast-forward push), it
  re-reads at the new tip, calls ``edit`` again on the new content, and retries with jittered backoff while
  ``time_left()`` allows; never a force push. Out of time: :class:`ConcurrentUpdate` (retryable).
- ``edit`` may raise (for example the image has no entry in a file): the exception propagates unchanged and
  nothing is committed.
- ``dry_run=True`` reads and edits but never writes; the outcome lists what would change.
- ``message`` may be a callable: it is called after the edits of the round that commits, so that it can say what
  those edits found (the tag replaced on the tip actually committed on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eksops.errors import PermanentError, TemporaryError

BACKOFF_BASE_S = 0.2  # the first retry waits up to this; each further one up to twice the previous bound
BACKOFF_CAP_S = 5.0  # the longest wait between two rounds

Edit = Callable[[str, bytes], bytes | None]
"""(path, content at the tip) -> the new content, or None when this file needs no change."""


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class CommitOutcome:
    commit_id: str | None  # None: nothing to change (or dry run), no commit was made
    parent_id: str  # the tip the edit was applied on
    files: tuple[str, ...]  # paths changed (or that would change under dry run)
    attempts: int  # 1, plus one per retry after a concurrent change
    url: str | None = None  # a link to the commit (console or web UI) for the report, when known
    dry_run: bool = False


class ConfigRepo(Protocol):
    """A branch of the GitOps config repository."""

    def update(
        self,
        files: Sequence[str],
        edit: Edit,
        *,
        message: str | Callable[[], str],
        author: Author,
        time_left: Callable[[], float],
        dry_run: bool = False,
    ) -> CommitOutcome: ...

    def read(self, path: str) -> bytes:
        """One file at the branch tip (raises FileMissing)."""
        ...


class RepoError(PermanentError):
    """The repository refused for a reason a retry will not fix (access denied, no such branch)."""


class FileMissing(RepoError):
    def __init__(self, path: str, branch: str) -> None:
        self.path = path
        super().__init__(f"{path} does not exist on branch {branch}")


class RepoUnavailable(TemporaryError):
    """The remote did not answer, or answered with a server error: retry later."""


class ConcurrentUpdate(TemporaryError):
    """The branch kept moving and the change could not be committed within the time left; retry later."""


def retry_wait(
    attempt: int, *, time_left: Callable[[], float], reserve_s: float, rng: Callable[[], float]
) -> float | None:
    """The wait before round ``attempt + 1`` after a concurrent change: "full jitter", uniform in [0, bound) with a
    bound doubling from BACKOFF_BASE_S up to BACKOFF_CAP_S, so writers that collided spread out instead of colliding
    again. None when the time left cannot hold the wait and one more round (``reserve_s``)."""
    room = time_left() - reserve_s
    if room <= 0:
        return None
    bound: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (attempt - 1))
    return min(rng() * bound, room)
