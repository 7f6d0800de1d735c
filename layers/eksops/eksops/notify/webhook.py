"""Posts to a Slack incoming webhook with failure semantics a platform team can rely on.

- 2xx: delivered.
- 429: wait for Retry-After when the invocation has the time, then try again; otherwise raise
  ``SlackUnavailable`` so Lambda retries later.
- 5xx and network errors: ``SlackUnavailable`` (retryable): the delivery is retried, finally dead-lettered.
- other 4xx (a malformed payload, a revoked webhook): ``SlackRejected`` (permanent): retrying cannot help.

The webhook URL is a secret: it never appears in an exception message, a log line or a traceback chain.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from eksops.errors import PermanentError, TemporaryError

TIMEOUT_S = 10
MAX_RATE_LIMIT_WAITS = 3
SAFETY_MS = 5_000


class SlackUnavailable(TemporaryError):
    """Slack could not take the message now (429 without time to wait, 5xx, network)."""


class SlackRejected(PermanentError):
    """Slack refused the message (4xx other than 429); the reason is Slack's error text."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"Slack refused the message: HTTP {status} {reason}")


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
            raise SlackRejected(status, body[:200])
        raise SlackUnavailable(f"Slack rate-limited {label} {MAX_RATE_LIMIT_WAITS + 1} times in a row")

    def _send(self, url: str, data: bytes, label: str) -> tuple[int, str, float | None]:
        if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
            raise SlackRejected(0, f"the webhook in {label} is not an https URL")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
            url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        self.posts += 1
        try:
            with self._open(request, timeout=TIMEOUT_S) as response:
                return int(response.status), response.read().decode(errors="replace"), None
        except urllib.error.HTTPError as err:
            body = err.read().decode(errors="replace") if err.fp else ""
            return err.code, body, _retry_after(err.headers.get("Retry-After") if err.headers else None)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            # "from None": the original exception may carry the URL; only its kind and reason are kept.
            raise SlackUnavailable(f"could not reach Slack for {label}: {type(reason).__name__}") from None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
