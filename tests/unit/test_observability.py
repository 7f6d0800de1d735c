"""Log lines survive any input: every handler's Powertools Logger writes through ``log_json``.

The stream is strict UTF-8, as a Lambda's stdout is: with Powertools' default serializer a lone surrogate in
event text makes the write fail, and the line is lost (logging prints "--- Logging error ---" instead).
"""

from __future__ import annotations

import ast
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from eksops.errors import InvalidEvent
from eksops.notify import Message, Publisher, Severity
from eksops.notify.identity import reports_of
from eksops.observability import LOG_FIELD_CHARS, LOG_TRACEBACK_CHARS, log_failures, log_json, trigger_of

ROOT = Path(__file__).resolve().parents[2]
LINE_BOUND = 48 * 1024


class Stream(io.TextIOWrapper):
    """A strict UTF-8 stream over bytes, like a Lambda's stdout."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)

    def lines(self) -> list[dict[str, Any]]:
        text = self.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
        return [json.loads(line, parse_constant=_no_constants) for line in text.splitlines()]


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stream]:
    errors: list[logging.LogRecord] = []
    monkeypatch.setattr(logging.Handler, "handleError", lambda _self, record: errors.append(record))
    with Stream() as out:
        yield out
    assert errors == [], "a log write failed and its line was lost"


_services = iter(range(10**6))


def handler_logger(stream: Stream) -> Logger:
    """A Logger constructed as every functions/*/app.py constructs it (checked below), writing to ``stream``."""
    return Logger(
        service=f"observability-test-{next(_services)}", json_serializer=log_json, logger_handler=_handler(stream)
    )


def _handler(stream: Stream) -> logging.Handler:
    return logging.StreamHandler(stream)


LONE = "cluster \ud800 name \udfff"


def test_a_lone_surrogate_does_not_cost_the_line(stream: Stream) -> None:
    logger = handler_logger(stream)
    logger.info(f"message {LONE}", extra={"cluster": LONE, "nested": {LONE: [LONE]}})
    try:
        raise ValueError(LONE)
    except ValueError:
        logger.exception("failed on %s", LONE)
    info, error = stream.lines()
    assert info["message"] == "message cluster \\ud800 name \\udfff"
    assert info["cluster"] == "cluster \\ud800 name \\udfff" and info["nested"] == {info["cluster"]: [info["cluster"]]}
    assert (
        error["message"].startswith("failed on cluster \\ud800") and "ValueError: cluster \\ud800" in error["exception"]
    )


def test_the_default_serializer_loses_the_line(stream: Stream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the handlers need log_json: the same line through Powertools' default serializer is lost."""
    lost: list[logging.LogRecord] = []
    monkeypatch.setattr(logging.Handler, "handleError", lambda _self, record: lost.append(record))
    Logger(service="observability-test-default", logger_handler=_handler(stream)).info("x", extra={"c": LONE})
    assert len(lost) == 1 and stream.lines() == []


def test_failure_lines_of_every_handler_are_bounded_and_survive(stream: Stream) -> None:
    """log_failures' InvalidEvent line quotes a reason; here 600 KB of event text with a lone surrogate."""
    logger = handler_logger(stream)
    metrics = Metrics(namespace="eksops-test")
    reason = "must be an EKS cluster name, got " + "n" * 600_000 + LONE

    @log_failures(logger, metrics)
    def handler(event: Any, context: Any) -> Any:
        raise InvalidEvent(reason, field="detail.requestParameters.name")

    @log_failures(logger, metrics)
    def crashing(event: Any, context: Any) -> Any:
        raise RuntimeError(reason)

    for each in (handler, crashing):
        with pytest.raises(Exception):  # noqa: B017 - each raises its own kind; the lines are checked below
            each({}, None)
    metrics.clear_metrics()
    raw = stream.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    invalid, unexpected = stream.lines()
    assert all(len(line) < LINE_BOUND for line in raw.splitlines())
    assert invalid["message"] == "invalid event: nothing was changed"
    assert invalid["field"] == "detail.requestParameters.name" and invalid["error"] == "InvalidEvent"
    assert (
        invalid["reason"].startswith("must be an EKS cluster name, got nnn") and "characters cut]…" in invalid["reason"]
    )
    assert invalid["reason"].endswith(" name \\udfff") and len(invalid["reason"]) < LOG_FIELD_CHARS + 50
    # a traceback keeps its head (where) and its tail (the exception's last words)
    assert unexpected["exception"].startswith("Traceback (most recent call last):")
    assert unexpected["exception"].endswith(" name \\udfff") and len(unexpected["exception"]) < LOG_TRACEBACK_CHARS + 50


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_any_value_in_extra_gives_one_json_line(stream: Stream) -> None:
    deep: list[Any] = []
    for _ in range(5_000):
        deep = [deep]
    extra = {
        "huge_int": 10**5_000,
        "big_int": 10**80,
        "nan": float("nan"),
        "inf": float("-inf"),
        "deep": deep,
        "many": list(range(10_000)),
        "mapping": {f"k{i}": i for i in range(10_000)},
        "bytes": b"\xff\xfe",
        "object": Unprintable(),
        "set": {1},
        "wide": [["w" * 50_000] * 50] * 50,
    }
    handler_logger(stream).info("values", extra=extra)
    [line] = stream.lines()
    raw = stream.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    assert len(raw) < LINE_BOUND
    assert line["huge_int"] == "<an integer of 16610 bits>" and line["big_int"] == 10**80
    assert (line["nan"], line["inf"]) == ("nan", "-inf")
    assert line["many"][:3] == [0, 1, 2] and line["many"][-1] == "… 9950 more items"
    assert line["mapping"]["k0"] == 0 and line["mapping"]["…"] == "9950 more items"
    assert line["bytes"] == "b'\\xff\\xfe'" and line["object"] == "<Unprintable>" and line["set"] == [1]
    text = json.dumps(line["deep"])
    assert "list of 1 items, not shown" in text and text.count("[") < 10
    assert line["message"] == "values" and line["level"] == "INFO"


def test_ordinary_lines_are_unchanged(stream: Stream) -> None:
    extra = {"counts": {"changed": 2, "unchanged": 40}, "dry_run": False, "kind": "eksops:retention.changes → ok"}
    handler_logger(stream).info("log retention done", extra=extra)
    [line] = stream.lines()
    assert {k: line[k] for k in extra} == extra and line["message"] == "log retention done"


def test_every_handler_logger_writes_through_log_json() -> None:
    """Each functions/*/app.py constructs its module-level Logger with json_serializer=logjson."""
    apps = sorted((ROOT / "functions").glob("*/app.py"))
    assert len(apps) >= 4
    for app in apps:
        tree = ast.parse(app.read_text())
        calls = [
            node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "Logger"
        ]
        assert len(calls) == 1, f"{app}: one module-level Logger(...)"
        serializer = {k.arg: k.value for k in calls[0].keywords}.get("json_serializer")
        assert isinstance(serializer, ast.Name) and serializer.id == "log_json", (
            f"{app}: Logger(json_serializer=log_json)"
        )


def test_reports_of_an_invocation_carry_its_event_in_their_identity() -> None:
    """A report's identity (issue 13 review): the function and the request id, which Lambda's retries keep."""
    assert trigger_of("log_retention", SimpleNamespace(aws_request_id="r-1")) == "log_retention:r-1"
    for no_id in (None, SimpleNamespace(), SimpleNamespace(aws_request_id=""), SimpleNamespace(aws_request_id=7)):
        assert trigger_of("f", no_id) is None

    sent: list[dict[str, Any]] = []

    class Sns:
        def publish(self, **kwargs: Any) -> dict[str, str]:
            sent.append(json.loads(json.loads(kwargs["Message"])["default"]))
            return {"MessageId": str(len(sent))}

    publisher = Publisher(Sns(), alerts_topic_arn="arn:a", reports_topic_arn="arn:r")
    message = Message(kind="k", severity=Severity.INFO, title="t", summary="s")
    with reports_of("log_retention:e-1"):
        publisher.report(message)
        publisher.alert(message)  # alerts have burst dedup instead: no identity
        publisher.report(message)
        publisher.report(message, subject="sweep/r-9")
    publisher.report(message)  # outside an invocation: none
    assert [m.get("report_id") for m in sent] == [
        "log_retention:e-1#k/-#1",
        None,
        "log_retention:e-1#k/-#2",
        "log_retention:e-1#sweep/r-9#1",
        None,
    ]
