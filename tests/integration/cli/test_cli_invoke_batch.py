"""`eksops invoke notifier` with an SQS batch from the reports queue (events/notifier/reports_batch.json): a batch is a
synchronous call from an event source mapping, so a failed one goes back to its queue, never to the on-failure
destination."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.cli import main
from eksops_dev.dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[3]
BATCH = ROOT / "events/notifier/reports_batch.json"


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("EKSOPS_SANDBOX_DIR", str(tmp_path / "sandbox"))
    monkeypatch.delenv("SLACK_WEBHOOK_SECRET_ARN", raising=False)


@pytest.fixture
def dead_lettered(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The events the dispatcher sends to a function's on-failure destination (it still sends them)."""
    sent: list[Any] = []
    real = Dispatcher._dead_letter

    def spy(self: Dispatcher, fn: Any, event: Any, inv: Any, context: Any) -> bool:
        sent.append(event)
        return real(self, fn, event, inv, context)

    monkeypatch.setattr(Dispatcher, "_dead_letter", spy)
    return sent


def test_the_sample_batch_is_one_digest_with_no_failures(
    capsys: pytest.CaptureFixture[str], dead_lettered: list[Any]
) -> None:
    code = main(["invoke", "notifier", "--event", str(BATCH)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["ok"] is True and out["result"] == {"batchItemFailures": []}
    [handled] = [
        json.loads(line)
        for line in captured.err.splitlines()
        if line.startswith("{") and json.loads(line).get("message") == "reports handled"
    ]
    [digest] = handled["digests"]  # one digest of all four, posted to the seeded sandbox's local webhook
    assert (handled["records"], digest["reports"], digest["posted"]) == (4, 4, True)
    assert "eksops invoke: Slack: 1 message(s) posted to the webhook" in captured.err
    assert dead_lettered == []


def test_a_failed_batch_is_not_sent_to_the_on_failure_destination(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dead_lettered: list[Any]
) -> None:
    batch = json.loads(BATCH.read_text())
    batch["Records"][1]["messageId"] = batch["Records"][0]["messageId"]  # no SQS batch holds one message twice
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(batch)))
    code = main(["invoke", "notifier", "--event", "-"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["errorType"] == "InvalidEvent"
    assert dead_lettered == []  # SQS makes the batch visible again; its redrive policy decides, not Lambda


def test_a_failed_sns_delivery_still_is(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dead_lettered: list[Any]
) -> None:
    """The contrast: an asynchronous invocation's failure goes to the on-failure destination."""
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"Records": [{"EventSource": "aws:sns"}]})))
    code = main(["invoke", "notifier", "--event", "-"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["errorType"] == "InvalidEvent"
    assert len(dead_lettered) == 1
