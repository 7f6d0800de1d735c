"""The CodeCommit backend against botocore's Stubber on a real codecommit client (moto has no GetBranch, GetFile or
CreateCommit): every request is checked against the service model and against the exact parameters expected, every
stubbed answer against the model's output shape, and no queued answer may be left over.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

from eksops.errors import PermanentError, TemporaryError
from eksops.images import codecommit
from eksops.images.codecommit import ROUND_RESERVE_S, CodeCommitRepo
from eksops.images.repo import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    Author,
    ConcurrentUpdate,
    FileMissing,
    RepoError,
    RepoUnavailable,
)

REPO = "gitops-config"
BRANCH = "main"
AUTHOR = Author("eksops", "eksops@example.com")
MESSAGE = "web: 1.0 -> 2.0"
PROD = "apps/web/overlays/prod/kustomization.yaml"
STAGING = "apps/web/overlays/staging/kustomization.yaml"


def commit_id(n: int) -> str:
    return f"{n:040x}"


def kustomization(api: str = "1.0", web: str = "1.0") -> bytes:
    return (
        b"# prod overlay\n"
        b"resources:\n- ../../base\n"
        b"images:\n"
        b'- name: api\n  newTag: "' + api.encode() + b'"\n'
        b'- name: web\n  newTag: "' + web.encode() + b'"\n'
    )


_WEB = re.compile(rb'(- name: web\n  newTag: )"[^"]*"')


def set_web(tag: str) -> Callable[[str, bytes], bytes | None]:
    """An edit that sets the web image's tag, refusing a file without a web entry (as the kustomize edit does)."""

    def edit(path: str, content: bytes) -> bytes | None:
        if not _WEB.search(content):
            raise LookupError(f"no web image in {path}")
        return _WEB.sub(rb'\1"' + tag.encode() + b'"', content)

    return edit


class Clock:
    """Virtual time: ``sleep`` advances it and records each wait; ``time_left`` counts down to a deadline."""

    def __init__(self, budget_s: float = 60.0) -> None:
        self.now = 0.0
        self.deadline = budget_s
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.waits.append(seconds)
        self.now += seconds

    def time_left(self) -> float:
        return self.deadline - self.now


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def make_client(region: str = "us-east-1") -> Any:
    return _session().create_client("codecommit", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = make_client()
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


# -- expected calls -------------------------------------------------------------------------------------------------


def expect_tip(stubber: Stubber, tip: str) -> None:
    stubber.add_response(
        "get_branch",
        {"branch": {"branchName": BRANCH, "commitId": tip}},
        expected_params={"repositoryName": REPO, "branchName": BRANCH},
    )


def expect_file(stubber: Stubber, tip: str, path: str, content: bytes, mode: str = "NORMAL") -> None:
    stubber.add_response(
        "get_file",
        {
            "commitId": tip,
            "blobId": f"{hash(content) & 0xFFFFFFFF:040x}",
            "filePath": path,
            "fileMode": mode,
            "fileSize": len(content),
            "fileContent": content,
        },
        expected_params={"repositoryName": REPO, "commitSpecifier": tip, "filePath": path},
    )


def commit_params(parent: str, files: dict[str, bytes], mode: str = "NORMAL") -> dict[str, Any]:
    return {
        "repositoryName": REPO,
        "branchName": BRANCH,
        "parentCommitId": parent,
        "authorName": AUTHOR.name,
        "email": AUTHOR.email,
        "commitMessage": MESSAGE,
        "putFiles": [{"filePath": path, "fileMode": mode, "fileContent": content} for path, content in files.items()],
    }


def expect_commit(stubber: Stubber, parent: str, files: dict[str, bytes], new: str, mode: str = "NORMAL") -> None:
    stubber.add_response(
        "create_commit",
        {
            "commitId": new,
            "treeId": "f" * 40,
            "filesAdded": [],
            "filesUpdated": [{"absolutePath": path, "blobId": "e" * 40, "fileMode": mode} for path in files],
            "filesDeleted": [],
        },
        expected_params=commit_params(parent, files, mode),
    )


def expect_commit_error(stubber: Stubber, code: str, parent: str, files: dict[str, bytes], status: int = 400) -> None:
    stubber.add_client_error(
        "create_commit", code, f"{code} (stubbed)", status, expected_params=commit_params(parent, files)
    )


def update(repo: CodeCommitRepo, files: list[str], edit: Any, clock: Clock | None = None, **kwargs: Any) -> Any:
    clock = clock or Clock()
    return repo.update(files, edit, message=MESSAGE, author=AUTHOR, time_left=clock.time_left, **kwargs)


def make_repo(client: Any, clock: Clock | None = None, rng: Callable[[], float] = lambda: 0.5) -> CodeCommitRepo:
    clock = clock or Clock()
    return CodeCommitRepo(client, REPO, BRANCH, sleep=clock.sleep, rng=rng)


# -- the happy paths ------------------------------------------------------------------------------------------------


def test_update_commits_only_changed_files_on_the_tip_it_read(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    other = b"images:\n- name: api\n  newTag: 3.1.0\n"  # no web entry: this file's edit has nothing to do
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_file(stubber, commit_id(1), STAGING, other)
    expect_commit(stubber, commit_id(1), {PROD: kustomization(web="2.0")}, commit_id(2))
    edit = set_web("2.0")
    seen: list[str] = []

    def only_where_present(path: str, content: bytes) -> bytes | None:
        seen.append(path)
        return edit(path, content) if path == PROD else None

    outcome = update(make_repo(client), [PROD, STAGING], only_where_present)

    assert seen == [PROD, STAGING]
    assert outcome.commit_id == commit_id(2)
    assert outcome.parent_id == commit_id(1)
    assert outcome.files == (PROD,)
    assert outcome.attempts == 1
    assert not outcome.dry_run
    assert outcome.url == (
        f"https://us-east-1.console.aws.amazon.com/codesuite/codecommit/repositories/{REPO}"
        f"/commit/{commit_id(2)}?region=us-east-1"
    )


def test_several_changed_files_make_one_commit_and_keep_each_files_mode(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization(), mode="EXECUTABLE")
    expect_file(stubber, commit_id(1), STAGING, kustomization(api="0.9"), mode="NORMAL")
    stubber.add_response(
        "create_commit",
        {"commitId": commit_id(2), "treeId": "f" * 40},
        expected_params={
            **commit_params(commit_id(1), {}),
            "putFiles": [
                {"filePath": PROD, "fileMode": "EXECUTABLE", "fileContent": kustomization(web="2.0")},
                {"filePath": STAGING, "fileMode": "NORMAL", "fileContent": kustomization(api="0.9", web="2.0")},
            ],
        },
    )

    outcome = update(make_repo(client), [PROD, STAGING, PROD], set_web("2.0"))  # a path listed twice is read once

    assert outcome.commit_id == commit_id(2)
    assert outcome.files == (PROD, STAGING)


def test_no_change_makes_no_commit(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization(web="2.0"))
    expect_file(stubber, commit_id(1), STAGING, kustomization(web="2.0"))
    # no create_commit queued: calling it would fail the test (UnStubbedResponseError)

    outcome = update(make_repo(client), [PROD, STAGING], set_web("2.0"))

    assert outcome.commit_id is None
    assert outcome.parent_id == commit_id(1)
    assert outcome.files == ()
    assert outcome.attempts == 1
    assert outcome.url is None


def test_dry_run_reads_and_edits_but_never_commits(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_file(stubber, commit_id(1), STAGING, kustomization(web="2.0"))

    outcome = update(make_repo(client), [PROD, STAGING], set_web("2.0"), dry_run=True)

    assert outcome.dry_run
    assert outcome.commit_id is None
    assert outcome.files == (PROD,)  # what would change
    assert outcome.parent_id == commit_id(1)


def test_no_change_exception_is_success_without_a_commit(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    clock = Clock()
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_commit_error(stubber, "NoChangeException", commit_id(1), {PROD: kustomization(web="2.0")})

    outcome = update(make_repo(client, clock), [PROD], set_web("2.0"), clock)

    assert outcome.commit_id is None
    assert outcome.files == ()
    assert outcome.attempts == 1
    assert clock.waits == []


def test_read_returns_the_file_at_the_tip(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(7))
    expect_file(stubber, commit_id(7), PROD, kustomization(web="1.5"))

    assert make_repo(client).read(PROD) == kustomization(web="1.5")


# -- concurrent changes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ParentCommitIdOutdatedException", "ParentCommitDoesNotExistException"])
def test_a_moved_branch_is_reread_and_the_edit_reapplied_on_the_new_content(
    stubbed: tuple[Any, Stubber], code: str
) -> None:
    client, stubber = stubbed
    clock = Clock()
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_commit_error(stubber, code, commit_id(1), {PROD: kustomization(web="2.0")})
    # meanwhile someone else moved api to 1.1 in commit 2
    expect_tip(stubber, commit_id(2))
    expect_file(stubber, commit_id(2), PROD, kustomization(api="1.1"))
    expect_commit(stubber, commit_id(2), {PROD: kustomization(api="1.1", web="2.0")}, commit_id(3))
    contents: list[bytes] = []
    edit = set_web("2.0")

    def recording(path: str, content: bytes) -> bytes | None:
        contents.append(content)
        return edit(path, content)

    outcome = update(make_repo(client, clock), [PROD], recording, clock)

    assert contents == [kustomization(), kustomization(api="1.1")]  # the second edit saw the concurrent change
    assert outcome.commit_id == commit_id(3)
    assert outcome.parent_id == commit_id(2)
    assert outcome.attempts == 2
    assert len(clock.waits) == 1


def test_a_concurrent_commit_that_already_made_our_change_ends_without_a_commit(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_commit_error(stubber, "ParentCommitIdOutdatedException", commit_id(1), {PROD: kustomization(web="2.0")})
    expect_tip(stubber, commit_id(2))
    expect_file(stubber, commit_id(2), PROD, kustomization(web="2.0"))  # the same event, handled by another run

    outcome = update(make_repo(client), [PROD], set_web("2.0"))

    assert outcome.commit_id is None
    assert outcome.parent_id == commit_id(2)
    assert outcome.attempts == 2


def test_a_deleted_branch_is_reread_and_reported(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_commit_error(stubber, "BranchDoesNotExistException", commit_id(1), {PROD: kustomization(web="2.0")})
    stubber.add_client_error(
        "get_branch", "BranchDoesNotExistException", expected_params={"repositoryName": REPO, "branchName": BRANCH}
    )

    with pytest.raises(RepoError, match=f"branch {BRANCH} does not exist in CodeCommit repository {REPO}"):
        update(make_repo(client), [PROD], set_web("2.0"))


def test_a_branch_that_keeps_moving_gives_concurrent_update_once_time_runs_out(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    clock = Clock(budget_s=ROUND_RESERVE_S + 2.0)  # room for 2 s of waiting
    # waits at rng=1: 0.2, 0.4, 0.8, then the 0.6 s left of the room, then none: five rounds, each refused
    rounds = 5
    for n in range(1, rounds + 1):
        expect_tip(stubber, commit_id(n))
        expect_file(stubber, commit_id(n), PROD, kustomization(api=f"1.{n}"))
        expect_commit_error(
            stubber, "ParentCommitIdOutdatedException", commit_id(n), {PROD: kustomization(api=f"1.{n}", web="2.0")}
        )
    # every commit was asked on the tip just read (expected_params above), and nothing else was called: no force

    with pytest.raises(ConcurrentUpdate, match=r"kept moving: not committed after 5 attempt") as raised:
        update(make_repo(client, clock, rng=lambda: 1.0), [PROD], set_web("2.0"), clock)

    assert isinstance(raised.value, TemporaryError)
    assert clock.waits == pytest.approx([0.2, 0.4, 0.8, 0.6])
    assert clock.time_left() == pytest.approx(ROUND_RESERVE_S)


def test_no_retry_at_all_when_the_time_left_is_only_the_reserve(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    clock = Clock(budget_s=ROUND_RESERVE_S)
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_commit_error(stubber, "ParentCommitIdOutdatedException", commit_id(1), {PROD: kustomization(web="2.0")})

    with pytest.raises(ConcurrentUpdate):
        update(make_repo(client, clock), [PROD], set_web("2.0"), clock)

    assert clock.waits == []


DRAWS = (0.5, 0.25, 0.9, 0.0, 0.75, 0.99, 0.6, 0.3)


def test_backoff_is_jittered_exponential_and_capped(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    clock = Clock(budget_s=600.0)
    draws = iter(DRAWS)
    conflicts = 8
    for n in range(1, conflicts + 1):
        expect_tip(stubber, commit_id(n))
        expect_file(stubber, commit_id(n), PROD, kustomization())
        expect_commit_error(stubber, "ParentCommitIdOutdatedException", commit_id(n), {PROD: kustomization(web="2.0")})
    expect_tip(stubber, commit_id(99))
    expect_file(stubber, commit_id(99), PROD, kustomization())
    expect_commit(stubber, commit_id(99), {PROD: kustomization(web="2.0")}, commit_id(100))

    outcome = update(make_repo(client, clock, rng=lambda: next(draws)), [PROD], set_web("2.0"), clock)

    assert outcome.attempts == conflicts + 1
    bounds = [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]  # BACKOFF_BASE_S doubling, capped at BACKOFF_CAP_S
    assert bounds[0] == BACKOFF_BASE_S and bounds[-1] == BACKOFF_CAP_S
    assert clock.waits == pytest.approx([d * b for d, b in zip(DRAWS, bounds, strict=True)])
    assert all(wait <= BACKOFF_CAP_S for wait in clock.waits)


# -- refusals -------------------------------------------------------------------------------------------------------


def test_a_missing_file_is_file_missing_and_nothing_is_committed(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    stubber.add_client_error(
        "get_file",
        "FileDoesNotExistException",
        expected_params={"repositoryName": REPO, "commitSpecifier": commit_id(1), "filePath": STAGING},
    )

    with pytest.raises(FileMissing) as raised:
        update(make_repo(client), [PROD, STAGING], set_web("2.0"))

    assert raised.value.path == STAGING
    assert str(raised.value) == f"{STAGING} does not exist on branch {BRANCH}"
    assert isinstance(raised.value, PermanentError)


def test_read_of_a_missing_file_is_file_missing(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    stubber.add_client_error(
        "get_file",
        "FileDoesNotExistException",
        expected_params={"repositoryName": REPO, "commitSpecifier": commit_id(1), "filePath": PROD},
    )

    with pytest.raises(FileMissing):
        make_repo(client).read(PROD)


def test_an_edit_that_raises_propagates_unchanged_and_nothing_is_committed(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_file(stubber, commit_id(1), STAGING, b"images: []\n")

    with pytest.raises(LookupError, match=f"no web image in {STAGING}"):
        update(make_repo(client), [PROD, STAGING], set_web("2.0"))


def test_an_edit_that_raises_after_a_conflict_propagates_too(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_commit_error(stubber, "ParentCommitIdOutdatedException", commit_id(1), {PROD: kustomization(web="2.0")})
    expect_tip(stubber, commit_id(2))
    expect_file(stubber, commit_id(2), PROD, b"images: []\n")  # someone removed the entry meanwhile

    with pytest.raises(LookupError):
        update(make_repo(client), [PROD], set_web("2.0"))


def test_a_symbolic_link_is_refused_before_the_edit(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, b"../base/kustomization.yaml", mode="SYMLINK")

    def never(path: str, content: bytes) -> bytes | None:
        raise AssertionError("edit called on a symbolic link")

    with pytest.raises(RepoError, match=f"{PROD} is a symbolic link on branch {BRANCH}"):
        update(make_repo(client), [PROD], never)


@pytest.mark.parametrize(
    ("code", "status", "error", "message"),
    [
        ("RepositoryDoesNotExistException", 400, RepoError, f"repository {REPO} does not exist \\(branch {BRANCH}\\)"),
        ("BranchDoesNotExistException", 400, RepoError, f"branch {BRANCH} does not exist in CodeCommit repository"),
        (
            "AccessDeniedException",
            400,
            RepoError,
            "GetBranch on branch main of CodeCommit repository gitops-config "
            "was denied: the function's role needs codecommit:GetBranch",
        ),
        ("EncryptionKeyAccessDeniedException", 400, RepoError, "KMS key cannot be used"),
        ("EncryptionKeyDisabledException", 400, RepoError, "KMS key cannot be used"),
        ("EncryptionKeyUnavailableException", 400, RepoUnavailable, "retry later"),
        ("ThrottlingException", 400, RepoUnavailable, "GetBranch on branch main .* failed \\(ThrottlingException\\)"),
        ("InternalFailure", 500, RepoUnavailable, "failed \\(InternalFailure\\): retry later"),
        ("ServiceUnavailableException", 503, RepoUnavailable, "retry later"),
    ],
)
def test_get_branch_errors(
    stubbed: tuple[Any, Stubber], code: str, status: int, error: type[Exception], message: str
) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "get_branch", code, "stubbed", status, expected_params={"repositoryName": REPO, "branchName": BRANCH}
    )

    with pytest.raises(error, match=message) as raised:
        update(make_repo(client), [PROD], set_web("2.0"))

    assert REPO in str(raised.value)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("FileContentSizeLimitExceededException", RepoError),
        ("MaximumFileEntriesExceededException", RepoError),
        ("FolderContentSizeLimitExceededException", RepoError),
        ("InvalidEmailException", RepoError),
        ("CommitMessageLengthExceededException", RepoError),
        ("EncryptionKeyNotFoundException", RepoError),
        ("ThrottlingException", RepoUnavailable),
    ],
)
def test_create_commit_refusals_are_reported_not_retried(
    stubbed: tuple[Any, Stubber], code: str, error: type[Exception]
) -> None:
    client, stubber = stubbed
    clock = Clock()
    expect_tip(stubber, commit_id(1))
    expect_file(stubber, commit_id(1), PROD, kustomization())
    expect_commit_error(stubber, code, commit_id(1), {PROD: kustomization(web="2.0")})

    with pytest.raises(error, match=f"CreateCommit on branch {BRANCH} of CodeCommit repository {REPO}.*{code}"):
        update(make_repo(client, clock), [PROD], set_web("2.0"), clock)

    assert clock.waits == []


def test_an_unreachable_endpoint_is_repo_unavailable() -> None:
    # a real client and a real refused connection (nothing listens on port 9 of loopback), botocore not retrying
    client = _session().create_client(
        "codecommit",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )

    with pytest.raises(RepoUnavailable, match=f"CodeCommit did not answer for branch {BRANCH} of repository {REPO}"):
        make_repo(client).read(PROD)


# -- names checked against the service model ------------------------------------------------------------------------


def test_the_error_codes_handled_are_the_service_models() -> None:
    model = make_client().meta.service_model

    def errors(operation: str) -> set[str]:
        return {shape.name for shape in model.operation_model(operation).error_shapes}

    assert errors("CreateCommit") >= codecommit._MOVED
    assert "NoChangeException" in errors("CreateCommit")
    assert "FileDoesNotExistException" in errors("GetFile")
    assert {"RepositoryDoesNotExistException", "BranchDoesNotExistException"} <= errors("GetBranch")
    assert "EncryptionKeyUnavailableException" in errors("GetBranch") & errors("GetFile") & errors("CreateCommit")
    assert {"ThrottlingException", "RequestTimeout"} <= codecommit._UNAVAILABLE  # botocore's private lists still hold
    assert set(model.shape_for("FileModeTypeEnum").enum) == {"EXECUTABLE", "NORMAL", "SYMLINK"}


@pytest.mark.parametrize(
    ("region", "url"),
    [
        (
            "eu-west-1",
            "https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/r/commit/c?region=eu-west-1",
        ),
        (
            "cn-north-1",
            "https://cn-north-1.console.amazonaws.cn/codesuite/codecommit/repositories/r/commit/c?region=cn-north-1",
        ),
        (
            "us-gov-west-1",
            "https://console.amazonaws-us-gov.com/codesuite/codecommit/repositories/r/commit/c?region=us-gov-west-1",
        ),
    ],
)
def test_commit_url_per_partition(region: str, url: str) -> None:
    assert CodeCommitRepo(make_client(region), "r", BRANCH).commit_url("c") == url


# -- property: any number of conflicts ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True), max_size=8))
def test_k_conflicts_take_k_plus_one_attempts_and_commit_the_edit_of_the_latest_content(api_tags: list[str]) -> None:
    client = make_client()
    clock = Clock(budget_s=600.0)
    edit = set_web("2.0")
    with Stubber(client) as stubber:
        contents = [kustomization()] + [
            kustomization(api=tag) for tag in api_tags
        ]  # one concurrent change per conflict
        for n, content in enumerate(contents, start=1):
            expect_tip(stubber, commit_id(n))
            expect_file(stubber, commit_id(n), PROD, content)
            new = edit(PROD, content)
            assert new is not None
            if n < len(contents):
                expect_commit_error(stubber, "ParentCommitIdOutdatedException", commit_id(n), {PROD: new})
            else:  # the final commit must carry edit(latest content) exactly (expected_params)
                expect_commit(stubber, commit_id(n), {PROD: new}, commit_id(1000))

        outcome = update(make_repo(client, clock, rng=lambda: 0.5), [PROD], edit, clock)

        stubber.assert_no_pending_responses()
    assert outcome.attempts == len(api_tags) + 1
    assert outcome.commit_id == commit_id(1000)
    assert outcome.parent_id == commit_id(len(contents))
    assert len(clock.waits) == len(api_tags)
