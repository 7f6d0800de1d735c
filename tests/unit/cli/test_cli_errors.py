"""`eksops` through its entry point: each user mistake is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from eksops_dev import cli
from eksops_dev.cli import main

ROOT = Path(__file__).resolve().parents[3]
EVENT = "events/log_retention/create_log_group.json"


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the command, check it was refused as a user error, and return its one line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("eksops: error: ")
    return lines[0]


def test_a_wrong_function_name_lists_the_valid_names_and_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["invoke", "log_retension", "--event", EVENT])
    assert "did you mean log_retention" in line
    assert "node_scaler" in line and "NotifierFunction" in line  # every folder name and logical ID


def test_a_missing_event_file_names_the_function_s_samples(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["invoke", "log_retention", "--event", "events/log_retention/nope.json"])
    assert "events/log_retention/nope.json not found" in line
    assert "events/log_retention/scheduled_sweep.json" in line


def test_an_event_that_is_not_json_says_where(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "aws.logs",\n  detail: {}}')
    line = refused(capsys, ["invoke", "log_retention", "--event", str(bad)])
    assert "is not valid JSON" in line and "line 2 column 3" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "is empty"), (b"\xff\xfe{}", "is not UTF-8"), (None, "is a directory")],
    ids=["empty", "binary", "directory"],
)
def test_an_unreadable_event_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "event.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert expected in refused(capsys, ["invoke", "log_retention", "--event", str(path)])


def test_invalid_json_on_stdin_is_refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("not json"))
    assert "the event on stdin is not valid JSON" in refused(capsys, ["invoke", "log_retention", "--event", "-"])


def test_a_param_without_equals_sign(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["invoke", "log_retention", "--event", EVENT, "--param", "DryRun"])
    assert "needs NAME=VALUE" in line


def test_an_unknown_param_name_suggests_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["invoke", "log_retention", "--event", EVENT, "--param", "RetentionDefaultDay=30"])
    assert "no such parameter" in line and "did you mean RetentionDefaultDays" in line


def test_a_param_value_cloudformation_would_refuse(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["invoke", "log_retention", "--event", EVENT, "--param", "RetentionPutRate=500"])
    assert "RetentionPutRate" in line and "above the maximum 100" in line


def test_outside_the_project(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in (["invoke", "log_retention", "--event", EVENT], ["validate"], ["demo"]):
        assert "no template.yaml" in refused(capsys, argv)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A shell with no AWS credentials, profile or region anywhere botocore looks (no instance metadata either)."""
    for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_aws_without_credentials(capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch) -> None:
    no_aws.setenv("AWS_REGION", "eu-west-1")
    line = refused(capsys, ["invoke", "log_retention", "--event", EVENT, "--aws"])
    assert "needs AWS credentials" in line and "aws sso login" in line


def test_aws_without_a_region(capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch) -> None:
    no_aws.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert "needs a region: set AWS_REGION" in refused(capsys, ["invoke", "log_retention", "--event", EVENT, "--aws"])


def test_aws_region_from_aws_region_alone(capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch) -> None:
    """AWS_REGION, which the region error names, is enough (botocore itself reads only AWS_DEFAULT_REGION)."""
    no_aws.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    no_aws.setenv("AWS_REGION", "eu-west-1")
    no_aws.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: STS fails at once, after the region
    no_aws.setenv("AWS_MAX_ATTEMPTS", "1")
    for argv in (["invoke", "log_retention", "--event", EVENT, "--aws"], ["status", "--aws"]):
        line = refused(capsys, argv)
        assert "needs a region" not in line and "STS in eu-west-1" in line, line


def test_aws_with_an_unknown_profile(capsys: pytest.CaptureFixture[str], no_aws: pytest.MonkeyPatch) -> None:
    no_aws.setenv("AWS_PROFILE", "nobody")
    line = refused(capsys, ["invoke", "log_retention", "--event", EVENT, "--aws"])
    assert "nobody" in line and "AWS_PROFILE" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "required: COMMAND"),
        (["deploy"], "invalid choice: 'deploy'"),
        (["invoke", "log_retention"], "required: --event"),
        (["validate", "--params", "a.json", "--config-env", "prod"], "not allowed with argument"),
    ],
)
def test_argparse_refusals_are_one_line_too(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert expected in refused(capsys, argv)


def test_debug_shows_the_traceback_before_or_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--debug", "invoke", "nope", "--event", EVENT], ["invoke", "nope", "--event", EVENT, "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):")
        assert err.splitlines()[-1].startswith("eksops: error: no function 'nope'")


def test_an_unexpected_error_is_one_line_with_exit_code_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr("eksops_dev.validate.run", broken)
    assert main(["validate"]) == 1
    err = capsys.readouterr().err
    assert (
        err == "eksops: error: unexpected RuntimeError: disk on fire second line (run with --debug for the traceback)\n"
    )
    assert main(["--debug", "validate"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and 'raise RuntimeError("disk on fire' in err
    assert "--debug for the traceback" not in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--param" in out and "then by your environment" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("eksops ")


def test_did_you_mean_folds_case_and_dashes() -> None:
    assert cli.did_you_mean("Log-Retention", ["log_retention", "notifier"]) == " (did you mean log_retention?)"
    assert cli.did_you_mean("zzz", ["log_retention"]) == ""
