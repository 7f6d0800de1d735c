"""CloudWatch alarms: whether an alarm already is what PutMetricAlarm would make (error_alarms and node_scaler)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def same_alarm(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether DescribeAlarms' ``current`` is what PutMetricAlarm with ``desired`` would make."""
    for key, want in desired.items():
        have = current.get(key)
        if key in {"AlarmActions", "OKActions", "InsufficientDataActions"}:
            if sorted(have or []) != sorted(want):
                return False
        elif key == "Threshold":
            if have is None or float(have) != want:
                return False
        elif key == "Dimensions":
            if sorted((d["Name"], d["Value"]) for d in have or []) != sorted((d["Name"], d["Value"]) for d in want):
                return False
        elif have != want:
            return False
    # PutMetricAlarm replaces the whole configuration: settings eksops never sets must be absent too.
    return not (
        current.get("Unit")
        or current.get("ExtendedStatistic")
        or current.get("Metrics")
        or current.get("ThresholdMetricId")
        or current.get("EvaluateLowSampleCountPercentile")
        or current.get("DatapointsToAlarm") not in (None, 1)
    )
