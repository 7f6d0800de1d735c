"""The test Git server (eksops_dev.gitserver) itself: compare-and-set pushes, no force, fetches of a moved tip.

Each ref update is pushed with dulwich's raw client, which sends exactly the update asked for (no fast-forward
check of its own), so what is proven here is the server's behaviour. dulwich's stock server fails the race tests:
it answers "ok" to a stale or non-fast-forward update and refuses a want that stopped being a tip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dulwich.client import HTTPUnauthorized, get_transport_and_path
from dulwich.errors import GitProtocolError
from dulwich.objects import Blob, Commit, Tree
from dulwich.protocol import ZERO_SHA
from dulwich.repo import Repo

from eksops_dev.gitserver import GitServer, RefUpdate

REF = b"refs/heads/main"
NAME = "config.git"


class Pusher:
    """A dulwich client with its own full clone: makes commits and pushes exactly the ref update asked for."""

    def __init__(self, url: str, path: Path) -> None:
        self.client, self.path = get_transport_and_path(url)
        self.repo = Repo.init_bare(str(path), mkdir=True)
        self.client.fetch(self.path, self.repo)

    def commit(self, parent: bytes | None, content: bytes) -> bytes:
        blob = Blob.from_string(content)
        tree = Tree()
        tree.add(b"file.txt", 0o100644, blob.id)
        commit = Commit()
        commit.tree = tree.id
        commit.parents = [parent] if parent is not None else []
        commit.author = commit.committer = b"Pusher <pusher@example.com>"
        commit.author_time = commit.commit_time = 1_700_000_000
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = content + b"\n"
        self.repo.object_store.add_objects([(blob, None), (tree, None), (commit, None)])
        return commit.id

    def push(self, new: bytes, *, before: Callable[[dict[bytes, bytes]], None] | None = None) -> str | None:
        """Push ``new`` as refs/heads/main from the advertised tip; the server's answer (None: accepted)."""

        def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            if before is not None:
                before(refs)
            return {REF: new}

        def pack(have: Any, want: Any, *, ofs_delta: bool = False, progress: Any = None) -> Any:
            return self.repo.generate_pack_data(set(have), set(want), progress=progress, ofs_delta=ofs_delta)

        result = self.client.send_pack(self.path, update_refs, pack)  # type: ignore[arg-type]
        assert result.ref_status is not None
        return result.ref_status[REF]

    def close(self) -> None:
        self.repo.close()


@pytest.fixture
def url(git_server: GitServer) -> str:
    return git_server.create(NAME, {"file.txt": b"initial\n"})


@pytest.fixture
def pushers(url: str, tmp_path: Path) -> Any:
    made: list[Pusher] = []

    def make() -> Pusher:
        made.append(Pusher(url, tmp_path / f"clone{len(made)}"))
        return made[-1]

    yield make
    for pusher in made:
        pusher.close()


def test_a_fast_forward_push_is_accepted_and_recorded(git_server: GitServer, pushers: Any) -> None:
    tip = git_server.head(NAME).encode()
    pusher = pushers()
    new = pusher.commit(tip, b"next")
    assert pusher.push(new) is None
    assert git_server.head(NAME) == new.decode()
    assert git_server.read(NAME, "file.txt") == b"next"
    assert git_server.updates == [RefUpdate(NAME, REF.decode(), tip.decode(), new.decode(), None)]


def test_two_pushes_from_the_same_tip_exactly_one_is_accepted(git_server: GitServer, pushers: Any) -> None:
    tip = git_server.head(NAME).encode()
    first, second = pushers(), pushers()
    commits = [first.commit(tip, b"first"), second.commit(tip, b"second")]
    both_saw_the_tip = threading.Barrier(2, timeout=10)
    answers: dict[bytes, str | None] = {}

    def before(refs: dict[bytes, bytes]) -> None:
        assert refs[REF] == tip  # both pushes are built on the same advertised tip ...
        both_saw_the_tip.wait()  # ... and sent only once both have seen it

    def push(pusher: Pusher, commit: bytes) -> None:
        answers[commit] = pusher.push(commit, before=before)

    threads = [threading.Thread(target=push, args=pair) for pair in zip((first, second), commits, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [commit for commit, error in answers.items() if error is None]
    assert len(accepted) == 1, answers
    [refused] = [error for error in answers.values() if error is not None]
    assert refused == "fetch first"
    assert git_server.head(NAME) == accepted[0].decode()
    assert [c.id for c in git_server.log(NAME)] == [accepted[0], tip]


def test_a_push_whose_old_tip_went_stale_is_refused(git_server: GitServer, pushers: Any) -> None:
    tip = git_server.head(NAME).encode()
    pusher = pushers()
    mine = pusher.commit(tip, b"mine")
    moved: list[str] = []

    def another_writer_commits(refs: dict[bytes, bytes]) -> None:  # after the ref listing, before the update
        moved.append(git_server.commit(NAME, {"other.txt": b"theirs\n"}))

    assert pusher.push(mine, before=another_writer_commits) == "fetch first"
    assert git_server.head(NAME) == moved[0]
    assert git_server.updates[-1].error == "fetch first"


def test_a_force_push_is_refused(git_server: GitServer, pushers: Any) -> None:
    tip = git_server.head(NAME)
    pusher = pushers()
    unrelated = pusher.commit(None, b"rewritten history")  # old sha is the real tip, but the new one does not descend
    assert pusher.push(unrelated) == "non-fast-forward"
    assert git_server.head(NAME) == tip


def test_a_deletion_is_refused(git_server: GitServer, pushers: Any) -> None:
    tip = git_server.head(NAME)
    assert pushers().push(ZERO_SHA) == "deletion prohibited"
    assert git_server.head(NAME) == tip


def test_a_refused_ref_answers_its_reason(git_server: GitServer, pushers: Any) -> None:
    git_server.refused[REF.decode()] = "protected branch hook declined"
    pusher = pushers()
    new = pusher.commit(git_server.head(NAME).encode(), b"next")
    assert pusher.push(new) == "protected branch hook declined"


def test_a_fetch_of_a_tip_that_moved_after_the_ref_listing_is_served(
    git_server: GitServer, url: str, tmp_path: Path
) -> None:
    client, path = get_transport_and_path(url)
    listed: list[bytes] = []

    def determine_wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
        listed.append(refs[REF])
        git_server.commit(NAME, {"file.txt": b"moved\n"})  # between GET info/refs and POST git-upload-pack
        return [refs[REF]]

    with Repo.init_bare(str(tmp_path / "fetched"), mkdir=True) as target:
        client.fetch(path, target, determine_wants, depth=1)  # type: ignore[arg-type]
        commit = target[listed[0]]
        assert isinstance(commit, Commit)
        tree = target[commit.tree]
        assert isinstance(tree, Tree)
        assert target[tree[b"file.txt"][1]].as_raw_string() == b"initial\n"
    assert git_server.head(NAME) != listed[0].decode()
    assert git_server.requests[-2:] == [("GET", f"/{NAME}/info/refs"), ("POST", f"/{NAME}/git-upload-pack")]


def test_basic_auth_refuses_requests_without_the_right_credentials(tmp_path: Path) -> None:
    with GitServer(tmp_path / "served", username="bot", password="s3cret") as server:
        url = server.create(NAME, {"file.txt": b"initial\n"})
        for credentials in ({}, {"username": "bot", "password": "wrong"}):
            client, path = get_transport_and_path(url, **credentials)
            with pytest.raises(HTTPUnauthorized):
                client.get_refs(path)
        client, path = get_transport_and_path(url, username="bot", password="s3cret")
        assert client.get_refs(path).refs[REF] == server.head(NAME).encode()


def test_scripted_answers_come_first_then_the_repository_is_served(git_server: GitServer, url: str) -> None:
    git_server.answer(503)
    client, path = get_transport_and_path(url)
    with pytest.raises(GitProtocolError, match="503"):
        client.get_refs(path)
    assert client.get_refs(path).refs[REF] == git_server.head(NAME).encode()


def test_reset_rewinds_the_branch_and_pushes_go_on_from_there(git_server: GitServer, pushers: Any) -> None:
    """``reset`` (development only: the fuzz harness rewinds its world between events) moves the branch back; the
    next push is a fast-forward of the armed commit, and a reset to anything but a commit is refused."""
    armed = git_server.head(NAME)
    git_server.commit(NAME, {"file.txt": b"later\n"})
    git_server.reset(NAME, armed)
    assert git_server.head(NAME) == armed and git_server.read(NAME, "file.txt") == b"initial\n"
    assert git_server.refs(NAME) == {REF.decode(): armed}
    pusher = pushers()
    new = pusher.commit(armed.encode(), b"on the armed tip")
    assert pusher.push(new) is None and git_server.head(NAME) == new.decode()
    tree = git_server.log(NAME)[0].tree.decode()
    with pytest.raises(KeyError):
        git_server.reset(NAME, tree)
