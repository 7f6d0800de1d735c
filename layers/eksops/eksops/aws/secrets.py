"""Secrets Manager values, cached for a while: the Slack webhook URLs (notifier) and the config repository's
credentials (image_updater).

eksops reads these itself rather than through Powertools' ``SecretsProvider``: importing any Powertools parameter
provider imports boto3, and with it s3transfer and multiprocessing (about 35 ms of CPU on every notifier cold start,
more than anything else the notifier adds to a bare handler; benchmarks/cold_start.py). What eksops needs of it is
this: one GetSecretValue per secret and execution environment, and another after ``max_age_s``, so a rotated secret
is picked up without a cold start.

A value is never logged, and no error raised here carries it: a failed read is botocore's ClientError, which names
the operation and the secret only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class SecretCache:
    """``get(arn)``: the secret's string, read at most once per ``max_age_s`` and ARN.

    A binary secret (no SecretString) reads as "": each caller checks what the secret must hold and names its own
    variable when it does not (SLACK_WEBHOOK_SECRET_ARN, CONFIG_REPO_SECRET_ARN, ...).
    """

    def __init__(self, secretsmanager: Any, *, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must be 0 or more, not {max_age_s}")
        self._sm = secretsmanager
        self._max_age_s = max_age_s
        self._clock = clock
        self._values: dict[str, tuple[str, float]] = {}

    def get(self, arn: str) -> str:
        now = self._clock()
        cached = self._values.get(arn)
        if cached is not None and now - cached[1] < self._max_age_s:
            return cached[0]
        value = self._sm.get_secret_value(SecretId=arn).get("SecretString")
        value = value if isinstance(value, str) else ""
        self._values[arn] = (value, now)
        return value

    def clear(self) -> None:
        """Forget every value (tests; a rotation that must take effect at once)."""
        self._values.clear()
