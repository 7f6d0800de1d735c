"""Fixtures for tests against the moto server: the sandbox, counting of API calls, fault-injecting proxies."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops_dev import faults
from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
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


TEST_CONFIG_REPO = "codecommit://eksops-config"


@pytest.fixture
def make_sandbox(aws: str, template: Template, tmp_path: Path) -> Iterator[Callable[..., tuple[Sandbox, Dispatcher]]]:
    """Bring template.yaml up on the (emptied) moto server; returns (sandbox, dispatcher). image_updater is in it
    (a CodeCommit config repository, which needs nothing at start-up) unless the parameters say otherwise, and the
    functions act (DryRun=false; the template's default is a dry run) unless the parameters say DryRun=true."""
    opened: list[tuple[Sandbox, Dispatcher]] = []

    def make(
        parameters: dict[str, str] | None = None, remaining_ms: Callable[[str], Callable[[], int] | None] | None = None
    ) -> tuple[Sandbox, Dispatcher]:
        parameters = {"ImageConfigRepoUrl": TEST_CONFIG_REPO, "DryRun": "false", **(parameters or {})}
        sandbox = Sandbox(template, parameters=parameters, endpoint=aws, workdir=tmp_path / f"sb{len(opened)}")
        sandbox.start()
        dispatcher = Dispatcher(sandbox, remaining_ms=remaining_ms)
        opened.append((sandbox, dispatcher))
        return sandbox, dispatcher

    yield make
    for sandbox, dispatcher in reversed(opened):
        dispatcher.close()
        sandbox.stop()


class FaultProxy(faults.FaultProxy):
    """A proxy in front of moto that answers chosen requests with an AWS error first (``fail``), and with a
    seeded share of throttling and server errors when given a ``FaultPlan`` (eksops_dev.faults)."""

    def __init__(self, upstream: str, plan: faults.FaultPlan | None = None) -> None:
        super().__init__(upstream, plan)
        self.start()

    @property
    def seen(self) -> list[str]:
        """The X-Amz-Target of every request, in order ('' for other protocols)."""
        return [r.headers.get("X-Amz-Target", "") for r in self.requests]

    def fail(
        self,
        operation: str,
        *,
        times: int,
        status: int = 400,
        code: str = "ThrottlingException",
        body_contains: str | None = None,
    ) -> None:
        def matches(request: faults.AwsRequest) -> bool:
            return request.operation == operation and (body_contains is None or body_contains.encode() in request.body)

        self.fail_next(matches, times=times, status=status, code=code)

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
