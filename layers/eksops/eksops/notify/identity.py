"""A report's identity: which invocation published it, what it is about, and its place among that invocation's
reports about the same thing. ``observability.log_failures`` opens :func:`reports_of` around every invocation;
``Publisher.report`` stamps the identity (:func:`next_report_id`); the notifier posts each identity once.

Apart from eksops.notify.publish so the notifier, which reads identities but publishes no report, does not import
the publisher at its cold start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

REPORT_ID_CHARS = 300
SUBJECT_CHARS = 80


class _Invocation:
    __slots__ = ("published", "trigger")

    def __init__(self, trigger: str) -> None:
        self.trigger = trigger
        self.published: dict[str, int] = {}  # subject -> reports about it so far


_INVOCATION: ContextVar[_Invocation | None] = ContextVar("eksops_report_invocation", default=None)


@contextmanager
def reports_of(trigger: str | None) -> Iterator[None]:
    """Reports published in the block carry ``report_id`` ``<trigger>#<subject>#<n>``: the same for the same reports
    of a retried invocation (Lambda retries an asynchronous invocation under the same request id), different for
    every other report of the invocation and for every other invocation. ``trigger`` None: no ids."""
    token = _INVOCATION.set(_Invocation(trigger[: REPORT_ID_CHARS - SUBJECT_CHARS - 20]) if trigger else None)
    try:
        yield
    finally:
        _INVOCATION.reset(token)


def next_report_id(subject: str) -> str | None:
    """The identity of the next report about ``subject`` in this invocation; None outside :func:`reports_of`."""
    invocation = _INVOCATION.get()
    if invocation is None:
        return None
    about = subject[:SUBJECT_CHARS]
    count = invocation.published[about] = invocation.published.get(about, 0) + 1
    return f"{invocation.trigger}#{about}#{count}"
