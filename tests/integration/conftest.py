"""Fixtures for tests against the moto server: the sandbox, counting of API calls, a throttling proxy."""

from __future__ import annotations

import collections
import http.server
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops.local.dispatch import Dispatcher
from eksops.local.sandbox import Sandbox
from eksops.local.template import Template


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


class FaultProxy:
    """An HTTP proxy in front of moto that answers chosen requests with an AWS error first."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[tuple[Callable[[bytes, dict[str, str]], bool], int, str]] = []
        self.seen: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
                proxy.seen.append(headers.get("X-Amz-Target", ""))
                for index, (matches, status, code) in enumerate(proxy.faults):
                    if matches(body, headers):
                        proxy.faults.pop(index)
                        payload = f'{{"__type": "{code}", "message": "Rate exceeded (fault proxy)"}}'.encode()
                        self.send_response(status)
                        self.send_header("Content-Type", "application/x-amz-json-1.1")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, data, rheaders = response.status, response.read(), response.headers
                except urllib.error.HTTPError as err:
                    status, data, rheaders = err.code, err.read(), err.headers
                self.send_response(status)
                for key, value in rheaders.items():
                    if key.lower() not in {"content-length", "connection", "transfer-encoding", "server", "date"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

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
        self.server.shutdown()
        self.server.server_close()


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
