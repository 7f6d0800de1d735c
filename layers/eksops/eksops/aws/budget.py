"""Time budgets for AWS calls: botocore retries a call only while the retry can still end in time.

botocore retries a throttled call up to ``max_attempts`` times, sleeping up to 20 s between attempts, and every
attempt may take its connect and read timeouts: with ten attempts one call could take minutes, longer than the
margin a sweep keeps to checkpoint before the Lambda timeout. ``CallBudget`` hooks every eksops client
(``needs-retry``, ahead of botocore's own retry handler) and refuses a retry whose worst case would end too late:

* a call that begins in a sweep's working time (a ``Window``: before its margin point) may retry only while the
  retry ends by the margin point: far from it, every attempt botocore allows; near it, fewer. The first such
  refusal ends the working time (``Window.cut``): the sweep sees it as its deadline (eksops.sweeps.Deadline.low)
  and checkpoints, rather than going on with calls that could no longer retry;
* any other call (one that begins after the working time, such as a part's report and continuation, or one made
  outside a sweep) may retry only while it ends within ``CALL_BUDGET_S`` of its start.

So a working call runs past the margin point by at most one attempt (``attempt_bound_s``) and any other call
lasts at most ``call_bound_s``: eksops.sweeps sizes its margin from these (tests/unit/test_clients.py checks it).
A refused retry leaves botocore's last error (e.g. ThrottlingException) to the caller, as running out of attempts
does.

The bounds take botocore's own constants (its backoff cap, the adaptive limiter's slowest rate) and the client's
timeouts. ``read_timeout`` bounds each wait for data; AWS answers these APIs in one burst, so it bounds a read.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.config import Config
from botocore.configprovider import NEW_RETRIES_ENABLED
from botocore.retries.bucket import TokenBucket
from botocore.retries.standard import ExponentialBackoff, RetryEventAdapter, StandardRetryConditions

CALL_BUDGET_S = 23.0  # the longest a call outside a sweep's working time may take, retries included
ATTEMPT_OVERHEAD_S = 0.25  # signing, parsing and these hooks, per attempt (milliseconds in practice)
_STARTED = "eksops_call_started"  # key in botocore's per-call request context

# botocore's own constants (private: tests/unit/test_clients.py pins the values the bounds rely on)
_BOTOCORE: dict[str, float] = {
    "min_rate": vars(TokenBucket)["_MIN_RATE"],  # the adaptive limiter's slowest rate, requests per second
    "base": vars(ExponentialBackoff)["_BASE"],
    "max_backoff": vars(ExponentialBackoff)["_MAX_BACKOFF"],  # the longest sleep between attempts
    "retry_after_extra": vars(ExponentialBackoff)["_RETRY_AFTER_MAX_ADDITIONAL"],
}

log = logging.getLogger(__name__)


class Window:
    """A sweep's working time: ``to_margin_s()`` is the time to its margin point (negative once past it)."""

    def __init__(self, to_margin_s: Callable[[], float]) -> None:
        self.to_margin_s = to_margin_s
        self.cut_at: float | None = None  # when a call was first refused a retry for want of time (budget clock)

    @property
    def cut(self) -> bool:
        return self.cut_at is not None


_window: contextvars.ContextVar[Window | None] = contextvars.ContextVar("eksops_call_window", default=None)


def attempt_bound_s(config: Config) -> float:
    """The longest one attempt can take: the adaptive limiter's wait for a token (at its slowest rate, one
    caller), connecting, and waiting for the answer."""
    settings: Any = config  # botocore's stubs do not declare Config's options
    adaptive = (settings.retries or {}).get("mode") == "adaptive"
    token_wait = 1 / _BOTOCORE["min_rate"] if adaptive else 0.0
    return token_wait + float(settings.connect_timeout) + float(settings.read_timeout) + ATTEMPT_OVERHEAD_S


def delay_bound_s(attempt: int) -> float:
    """The longest botocore sleeps before the retry that follows attempt ``attempt`` (1-based): a random share of
    ``min(2 ** (attempt - 1), 20)`` seconds, plus up to 5 s more when it honours a retry-after header."""
    backoff = min(_BOTOCORE["base"] ** (attempt - 1), _BOTOCORE["max_backoff"])
    return float(backoff + (_BOTOCORE["retry_after_extra"] if NEW_RETRIES_ENABLED else 0))


def max_attempts(config: Config) -> int:
    """Attempts per call, the first included (a client config's ``max_attempts`` counts retries only)."""
    settings: Any = config
    retries = settings.retries or {}
    if "total_max_attempts" in retries:
        return int(retries["total_max_attempts"])
    return int(retries.get("max_attempts", 2)) + 1


def unbudgeted_call_bound_s(config: Config) -> float:
    """What one call could take with botocore's retries alone: every attempt and every sleep at its longest."""
    attempts = max_attempts(config)
    return attempts * attempt_bound_s(config) + sum(delay_bound_s(n) for n in range(1, attempts))


def call_bound_s(config: Config, budget_s: float = CALL_BUDGET_S) -> float:
    """The longest a call outside a sweep's working time takes under the budget: a retry starts only if it ends
    within ``budget_s`` of the call's start, and the first attempt is never refused."""
    return min(unbudgeted_call_bound_s(config), max(attempt_bound_s(config), budget_s))


@contextlib.contextmanager
def within(window: Window) -> Iterator[Window]:
    """AWS calls that begin in this block in the window's working time end by its margin point."""
    token = _window.set(window)
    try:
        yield window
    finally:
        _window.reset(token)


class CallBudget:
    """The botocore hooks that keep every call of a client within its time (see the module docstring)."""

    def __init__(self, config: Config, *, budget_s: float = CALL_BUDGET_S) -> None:
        self.budget_s = budget_s
        self.attempt_s = attempt_bound_s(config)
        self.max_attempts = max_attempts(config)
        # botocore's own test of whether a failed attempt is retried (throttling, 5xx, ...): only those are refused
        self._retryable = StandardRetryConditions(max_attempts=self.max_attempts)
        self._adapter = RetryEventAdapter()
        self.clock: Callable[[], float] = time.monotonic  # replaceable: tests and benchmarks run on virtual time
        self.refused = 0  # retries refused so far (the fault benchmark prints it)

    def register(self, client: Any) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}", self._begin, unique_id=f"eksops-budget-begin-{service}")
        # First among the handlers of this service's needs-retry event: botocore's own handler still runs, but the
        # endpoint acts on the first answer that is not None, and False means "do not retry".
        client.meta.events.register_first(
            f"needs-retry.{service}", self._decide, unique_id=f"eksops-budget-retry-{service}"
        )

    def _begin(self, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = self.clock()

    def time_left_s(self, started: float) -> tuple[float, Window | None]:
        """How much longer a call that began at ``started`` (on ``clock``) may run, and the window whose working
        time it began in (None: the call budget applies)."""
        now = self.clock()
        window = _window.get()
        if window is not None and (window.cut_at is None or started < window.cut_at):
            left = window.to_margin_s()
            if left + (now - started) >= 0:  # it began before the margin point: it may run until then
                return left, window
        return self.budget_s - (now - started), None

    def _decide(self, **kwargs: Any) -> bool | None:
        attempts, response, operation = kwargs["attempts"], kwargs["response"], kwargs["operation"]
        started = kwargs["request_dict"].get("context", {}).get(_STARTED)
        failed = kwargs["caught_exception"] is not None or (response is not None and response[0].status_code >= 300)
        if started is None or not failed:
            return None
        if not self._retryable.is_retryable(self._adapter.create_retry_context(**kwargs)):
            return None  # botocore would not retry it anyway (AccessDenied, the last attempt, ...)
        left, window = self.time_left_s(started)
        needed = delay_bound_s(attempts) + self.attempt_s
        if needed <= left:
            return None  # botocore decides, as it would without the budget
        self.refused += 1
        if window is not None and window.cut_at is None:
            window.cut_at = self.clock()
        log.info(
            "%s: not retried after attempt %d: a retry may take %.1f s, %.1f s left %s",
            operation.name,
            attempts,
            needed,
            max(left, 0.0),
            "before the checkpoint margin" if window is not None else "for this call",
        )
        return False
