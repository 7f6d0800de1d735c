"""The sandbox's stand-in for metric filters and alarm evaluation, neither of which moto performs.

``MetricFilterEmulator.ingest`` writes log events to moto, counts them with each metric filter of the log
group (the filter-pattern evaluator in eksops_dev.filter_pattern), puts the counts as metric data, and
evaluates the alarms on those metrics against their threshold, moving them with the AlarmShim so the alarm
actions are notified as CloudWatch would. Dimensioned transformations (per namespace) are not emulated.
"""

from __future__ import annotations

import contextlib
import json
import operator
import time
from typing import Any

from eksops_dev.alarms import AlarmShim
from eksops_dev.filter_pattern import count

COMPARE = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


class MetricFilterEmulator:
    def __init__(self, clients: Any) -> None:
        self._client = clients

    def ingest(self, group: str, records: list[dict[str, Any]], stream: str = "fluent-bit") -> dict[str, Any]:
        """Ship ``records`` (Fluent Bit JSON) to ``group``; returns metric values and alarms that moved."""
        logs, cloudwatch = self._client("logs"), self._client("cloudwatch")
        messages = [json.dumps(r) for r in records]
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        logs.put_log_events(
            logGroupName=group, logStreamName=stream, logEvents=[{"timestamp": now, "message": m} for m in messages]
        )
        values: dict[tuple[str, str], float] = {}
        for mf in logs.describe_metric_filters(logGroupName=group).get("metricFilters", []):
            matched = count(mf.get("filterPattern", ""), messages)
            for t in mf.get("metricTransformations", []):
                if t.get("dimensions"):
                    continue
                value = matched * float(t.get("metricValue", "1"))
                values[(t["metricNamespace"], t["metricName"])] = value
                cloudwatch.put_metric_data(
                    Namespace=t["metricNamespace"], MetricData=[{"MetricName": t["metricName"], "Value": value}]
                )
        moved = []
        for alarm in cloudwatch.describe_alarms().get("MetricAlarms", []):
            key = (alarm.get("Namespace"), alarm.get("MetricName"))
            if key not in values or alarm.get("Dimensions"):
                continue
            breaching = COMPARE[alarm["ComparisonOperator"]](values[key], alarm["Threshold"])
            state = "ALARM" if breaching else "OK"
            reason = (
                f"Threshold Crossed: 1 out of the last 1 datapoints [{values[key]:g}] was "
                f"{'greater than or equal to' if breaching else 'less than'} the threshold "
                f"({alarm['Threshold']:g}) (emulated evaluation)."
            )
            if AlarmShim(self._client).set_state(alarm["AlarmName"], state, reason):
                moved.append(alarm["AlarmName"])
        return {"metrics": {f"{ns}/{name}": v for (ns, name), v in values.items()}, "alarms": moved}
