"""The Git-remote backend of the config repository (GitHub, GitLab, any smart-HTTP server) through dulwich.

One round: a shallow fetch (depth 1, the branch only) into a bare repository in a temporary directory under /tmp
(Lambda's only writable place, removed afterwards; no working tree, so file bytes are never touched by line-ending
or filter settings), the edit on the blobs at the tip, one commit whose parent is that tip, and a push of
``refs/heads/<branch>`` from that tip to the commit. Never a force push:

- the push goes ahead only when the server still advertises the branch at the tip the edit was applied on; the
  commit is then a fast-forward by construction. When the branch moved, the push is not sent (many servers,
  GitHub's among them, accept a non-fast-forward update from a client that asks for one);
- the server compares the old sha of the update with the ref under its lock (git's ref transaction): a writer that
  got in between advertisement and update makes it answer ``ng <ref> fetch first``. dulwich's push does not raise on
  that: the per-ref status is read here.

A push refused either way starts a new round: fetch the new tip, apply the edit again on the new content, commit,
push, after a jittered exponential backoff while ``time_left()`` allows (else :class:`ConcurrentUpdate`). When the
server refuses a push while the branch did not move (a protected branch, a hook), that is a :class:`RepoError`.

Credentials (``username``/``password``, for example a GitHub or GitLab token) go to dulwich's HTTP client, which
sends them as a basic-auth header to the URL's origin only; they are never put in a URL, logged, or written to the
temporary repository's config. ``http://`` is accepted for loopback hosts only (tests and the sandbox).

``CommitOutcome.url`` links to the commit on github.com and gitlab.com (``https`` URLs); other hosts' web UIs
differ (and self-hosted ones cannot be told apart), so they get None.

dulwich is not in the layer (functions/image_updater/requirements.txt): it is imported inside the functions here.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import random
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from eksops.errors import ConfigError
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

if TYPE_CHECKING:
    from dulwich.client import GitClient
    from dulwich.objects import ObjectID
    from dulwich.repo import Repo

ROUND_RESERVE_S = 10.0  # time a round needs (a shallow fetch and a push over HTTPS): no retry with less left
TIMEOUT_S = 30.0  # connect and read timeout of each HTTP request
URL_VARIABLE = "CONFIG_REPO_URL"
SECRET_VARIABLE = "CONFIG_REPO_SECRET_ARN"  # noqa: S105 - a variable name, not a secret

_LOOPBACK_NAMES = frozenset({"localhost"})
_FILE_MODES = frozenset({stat.S_IFREG | 0o644, stat.S_IFREG | 0o755})
_COMMIT_LINKS = {"github.com": "{base}/commit/{sha}", "gitlab.com": "{base}/-/commit/{sha}"}

log = logging.getLogger(__name__)


class _HttpFailure(Exception):
    """The server answered an error status (``status``), or did not answer at all (``status`` None)."""

    def __init__(self, status: int | None, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass
class _Round:
    """One fetch-edit-commit-push round on a temporary bare repository."""

    repo: Repo
    client: GitClient
    path: str


class GitRemoteRepo:
    """A branch of a Git repository reached over smart HTTP(S), as a :class:`eksops.images.repo.ConfigRepo`.

    ``workdir`` is where temporary clones go (default: the system's temporary directory, /tmp on Lambda);
    ``sleep`` and ``rng`` (a float in [0, 1)) are the backoff's clock and jitter, replaceable in tests.
    """

    def __init__(
        self,
        url: str,
        branch: str,
        *,
        username: str | None = None,
        password: str | None = None,
        workdir: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.url = url
        self.branch = branch
        self.where = _check_url(url)  # host and path: what messages and logs name, never the credentials
        if password is not None and not username:
            # dulwich would drop a password that comes without a user name, and the push would fail as anonymous
            raise ConfigError(SECRET_VARIABLE, "holds a password but no username (any name works with a token)")
        self._ref = b"refs/heads/" + branch.encode()
        self._username = username
        self._password = password
        self._workdir = workdir
        self._sleep = sleep
        self._rng = rng
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"GitRemoteRepo({self.where!r}, branch={self.branch!r})"

    # -- the ConfigRepo contract ---------------------------------------------------------------------------------

    def read(self, path: str) -> bytes:
        """One file at the branch tip (raises FileMissing)."""
        with self._round() as round_:
            return self._read(round_, self._fetch(round_), path)[0]

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
        """Edit ``files`` at the tip and push the changed ones as one commit on it (see eksops.images.repo)."""
        paths = tuple(dict.fromkeys(files))
        with self._round() as round_:
            attempt = 1
            refused: tuple[str, str] | None = None  # (tip, reason) of a push the server itself refused
            while True:
                tip = self._fetch(round_)
                if refused is not None and refused[0] == tip:
                    raise RepoError(
                        f"push to branch {self.branch} of {self.where} was refused while the branch did not move "
                        f"(tip {tip}): {refused[1]}"
                    )
                changed = self._edit(round_, tip, paths, edit)
                if not changed or dry_run:
                    return CommitOutcome(None, tip, tuple(changed), attempt, dry_run=dry_run)
                commit_id = self._commit(round_, tip, changed, message() if callable(message) else message, author)
                moved, error = self._push(round_, tip, commit_id)
                if moved is None and error is None:
                    log.info("pushed %s to branch %s of %s (attempt %d)", commit_id, self.branch, self.where, attempt)
                    return CommitOutcome(commit_id, tip, tuple(changed), attempt, url=self.commit_url(commit_id))
                refused = (tip, error) if error is not None else None
                reason = error if error is not None else f"the branch moved to {moved}"
                self._wait_before_retry(attempt, reason, tip, time_left)
                attempt += 1

    # -- one round -----------------------------------------------------------------------------------------------

    @contextmanager
    def _round(self) -> Iterator[_Round]:
        """A temporary bare repository (removed afterwards) and an HTTP client for the remote."""
        from dulwich.client import get_transport_and_path_from_url
        from dulwich.repo import Repo

        pool = _pool_manager(self.url, self._timeout)
        client, path = get_transport_and_path_from_url(
            self.url, username=self._username, password=self._password, pool_manager=pool
        )
        with tempfile.TemporaryDirectory(prefix="eksops-git-", dir=self._workdir) as tmp:
            repo = Repo.init_bare(tmp)
            try:
                yield _Round(repo, client, path)
            finally:
                repo.close()

    def _fetch(self, round_: _Round) -> str:
        """Fetch the branch tip (depth 1) unless already here; returns its id. RepoError when there is no branch."""
        from dulwich.objects import ObjectID
        from dulwich.refs import Ref

        seen: dict[str, ObjectID] = {}

        def determine_wants(refs: Any, depth: int | None = None) -> list[ObjectID]:
            tip = refs.get(self._ref)
            if tip is None:
                return []
            seen["tip"] = tip
            return [] if tip in round_.repo.object_store else [tip]

        with self._translated():
            round_.client.fetch(round_.path, round_.repo, determine_wants, depth=1, ref_prefix=[Ref(self._ref)])
        if "tip" not in seen:
            raise RepoError(f"branch {self.branch} does not exist in {self.where}")
        tip = seen["tip"]
        # the next round's fetch tells the server it has this tip, which then sends only what changed since
        round_.repo.refs[Ref(b"refs/remotes/origin/" + self.branch.encode())] = ObjectID(tip)
        return tip.decode()

    def _read(self, round_: _Round, tip: str, path: str) -> tuple[bytes, int]:
        """A file's content and mode at ``tip``."""
        from dulwich.errors import NotTreeError
        from dulwich.object_store import tree_lookup_path
        from dulwich.objects import Blob, Commit

        store = round_.repo.object_store
        commit = store[tip.encode()]  # type: ignore[index]
        assert isinstance(commit, Commit)
        try:
            mode, sha = tree_lookup_path(store.__getitem__, commit.tree, path.strip("/").encode())
        except (KeyError, NotTreeError) as exc:
            raise FileMissing(path, self.branch) from exc
        if mode not in _FILE_MODES:
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise RepoError(f"{path} is {kind} on branch {self.branch} of {self.where}: list a kustomization file")
        blob = store[sha]
        assert isinstance(blob, Blob)
        return blob.data, mode

    def _edit(self, round_: _Round, tip: str, paths: Sequence[str], edit: Edit) -> dict[str, tuple[bytes, int]]:
        """The files whose content ``edit`` changes at ``tip``: new content and the file's mode (kept)."""
        changed: dict[str, tuple[bytes, int]] = {}
        for path in paths:
            content, mode = self._read(round_, tip, path)
            new = edit(path, content)
            if new is not None and new != content:
                changed[path] = (new, mode)
        return changed

    def _commit(
        self, round_: _Round, tip: str, changed: dict[str, tuple[bytes, int]], message: str, author: Author
    ) -> str:
        """One commit on ``tip`` holding the changed files, stored in the temporary repository; returns its id."""
        from dulwich.object_store import commit_tree_changes
        from dulwich.objects import Blob, Commit

        store = round_.repo.object_store
        parent = store[tip.encode()]  # type: ignore[index]
        assert isinstance(parent, Commit)
        changes: list[tuple[bytes, int | None, ObjectID | None]] = []
        for path, (content, mode) in changed.items():
            blob = Blob.from_string(content)
            store.add_object(blob)
            changes.append((path.strip("/").encode(), mode, blob.id))
        commit = Commit()
        commit.tree = commit_tree_changes(store, parent.tree, changes)
        commit.parents = [parent.id]
        commit.author = commit.committer = f"{author.name} <{author.email}>".encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.encode() if message.endswith("\n") else (message + "\n").encode()
        store.add_object(commit)
        return commit.id.decode()

    def _push(self, round_: _Round, tip: str, commit_id: str) -> tuple[str | None, str | None]:
        """Push ``commit_id`` as the branch's new tip from ``tip``: (None, None) when the server took it; (the tip
        the server advertised, None) when the branch had moved and nothing was sent; (None, reason) when refused."""
        from dulwich.objects import ObjectID
        from dulwich.refs import Ref

        ref = Ref(self._ref)
        moved: dict[str, str] = {}

        def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID] | None:
            current = refs.get(ref)
            if current is None or current.decode() != tip:
                moved["tip"] = current.decode() if current is not None else "(deleted)"
                return None  # dulwich sends nothing: pushing now would not be a fast-forward
            return {ref: ObjectID(commit_id.encode())}

        def pack_data(have: Any, want: Any, *, ofs_delta: bool = False, progress: Any = None) -> Any:
            return round_.repo.generate_pack_data(set(have), set(want), progress=progress, ofs_delta=ofs_delta)

        with self._translated():
            result = round_.client.send_pack(round_.path, update_refs, pack_data)  # type: ignore[arg-type]
        if "tip" in moved:
            return moved["tip"], None
        statuses = result.ref_status or {}
        if ref not in statuses:
            return None, "the server did not report the update's status"
        error = statuses[ref]
        return None, (None if error is None else str(error))

    def _wait_before_retry(self, attempt: int, reason: str, tip: str, time_left: Callable[[], float]) -> None:
        """Sleep a jittered, exponentially growing share of BACKOFF_CAP_S before round ``attempt + 1``, or raise
        ConcurrentUpdate when the time left cannot hold the wait and one more round."""
        wait = retry_wait(attempt, time_left=time_left, reserve_s=ROUND_RESERVE_S, rng=self._rng)
        if wait is None:
            raise ConcurrentUpdate(
                f"branch {self.branch} of {self.where} kept moving: not pushed after {attempt} attempt(s) "
                f"(last: {reason} on parent {tip}) and too little time left; retry later"
            )
        log.info(
            "push to branch %s of %s not accepted (%s; parent %s): fetching the new tip in %.2f s (attempt %d)",
            self.branch,
            self.where,
            reason,
            tip,
            wait,
            attempt + 1,
        )
        self._sleep(wait)

    # -- errors and links ----------------------------------------------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """dulwich's and the HTTP layer's failures as eksops errors naming host and branch (never credentials)."""
        from dulwich.client import HTTPUnauthorized
        from dulwich.errors import GitProtocolError, NotGitRepository, SendPackError

        try:
            yield
        except _HttpFailure as exc:
            if exc.status in (401, 403):
                raise RepoError(
                    f"access to branch {self.branch} of {self.where} was denied (HTTP {exc.status}): check the "
                    f"credentials in {SECRET_VARIABLE} and that they may read and push"
                ) from exc
            raise RepoUnavailable(
                f"{self.where} did not serve branch {self.branch} ({exc.reason}): retry later"
            ) from exc
        except HTTPUnauthorized as exc:
            raise RepoError(f"access to branch {self.branch} of {self.where} was denied (HTTP 401)") from exc
        except NotGitRepository as exc:
            raise RepoError(f"no Git repository at {self.where} (for branch {self.branch})") from exc
        except SendPackError as exc:  # the server could not store the pack (unpack failed)
            raise RepoUnavailable(f"{self.where} did not take the push to branch {self.branch}: {exc}") from exc
        except GitProtocolError as exc:  # includes a connection lost mid-answer (HangupException)
            raise RepoUnavailable(
                f"{self.where} broke off the exchange for branch {self.branch} ({type(exc).__name__}): retry later"
            ) from exc

    def commit_url(self, commit_id: str) -> str | None:
        """The commit's page on github.com or gitlab.com; None for other hosts."""
        parts = urlsplit(self.url)
        template = _COMMIT_LINKS.get(parts.hostname or "") if parts.scheme == "https" else None
        if template is None:
            return None
        base = f"https://{parts.hostname}{parts.path.rstrip('/').removesuffix('.git')}"
        return template.format(base=base, sha=commit_id)


def _check_url(url: str) -> str:
    """``host[:port]/path`` of a valid remote URL; ConfigError (without echoing the URL) otherwise."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(URL_VARIABLE, f"must not hold credentials: put them in the secret {SECRET_VARIABLE}")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(URL_VARIABLE, f"must be an https:// Git remote, got scheme {parts.scheme!r}")
    if parts.query or parts.fragment:
        raise ConfigError(URL_VARIABLE, "a Git remote URL has no query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(URL_VARIABLE, "http:// is allowed for loopback hosts only (tests, sandbox): use https://")
    return f"{parts.netloc}{parts.path}"


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pool_manager(url: str, timeout: float) -> Any:
    """dulwich's urllib3 pool manager for ``url`` (proxy settings from the environment, TLS verified), with error
    answers and transport failures raised as :class:`_HttpFailure` before dulwich sees them: dulwich reports 403 and
    5xx alike as GitProtocolError, whose only difference is its message text."""
    from dulwich.client import default_urllib3_manager

    pool_cls, proxy_cls = _checked_managers()
    return default_urllib3_manager(
        None, pool_manager_cls=pool_cls, proxy_manager_cls=proxy_cls, base_url=url, timeout=timeout
    )


@functools.cache
def _checked_managers() -> tuple[type, type]:
    import urllib3

    def checked(urlopen: Callable[..., Any], method: str, url: str, redirect: bool, kw: Any) -> Any:
        try:
            response = urlopen(method, url, redirect=redirect, **kw)
        except urllib3.exceptions.HTTPError as exc:
            raise _HttpFailure(None, type(exc).__name__) from exc
        status = int(response.status)
        if status in (401, 403, 408, 429) or status >= 500:
            response.drain_conn()
            raise _HttpFailure(status, f"HTTP {status}")
        return response

    class CheckedPoolManager(urllib3.PoolManager):
        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
            return checked(super().urlopen, method, url, redirect, kw)

    class CheckedProxyManager(urllib3.ProxyManager):
        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
            return checked(super().urlopen, method, url, redirect, kw)

    return CheckedPoolManager, CheckedProxyManager
