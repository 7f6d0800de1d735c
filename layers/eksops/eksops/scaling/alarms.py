"""The reserved-CPU alarm of each enrolled cluster, which wakes the scaler between scheduled runs.

One alarm per cluster with an enrolled group, named ``<SCALER_ALARM_PREFIX><cluster>-cpu-reserved`` (the template
sets the prefix to ``<stack>-scaling-``, which the scaling topic's policy and the key policy admit): Container
Insights' ``node_cpu_reserved_capacity`` (ClusterName), one-minute average, at or above SCALER_TARGET_PERCENT. The
scaler sizes groups so that requests stay under that share of allocatable CPU, and the metric divides by cores, so
the alarm fires only when demand outgrew the plan; its only action is the scaling topic, which invokes the scaler.

The schedule's reconcile creates a missing alarm, repairs a changed one and deletes those of clusters no longer
enrolled. It only touches its own: an alarm tagged ``eksops:managed-by=node_scaler``, or one whose actions are
exactly the scaling topic (only eksops' alarms may publish there); an alarm of that name that is neither is left
alone and reported as not eksops'.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eksops import config
from eksops.aws import RateLimiter
from eksops.aws.alarms import same_alarm
from eksops.errors import ConfigError

__all__ = ["SCALER_ALARM_PREFIX", "SCALER_ALARM_TOPIC_ARN", "AlarmChanges", "AlarmSettings", "ScalingAlarms"]

SCALER_ALARM_TOPIC_ARN = "SCALER_ALARM_TOPIC_ARN"
SCALER_ALARM_PREFIX = "SCALER_ALARM_PREFIX"
DEFAULT_PREFIX = "eksops-scaling-"
ALARM_SUFFIX = "-cpu-reserved"
MANAGED_TAG = {"Key": "eksops:managed-by", "Value": "node_scaler"}
NAMESPACE = "ContainerInsights"
METRIC = "node_cpu_reserved_capacity"
PERIOD = 60  # Container Insights publishes one-minute data
PUT_ALARM_RATE = 3.0  # PutMetricAlarm quota, per second per account and region
# The highest alarm threshold: node_cpu_reserved_capacity (requests / node cores) never reaches 100 %.
MAX_THRESHOLD_PERCENT = 95.0
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlarmSettings:
    """Where the alarms notify (the scaling topic; None: no alarms are kept) and how they are named."""

    topic_arn: str | None
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlarmSettings:
        topic = config.parse_sns_arn(SCALER_ALARM_TOPIC_ARN, config.read(SCALER_ALARM_TOPIC_ARN, environ))
        prefix = config.read(SCALER_ALARM_PREFIX, environ) or DEFAULT_PREFIX
        if not _PREFIX.match(prefix):
            raise ConfigError(SCALER_ALARM_PREFIX, "1-120 letters, digits, '.', '_' or '-'")
        return cls(topic_arn=topic, prefix=prefix)

    def name(self, cluster: str) -> str:
        return f"{self.prefix}{cluster}{ALARM_SUFFIX}"

    def cluster_of(self, name: str) -> str | None:
        """The cluster of an alarm of this naming, None for any other name."""
        if name.startswith(self.prefix) and name.endswith(ALARM_SUFFIX) and len(name) > len(self.prefix + ALARM_SUFFIX):
            return name[len(self.prefix) : -len(ALARM_SUFFIX)]
        return None


@dataclass
class AlarmChanges:
    """What a reconcile did (or, under dry-run, would do)."""

    changed: list[dict[str, str]] = field(default_factory=list)
    unchanged: int = 0
    not_owned: list[str] = field(default_factory=list)


class ScalingAlarms:
    """Keeps one reserved-CPU alarm per enrolled cluster."""

    def __init__(
        self,
        settings: AlarmSettings,
        cloudwatch: Any,
        *,
        threshold: float,
        dry_run: bool,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self._cloudwatch = cloudwatch
        # The metric divides requests by cores, not allocatable: it stays below about 98 % on a 4-core node (and
        # system pods take their share), so a threshold of 100 % could never fire. Capped where it still can.
        self._threshold = min(float(threshold), MAX_THRESHOLD_PERCENT)
        self._dry_run = dry_run
        self._limiter = limiter or RateLimiter(PUT_ALARM_RATE)

    def desired(self, cluster: str) -> dict[str, Any]:
        """PutMetricAlarm parameters for ``cluster`` (without tags)."""
        topic = [self.settings.topic_arn] if self.settings.topic_arn else []
        return {
            "AlarmName": self.settings.name(cluster),
            "AlarmDescription": (
                f"CPU requested on the nodes of EKS cluster {cluster} reached {self._threshold:g} % of their cores: "
                "demand outgrew eksops' forecast. It invokes the eksops node scaler at once (the scaling topic) "
                "instead of at its next scheduled run. Managed by eksops (docs/node-scaling.md); edits are put back."
            ),
            "ActionsEnabled": True,
            "AlarmActions": topic,
            "OKActions": [],
            "InsufficientDataActions": [],
            "MetricName": METRIC,
            "Namespace": NAMESPACE,
            "Statistic": "Average",
            "Dimensions": [{"Name": "ClusterName", "Value": cluster}],
            "Period": PERIOD,
            "EvaluationPeriods": 1,
            "Threshold": self._threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        }

    def reconcile(self, clusters: Iterable[str]) -> AlarmChanges:
        """Create or repair the alarm of each of ``clusters``; delete eksops' alarms of clusters not among them."""
        changes = AlarmChanges()
        if not self.settings.topic_arn:
            return changes  # no scaling topic configured: the schedule alone drives the scaler
        wanted = set(clusters)
        existing = self._existing()
        for cluster in sorted(wanted):
            self._ensure(cluster, existing.get(cluster), changes)
        for cluster, alarm in sorted(existing.items()):
            if cluster not in wanted:
                self._remove(cluster, alarm, changes)
        return changes

    def _existing(self) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        paginator = self._cloudwatch.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNamePrefix=self.settings.prefix, AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                cluster = self.settings.cluster_of(alarm["AlarmName"])
                if cluster is not None:
                    found[cluster] = alarm
        return found

    def _ours(self, alarm: Mapping[str, Any]) -> tuple[bool, bool]:
        """(eksops' own, tagged as such)."""
        tags = self._cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", [])
        tagged = MANAGED_TAG in tags
        return tagged or list(alarm.get("AlarmActions") or []) == [self.settings.topic_arn], tagged

    def _ensure(self, cluster: str, current: Mapping[str, Any] | None, changes: AlarmChanges) -> None:
        desired = self.desired(cluster)
        name = desired["AlarmName"]
        if current is not None and same_alarm(current, desired):
            changes.unchanged += 1  # pointing at the scaling topic, as desired: eksops' own
            return
        tagged = False
        if current is not None:
            ours, tagged = self._ours(current)
            if not ours:
                log.warning("alarm %s is someone else's (not tagged, not on the scaling topic): left alone", name)
                changes.not_owned.append(name)
                return
        changes.changed.append(
            {"cluster": cluster, "kind": "alarm", "name": name, "action": "update" if current else "create"}
        )
        if self._dry_run:
            return
        self._limiter.acquire()
        self._cloudwatch.put_metric_alarm(**desired, Tags=[MANAGED_TAG])
        if current is not None and not tagged:  # PutMetricAlarm ignores Tags on an existing alarm
            self._cloudwatch.tag_resource(ResourceARN=current["AlarmArn"], Tags=[MANAGED_TAG])

    def _remove(self, cluster: str, alarm: Mapping[str, Any], changes: AlarmChanges) -> None:
        if not self._ours(alarm)[0]:
            changes.not_owned.append(alarm["AlarmName"])
            return
        changes.changed.append({"cluster": cluster, "kind": "alarm", "name": alarm["AlarmName"], "action": "delete"})
        if not self._dry_run:
            self._limiter.acquire()
            self._cloudwatch.delete_alarms(AlarmNames=[alarm["AlarmName"]])
