"""The Git-remote backend (eksops.images.gitremote) against real repositories served over HTTP on 127.0.0.1.

The server (eksops_dev.gitserver) compare-and-sets every ref update and refuses non-fast-forward updates, so a
lost update or a force push by the client would show here as a missing change or a refused push.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dulwich.diff_tree import tree_changes
from dulwich.repo import Repo

from eksops.errors import ConfigError
from eksops.images.gitremote import GitRemoteRepo
from eksops.images.repo import BACKOFF_BASE_S, Author, ConcurrentUpdate, FileMissing, RepoError, RepoUnavailable
from eksops_dev.gitserver import GitServer

NAME = "config.git"
FILE = "apps/payments/kustomization.yaml"
SCRIPT = "tools/render.sh"
AUTHOR = Author("eksops image updater", "eksops@example.com")
SECRET = "glpat-Zx9SecretToken42"
IMAGES = 10


def kustomization(tags: dict[int, str] | None = None) -> bytes:
    """A kustomization with IMAGES image entries (CRLF line endings, a comment): only a tag may ever change."""
    tags = tags or {}
    lines = ["# managed by eksops: only newTag changes", "images:"]
    for i in range(IMAGES):
        lines += [f"  - name: service-{i}", f'    newTag: "{tags.get(i, "1.0.0")}"']
    return ("\r\n".join(lines) + "\r\n").encode()


def set_tag(index: int, tag: str) -> Callable[[str, bytes], bytes | None]:
    """A simple text edit (the kustomize editor is tested elsewhere): newTag of service-<index>."""

    def edit(path: str, content: bytes) -> bytes | None:
        lines = content.split(b"\r\n")
        name = f"  - name: service-{index}".encode()
        if name not in lines:
            return None
        at = lines.index(name) + 1
        lines[at] = f'    newTag: "{tag}"'.encode()
        return b"\r\n".join(lines)

    return edit


def forever() -> float:
    return 300.0


@pytest.fixture
def url(git_server: GitServer) -> str:
    return git_server.create(NAME, {FILE: kustomization(), SCRIPT: b"#!/bin/sh\nkustomize build\n", "README": b"x\n"})


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "clones"
    path.mkdir()
    return path


def pushes(server: GitServer) -> int:
    return sum(1 for method, path in server.requests if method == "POST" and path.endswith("/git-receive-pack"))


def test_an_update_makes_one_commit_that_changes_only_the_edited_bytes(
    git_server: GitServer, url: str, workdir: Path
) -> None:
    initial = git_server.head(NAME)
    repo = GitRemoteRepo(url, "main", workdir=str(workdir))
    message = "payments: service-3 1.0.0 -> 1.4.2"
    outcome = repo.update([FILE], set_tag(3, "1.4.2"), message=message, author=AUTHOR, time_left=forever)
    assert outcome.commit_id == git_server.head(NAME)
    assert (outcome.parent_id, outcome.files, outcome.attempts, outcome.dry_run) == (initial, (FILE,), 1, False)
    assert outcome.url is None  # no web UI known for this host
    [commit, parent] = git_server.log(NAME)
    assert commit.parents == [parent.id] and parent.id.decode() == initial
    assert commit.author == commit.committer == b"eksops image updater <eksops@example.com>"
    assert commit.message == b"payments: service-3 1.0.0 -> 1.4.2\n"
    with Repo(str(git_server.root / NAME)) as served:
        changes = list(tree_changes(served.object_store, parent.tree, commit.tree))
    assert [(c.type, c.old.path, c.new.path) for c in changes] == [("modify", FILE.encode(), FILE.encode())]
    assert git_server.read(NAME, FILE) == kustomization({3: "1.4.2"})  # CRLF and comment intact, one line changed
    assert list(workdir.iterdir()) == []  # the temporary clone is gone


def test_the_same_edit_again_makes_no_commit_and_no_push(git_server: GitServer, url: str, workdir: Path) -> None:
    repo = GitRemoteRepo(url, "main", workdir=str(workdir))
    first = repo.update([FILE], set_tag(1, "2.0.0"), message="bump", author=AUTHOR, time_left=forever)
    assert pushes(git_server) == 1
    again = repo.update([FILE], set_tag(1, "2.0.0"), message="bump", author=AUTHOR, time_left=forever)
    assert again.commit_id is None and again.files == () and again.parent_id == first.commit_id
    assert git_server.head(NAME) == first.commit_id
    assert pushes(git_server) == 1
    assert len(git_server.log(NAME)) == 2


def test_ten_concurrent_updates_of_different_images_all_land_in_a_linear_history(
    git_server: GitServer, url: str, workdir: Path
) -> None:
    initial = git_server.head(NAME)
    start = threading.Barrier(IMAGES, timeout=30)
    outcomes: dict[int, object] = {}
    failures: list[BaseException] = []

    def update(index: int) -> None:
        repo = GitRemoteRepo(url, "main", workdir=str(workdir))  # the production backoff, real sleeps

        def edit(path: str, content: bytes) -> bytes | None:
            return set_tag(index, f"{index}.1.0")(path, content)

        try:
            start.wait()
            outcomes[index] = repo.update(
                [FILE], edit, message=f"service-{index} -> {index}.1.0", author=AUTHOR, time_left=forever
            )
        except BaseException as exc:  # reported below, with the others' results
            failures.append(exc)

    threads = [threading.Thread(target=update, args=(i,)) for i in range(IMAGES)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    assert failures == []
    log = git_server.log(NAME)
    assert len(log) == IMAGES + 1  # 10 commits on the initial one, none lost
    assert log[-1].id.decode() == initial
    assert all(len(commit.parents) == 1 for commit in log[:-1])  # no merge: a linear chain from the initial commit
    assert {c.id.decode() for c in log[:-1]} == {o.commit_id for o in outcomes.values()}  # type: ignore[attr-defined]
    assert git_server.read(NAME, FILE) == kustomization({i: f"{i}.1.0" for i in range(IMAGES)})
    attempts = sum(o.attempts for o in outcomes.values())  # type: ignore[attr-defined]
    retries = attempts - IMAGES
    assert retries > 0  # the branch moved under most writers: they fetched again and re-applied their edit
    refused = [u for u in git_server.updates if u.error is not None]
    assert all(u.error == "fetch first" for u in refused)  # never a non-fast-forward (the client never forces)
    print(f"\n10 concurrent updates: {elapsed:.2f} s, {retries} retries, {len(refused)} refused by the server")


def test_a_push_the_server_refuses_because_the_branch_just_moved_is_redone_on_the_new_tip(
    git_server: GitServer, url: str, workdir: Path
) -> None:
    """The branch moves after the client's ref listing for the push: the server's compare-and-set answers
    "ng fetch first", which dulwich does not raise on; the client reads the status, fetches and redoes the edit."""
    other: list[str] = []

    def another_writer_on_first_push(method: str, path: str) -> None:
        if method == "POST" and path.endswith("/git-receive-pack") and not other:
            other.append(git_server.commit(NAME, {FILE: kustomization({7: "9.9.9"})}))

    git_server.on_request = another_writer_on_first_push
    seen: list[bytes] = []
    waits: list[float] = []

    def edit(path: str, content: bytes) -> bytes | None:
        seen.append(content)
        return set_tag(2, "3.0.0")(path, content)

    repo = GitRemoteRepo(url, "main", workdir=str(workdir), sleep=waits.append, rng=lambda: 0.5)
    outcome = repo.update([FILE], edit, message="bump", author=AUTHOR, time_left=forever)
    assert [u.error for u in git_server.updates] == ["fetch first", None]
    assert outcome.attempts == 2 and outcome.parent_id == other[0]
    assert seen == [kustomization(), kustomization({7: "9.9.9"})]  # the edit ran again on the new content
    assert git_server.read(NAME, FILE) == kustomization({2: "3.0.0", 7: "9.9.9"})
    assert waits == [0.5 * BACKOFF_BASE_S]


def test_a_branch_that_moved_before_the_push_is_not_pushed_to_but_fetched_again(
    git_server: GitServer, url: str, workdir: Path
) -> None:
    """Another writer commits between the client's fetch and its push: the ref listing of the push shows it, and
    the client sends no update at all (a non-fast-forward push is never sent: many servers would take it)."""
    calls = 0

    def edit(path: str, content: bytes) -> bytes | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            git_server.commit(NAME, {"README": b"changed by someone else\n"})
        return set_tag(0, "1.1.0")(path, content)

    repo = GitRemoteRepo(url, "main", workdir=str(workdir), sleep=lambda s: None)
    outcome = repo.update([FILE], edit, message="bump", author=AUTHOR, time_left=forever)
    assert outcome.attempts == 2 and calls == 2
    assert [u.error for u in git_server.updates] == [None]  # one update sent, accepted
    assert git_server.read(NAME, "README") == b"changed by someone else\n"
    assert git_server.read(NAME, FILE) == kustomization({0: "1.1.0"})


def test_out_of_time_while_the_branch_keeps_moving_is_a_concurrent_update(
    git_server: GitServer, url: str, workdir: Path
) -> None:
    def someone_always_gets_in_first(path: str, content: bytes) -> bytes | None:
        git_server.commit(NAME, {"README": os.urandom(8).hex().encode()})
        return set_tag(0, "1.1.0")(path, content)

    clock = iter([300.0, 300.0, 5.0])  # the third round would start with less than a round's reserve left
    repo = GitRemoteRepo(url, "main", workdir=str(workdir), sleep=lambda s: None)
    with pytest.raises(ConcurrentUpdate, match=r"main of 127\.0\.0\.1:\d+/config\.git kept moving.*3 attempt"):
        repo.update([FILE], someone_always_gets_in_first, message="bump", author=AUTHOR, time_left=lambda: next(clock))
    assert git_server.read(NAME, FILE) == kustomization()
    assert pushes(git_server) == 0


def test_a_push_refused_while_the_branch_did_not_move_is_a_repo_error(
    git_server: GitServer, url: str, workdir: Path
) -> None:
    git_server.refused["refs/heads/main"] = "protected branch hook declined"
    repo = GitRemoteRepo(url, "main", workdir=str(workdir), sleep=lambda s: None)
    with pytest.raises(RepoError, match=r"refused while the branch did not move.*protected branch hook declined"):
        repo.update([FILE], set_tag(0, "1.1.0"), message="bump", author=AUTHOR, time_left=forever)
    assert pushes(git_server) == 1  # not retried in a loop


def test_an_edit_that_raises_pushes_nothing(git_server: GitServer, url: str, workdir: Path) -> None:
    class NoEntry(Exception):
        pass

    error = NoEntry("service-42 has no entry")

    def edit(path: str, content: bytes) -> bytes | None:
        raise error

    tip = git_server.head(NAME)
    with pytest.raises(NoEntry) as raised:
        GitRemoteRepo(url, "main", workdir=str(workdir)).update(
            [FILE], edit, message="bump", author=AUTHOR, time_left=forever
        )
    assert raised.value is error
    assert git_server.head(NAME) == tip and pushes(git_server) == 0
    assert list(workdir.iterdir()) == []


def test_a_dry_run_reports_the_change_and_pushes_nothing(git_server: GitServer, url: str, workdir: Path) -> None:
    tip = git_server.head(NAME)
    outcome = GitRemoteRepo(url, "main", workdir=str(workdir)).update(
        [FILE, SCRIPT], set_tag(4, "5.0.0"), message="bump", author=AUTHOR, time_left=forever, dry_run=True
    )
    assert (outcome.commit_id, outcome.parent_id, outcome.files, outcome.dry_run) == (None, tip, (FILE,), True)
    assert git_server.head(NAME) == tip and pushes(git_server) == 0


def test_several_files_go_in_one_commit_and_keep_their_mode(git_server: GitServer, url: str, workdir: Path) -> None:
    second = "apps/orders/kustomization.yaml"
    git_server.commit(NAME, {second: kustomization()})

    def edit(path: str, content: bytes) -> bytes | None:
        return set_tag(5, "6.0.0")(path, content) if path.endswith(".yaml") else None

    outcome = GitRemoteRepo(url, "main", workdir=str(workdir)).update(
        [FILE, second, SCRIPT, FILE], edit, message="bump", author=AUTHOR, time_left=forever
    )
    assert outcome.files == (FILE, second)
    [commit, parent, *_] = git_server.log(NAME)
    with Repo(str(git_server.root / NAME)) as served:
        changes = list(tree_changes(served.object_store, parent.tree, commit.tree))
    assert sorted((c.type, c.new.path) for c in changes) == [("modify", second.encode()), ("modify", FILE.encode())]
    assert git_server.read(NAME, FILE) == git_server.read(NAME, second) == kustomization({5: "6.0.0"})


def test_an_executable_file_stays_executable(git_server: GitServer, workdir: Path) -> None:
    from dulwich.objects import Blob, Commit, Tree

    url = git_server.create("exec.git", {"README": b"x\n"})
    with Repo(str(git_server.root / "exec.git")) as served:
        blob = Blob.from_string(b"#!/bin/sh\necho 1.0.0\n")
        tree = Tree()
        tree.add(b"bump.sh", 0o100755, blob.id)
        commit = Commit()
        commit.tree, commit.parents = tree.id, [served.refs[b"refs/heads/main"]]
        commit.author = commit.committer = b"x <x@example.com>"
        commit.author_time = commit.commit_time = 1_700_000_000
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"exec\n"
        served.object_store.add_objects([(blob, None), (tree, None), (commit, None)])
        served.refs[b"refs/heads/main"] = commit.id
    GitRemoteRepo(url, "main", workdir=str(workdir)).update(
        ["bump.sh"], lambda p, c: c.replace(b"1.0.0", b"2.0.0"), message="bump", author=AUTHOR, time_left=forever
    )
    with Repo(str(git_server.root / "exec.git")) as served:
        new = served[served.refs[b"refs/heads/main"]]
        assert isinstance(new, Commit)
        new_tree = served[new.tree]
        assert isinstance(new_tree, Tree)
        assert new_tree[b"bump.sh"][0] == 0o100755
    assert git_server.read("exec.git", "bump.sh") == b"#!/bin/sh\necho 2.0.0\n"


def test_the_clone_is_shallow_and_credentials_are_nowhere_but_in_the_request(
    tmp_path: Path, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"x-token:{SECRET}".encode()).decode()
    with GitServer(tmp_path / "served", username="x-token", password=SECRET) as server:
        url = server.create(NAME, {FILE: kustomization()})
        server.commit(NAME, {"README": b"second\n"})
        first = server.log(NAME)[-1].id
        inspected: list[Path] = []

        def edit(path: str, content: bytes) -> bytes | None:
            # the temporary clone exists now: no file in it holds the password, and it has the tip only
            [clone] = list(workdir.iterdir())
            files = [p for p in clone.rglob("*") if p.is_file()]
            assert any(p.name == "config" for p in files)
            assert not [p for p in files if SECRET.encode() in p.read_bytes()]
            with Repo(str(clone)) as local:
                assert local.get_shallow() == {server.head(NAME).encode()}
                assert first not in local.object_store
            inspected.append(clone)
            return set_tag(0, "1.1.0")(path, content)

        repo = GitRemoteRepo(url, "main", username="x-token", password=SECRET, workdir=str(workdir))
        outcome = repo.update([FILE], edit, message="bump", author=AUTHOR, time_left=forever)
        assert outcome.commit_id == server.head(NAME) and inspected
        assert SECRET not in repr(repo)
    assert list(workdir.iterdir()) == []
    assert "pushed" in caplog.text and SECRET not in caplog.text and basic not in caplog.text


def test_wrong_credentials_are_a_repo_error_that_shows_no_secret(
    tmp_path: Path, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with GitServer(tmp_path / "served", username="x-token", password="the-right-one") as server:
        url = server.create(NAME, {FILE: kustomization()})
        repo = GitRemoteRepo(url, "main", username="x-token", password=SECRET, workdir=str(workdir))
        with pytest.raises(RepoError, match=r"branch main of 127\.0\.0\.1:\d+/config\.git was denied \(HTTP 401\)"):
            repo.update([FILE], set_tag(0, "1.1.0"), message="bump", author=AUTHOR, time_left=forever)
        with pytest.raises(RepoError) as raised:
            repo.read(FILE)
    chain: list[BaseException] = []
    exc: BaseException | None = raised.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert not [e for e in chain if SECRET in f"{e!s} {e!r}"]
    assert caplog.records and SECRET not in caplog.text


@pytest.mark.parametrize(("status", "error"), [(403, RepoError), (500, RepoUnavailable), (503, RepoUnavailable)])
def test_error_answers_are_classified(git_server: GitServer, url: str, status: int, error: type[Exception]) -> None:
    git_server.answer(status)
    with pytest.raises(error, match=r"127\.0\.0\.1:\d+/config\.git") as raised:
        GitRemoteRepo(url, "main").read(FILE)
    assert f"HTTP {status}" in str(raised.value)


def test_a_server_that_does_not_answer_is_unavailable(git_server: GitServer, url: str) -> None:
    git_server.stop()
    with pytest.raises(RepoUnavailable, match="main"):
        GitRemoteRepo(url, "main", timeout=2).read(FILE)


def test_a_missing_branch_repository_or_file_is_a_repo_error(git_server: GitServer, url: str) -> None:
    with pytest.raises(RepoError, match=r"branch release does not exist in 127\.0\.0\.1:\d+/config\.git"):
        GitRemoteRepo(url, "release").read(FILE)
    with pytest.raises(RepoError, match=r"no Git repository at 127\.0\.0\.1:\d+/nothing\.git"):
        GitRemoteRepo(f"{git_server.url}/nothing.git", "main").read(FILE)
    with pytest.raises(FileMissing, match=r"apps/none/kustomization\.yaml does not exist on branch main"):
        GitRemoteRepo(url, "main").update(
            [FILE, "apps/none/kustomization.yaml"], set_tag(0, "1"), message="m", author=AUTHOR, time_left=forever
        )
    with pytest.raises(FileMissing):
        GitRemoteRepo(url, "main").read(f"{FILE}/deeper")
    with pytest.raises(RepoError, match="apps is not a regular file"):
        GitRemoteRepo(url, "main").read("apps")
    assert GitRemoteRepo(url, "main").read(FILE) == kustomization()


@pytest.mark.parametrize(
    "bad",
    [
        "http://git.example.com/config.git",  # http only to loopback
        f"https://x-token:{SECRET}@github.com/acme/config.git",  # credentials belong in the secret
        "ssh://git@github.com/acme/config.git",
        "codecommit://config",
        f"https://github.com/acme/config.git?private_token={SECRET}",
    ],
)
def test_invalid_urls_fail_naming_the_variable_and_never_echo_a_secret(bad: str) -> None:
    with pytest.raises(ConfigError) as raised:
        GitRemoteRepo(bad, "main")
    assert raised.value.variable == "CONFIG_REPO_URL" and SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://github.com/acme/config.git", "https://github.com/acme/config/commit/abc123"),
        ("https://github.com/acme/config", "https://github.com/acme/config/commit/abc123"),
        ("https://gitlab.com/acme/platform/config.git", "https://gitlab.com/acme/platform/config/-/commit/abc123"),
        ("https://git.internal.example.com/acme/config.git", None),
        ("http://localhost:8080/config.git", None),
    ],
)
def test_commit_links_for_github_and_gitlab(url: str, link: str | None) -> None:
    assert GitRemoteRepo(url, "main").commit_url("abc123") == link


def test_importing_the_backend_loads_no_dulwich() -> None:
    """dulwich is in image_updater's own requirements, not the layer: the other functions import eksops.images."""
    code = "import sys, eksops.images.gitremote; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'eksops'" in loaded and "dulwich" not in loaded and "urllib3" not in loaded


def test_a_password_without_a_username_fails_at_start() -> None:
    with pytest.raises(ConfigError) as raised:
        GitRemoteRepo("https://github.com/acme/config.git", "main", password=SECRET)
    assert raised.value.variable == "CONFIG_REPO_SECRET_ARN" and SECRET not in str(raised.value)
