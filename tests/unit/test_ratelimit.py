from __future__ import annotations

from eksops.aws import RateLimiter


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_limiter_paces_requests_at_the_rate() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(5.0, clock=clock, sleep=clock.sleep)
    for _ in range(101):
        limiter.acquire()
    # the first request goes at once, the next 100 at 5 per second
    assert abs(clock.now - 20.0) < 1e-6


def test_limiter_does_not_wait_when_requests_are_slow_anyway() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(5.0, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.acquire()
        clock.now += 1.0  # each request takes a second on its own
    assert limiter.waited == 0.0


def test_burst_allows_that_many_at_once() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(10.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.now == 0.0
    limiter.acquire()
    assert abs(clock.now - 0.1) < 1e-9
