"""eksops' AWS clients: the worst case of one call fits the checkpoint margin, and the call budget enforces it.

The calls here never reach the network: a ``before-send`` handler answers every attempt (botocore then parses the
answer and runs its retry logic as usual), and botocore's sleeps and adaptive limiter run on virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from eksops.aws import budget, clear_client_cache, client
from eksops.aws.clients import BUDGET, MAX_ATTEMPTS, RETRY_CONFIG
from eksops.sweeps import CLOSING_CALLS, MARGIN_MS, STOP_MS, Deadline
from eksops_dev.faults import VirtualClock, virtual_time

THROTTLED = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class Answers:
    """Answers each attempt of a client's calls: throttled ``throttled`` times, then a success."""

    def __init__(self, c: Any, clock: VirtualClock, *, throttled: int = 10**6, error: bytes = THROTTLED) -> None:
        self.throttled = throttled
        self.error = error
        self.attempts: list[float] = []  # the virtual time each attempt was sent
        self._clock = clock
        c.meta.events.register("before-send.cloudwatch-logs", self._answer)

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        self.attempts.append(self._clock())
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if len(self.attempts) <= self.throttled:
            return AWSResponse(request.url, 400, headers, _Raw(self.error))
        return AWSResponse(request.url, 200, headers, _Raw(b'{"logGroups": []}'))


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, VirtualClock]]:
    """eksops' CloudWatch Logs client (never connected) on a virtual clock, with seeded backoff jitter."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    state = random.getstate()
    random.seed(6)  # botocore draws its jitter from the module-level generator
    clear_client_cache()
    with virtual_time(VirtualClock()) as clock:
        yield client("logs"), clock
    clear_client_cache()
    random.setstate(state)


def describe(c: Any) -> ClientError | None:
    try:
        c.describe_log_groups()
    except ClientError as exc:
        return exc
    return None


def test_the_worst_case_of_one_call_fits_the_checkpoint_margin() -> None:
    margin_s, stop_s = MARGIN_MS / 1000, STOP_MS / 1000
    attempt_s = budget.attempt_bound_s(RETRY_CONFIG)
    call_s = budget.call_bound_s(RETRY_CONFIG)
    assert call_s < margin_s
    # A call under way at the margin runs past it by one attempt at most; then the part reports and continues,
    # each call within its budget, and the handler keeps STOP_MS to finish before the Lambda timeout.
    assert attempt_s + CLOSING_CALLS * call_s + stop_s <= margin_s
    assert Deadline(lambda: 0).margin_ms == MARGIN_MS
    # Without the budget, botocore's ten attempts could take minutes: the budget is what makes the sum hold.
    assert budget.unbudgeted_call_bound_s(RETRY_CONFIG) > 3 * margin_s


def test_the_bounds_follow_botocores_backoff() -> None:
    assert [budget.delay_bound_s(n) for n in (1, 2, 3, 5, 6, 9)] == [
        pytest.approx(d + (5 if budget.NEW_RETRIES_ENABLED else 0)) for d in (1, 2, 4, 16, 20, 20)
    ]
    # adaptive mode waits up to 2 s for a token (0.5 requests/s at its slowest), then connect and read timeouts
    assert budget.attempt_bound_s(RETRY_CONFIG) == pytest.approx(2 + 2 + 5 + budget.ATTEMPT_OVERHEAD_S)


def test_a_call_throttled_every_time_ends_within_its_budget(logs: tuple[Any, VirtualClock]) -> None:
    c, clock = logs
    answers = Answers(c, clock)
    refused = BUDGET.refused
    error = describe(c)
    assert error is not None and error.response["Error"]["Code"] == "ThrottlingException"
    assert clock() <= budget.CALL_BUDGET_S
    # it still rode out several throttles (each retry fits only if it can end within the budget)
    assert 4 <= len(answers.attempts) < MAX_ATTEMPTS
    assert BUDGET.refused == refused + 1


def test_a_throttled_call_that_then_succeeds_is_untouched(logs: tuple[Any, VirtualClock]) -> None:
    c, clock = logs
    answers = Answers(c, clock, throttled=3)
    refused = BUDGET.refused
    assert describe(c) is None
    assert len(answers.attempts) == 4 and BUDGET.refused == refused


def test_far_from_the_margin_a_sweep_call_gets_every_attempt(logs: tuple[Any, VirtualClock]) -> None:
    c, clock = logs
    answers = Answers(c, clock)
    with budget.within(budget.Window(lambda: 600.0 - clock())):
        assert describe(c) is not None
    assert len(answers.attempts) == MAX_ATTEMPTS
    assert clock() > budget.CALL_BUDGET_S  # longer than a call outside a sweep may take: the time is there


def test_near_the_margin_a_sweep_call_ends_by_it_and_ends_the_working_time(logs: tuple[Any, VirtualClock]) -> None:
    c, clock = logs
    answers = Answers(c, clock)
    margin_at = 15.0
    with budget.within(budget.Window(lambda: margin_at - clock())) as window:
        assert describe(c) is not None
        # every retry was sent only if it could end (a whole attempt included) before the margin point
        assert all(t + budget.attempt_bound_s(RETRY_CONFIG) <= margin_at for t in answers.attempts[1:])
        assert 2 <= len(answers.attempts) < MAX_ATTEMPTS
        # the working time is over: the next call is a closing call, with the call budget, not "until the margin"
        assert window.cut and window.cut_at == clock()
        sent, start = len(answers.attempts), clock()
        assert describe(c) is not None
        assert len(answers.attempts) - sent >= 4 and clock() - start <= budget.CALL_BUDGET_S


@pytest.mark.parametrize("past_margin_s", [0.5, 40.0])
def test_a_call_begun_after_the_margin_gets_the_call_budget(
    logs: tuple[Any, VirtualClock], past_margin_s: float
) -> None:
    """The report and the continuation of a part that checkpointed: not cut to nothing, but bounded."""
    c, clock = logs
    answers = Answers(c, clock)
    with budget.within(budget.Window(lambda: -past_margin_s - clock())):
        assert describe(c) is not None
    assert len(answers.attempts) >= 4 and clock() <= budget.CALL_BUDGET_S


def test_the_deadline_turns_low_when_a_call_had_to_give_up_and_bounds_calls_only_in_its_block(
    logs: tuple[Any, VirtualClock],
) -> None:
    c, clock = logs
    deadline = Deadline(lambda: int((MARGIN_MS / 1000 + 3 - clock()) * 1000))
    answers = Answers(c, clock)
    with deadline.bounding_calls():
        assert not deadline.low()
        assert describe(c) is not None  # 3 s before the margin: no time for a retry
        assert len(answers.attempts) == 1 and clock() == 0
        assert deadline.low()  # checkpoint now, though the margin itself is 3 s away
    start = clock()
    assert describe(c) is not None  # outside the block: the call budget alone
    assert len(answers.attempts) >= 5 and clock() - start <= budget.CALL_BUDGET_S


def test_an_error_botocore_would_not_retry_leaves_the_working_time_alone(logs: tuple[Any, VirtualClock]) -> None:
    c, clock = logs
    answers = Answers(c, clock, error=b'{"__type": "AccessDeniedException", "message": "no"}')
    refused = BUDGET.refused
    with budget.within(budget.Window(lambda: 2.0 - clock())) as window:
        error = describe(c)
    assert error is not None and error.response["Error"]["Code"] == "AccessDeniedException"
    assert len(answers.attempts) == 1 and not window.cut and BUDGET.refused == refused
