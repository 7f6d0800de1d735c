"""The sandbox's stand-in for alarm evaluation: moto stores alarms but never evaluates them.

``AlarmShim.set_state`` sets the state on moto and publishes the notification CloudWatch would send to the
alarm's actions: the native alarm JSON, the subject CloudWatch uses, to each SNS topic in the actions.
Documented in docs/architecture.md; no production code depends on it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eksops_dev.template import ACCOUNT, REGION

REGION_NAMES = {"us-east-1": "US East (N. Virginia)"}


class AlarmShim:
    def __init__(self, clients: Any) -> None:
        self._client = clients

    def set_state(self, name: str, state: str, reason: str) -> dict[str, Any]:
        cloudwatch = self._client("cloudwatch")
        [alarm] = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        old = alarm.get("StateValue", "INSUFFICIENT_DATA")
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)
        if old == state:
            return {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        message = {
            "AlarmName": name,
            "AlarmDescription": alarm.get("AlarmDescription"),
            "AWSAccountId": ACCOUNT,
            "AlarmConfigurationUpdatedTimestamp": now,
            "NewStateValue": state,
            "NewStateReason": reason,
            "StateChangeTime": now,
            "Region": REGION_NAMES.get(REGION, REGION),
            "AlarmArn": alarm["AlarmArn"],
            "OldStateValue": old,
            "OKActions": alarm.get("OKActions", []),
            "AlarmActions": alarm.get("AlarmActions", []),
            "InsufficientDataActions": alarm.get("InsufficientDataActions", []),
            "Trigger": {
                "MetricName": alarm.get("MetricName"),
                "Namespace": alarm.get("Namespace"),
                "StatisticType": "Statistic",
                "Statistic": str(alarm.get("Statistic", "")).upper(),
                "Unit": None,
                "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
                "Period": alarm.get("Period"),
                "EvaluationPeriods": alarm.get("EvaluationPeriods"),
                "ComparisonOperator": alarm.get("ComparisonOperator"),
                "Threshold": alarm.get("Threshold"),
                "TreatMissingData": alarm.get("TreatMissingData", ""),
                "EvaluateLowSampleCountPercentile": "",
            },
        }
        actions = {"ALARM": "AlarmActions", "OK": "OKActions"}.get(state, "InsufficientDataActions")
        subject = f'{state}: "{name}" in {message["Region"]}'[:99]
        for arn in alarm.get(actions, []):
            if ":sns:" in arn:
                self._client("sns").publish(TopicArn=arn, Subject=subject, Message=json.dumps(message))
        return message
