"""Error alarm settings: the filter pattern, alarm threshold and period, per-namespace metrics, from the environment."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from eksops import config
from eksops.errors import ConfigError

ERROR_FILTER_PATTERN = "ERROR_FILTER_PATTERN"
ERROR_ALARM_THRESHOLD = "ERROR_ALARM_THRESHOLD"
ERROR_ALARM_PERIOD = "ERROR_ALARM_PERIOD"
ERROR_METRIC_BY_NAMESPACE = "ERROR_METRIC_BY_NAMESPACE"

DEFAULT_THRESHOLD = 1
DEFAULT_PERIOD = 300
MAX_THRESHOLD = 1_000_000
MAX_PERIOD = 86_400  # one evaluation period may span at most a day
MAX_PATTERN_LENGTH = 1024  # PutMetricFilter's limit on filterPattern

# Fluent Bit ships each container line as a JSON record: the line in `log`, the Kubernetes metadata in
# `kubernetes` (pod_name, namespace_name, ...), and, when the line is itself JSON, its fields in
# `log_processed`. That holds for nodes (Container Insights' Fluent Bit DaemonSet) and for Fargate (the
# aws-logging ConfigMap eksops installs: Merge_Log On, Merge_Log_Key log_processed, the line kept in `log`).
# The pattern looks only at the line and its level, never at pod or namespace names. Each condition is one kind
# of error headline, so a stack trace shipped line by line counts once: level tokens (ERROR, FATAL, CRITICAL,
# level=error), Python's traceback header, Java's uncaught "Exception in thread", Go's "panic: ", Node's
# "Error: ", and a JSON line's level (error, fatal, critical, panic, in lower, Title or UPPER case: filter
# patterns are case-sensitive). docs/error-alarms.md has the table.
ERROR_LEVELS = tuple(
    variant for level in ("error", "fatal", "critical", "panic") for variant in (level, level.title(), level.upper())
)
DEFAULT_FILTER_PATTERN = (
    '{ $.log = "*ERROR*" || $.log = "*FATAL*" || $.log = "*CRITICAL*"'
    ' || $.log = "*level=error*" || $.log = "*level=fatal*"'
    ' || $.log = "*Traceback (most recent call last)*"'
    ' || $.log = "Exception in thread *" || $.log = "panic: *" || $.log = "Error: *"'
    + "".join(f' || $.log_processed.level = "{level}"' for level in ERROR_LEVELS)
    + " }"
)

# The same selection as DEFAULT_FILTER_PATTERN in Logs Insights syntax (a test checks they agree), for the
# saved queries, the dashboard and the alarm description: on-call sees the lines the alarm counted.
DEFAULT_INSIGHTS_FILTER = (
    r"log like /ERROR|FATAL|CRITICAL|level=error|level=fatal|Traceback \(most recent call last\)"
    r"|^Exception in thread |^panic: |^Error: / or log_processed.level in " + json.dumps(list(ERROR_LEVELS))
)
# A custom pattern cannot be translated to Logs Insights in general; the queries then cast a wider net.
FALLBACK_INSIGHTS_FILTER = r"log like /(?i)error|exception|fatal|panic/"


@dataclass(frozen=True)
class ErrorAlarmsConfig:
    filter_pattern: str = DEFAULT_FILTER_PATTERN
    threshold: int = DEFAULT_THRESHOLD
    period: int = DEFAULT_PERIOD
    by_namespace: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ErrorAlarmsConfig:
        pattern = config.read(ERROR_FILTER_PATTERN, environ) or DEFAULT_FILTER_PATTERN
        by_namespace = config.parse_bool(ERROR_METRIC_BY_NAMESPACE, config.read(ERROR_METRIC_BY_NAMESPACE, environ))
        return cls(
            filter_pattern=_parse_pattern(pattern, by_namespace=by_namespace),
            threshold=config.parse_int(
                ERROR_ALARM_THRESHOLD,
                config.read(ERROR_ALARM_THRESHOLD, environ) or str(DEFAULT_THRESHOLD),
                minimum=1,
                maximum=MAX_THRESHOLD,
            ),
            period=_parse_period(config.read(ERROR_ALARM_PERIOD, environ) or str(DEFAULT_PERIOD)),
            by_namespace=by_namespace,
        )

    @property
    def custom_pattern(self) -> bool:
        return self.filter_pattern != DEFAULT_FILTER_PATTERN

    @property
    def insights_filter(self) -> str:
        """The Logs Insights condition that selects the lines the metric filter counts (approximate if custom)."""
        return FALLBACK_INSIGHTS_FILTER if self.custom_pattern else DEFAULT_INSIGHTS_FILTER


def _parse_pattern(pattern: str, *, by_namespace: bool) -> str:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ConfigError(ERROR_FILTER_PATTERN, f"is {len(pattern)} characters; CloudWatch Logs allows 1024")
    is_json = pattern.startswith("{")
    if is_json and not pattern.endswith("}"):
        raise ConfigError(ERROR_FILTER_PATTERN, "a JSON filter pattern must be enclosed in { }")
    if re.sub(r"\\.", "", pattern).count('"') % 2:  # escaped characters removed first
        raise ConfigError(ERROR_FILTER_PATTERN, "has an unbalanced double quote")
    if by_namespace and not is_json:
        raise ConfigError(
            ERROR_METRIC_BY_NAMESPACE,
            "true needs a JSON ERROR_FILTER_PATTERN ({ ... }): the Namespace dimension is the record's "
            "$.kubernetes.namespace_name field, and metric filters take dimensions only from JSON or "
            "space-delimited patterns",
        )
    return pattern


def _parse_period(raw: str) -> int:
    period = config.parse_int(ERROR_ALARM_PERIOD, raw, minimum=60, maximum=MAX_PERIOD)
    if period % 60:
        raise ConfigError(
            ERROR_ALARM_PERIOD, f"{period} is not a multiple of 60: metric filters publish one-minute data points"
        )
    return period
