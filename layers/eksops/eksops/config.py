"""Configuration from environment variables: names in one place, parsed and validated once at start-up.

Every read goes through :func:`read`, which records the name: a test imports each handler and checks that
every variable it read is defined for that function in template.yaml.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import ConfigError

# Shared by every function (template Globals).
DRY_RUN = "DRY_RUN"
ALERTS_TOPIC_ARN = "ALERTS_TOPIC_ARN"
REPORTS_TOPIC_ARN = "REPORTS_TOPIC_ARN"
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
EVENT_BUS_NAME = "EVENT_BUS_NAME"
# Set by the Lambda runtime itself, never by the template.
AWS_REGION = "AWS_REGION"
AWS_LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"

LAMBDA_RUNTIME_VARIABLES = frozenset({AWS_REGION, AWS_LAMBDA_FUNCTION_NAME, "AWS_DEFAULT_REGION"})

READ_VARIABLES: set[str] = set()
"""Names read so far in this process (for the template test)."""

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")


def read(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The raw value of ``name`` ('' when unset), recorded in READ_VARIABLES."""
    READ_VARIABLES.add(name)
    return (os.environ if environ is None else environ).get(name, "").strip()


def parse_bool(name: str, raw: str, default: bool = False) -> bool:
    value = raw.lower()
    if value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, f"{raw!r} is not a boolean; use true or false")


def parse_int(name: str, raw: str, *, minimum: int, maximum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(name, f"{value} is outside {minimum}..{maximum}")
    return value


def parse_choice(name: str, raw: str, allowed: Iterable[str]) -> str:
    options = tuple(allowed)
    if raw not in options:
        raise ConfigError(name, f"{raw!r} is not allowed; use one of: {', '.join(options)}")
    return raw


def parse_json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(name, f"not valid JSON ({exc.msg} at character {exc.pos})") from None


def parse_sns_arn(name: str, raw: str) -> str | None:
    if raw == "":
        return None
    if not _SNS_ARN.match(raw):
        raise ConfigError(name, f"{raw!r} is not an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<name>)")
    return raw


@dataclass(frozen=True)
class CommonConfig:
    """Settings every function shares."""

    dry_run: bool
    alerts_topic_arn: str | None
    reports_topic_arn: str | None
    event_bus_name: str
    function_name: str
    idempotency_table: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CommonConfig:
        return cls(
            dry_run=parse_bool(DRY_RUN, read(DRY_RUN, environ)),
            alerts_topic_arn=parse_sns_arn(ALERTS_TOPIC_ARN, read(ALERTS_TOPIC_ARN, environ)),
            reports_topic_arn=parse_sns_arn(REPORTS_TOPIC_ARN, read(REPORTS_TOPIC_ARN, environ)),
            event_bus_name=read(EVENT_BUS_NAME, environ) or "default",
            function_name=read(AWS_LAMBDA_FUNCTION_NAME, environ) or "eksops-local",
            idempotency_table=read(IDEMPOTENCY_TABLE, environ) or None,
        )

    def require_idempotency_table(self) -> str:
        """The idempotency table name, for functions whose side effects are not naturally idempotent."""
        if not self.idempotency_table:
            raise ConfigError(IDEMPOTENCY_TABLE, "must name the DynamoDB table for Powertools idempotency")
        return self.idempotency_table
