"""Fixtures for tests against the moto server: the sandbox, counting of API calls, a throttling proxy."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from eksops_dev.shims import AwsJsonProxy
from eksops_dev.template import Template


class CallCounter:
    """Counts HTTP sends per operation (retries included) and PutRetentionPolicy per log group."""

    def __init__(self) -> None:
        self.sends: collections.Counter[str] = collections.Counter()
        self.puts: collections.Counter[str] = collections.Counter()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send", self._on_send)
        client.meta.events.register("before-parameter-build.cloudwatch-logs.PutRetentionPolicy", self._on_put)

    def _on_send(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        self.sends[target.rsplit(".", 1)[-1] or "unknown"] += 1

    def _on_put(self, params: dict[str, Any], **_: Any) -> None:
        self.puts[params["logGroupName"]] += 1


@pytest.fixture
def counter() -> CallCounter:
    return CallCounter()


@pytest.fixture
def make_sandbox(aws: str, template: Template, tmp_path: Path) -> Iterator[Callable[..., tuple[Sandbox, Dispatcher]]]:
    """Bring template.yaml up on the (emptied) moto server; returns (sandbox, dispatcher)."""
    opened: list[tuple[Sandbox, Dispatcher]] = []

    def make(
        parameters: dict[str, str] | None = None, remaining_ms: Callable[[str], Callable[[], int] | None] | None = None
    ) -> tuple[Sandbox, Dispatcher]:
        sandbox = Sandbox(template, parameters=parameters, endpoint=aws, workdir=tmp_path / f"sb{len(opened)}")
        sandbox.start()
        dispatcher = Dispatcher(sandbox, remaining_ms=remaining_ms)
        opened.append((sandbox, dispatcher))
        return sandbox, dispatcher

    yield make
    for sandbox, dispatcher in reversed(opened):
        dispatcher.close()
        sandbox.stop()


class FaultProxy(AwsJsonProxy):
    """A proxy in front of moto that answers chosen requests with an AWS error first."""

    def __init__(self, upstream: str) -> None:
        self.faults: list[tuple[Callable[[bytes, dict[str, str]], bool], int, str]] = []
        self.seen: list[str] = []
        super().__init__(upstream, self._intercept)
        self.start()

    def _intercept(self, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        self.seen.append(target)
        for index, (matches, status, code) in enumerate(self.faults):
            if matches(body, headers):
                self.faults.pop(index)
                return status, f'{{"__type": "{code}", "message": "Rate exceeded (fault proxy)"}}'.encode()
        return None

    def fail(
        self,
        operation: str,
        *,
        times: int,
        status: int = 400,
        code: str = "ThrottlingException",
        body_contains: str | None = None,
    ) -> None:
        def matches(body: bytes, headers: dict[str, str]) -> bool:
            return headers.get("X-Amz-Target", "").endswith("." + operation) and (
                body_contains is None or body_contains.encode() in body
            )

        self.faults.extend([(matches, status, code)] * times)

    def close(self) -> None:
        self.stop()


@pytest.fixture
def fault_proxy(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """CloudWatch Logs calls go through the proxy (the standard AWS_ENDPOINT_URL_CLOUDWATCH_LOGS variable)."""
    from eksops.aws import clear_client_cache

    proxy = FaultProxy(aws)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", proxy.url)
    clear_client_cache()
    yield proxy
    proxy.close()
    clear_client_cache()
