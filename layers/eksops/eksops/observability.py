"""Wiring shared by every handler: failure logging, log lines any input can produce, EMF counts, the account id
from the context."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from eksops.errors import EksopsError, InvalidEvent
from eksops.notify.identity import reports_of

F = TypeVar("F", bound=Callable[..., Any])


def record(metrics: Metrics, counts: Mapping[str, int], prefix: str = "") -> None:
    """One EMF count metric per entry, e.g. changed -> LogGroupsChanged with prefix 'LogGroups'."""
    for name, value in counts.items():
        metrics.add_metric(name=f"{prefix}{name.title().replace('_', '')}", unit=MetricUnit.Count, value=value)


PACKAGE_LOGGER = "eksops"
# X-Ray patches only what eksops calls through: botocore (every AWS call) and http.client (Slack posts, the
# Kubernetes API through urllib3). Tracer's default patches every library it finds, and importing requests,
# sqlite3 and the like for that cost cluster_bootstrap about 37 ms of each cold start.
TRACED_MODULES = ("botocore", "httplib")
# Except in the notifier: its http.client requests go to Slack webhook URLs, which are secrets (whoever has one posts
# to the channel), and X-Ray records the URL of every request it traces, query string aside. It traces AWS calls only.
TRACED_AWS_ONLY = ("botocore",)


@contextlib.contextmanager
def package_logs_through(logger: Logger) -> Iterator[None]:
    """Route the package's own log lines (``logging.getLogger(__name__)`` in eksops.*) through the handler's
    Powertools Logger for the length of one invocation: JSON lines with the service, the Lambda context and
    the correlation keys, at the Logger's level, not the runtime's plain-text root handler.

    Restored afterwards, so one execution environment (the sandbox runs several functions in one process) and
    pytest's log capture see the package loggers as they were.
    """
    package = logging.getLogger(PACKAGE_LOGGER)
    saved = (list(package.handlers), package.propagate, package.level)
    package.handlers = list(logger.handlers)
    package.propagate = False  # the runtime's root handler would print every line a second time
    package.setLevel(logger.log_level)
    try:
        yield
    finally:
        package.handlers, package.propagate = saved[0], saved[1]
        package.setLevel(saved[2])


def trigger_of(function: str, context: Any) -> str | None:
    """What a report's identity is made of (eksops.notify.identity.reports_of): the function and the invocation's
    request id, which Lambda keeps when it retries a failed asynchronous invocation (so a retry's reports are
    recognised as copies) and which differs for every other invocation, a repeated event included (a second dry run
    of the same sample still reports). None without a context that has one."""
    found = getattr(context, "aws_request_id", None)
    return f"{function}:{found}" if isinstance(found, str) and found else None


def log_failures(logger: Logger, metrics: Metrics) -> Callable[[F], F]:
    """Log why an invocation failed as one structured line, count it, then re-raise for retry and the
    failure path. The package's own log lines go through ``logger`` too (package_logs_through)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(event: Any, context: Any) -> Any:
            try:
                with package_logs_through(logger), reports_of(trigger_of(logger.service, context)):
                    return func(event, context)
            except InvalidEvent as exc:
                metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
                logger.error(
                    "invalid event: nothing was changed",
                    extra={"error": type(exc).__name__, "reason": exc.reason, "field": exc.field},
                )
                raise
            except EksopsError as exc:
                metrics.add_metric(name="Failures", unit=MetricUnit.Count, value=1)
                logger.error("invocation failed", extra={"error": type(exc).__name__, "reason": str(exc)})
                raise
            except Exception:
                metrics.add_metric(name="Failures", unit=MetricUnit.Count, value=1)
                logger.exception("unexpected failure")
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


# Event text repeated into a log line (a reason quoting a field, a result, a traceback) is bounded here, for every
# handler's Logger: each string to LOG_FIELD_CHARS (a traceback to LOG_TRACEBACK_CHARS), all of a line's strings
# to about LOG_LINE_CHARS, lists and mappings to LOG_ITEMS items and LOG_DEPTH levels. A line stays under 48 KB.
LOG_FIELD_CHARS = 4_096
LOG_TRACEBACK_CHARS = 16_384
LOG_LINE_CHARS = 32_768
LOG_ITEMS = 50
LOG_DEPTH = 8
LOG_NODES = 1_000  # values written per line, all levels together
_SHORT_CHARS = 200  # what a top-level value still gets once the line's budget is spent
_FIRST = ("message", "exception")  # served first from the budget: extras cannot crowd out why a line exists
_TRACEBACKS = frozenset({"exception", "stack_trace"})


def log_json(log: Mapping[str, Any]) -> str:
    """The JSON serializer of every handler's Powertools Logger: ``Logger(json_serializer=log_json)``.

    Any input gives one line UTF-8 can encode, so the write cannot fail and lose it: a lone surrogate in event
    text is written as its escape (``\\ud800``), numbers JSON cannot hold as text, any other object as its
    ``str()``, and the bounds above apply, with a marker saying what was cut.
    """
    bound = _Bound()
    first = {key: bound.value(log[key], key) for key in _FIRST if key in log}
    rest = {key: bound.value(value, key) for key, value in log.items() if key not in first}
    line = {bound.text(str(key), _SHORT_CHARS): first[key] if key in first else rest[key] for key in log}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


class _Bound:
    """One line's budget of characters and values, spent as the values are written."""

    def __init__(self) -> None:
        self.chars = LOG_LINE_CHARS
        self.nodes = LOG_NODES

    def spent(self) -> bool:
        return self.chars <= 0 or self.nodes <= 0

    def value(self, value: Any, key: Any = "", depth: int = 0) -> Any:
        self.nodes -= 1
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            # str() refuses integers of over 4,300 digits; one that size is event text, not a count
            return value if value.bit_length() <= 1024 else f"<an integer of {value.bit_length()} bits>"
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
        if isinstance(value, str):
            return self.text(value, LOG_TRACEBACK_CHARS if key in _TRACEBACKS else LOG_FIELD_CHARS)
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            return self.collection(value, depth)
        try:
            text = str(value)
        except Exception:  # an object whose str() fails must not cost the line
            text = f"<{type(value).__name__}>"
        return self.text(text, LOG_FIELD_CHARS)

    def collection(self, value: Collection[Any], depth: int) -> Any:
        if depth >= LOG_DEPTH or self.spent():
            return f"<{type(value).__name__} of {len(value)} items, not shown>"
        is_mapping = isinstance(value, Mapping)
        pairs: Iterable[tuple[Any, Any]] = value.items() if isinstance(value, Mapping) else enumerate(value)
        shown: list[tuple[Any, Any]] = []
        for key, item in itertools.islice(pairs, LOG_ITEMS):
            if self.spent():
                break
            name = self.text(str(key), _SHORT_CHARS) if is_mapping else key
            shown.append((name, self.value(item, key, depth + 1)))
        more = len(value) - len(shown)
        if is_mapping:
            return {**dict(shown), **({"…": f"{more} more items"} if more else {})}
        return [item for _, item in shown] + ([f"… {more} more items"] if more else [])

    def text(self, text: str, limit: int) -> str:
        limit = max(_SHORT_CHARS, min(limit, self.chars))
        if len(text) > limit:
            head = limit * 3 // 4
            text = f"{text[:head]} …[{len(text) - limit} characters cut]… {text[head - limit :]}"
        self.chars -= len(text)
        # Lone surrogates are the one thing UTF-8 cannot encode: written as their escape instead.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def account_of(context: Any) -> str:
    """The account id from the invoked function's ARN (arn:aws:lambda:region:account:function:name)."""
    parts = str(getattr(context, "invoked_function_arn", "")).split(":")
    return parts[4] if len(parts) > 4 else ""
