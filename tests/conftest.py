"""Shared fixtures: one moto server over HTTP for the session, sample events, a Lambda context, the template."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops.aws import clear_client_cache
from eksops_dev.dispatch import LambdaContext
from eksops_dev.template import Template

pytest_plugins = ["tests.kube_fixtures"]  # the `kube` fixture: a Kubernetes API emulator over HTTP

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Captured output may hold lone surrogates (the tests feed them on purpose); pytest-xdist sends each report
    to the controller as strict UTF-8, so they are escaped here or the whole run stops on an internal error."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode("utf-8")) for title, text in report.sections
    ]


@pytest.fixture(scope="session")
def template() -> Template:
    return Template(ROOT / "template.yaml")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1; every AWS call in the tests goes to it over HTTP."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
        )
    }
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    clear_client_cache()
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    clear_client_cache()


@pytest.fixture
def aws(moto_endpoint: str) -> str:
    """The moto endpoint, emptied before the test."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    clear_client_cache()
    return moto_endpoint


@pytest.fixture
def load_event() -> Callable[[str, str], dict[str, Any]]:
    def load(function: str, case: str) -> dict[str, Any]:
        return json.loads((EVENTS / function / f"{case}.json").read_text())  # type: ignore[no-any-return]

    return load


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext("eksops-test", 256, 900)
