"""Posts to a Slack incoming webhook with failure semantics a platform team can rely on.

- 2xx: delivered.
- 429: wait for Retry-After when the invocation has the time, then try again; otherwise raise
  ``SlackUnavailable`` so Lambda retries later.
- 5xx and network errors: ``SlackUnavailable`` (retryable): the delivery is retried, finally dead-lettered.
- a dead webhook (401/403/404/410, or Slack's ``no_service``, ``invalid_token``, ``channel_not_found``, ...):
  ``SlackWebhookGone``. It is raised, so the invocation fails (the notifier's error alarm fires), Lambda retries
  it and the on-failure destination parks the SNS event in the dead-letter queue.
- any other 4xx (a malformed payload): ``SlackRejected`` (permanent): retrying cannot help.

The webhook URL is a secret: it never appears in an exception message, a log line or a traceback chain. It is
checked once when read (``check_url``); every error raised here is raised outside the ``except`` block that
caught the original, so no ``__cause__`` or ``__context__`` carries the URL either.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from eksops.errors import ConfigError, PermanentError, TemporaryError

TIMEOUT_S = 10
MAX_RATE_LIMIT_WAITS = 3
SAFETY_MS = 5_000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})  # plain http only for a local receiver (tests, demo)
GONE_STATUSES = frozenset({401, 403, 404, 410})
GONE_ERRORS = frozenset(
    {
        "no_service",
        "no_team",
        "team_disabled",
        "invalid_token",
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
    }
)


class SlackUnavailable(TemporaryError):
    """Slack could not take the message now (429 without time to wait, 5xx, network)."""


class SlackRejected(PermanentError):
    """Slack refused the message (4xx other than 429); the reason is Slack's error text."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"Slack refused the message: HTTP {status} {reason}")


class SlackWebhookGone(PermanentError):
    """The webhook itself is dead (revoked, channel archived or deleted): every message would fail alike.

    Not dead-lettered by the notifier: raised, so the invocation counts as an error (alarm) and Lambda's
    on-failure destination keeps the SNS event for a redrive once the secret holds a working URL.
    """

    def __init__(self, status: int, reason: str, label: str) -> None:
        self.status = status
        self.reason = reason
        self.label = label
        super().__init__(f"the Slack webhook in {label} is dead: HTTP {status} {reason}; replace the secret's URL")


def check_url(url: str, where: str) -> str:
    """``url`` if it is a usable webhook URL; otherwise a ConfigError for ``where`` that does not contain it.

    https with a host, printable ASCII without whitespace; plain http only for exactly 127.0.0.1 or localhost.
    """
    problem = "the secret does not hold an https webhook URL"
    if not url or any(not ("!" <= ch <= "~") for ch in url):
        raise ConfigError(where, f"{problem} (empty, or has whitespace, control or non-ASCII characters)")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        host = None
    if host is None:
        raise ConfigError(where, f"{problem} (it does not parse as a URL with a host)")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(where, f"{problem} (it has user information before the host)")
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return url
    raise ConfigError(where, f"{problem} (plain http is allowed only for 127.0.0.1 and localhost)")


class SlackWebhook:
    """One POST per message, with the rules above. ``remaining_ms`` is the invocation's time left."""

    def __init__(
        self, *, sleep: Callable[[float], None] = time.sleep, opener: Callable[..., Any] = urllib.request.urlopen
    ) -> None:
        self._sleep = sleep
        self._open = opener
        self.posts = 0

    def post(self, url: str, payload: dict[str, Any], remaining_ms: Callable[[], int], *, label: str) -> None:
        """Deliver ``payload``; ``label`` names the webhook in errors (the secret's name, never the URL)."""
        check_url(url, label)
        data = json.dumps(payload).encode()
        for _ in range(MAX_RATE_LIMIT_WAITS + 1):
            status, body, retry_after = self._send(url, data, label)
            if 200 <= status < 300:
                return
            if status == 429:
                wait = retry_after if retry_after is not None else 1.0
                if remaining_ms() - SAFETY_MS < wait * 1000:
                    raise SlackUnavailable(f"Slack rate-limited {label}; Retry-After {wait:g} s exceeds the time left")
                self._sleep(wait)
                continue
            if status >= 500:
                raise SlackUnavailable(f"Slack answered HTTP {status} for {label}")
            reason = body.strip()[:200]
            if status in GONE_STATUSES or reason in GONE_ERRORS:
                raise SlackWebhookGone(status, reason, label)
            raise SlackRejected(status, reason)
        raise SlackUnavailable(f"Slack rate-limited {label} {MAX_RATE_LIMIT_WAITS + 1} times in a row")

    def _send(self, url: str, data: bytes, label: str) -> tuple[int, str, float | None]:
        request = urllib.request.Request(  # noqa: S310 - check_url allows https (and http to loopback) only
            url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        self.posts += 1
        failure: str | None = None
        malformed = False
        try:
            with self._open(request, timeout=TIMEOUT_S) as response:
                return int(response.status), response.read().decode(errors="replace"), None
        except urllib.error.HTTPError as err:
            return err.code, _body_of(err), _retry_after(err.headers.get("Retry-After") if err.headers else None)
        except (ValueError, http.client.InvalidURL) as err:  # their messages quote the URL
            failure, malformed = type(err).__name__, True
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as err:
            # Only the kind of failure is kept: the original's message or attributes may carry the URL.
            failure = type(getattr(err, "reason", err)).__name__
        # Raised here, outside the except blocks, so the new error has no __context__ holding the original.
        if malformed:
            raise ConfigError(label, f"the Slack webhook URL could not be used ({failure}); replace the secret")
        raise SlackUnavailable(f"could not reach Slack for {label}: {failure}")


def _body_of(err: urllib.error.HTTPError) -> str:
    try:
        return err.read().decode(errors="replace") if err.fp else ""
    except (OSError, http.client.HTTPException, ValueError):
        return ""


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
