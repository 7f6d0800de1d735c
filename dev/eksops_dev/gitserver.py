"""A local smart-HTTP Git server for tests and the sandbox: dulwich's WSGI app, made correct for concurrent writers.

dulwich's stock server (``dulwich.web``) is not fit to prove a client safe under races: its receive-pack answers
"ok" to a ref update whose old sha is stale (``set_if_equals`` refuses to write, the status says ok anyway), accepts
non-fast-forward updates and deletions, and its stateless upload-pack refuses a ``want`` that is no longer a tip
when the branch moved between the ref advertisement (GET info/refs) and the fetch (POST git-upload-pack). Here:

- receive-pack compare-and-sets every ref under one lock per repository (and dulwich's file-locked
  ``set_if_equals``): an old sha that is not the ref's current value is refused with ``ng <ref> fetch first``;
  an update that is not a fast-forward of the current value is refused (``non-fast-forward``), and so is a
  deletion: no force push is ever accepted, so a test passing proves the client never needs one;
- stateless upload-pack serves a ``want`` that is an existing commit even when it is no longer a tip (as git's
  stateless HTTP upload-pack serves any commit reachable from a ref).

Optional HTTP basic auth (``username``/``password``) answers 401 to requests without the right credentials;
``answer(status)`` scripts error answers (403, 503, ...) for the next requests, ``refused`` protects refs (as a
server hook would) and ``on_request`` runs before each request (to make another writer commit at a chosen moment).
Development only: never in the layer.
"""

from __future__ import annotations

import base64
import collections
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dulwich.graph import can_fast_forward
from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.protocol import CAPABILITY_ATOMIC, ZERO_SHA, Protocol, pkt_line
from dulwich.refs import Ref, check_ref_format
from dulwich.repo import Repo
from dulwich.server import Backend, BackendRepo, FileSystemBackend, ReceivePackHandler, UploadPackHandler
from dulwich.web import make_wsgi_chain

from eksops_dev.shims import POLL_S

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


@dataclass(frozen=True)
class RefUpdate:
    """One ref update a push asked for, and what the server answered (None: accepted, else the ng reason)."""

    repo: str
    ref: str
    old: str
    new: str
    error: str | None


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # stop() does not wait for a client that keeps its connection open


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class GitServer:
    """Serves the bare repositories under ``root`` at ``{url}/<name>`` (a repository named ``config.git`` is
    ``{url}/config.git``). Use as a context manager, or ``start()`` / ``stop()``.

    ``updates`` records every ref update pushed (accepted or not) and ``requests`` every (method, path) served,
    so tests can show a race really happened.
    """

    def __init__(self, root: Path | str, *, username: str | None = None, password: str | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._credentials = (username, password) if username is not None else None
        self._locks: collections.defaultdict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._script: collections.deque[int] = collections.deque()
        self.refused: dict[str, str] = {}  # ref -> reason: updates of it are refused (a protected branch)
        self.on_request: Callable[[str, str], None] | None = None  # (method, path) before serving: races in tests
        self.updates: list[RefUpdate] = []
        self.requests: list[tuple[str, str]] = []
        self._backend = backend = _Backend(str(self.root))
        app = make_wsgi_chain(
            backend, handlers={b"git-receive-pack": self._receive_pack(), b"git-upload-pack": _UploadPack}
        )
        self._server = make_server(
            "127.0.0.1", 0, self._guard(app), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_S,), daemon=True)

    # -- life cycle ----------------------------------------------------------------------------------------------

    def start(self) -> GitServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, status: int, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (and no Git content) instead of serving them."""
        self._script.extend([status] * times)

    # -- repositories --------------------------------------------------------------------------------------------

    def create(self, name: str, files: Mapping[str, bytes], *, branch: str = "main", message: str = "initial") -> str:
        """A new bare repository ``name`` whose ``branch`` holds ``files`` in one commit; returns its URL."""
        path = self.root / name
        path.mkdir(parents=True)
        with Repo.init_bare(str(path)) as repo:
            repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/" + branch.encode()))
        self.commit(name, files, branch=branch, message=message)
        return f"{self.url}/{name}"

    def commit(
        self,
        name: str,
        files: Mapping[str, bytes | None],
        *,
        branch: str = "main",
        message: str = "change",
        author: bytes = b"Someone Else <someone@example.com>",
    ) -> str:
        """Commit ``files`` (None deletes a path) on ``branch`` directly, as another writer would; returns the id."""
        ref = Ref(b"refs/heads/" + branch.encode())
        with self._lock(self.root / name), Repo(str(self.root / name)) as repo:
            parent = _ref(repo, ref)
            tree: ObjectID | Tree = Tree()
            if parent is not None:
                parent_commit = repo[parent]
                assert isinstance(parent_commit, Commit)
                tree = parent_commit.tree
            changes: list[tuple[bytes, int | None, ObjectID | None]] = []
            for file, content in files.items():
                if content is None:
                    changes.append((file.encode(), None, None))
                    continue
                blob = Blob.from_string(content)
                repo.object_store.add_object(blob)
                changes.append((file.encode(), 0o100644, blob.id))
            commit = Commit()
            commit.tree = commit_tree_changes(repo.object_store, tree, changes)
            commit.parents = [parent] if parent is not None else []
            commit.author = commit.committer = author
            commit.author_time = commit.commit_time = int(time.time())
            commit.author_timezone = commit.commit_timezone = 0
            commit.message = message.encode() + b"\n"
            repo.object_store.add_object(commit)
            if not repo.refs.set_if_equals(ref, parent if parent is not None else ZERO_SHA, commit.id):
                raise RuntimeError(f"{branch} of {name} moved outside the server's lock")
            return commit.id.decode()

    def reset(self, name: str, commit: str, *, branch: str = "main") -> None:
        """Point ``branch`` at ``commit`` (an existing commit), under the lock pushes take: a test rewinds the
        world between cases. What a client can never do here (no force push); development only."""
        ref = Ref(b"refs/heads/" + branch.encode())
        with self._lock(self.root / name), Repo(str(self.root / name)) as repo:
            if not isinstance(_object(repo, ObjectID(commit.encode())), Commit):
                raise KeyError(f"{commit} is not a commit of {name}")
            repo.refs[ref] = ObjectID(commit.encode())

    def refs(self, name: str) -> dict[str, str]:
        """Every ref of the repository (branches and tags) and the commit it points at (HEAD left out)."""
        with Repo(str(self.root / name)) as repo:
            return {ref.decode(): sha.decode() for ref, sha in repo.get_refs().items() if ref != b"HEAD"}

    def head(self, name: str, branch: str = "main") -> str:
        """The commit id at the tip of ``branch``."""
        with Repo(str(self.root / name)) as repo:
            return repo.refs[Ref(b"refs/heads/" + branch.encode())].decode()

    def read(self, name: str, path: str, *, commit: str | None = None, branch: str = "main") -> bytes:
        """A file's bytes at ``commit`` (default: the tip of ``branch``); KeyError when it does not exist."""
        with Repo(str(self.root / name)) as repo:
            commit_obj = repo[(commit or self.head(name, branch)).encode()]
            assert isinstance(commit_obj, Commit)
            _, sha = tree_lookup_path(repo.object_store.__getitem__, commit_obj.tree, path.encode())
            blob = repo[sha]
            assert isinstance(blob, Blob)
            return blob.data

    def log(self, name: str, branch: str = "main") -> list[Commit]:
        """The commits of ``branch``, newest first, following first parents (history here is linear)."""
        with Repo(str(self.root / name)) as repo:
            commits: list[Commit] = []
            sha: ObjectID | None = repo.refs[Ref(b"refs/heads/" + branch.encode())]
            while sha is not None:
                commit = repo[sha]
                assert isinstance(commit, Commit)
                commits.append(commit)
                sha = commit.parents[0] if commit.parents else None
            return commits

    # -- internals -----------------------------------------------------------------------------------------------

    def _lock(self, path: Path) -> threading.Lock:
        """The lock every ref update of the repository at ``path`` takes (pushes and ``commit``)."""
        key = str(path.resolve())
        with self._locks_guard:
            return self._locks[key]

    def _guard(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> Callable[..., Iterator[bytes]]:
        """Basic auth and scripted answers in front of the Git application."""

        def guarded(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
            self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            if self.on_request is not None:
                self.on_request(environ["REQUEST_METHOD"], environ["PATH_INFO"])
            status = self._script.popleft() if self._script else None
            if status is None and self._credentials is not None and not self._authorized(environ):
                status = 401
            if status is not None:
                headers = [("Content-Type", "text/plain"), ("Content-Length", "0")]
                if status == 401:
                    headers.append(("WWW-Authenticate", 'Basic realm="eksops-test"'))
                start_response(f"{status} Refused", headers)
                return
            try:
                yield from app(environ, start_response)
            finally:
                self._backend.close_opened()

        return guarded

    def _authorized(self, environ: Environ) -> bool:
        assert self._credentials is not None
        username, password = self._credentials
        expected = "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        return hmac.compare_digest(environ.get("HTTP_AUTHORIZATION", "").encode(), expected.encode())

    def _receive_pack(self) -> type[ReceivePackHandler]:
        server = self

        class _ReceivePack(ReceivePackHandler):
            def capabilities(self) -> Iterable[bytes]:
                # ref updates are decided one by one below: do not offer all-or-nothing pushes
                return [cap for cap in super().capabilities() if cap != CAPABILITY_ATOMIC]

            def _apply_pack(self, refs: list[tuple[ObjectID, ObjectID, Ref]]) -> Iterator[tuple[bytes, bytes]]:
                # dulwich's own loop answers "ok" whatever set_if_equals returned: read the pack as it does, then
                # decide every ref here
                if any(new != ZERO_SHA for _, new, _ in refs):
                    try:
                        self.repo.object_store.add_thin_pack(  # type: ignore[attr-defined]
                            self.proto.read,
                            getattr(self.proto, "recv", None),
                            max_input_size=self._receive_max_input_size(),
                        )
                    except Exception as exc:  # a broken pack: tell the client, as dulwich does
                        yield (b"unpack", str(exc).replace("\n", " ").encode())
                        return
                yield (b"unpack", b"ok")
                path = Path(getattr(self.repo, "path", ""))
                with server._lock(path):
                    results = [
                        (ref, server.refused.get(ref.decode()) or _update(self.repo, ref, old, new))
                        for old, new, ref in refs
                    ]
                for (old, new, ref), (_, error) in zip(refs, results, strict=True):
                    server.updates.append(RefUpdate(path.name, ref.decode(), old.decode(), new.decode(), error))
                yield from ((ref, b"ok" if error is None else error.encode()) for ref, error in results)

        return _ReceivePack


class _Backend(FileSystemBackend):
    """The repositories under root by URL path (dulwich's FileSystemBackend takes "/name" as an absolute path);
    remembers what each request thread opened so the server closes it after the answer (dulwich never does)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self._opened = threading.local()

    def open_repository(self, path: str | bytes) -> BackendRepo:  # web.py passes str, the handlers bytes
        repo = super().open_repository(os.fsdecode(path).lstrip("/"))
        self._opened.__dict__.setdefault("repos", []).append(repo)
        return repo

    def close_opened(self) -> None:
        for repo in self._opened.__dict__.pop("repos", []):
            repo.close()


def _update(repo: Any, ref: Ref, old: ObjectID, new: ObjectID) -> str | None:
    """Compare-and-set ``ref`` from ``old`` to ``new`` as a fast-forward; None when done, else git's ng reason."""
    if not check_ref_format(ref):
        return "funny refname"
    if new == ZERO_SHA:
        return "deletion prohibited"
    if ref.startswith(b"refs/heads/") and not isinstance(_object(repo, new), Commit):
        return "missing necessary objects"
    if old == ZERO_SHA:
        return None if repo.refs.add_if_new(ref, new) else "fetch first"
    current = _ref(repo, ref)
    if current != old:
        return "fetch first"  # the client's view of the ref is stale: it must fetch, rebase and push again
    if not can_fast_forward(repo, old, new):
        return "non-fast-forward"
    return None if repo.refs.set_if_equals(ref, old, new) else "fetch first"


def _object(repo: Any, sha: ObjectID) -> ShaFile | None:
    try:
        return cast(ShaFile, repo.object_store[sha])
    except KeyError:
        return None


def _ref(repo: Any, ref: Ref) -> ObjectID | None:
    try:
        return ObjectID(repo.refs[ref])
    except KeyError:
        return None


class _UploadPack(UploadPackHandler):
    """Stateless upload-pack that serves a ``want`` which exists but is no longer a tip (the branch moved after
    the client read the refs), instead of dulwich's "Client wants invalid object"."""

    def __init__(
        self,
        backend: Backend,
        args: Sequence[str],
        proto: Protocol,
        stateless_rpc: bool = False,
        advertise_refs: bool = False,
    ) -> None:
        super().__init__(backend, args, proto, stateless_rpc=stateless_rpc, advertise_refs=advertise_refs)
        if stateless_rpc and not advertise_refs:
            lines, wants = _read_wants(proto)
            # put the lines back in front of the rest of the request, for dulwich's own parser
            replay = BytesIO(b"".join(pkt_line(line) for line in lines))

            def read(size: int) -> bytes:
                data = replay.read(size)
                return data + proto.read(size - len(data)) if len(data) < size else data

            self.proto = Protocol(read, proto.write)
            store = self.repo.object_store
            extra = {Ref(b"refs/eksops-want/%d" % i): sha for i, sha in enumerate(wants) if sha in store}
            self.repo = _WithWants(self.repo, extra)


def _read_wants(proto: Protocol) -> tuple[list[bytes | None], list[ObjectID]]:
    """The pkt-lines up to and including the first that is not a ``want``, and the wanted ids."""
    lines: list[bytes | None] = []
    wants: list[ObjectID] = []
    while True:
        line = proto.read_pkt_line()
        lines.append(line)
        if line is None or not line.startswith(b"want "):
            return lines, wants
        wants.append(ObjectID(line.split()[1]))


class _WithWants:
    """A repository whose refs, as upload-pack's want check sees them, also hold the wanted existing commits."""

    def __init__(self, repo: Any, extra: dict[Ref, ObjectID]) -> None:
        self._repo = repo
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def find_missing_objects(self, determine_wants: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> Any:
            return determine_wants({**self._extra, **refs}, depth)

        return self._repo.find_missing_objects(wants, *args, **kwargs)
