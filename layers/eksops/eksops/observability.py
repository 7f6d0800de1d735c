"""Wiring shared by every handler: failure logging, EMF counts, the account id from the context."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from eksops.errors import EksopsError, InvalidEvent

F = TypeVar("F", bound=Callable[..., Any])


def record(metrics: Metrics, counts: Mapping[str, int], prefix: str = "") -> None:
    """One EMF count metric per entry, e.g. changed -> LogGroupsChanged with prefix 'LogGroups'."""
    for name, value in counts.items():
        metrics.add_metric(name=f"{prefix}{name.title().replace('_', '')}", unit=MetricUnit.Count, value=value)


PACKAGE_LOGGER = "eksops"


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


def log_failures(logger: Logger, metrics: Metrics) -> Callable[[F], F]:
    """Log why an invocation failed as one structured line, count it, then re-raise for retry and the
    failure path. The package's own log lines go through ``logger`` too (package_logs_through)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(event: Any, context: Any) -> Any:
            try:
                with package_logs_through(logger):
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


def account_of(context: Any) -> str:
    """The account id from the invoked function's ARN (arn:aws:lambda:region:account:function:name)."""
    parts = str(getattr(context, "invoked_function_arn", "")).split(":")
    return parts[4] if len(parts) > 4 else ""
