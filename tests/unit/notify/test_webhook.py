"""SlackWebhook on its own: the URL check, and that no error it raises carries the URL, in its text or in
its chain (``__cause__`` / ``__context__``), whatever went wrong underneath."""

from __future__ import annotations

import http.client
import socket
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from eksops.errors import ConfigError
from eksops.notify.webhook import (
    GONE_ERRORS,
    GONE_STATUSES,
    SlackRejected,
    SlackUnavailable,
    SlackWebhook,
    SlackWebhookGone,
    check_url,
)
from eksops_dev.slack import SlackReceiver

SECRET = "T000/B000/XXXXSECRETXXXX"


@pytest.mark.parametrize(
    "url",
    [
        f"https://hooks.slack.com/services/{SECRET}",
        f"http://127.0.0.1:8080/services/{SECRET}",
        f"http://localhost/services/{SECRET}",
    ],
)
def test_usable_urls_pass(url: str) -> None:
    assert check_url(url, "eksops/slack/x") == url


@pytest.mark.parametrize(
    "url",
    [
        f"https://hooks.slack.com/services/{SECRET}\x07",  # a control character: http.client would quote it
        f"https://hooks.slack.com/services/{SECRET}\n",
        f"https://hooks.slack.com/services/ {SECRET}",
        f"https://hooks.slack.com/services/{SECRET}é",
        f"http://hooks.slack.com/services/{SECRET}",  # plain http to anything but loopback
        f"http://127.0.0.1.evil.tld/services/{SECRET}",  # starts like loopback, is not
        f"http://127.0.0.1@evil.tld/services/{SECRET}",
        f"http://localhost.evil.tld/services/{SECRET}",
        f"https://user:{SECRET}@hooks.slack.com/services/x",
        f"ftp://hooks.slack.com/services/{SECRET}",
        f"https://hooks.slack.com:99999/services/{SECRET}",
        f"https:///services/{SECRET}",
        f"hooks.slack.com/services/{SECRET}",
        "",
    ],
)
def test_unusable_urls_are_refused_without_quoting_them(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_url(url, "SLACK_WEBHOOK_SECRET_ARN: eksops/slack/x")
    assert_clean(caught.value)
    assert str(caught.value).startswith("SLACK_WEBHOOK_SECRET_ARN: eksops/slack/x: ")


def assert_clean(exc: BaseException) -> None:
    """Neither the error nor anything chained to it, nor its formatted traceback, contains the secret."""
    assert exc.__cause__ is None and exc.__context__ is None
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text and "XXXXSECRET" not in text, text


@pytest.fixture
def garbage_server() -> Iterator[int]:
    """Accepts a connection and answers with something that is not HTTP (http.client raises BadStatusLine)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT-HTTP garbage\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


def test_a_non_http_answer_is_retryable_and_clean(garbage_server: int) -> None:
    with pytest.raises(SlackUnavailable) as caught:
        SlackWebhook().post(
            f"http://127.0.0.1:{garbage_server}/services/{SECRET}", {"text": "x"}, lambda: 60_000, label="l"
        )
    assert "BadStatusLine" in str(caught.value)
    assert_clean(caught.value)


def test_a_dead_receiver_is_retryable_and_clean() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SlackUnavailable) as caught:
        SlackWebhook().post(f"http://127.0.0.1:{port}/services/{SECRET}", {"text": "x"}, lambda: 60_000, label="l")
    assert_clean(caught.value)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (http.client.InvalidURL(f"URL can't contain control characters. '/services/{SECRET}'"), ConfigError),
        (ValueError(f"unknown url type: https://hooks.slack.com/services/{SECRET}"), ConfigError),
        (http.client.IncompleteRead(SECRET.encode()), SlackUnavailable),
        (http.client.HTTPException(f"https://hooks.slack.com/services/{SECRET}"), SlackUnavailable),
    ],
)
def test_errors_that_quote_the_url_are_replaced(raised: Exception, expected: type[Exception]) -> None:
    """The URL check makes these unlikely; if urllib or http.client still raise one, the URL stays out."""

    def opener(*args: Any, **kwargs: Any) -> Any:
        raise raised

    with pytest.raises(expected) as caught:
        SlackWebhook(opener=opener).post(
            f"https://hooks.slack.com/services/{SECRET}", {"text": "x"}, lambda: 60_000, label="eksops/slack/x"
        )
    assert "eksops/slack/x" in str(caught.value)
    assert_clean(caught.value)


def test_429_waits_for_retry_after_then_delivers() -> None:
    slept: list[float] = []
    with SlackReceiver() as slack:
        slack.answer(429, headers={"Retry-After": "2"}, text="rate_limited")
        SlackWebhook(sleep=slept.append).post(slack.url, {"text": "x"}, lambda: 60_000, label="l")
        assert slept == [2.0] and slack.attempts == 2 and slack.received == [{"text": "x"}]


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.mark.parametrize(
    ("status", "text"),
    [*((s, "") for s in sorted(GONE_STATUSES)), *((400, e) for e in sorted(GONE_ERRORS)), (404, "no_service")],
)
def test_a_dead_webhook_is_gone_not_rejected(slack: SlackReceiver, status: int, text: str) -> None:
    slack.answer(status, text=text)
    with pytest.raises(SlackWebhookGone) as caught:
        SlackWebhook().post(slack.url, {"text": "x"}, lambda: 60_000, label="eksops/slack/x")
    assert caught.value.status == status and caught.value.reason == text
    assert "eksops/slack/x" in str(caught.value)
    assert_clean(caught.value)


@pytest.mark.parametrize("text", ["invalid_payload", "invalid_blocks", "no_text", "too_many_attachments"])
def test_a_malformed_payload_is_rejected(slack: SlackReceiver, text: str) -> None:
    slack.answer(400, text=text)
    with pytest.raises(SlackRejected) as caught:
        SlackWebhook().post(slack.url, {"text": "x"}, lambda: 60_000, label="l")
    assert not isinstance(caught.value, SlackWebhookGone) and caught.value.reason == text
