"""Fault injection for tests and benchmarks: an HTTP proxy in front of moto that answers a share of AWS requests
with throttling or server errors, in each service's own protocol, and virtual time for botocore's waits.

``FaultProxy(upstream, plan)`` forwards every request to ``upstream`` (moto, or a shim in front of it) unless the
plan picks it for a fault: throttling (``ThrottlingException``; ``Throttling`` for the query protocol) or a server
error (HTTP 500 ``InternalFailure`` / 503 ``ServiceUnavailable``). Point the standard ``AWS_ENDPOINT_URL`` (and
``AWS_ENDPOINT_URL_<SERVICE>``) variables at it: production code is unaware of it. The draws come from one seeded
random generator, in the order requests arrive: a single-threaded sweep meets the same faults on every run.

The error codes are those botocore retries (its throttling codes, and 5xx). SNS's own modelled throttling error
(``Throttled``, HTTP 429) is not among them: botocore would not retry it at all, so a plan that used it would test
botocore's list, not eksops.

``virtual_time(clock)`` makes botocore's backoff sleeps, its adaptive rate limiter and eksops' call budget run on
``clock``: a run that would wait minutes for retries takes milliseconds, and its timing is the same on every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from eksops_dev.shims import AwsJsonProxy

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


@dataclass(frozen=True)
class AwsRequest:
    """What the proxy knows of a request: its signing name, protocol and (for JSON and query) operation."""

    service: str  # the SigV4 signing name: logs, monitoring, iam, eks, ...
    protocol: str  # json, query or rest-json
    operation: str  # '' for REST requests (the proxy does not see their path)
    body: bytes
    headers: dict[str, str]

    @classmethod
    def parse(cls, target: str, body: bytes, headers: dict[str, str]) -> AwsRequest:
        scope = _SCOPE.search(headers.get("Authorization", ""))
        service = scope.group(1) if scope else "unknown"
        if target:
            return cls(service, "json", target.rsplit(".", 1)[-1], body, headers)
        if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
            action = parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
            return cls(service, "query", action, body, headers)
        return cls(service, "rest-json", "", body, headers)

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation or '?'}"


def error_body(request: AwsRequest, code: str, message: str) -> bytes:
    """An AWS error response body in the request's protocol (botocore reads the code from it)."""
    if request.protocol == "query":
        return (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>fault-proxy</RequestId></ErrorResponse>"
        ).encode()
    return json.dumps({"__type": code, "message": message}).encode()


THROTTLE = {"json": "ThrottlingException", "rest-json": "ThrottlingException", "query": "Throttling"}
SERVER_ERRORS = ((500, "InternalFailure"), (503, "ServiceUnavailable"))


@dataclass
class FaultPlan:
    """Which requests fail: ``throttle`` and ``fail`` are shares of all requests (``only`` narrows them)."""

    throttle: float = 0.0
    fail: float = 0.0
    seed: int = 0
    only: Callable[[AwsRequest], bool] | None = None
    seen: Counter[str] = field(default_factory=Counter)  # requests by service:operation
    throttled: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - reproducible faults, not secrets
        self._lock = threading.Lock()

    def decide(self, request: AwsRequest) -> tuple[int, bytes] | None:
        """The error answer for ``request``, or None to forward it."""
        with self._lock:
            self.seen[request.name] += 1
            if self.only is not None and not self.only(request):
                return None
            draw = self._random.random()
            if draw < self.throttle:
                self.throttled[request.name] += 1
                status = 429 if request.protocol == "rest-json" else 400
                return status, error_body(request, THROTTLE[request.protocol], "Rate exceeded (fault proxy)")
            if draw < self.throttle + self.fail:
                self.failed[request.name] += 1
                status, code = SERVER_ERRORS[self._random.randrange(len(SERVER_ERRORS))]
                return status, error_body(request, code, "Service unavailable (fault proxy)")
        return None

    def total(self, counter: Counter[str]) -> int:
        return sum(counter.values())


class FaultProxy(AwsJsonProxy):
    """A proxy in front of ``upstream`` that answers what ``plan`` picks (and scripted faults) with AWS errors."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.scripted: list[tuple[Callable[[AwsRequest], bool], int, str]] = []
        self.requests: list[AwsRequest] = []
        super().__init__(upstream, self._intercept)

    def _intercept(self, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        request = AwsRequest.parse(target, body, headers)
        self.requests.append(request)
        for index, (matches, status, code) in enumerate(self.scripted):
            if matches(request):
                self.scripted.pop(index)
                return status, error_body(request, code, "Rate exceeded (fault proxy)")
        return self.plan.decide(request)

    def fail_next(self, matches: Callable[[AwsRequest], bool], *, times: int, status: int, code: str) -> None:
        """Answer the next ``times`` requests that ``matches`` accepts with ``status`` and error ``code``."""
        self.scripted.extend([(matches, status, code)] * times)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def proxied(plan: FaultPlan, upstreams: dict[str, str]) -> Iterator[list[FaultProxy]]:
    """eksops' clients made in the block reach AWS through fault proxies that share ``plan``. ``upstreams`` maps
    each endpoint variable to set (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>) to what its proxy forwards to."""
    from eksops.aws import clear_client_cache

    proxies = [FaultProxy(upstream, plan) for upstream in upstreams.values()]
    saved = {key: os.environ.get(key) for key in upstreams}
    for proxy in proxies:
        proxy.start()
    os.environ.update({key: proxy.url for key, proxy in zip(upstreams, proxies, strict=True)})
    clear_client_cache()
    try:
        yield proxies
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        clear_client_cache()
        for proxy in proxies:
            proxy.stop()


# -- virtual time ---------------------------------------------------------------------------------------------


class VirtualClock:
    """Time that passes only when something sleeps on it (starts at 0)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds
            self.slept += seconds


class _VirtualCondition:
    """threading.Condition for botocore's token bucket, whose waits pass on the virtual clock instead."""

    def __init__(self, clock: VirtualClock, lock: Any) -> None:
        self._clock = clock
        self._condition = threading.Condition(lock)

    def __enter__(self) -> Any:
        return self._condition.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._condition.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        # A real wait takes at least some microseconds; without a floor, a wait shorter than the clock's float
        # resolution would pass no time, and the bucket would wait again for ever.
        self._clock.sleep(max(timeout or 0.0, 1e-6))
        return False

    def notify(self, n: int = 1) -> None:
        self._condition.notify(n)


@contextlib.contextmanager
def virtual_time(clock: VirtualClock) -> Iterator[VirtualClock]:
    """botocore's retry sleeps, its adaptive limiter and eksops' call budget on ``clock`` (clients made inside the
    block: clear eksops' client cache first). Single-threaded callers only, as the sweeps are."""
    import botocore.endpoint
    from botocore.retries import bucket

    from eksops.aws.clients import BUDGET

    patches: list[tuple[Any, str, Any]] = [
        (botocore.endpoint, "time", SimpleNamespace(sleep=clock.sleep)),  # the sleep between attempts
        # the token bucket waits on a Condition: its waits pass on the clock
        (bucket, "threading", SimpleNamespace(Lock=threading.Lock, Condition=partial(_VirtualCondition, clock))),
        (bucket.Clock, "current_time", lambda self: clock.now),  # the adaptive limiter's clock
        (bucket.Clock, "sleep", lambda self, amount: clock.sleep(amount)),
        (BUDGET, "clock", clock),
    ]
    saved = [(target, name, getattr(target, name)) for target, name, _ in patches]
    for target, name, value in patches:
        setattr(target, name, value)
    try:
        yield clock
    finally:
        for target, name, value in reversed(saved):
            setattr(target, name, value)
