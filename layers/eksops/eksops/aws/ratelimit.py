"""A token-bucket limiter that keeps a sweep under an API's requests-per-second quota."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Allows ``rate`` acquisitions per second with a burst of ``burst``.

    The clock and sleep are injectable so benchmarks can simulate hours of sweeping in a second.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self.waited = 0.0

    def acquire(self) -> None:
        """Block until one request may be sent."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            self.waited += wait
            self._last = self._clock()
            self._tokens = 0.0
        else:
            self._tokens -= 1
