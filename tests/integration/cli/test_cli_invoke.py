"""`eksops invoke` through its entry point, on the sandbox and with --aws (the moto server as "your account"):
the JSON result alone on stdout, log lines on stderr, and the same precedence of --param, environment and template."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from eksops.errors import PartialFailure
from eksops_dev.cli import main
from eksops_dev.invoke import _aws_failure

ROOT = Path(__file__).resolve().parents[3]
CREATE = ROOT / "events/log_retention/create_log_group.json"
SWEEP = "events/log_retention/scheduled_sweep.json"


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("EKSOPS_SANDBOX_DIR", str(tmp_path / "sandbox"))  # not the .sandbox the demo test may use
    for name in ("RETENTION_MODE", "RETENTION_DEFAULT_DAYS", "DRY_RUN", "ALERTS_TOPIC_ARN", "REPORTS_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any, str]:
    """Exit code, stdout parsed as one JSON document (it must hold nothing else), stderr."""
    code = main(argv)
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else None, captured.err


def log_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_sandbox_by_logical_id_from_stdin_with_environment_and_params(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CREATE.read_text()))
    monkeypatch.setenv("RETENTION_MODE", "cap")  # --param RetentionMode wins over it
    monkeypatch.setenv("DRY_RUN", "true")  # wins over the template's false
    monkeypatch.setenv("ALERTS_TOPIC_ARN", "arn:aws:sns:us-east-1:210987654321:real")  # the sandbox keeps its own
    code, out, err = run(capsys, ["invoke", "LogRetentionFunction", "--event", "-", "--param", "RetentionMode=exact"])
    assert code == 0, err
    assert out["function"] == "log_retention" and out["ok"] is True
    assert out["result"]["mode"] == "exact"
    assert out["result"]["dry_run"] is True
    assert "eksops invoke: log_retention: DRY_RUN from your environment" in err
    assert "RETENTION_MODE from your environment" not in err and "ALERTS_TOPIC_ARN" not in err
    # the notifier gets the same DRY_RUN, which silences the Slack preview: said, with the way out (review of #13)
    assert "eksops invoke: notifier: DRY_RUN from your environment: it posts nothing to Slack" in err
    # the sandbox's notes, one line per kind
    [left_out] = [line for line in err.splitlines() if line.startswith("eksops invoke: sandbox: left out by")]
    assert "ImageUpdaterFunction" in left_out.split(": ", 3)[-1].split(", ")
    notes = [
        line for line in err.splitlines() if line.startswith("eksops invoke: sandbox: ") and " seeded " not in line
    ]
    assert len(notes) <= 3, notes
    assert any(line.get("message") == "log retention done" for line in log_lines(err))  # Powertools, on stderr


def test_sandbox_start_up_refusing_a_param_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, ["invoke", "log_retention", "--event", SWEEP, "--param", 'RetentionRules=[{"pattern": "/aws/*"}]']
    )
    assert code == 2 and out is None
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("eksops: error: log_retention cannot start: RETENTION_RULES: item 0 must be")
    assert "(from --param RetentionRules; `eksops validate` checks every parameter)" in last
    assert not any(line.startswith("eksops: error:") for line in err.splitlines()[:-1])


def test_aws_result_alone_on_stdout_with_the_same_precedence(
    aws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_MODE", "cap")
    monkeypatch.setenv("DRY_RUN", "true")
    code, out, err = run(
        capsys, ["invoke", "log_retention", "--event", SWEEP, "--aws", "--param", "RetentionMode=exact"]
    )
    assert code == 0, err
    assert out["ok"] is True and out["parts"] == 1
    assert out["result"]["mode"] == "exact" and out["result"]["dry_run"] is True
    assert "eksops invoke: log_retention: DRY_RUN from your environment" in err
    assert any(line.get("message") == "log retention done" for line in log_lines(err))
    assert any("_aws" in line for line in log_lines(err))  # the EMF metrics line too


def test_aws_start_up_refusing_an_environment_value(
    aws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_DEFAULT_DAYS", "a year")
    code, out, err = run(capsys, ["invoke", "log_retention", "--event", SWEEP, "--aws"])
    assert code == 2 and out is None
    last = err.splitlines()[-1]
    assert last.startswith("eksops: error: log_retention cannot start: RETENTION_DEFAULT_DAYS: 'a year' is not a whole")
    assert last.endswith(
        "(from your environment: fix or unset RETENTION_DEFAULT_DAYS; `eksops validate` checks every parameter)"
    )


def test_aws_failure_says_where_to_look(aws: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "aws.logs"}')
    code, out, err = run(capsys, ["invoke", "log_retention", "--event", str(bad), "--aws"])
    assert code == 1
    assert out["ok"] is False and out["errorType"] == "InvalidEvent"
    assert out["where_to_look"].startswith("the log lines on stderr and the errors listed here; no alert or report")
    assert any(line.get("message") == "invalid event: nothing was changed" for line in log_lines(err))


def test_aws_failure_of_a_partial_run_lists_its_errors() -> None:
    from eksops_dev.template import Template

    fn = Template(ROOT / "template.yaml").functions["cluster_bootstrap"]
    errors = [{"cluster": "prod", "error": "AccessDenied"}]
    report = _aws_failure(fn, PartialFailure("1 cluster(s) failed; see the alerts", errors), {}, parts=1)
    assert report["errors"] == errors
    assert "no alert or report was published" in report["where_to_look"]
    topic = "arn:aws:sns:us-east-1:123456789012:alerts"
    report = _aws_failure(fn, PartialFailure("x", []), {"ALERTS_TOPIC_ARN": topic}, parts=1)
    assert "published to the topics your environment sets (ALERTS_TOPIC_ARN)" in report["where_to_look"]


class _Refuses(BaseHTTPRequestHandler):
    """STS refusing the caller's token, as it does for expired or unknown keys."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token "
            b"included in the request is invalid.</Message></Error><RequestId>1</RequestId></ErrorResponse>"
        )
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def refusing_sts() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_aws_credentials_refused(
    aws: str, refusing_sts: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", refusing_sts)
    code, out, err = run(capsys, ["invoke", "log_retention", "--event", SWEEP, "--aws"])
    assert code == 2 and out is None
    assert err == (
        "eksops: error: --aws: AWS refused your credentials (InvalidClientTokenId: The security token included in "
        "the request is invalid.); refresh them (`aws sso login`, or new access keys)\n"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["node_scaler", "--event", "events/node_scaler/reserved_cpu_alarm.json", "--param=EnableNodeScaler=false"],
            "node_scaler is not deployed with these parameters (condition ScalesNodes is false:"
            " EnableNodeScaler='false')",
        ),
        (
            ["image_updater", "--no-seed", "--event", "events/image_updater/ecr_image_push.json"],
            "image_updater is not deployed with these parameters (condition UpdatesImages is false",
        ),
    ],
)
def test_a_function_the_parameters_leave_out_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code = main(["invoke", *argv])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and fragment in captured.err and "Traceback" not in captured.err


def test_a_dry_run_false_in_the_environment_is_not_said_to_silence_slack(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    code, _, err = run(capsys, ["invoke", "log_retention", "--event", str(CREATE), "--no-seed"])
    assert code == 0, err
    assert "eksops invoke: notifier: DRY_RUN from your environment\n" in err
    assert "posts nothing to Slack" not in err
