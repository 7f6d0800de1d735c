"""The node scaler: measures each enrolled node group's demand, forecasts it, decides and acts, every minute and
when a cluster's reserved-CPU alarm fires.

One run: read the kill switch (SSM, every run, so operators flip it without a deploy); find the enrolled groups
(eksops.scaling.groups); on the schedule, reconcile each enrolled cluster's alarm (eksops.scaling.alarms); per
cluster, measure demand through the Kubernetes API or, when it cannot be reached, Container Insights
(eksops.scaling.demand); read each group's demand history back and decide with :func:`eksops.scaling.decide`, the
very function the simulator runs; act through the group's actuator; publish the demand measured (the next run's
history); report every action and refusal, and alert when a group is at its maximum.

Guarantees the service keeps on top of the decision's own guardrails:

* It never calls SetDesiredCapacity on a group Cluster Autoscaler or Karpenter manages (the decision refuses, and
  the service checks again before the call).
* The ``asg`` actuator changes only groups tagged ``eksops:scaling=enabled``: enrolling a whole cluster through
  SCALER_CLUSTERS drives the headroom actuator, forecasts and reports, but desired capacity is written only where a
  group says so itself (the IAM policy allows no other).
* SetDesiredCapacity is called with HonorCooldown false: the decision applies its own scale-out cooldown and
  stabilisation window; the group's default cooldown (300 s, meant for simple scaling policies) would make a
  predictive step wait or fail with ScalingActivityInProgress after any activity, which defeats the lead time.
* Under dry run and with the kill switch on, nothing is changed (no capacity, no pause pods, no alarm); the demand
  is still recorded, so that the forecast has a history when the scaler is let act, and so is the fingerprint of
  the last refusal reported (tag ``eksops:scaling-refused``), so that the same refusal is reported once, not every
  minute: a refusal is reported again when its reason or proposed size changes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import RateLimiter, error_code
from eksops.config import CommonConfig
from eksops.errors import EksopsError, PartialFailure
from eksops.events import ScheduledRun
from eksops.notify import Message, Publisher, Severity
from eksops.scaling.alarms import AlarmSettings, ScalingAlarms
from eksops.scaling.config import Actuator, ScalerConfig, kill_switch_engaged
from eksops.scaling.decision import Action, Autoscaler, Decision, GroupState, decide
from eksops.scaling.demand import (
    ClusterView,
    DemandHistory,
    GroupDemand,
    group_labels,
    insights_demand,
    kube_demand,
    read_cluster,
    read_insights,
)
from eksops.scaling.forecasting import Sample
from eksops.scaling.groups import (
    AT_MAX_TAG,
    BOOKKEEPING_TAGS,
    ENROLL_TAG,
    LAST_SCALE_IN_TAG,
    LAST_SCALE_OUT_TAG,
    NODE_MILLICORES_TAG,
    REFUSED_TAG,
    NodeGroup,
    discover,
    format_time,
)
from eksops.scaling.headroom import NAMESPACE, HeadroomActuator, Held, state_annotation
from eksops.scaling.pools import POOL_PREFIX, UNLIMITED_POOL_MAX_NODES, PoolReading, pool_groups, read_nodepools
from eksops.scaling.triggers import AlarmTrigger, Trigger
from eksops.sweeps import Deadline

__all__ = ["NodeScalerService", "Summary"]

FUNCTION = "node_scaler"
# A cluster whose Kubernetes API failed is read from Container Insights for this long before trying again, so an
# unreachable endpoint costs its timeouts once, not every minute.
KUBE_RETRY_SECONDS = 600.0
APPLY_BUDGET_SECONDS = 60.0
# How late Container Insights' reserved-CPU metric is: the agent's 60 s collection interval plus its delivery to
# CloudWatch (about a minute more). Demand read from it is this old, so the forecast looks this much further ahead.
INSIGHTS_LAG_SECONDS = 120
# An error of the same group and kind within this long is no news: reported again after it (a reminder), not every
# minute (and the run fails only for news).
ERROR_MEMORY_SECONDS = 1800.0

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What one run decided and did (or, under dry run, would do)."""

    dry_run: bool
    trigger: str
    kill_switch: str = "off"
    decisions: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    # Groups whose refusal is the one already reported (same reason and size): in the summary, not re-sent.
    refused_again: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    at_max: list[str] = field(default_factory=list)
    alarms: list[dict[str, str]] = field(default_factory=list)
    not_owned: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    # Errors of a group and kind this execution environment reported within ERROR_MEMORY_SECONDS: listed, not sent
    # again, and the run does not fail for them (a lasting fault would otherwise report and fail every minute).
    errors_again: list[dict[str, str]] = field(default_factory=list)
    ignored: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def counts(self) -> dict[str, int]:
        return {
            "decided": len(self.decisions),
            "changed": len(self.changed),
            "refused": len(self.refused),
            "refused_again": len(self.refused_again),
            "skipped": len(self.skipped),
            "at_max": len(self.at_max),
            "errors": len(self.errors),
            "errors_again": len(self.errors_again),
        }

    def raise_for_errors(self) -> None:
        """Fail the invocation when a group or alarm failed, after the others were handled and reported."""
        if self.errors:
            raise PartialFailure(f"{len(self.errors)} node group(s) or alarm(s) failed; see the report", self.errors)


@dataclass
class _Cluster:
    """One cluster's reading in this run."""

    name: str
    api: Any = None  # Kubernetes ApiClient when the API answered
    demand: dict[str, GroupDemand] = field(default_factory=dict)
    unreachable: str | None = None
    pools: tuple[NodeGroup, ...] = ()  # Karpenter NodePools as groups (eksops.scaling.pools)
    pool_skipped: list[tuple[str, str]] = field(default_factory=list)  # (group name, reason)


class NodeScalerService:
    """Forecasts and sizes enrolled node groups, with the clients and ports it is given.

    ``api_client(cluster)`` returns a Kubernetes ApiClient (eksops.kube.auth.api_client); None: Container
    Insights only. ``clock`` is the time source (epoch seconds): tests and the demo run the scaler on a simulated
    clock. ``alarm_limiter`` paces PutMetricAlarm (the account's 3/s by default).
    """

    def __init__(
        self,
        cfg: ScalerConfig,
        common: CommonConfig,
        *,
        autoscaling: Any,
        cloudwatch: Any,
        ssm: Any,
        publisher: Publisher,
        alarms: AlarmSettings,
        api_client: Callable[[str], Any] | None = None,
        headroom: HeadroomActuator | None = None,
        clock: Callable[[], float] = time.time,
        alarm_limiter: RateLimiter | None = None,
    ) -> None:
        self.cfg = cfg
        self.common = common
        self.clock = clock
        self._autoscaling = autoscaling
        self._cloudwatch = cloudwatch
        self._ssm = ssm
        self._publisher = publisher
        self._alarms = ScalingAlarms(
            alarms, cloudwatch, threshold=cfg.target_percent, dry_run=common.dry_run, limiter=alarm_limiter
        )
        self._api_client = api_client
        self._headroom = headroom or HeadroomActuator()
        self._history = DemandHistory(cloudwatch)
        self._kube_down_until: dict[str, float] = {}
        self._errors_reported: dict[tuple[str, str], float] = {}  # (group, kind) -> when it was last reported
        # The last refusal reported per NodePool (cluster, pool group): a pool has no Auto Scaling group to keep the
        # eksops:scaling-refused tag on, and under dry run and the kill switch nothing is written in the cluster.
        self._pool_refused: dict[tuple[str, str], str] = {}
        self._account = ""

    # -- entry point ------------------------------------------------------------------------------------------

    def handle(self, trigger: Trigger, deadline: Deadline, *, account: str = "") -> Summary:
        """One run for a parsed trigger: every enrolled group on the schedule, the alarm's cluster on an alarm."""
        self._account = account
        now = self.clock()
        summary = Summary(dry_run=self.common.dry_run, trigger=_describe(trigger))
        with deadline.bounding_calls():  # AWS calls leave the margin to the report (eksops.aws.budget)
            if isinstance(trigger, AlarmTrigger) and not trigger.acts:
                summary.ignored = f"alarm {trigger.alarm_name} went to {trigger.state}: nothing to scale"
                return summary
            engaged = self._kill_switch(summary)
            groups = discover(self._autoscaling, self.cfg)
            enrolled = [g for g in groups if g.enrolled]
            if isinstance(trigger, ScheduledRun):
                targets = enrolled
                if engaged:
                    summary.notes.append("alarms not reconciled: the kill switch is on")
                else:
                    self._reconcile_alarms({g.cluster for g in enrolled}, summary)
            else:
                targets = self._alarm_targets(trigger, enrolled, summary)
            pooled = self._pool_clusters(groups, trigger, targets)
            by_cluster: dict[str, list[NodeGroup]] = {cluster: [] for cluster in pooled}
            for group in targets:
                by_cluster.setdefault(group.cluster, []).append(group)
            samples: list[tuple[NodeGroup, float, float]] = []
            for cluster in sorted(by_cluster):
                siblings = [g for g in groups if g.cluster == cluster]
                self._scale_cluster(
                    cluster,
                    by_cluster[cluster],
                    siblings,
                    now=now,
                    engaged=engaged,
                    summary=summary,
                    samples=samples,
                    pools=cluster in pooled,
                )
            if samples:
                self._guarded("history", "demand metric", summary, lambda: self._history.publish(samples))
            self._news_only(summary, now)
            self._report(summary)
        return summary

    def _news_only(self, summary: Summary, now: float) -> None:
        """Move errors of a group and kind that failed within ERROR_MEMORY_SECONDS to ``errors_again``: a lasting
        fault (whatever code it answers with, whichever runs in between do not reach the group) is reported once
        per half hour. Kept in the execution environment's memory: a cold start reports it again."""
        fresh = {k: at for k, at in self._errors_reported.items() if now - at < ERROR_MEMORY_SECONDS}
        summary.errors_again = [e for e in summary.errors if _error_key(e) in fresh]
        summary.errors = [e for e in summary.errors if _error_key(e) not in fresh]
        fresh.update({_error_key(e): now for e in summary.errors})  # a repeat does not extend the half hour
        self._errors_reported = fresh

    def _alarm_targets(self, trigger: AlarmTrigger, enrolled: list[NodeGroup], summary: Summary) -> list[NodeGroup]:
        """The enrolled groups of the alarm's cluster; a refusal for an alarm not eksops' or a cluster not enrolled."""
        settings = self._alarms.settings
        if settings.cluster_of(trigger.alarm_name) != trigger.cluster:
            reason = f"alarm {trigger.alarm_name} is not eksops' scaling alarm of cluster {trigger.cluster}"
        elif not any(g.cluster == trigger.cluster for g in enrolled):
            reason = (
                f"cluster {trigger.cluster} has no enrolled node group (tag one eksops:scaling=enabled or list the "
                "cluster in SCALER_CLUSTERS); the next scheduled run removes its alarm"
            )
        else:
            return [g for g in enrolled if g.cluster == trigger.cluster]
        summary.refused.append({"cluster": trigger.cluster, "alarm": trigger.alarm_name, "reason": reason})
        log.warning("alarm refused: %s", reason)
        return []

    def _pool_clusters(self, groups: list[NodeGroup], trigger: Trigger, targets: list[NodeGroup]) -> set[str]:
        """Clusters whose Karpenter NodePools are looked for: enrolled through SCALER_CLUSTERS, headroom actuator.

        A cluster is known by its Auto Scaling groups (any, enrolled or not: Karpenter's own controller usually runs
        on a managed node group) or by a SCALER_CLUSTERS entry that is a plain name, not a glob (a cluster with no
        Auto Scaling group at all). On an alarm, only the alarm's cluster, once its alarm was accepted.
        """
        if self._api_client is None:
            return set()
        named = {g.cluster for g in groups} | {c for c in self.cfg.clusters if not any(ch in c for ch in "*?[")}
        if isinstance(trigger, AlarmTrigger):
            named &= {g.cluster for g in targets}
        return {c for c in named if self.cfg.enrolled(c) and self.cfg.actuator_for(c) is Actuator.HEADROOM}

    # -- inputs -----------------------------------------------------------------------------------------------

    def _kill_switch(self, summary: Summary) -> bool:
        """Whether the SSM parameter stops the scaler. Missing: no; unreadable: yes (fail safe), and said so."""
        name = self.cfg.kill_switch_parameter
        try:
            value: str | None = str(self._ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                value = None
            else:
                summary.kill_switch = f"unreadable ({error_code(exc)}): treated as on"
                log.warning("kill switch %s unreadable (%s): nothing is changed this run", name, error_code(exc))
                return True
        engaged = kill_switch_engaged(value)
        summary.kill_switch = "on" if engaged else "off"
        return engaged

    def _reconcile_alarms(self, clusters: set[str], summary: Summary) -> None:
        def reconcile() -> None:
            changes = self._alarms.reconcile(clusters)
            summary.alarms += changes.changed
            summary.not_owned += changes.not_owned

        self._guarded("alarms", "alarm", summary, reconcile)

    def _read_cluster(
        self, cluster: str, groups: list[NodeGroup], siblings: list[NodeGroup], now: float, *, pools: bool = False
    ) -> _Cluster:
        reading = _Cluster(cluster)
        if self._api_client is not None and time.monotonic() >= self._kube_down_until.get(cluster, 0.0):
            try:
                reading.api = self._api_client(cluster)
                view: ClusterView = read_cluster(reading.api, exclude_namespace=NAMESPACE)
                labels = group_labels(siblings)
                pooled = self._read_pools(reading, view, labels) if pools else None
                # With NodePools, a pending pod that selects no group's nodes is theirs: counted once, not twice.
                reading.demand = kube_demand(view, groups, only_selecting=labels if pooled is not None else None)
                if pooled is not None:
                    reading.demand.update(pooled.demand)
                return reading
            except Exception as exc:  # any failure to reach the API: Container Insights instead, and say why
                reading.api = None
                reading.unreachable = _why(exc)
                self._kube_down_until[cluster] = time.monotonic() + KUBE_RETRY_SECONDS
                log.warning(
                    "Kubernetes API of %s not usable (%s): Container Insights instead", cluster, reading.unreachable
                )
        elif self._api_client is not None:
            reading.unreachable = "not reachable in the last 10 minutes"
        if not groups:
            return reading  # NodePools only: they are read through the API or not at all
        insights = read_insights(self._cloudwatch, [cluster], now=now).get(cluster)
        if insights is not None:
            reading.demand = insights_demand(insights, groups, siblings)
        return reading

    @staticmethod
    def _read_pools(reading: _Cluster, view: ClusterView, labels: frozenset[str]) -> PoolReading | None:
        """The cluster's Karpenter NodePools as groups, with their demand; None for a cluster without them. One whose
        NodePools cannot be read (no RBAC for them yet) keeps its Auto Scaling groups, and says why."""
        try:
            found = read_nodepools(reading.api)
        except Exception as exc:  # the kubernetes client's ApiException and connection errors
            reason = f"Karpenter NodePools not readable ({_why(exc)}): see docs/node-scaling.md, access to each cluster"
            reading.pool_skipped.append((f"{POOL_PREFIX}*", reason))
            log.warning("NodePools of %s not readable: %s", reading.name, _why(exc))
            return None
        if not found:
            return None  # Karpenter not installed (not served), or no NodePool
        pooled = pool_groups(reading.name, found, view, group_labels=labels)
        reading.pools = pooled.groups
        reading.pool_skipped += pooled.skipped
        return pooled

    # -- one cluster ------------------------------------------------------------------------------------------

    def _scale_cluster(
        self,
        cluster: str,
        groups: list[NodeGroup],
        siblings: list[NodeGroup],
        *,
        now: float,
        engaged: bool,
        summary: Summary,
        samples: list[tuple[NodeGroup, float, float]],
        pools: bool = False,
    ) -> None:
        reading: _Cluster | None = None
        try:
            reading = self._read_cluster(cluster, groups, siblings, now, pools=pools)
            history = self._history.read([*groups, *reading.pools], now=now, seconds=self.cfg.history_seconds)
        except ClientError as exc:
            for group in [*groups, *(reading.pools if reading else ())]:
                _record_error(summary, group.name, "demand", exc)
            return
        if reading.unreachable and groups:
            summary.notes.append(f"{cluster}: Kubernetes API {reading.unreachable}; demand from Container Insights")
        elif reading.unreachable:
            why = f"the headroom actuator reads NodePools through the cluster's Kubernetes API ({reading.unreachable})"
            reading.pool_skipped.append((f"{POOL_PREFIX}*", why))
        for name, reason in reading.pool_skipped:
            summary.skipped.append({"group": name, "cluster": cluster, "reason": reason})
        for group in (*groups, *reading.pools):
            demand = reading.demand.get(group.name)
            if demand is None:
                summary.skipped.append(
                    {
                        "group": group.name,
                        "cluster": cluster,
                        "reason": "no demand signal: the Kubernetes API is not "
                        "reachable and Container Insights has no recent data for the cluster",
                    }
                )
                continue
            samples.append((group, now, demand.millicores))
            self._guarded(
                group.name,
                "scaling",
                summary,
                lambda g=group, d=demand: self._scale_group(  # type: ignore[misc]
                    g, d, history.get(g.name, []), reading, now=now, engaged=engaged, summary=summary
                ),
            )

    def _scale_group(
        self,
        group: NodeGroup,
        demand: GroupDemand,
        history: list[Sample],
        reading: _Cluster,
        *,
        now: float,
        engaged: bool,
        summary: Summary,
    ) -> None:
        actuator = self.cfg.actuator_for(group.cluster)
        node_millicores = demand.node_millicores or group.remembered_node_millicores
        if node_millicores is None:
            summary.skipped.append(
                {"group": group.name, "cluster": group.cluster, "reason": "no node shows its allocatable CPU yet"}
            )
            return
        if actuator is Actuator.HEADROOM and reading.api is None:
            summary.skipped.append(
                {
                    "group": group.name,
                    "cluster": group.cluster,
                    "reason": f"the headroom actuator needs the cluster's Kubernetes API ({reading.unreachable})",
                }
            )
            return
        group, replicas = self._pause_pods(group.with_taints(demand.taints), actuator, reading.api)
        state = GroupState(
            name=group.name,
            min_size=group.min_size,
            max_size=group.max_size,
            desired=group.desired,
            nodes=demand.nodes,
            node_millicores=node_millicores,
            pending_millicores=demand.pending,
            history=(*history, Sample(at=now, millicores=demand.millicores)),
            autoscaler=group.autoscaler,
            cluster=group.cluster,
            last_scale_out=group.last_scale_out,
            last_scale_in=group.last_scale_in,
            headroom_replicas=replicas,
        )
        cfg = self.cfg
        if demand.source != "kubernetes":
            # Container Insights: blind to pending pods (no scale-in: it cannot know there are none) and a couple
            # of minutes late (the forecast reaches that much further). docs/node-scaling.md, the fallback.
            state = replace(state, pending_visible=False)
            cfg = replace(cfg, lead_seconds=cfg.lead_seconds + INSIGHTS_LAG_SECONDS)
        decision = _only_tagged_groups(
            group, decide(state, cfg, now=now, kill_switch=engaged, dry_run=self.common.dry_run)
        )
        summary.decisions.append(_decision_entry(group, decision, demand))
        tags: dict[str, str | None] = {}
        if decision.changed:
            self._act(group, decision, reading.api)
            summary.changed.append(
                _change_entry(group, decision, before=group.desired if actuator is Actuator.ASG else replicas)
            )
            tags[LAST_SCALE_OUT_TAG if decision.action is Action.SCALE_OUT else LAST_SCALE_IN_TAG] = format_time(now)
            if group.refusal_reported is not None:
                tags[REFUSED_TAG] = None  # acted: the same refusal later is news again
        elif decision.action is Action.REFUSED:
            # Reported when it is news: a dry run, a kill switch or a group not ours refuses the same change every
            # minute, and 1,440 identical reports a day drown the ones that matter. Remembered on the group.
            fingerprint = _refusal_fingerprint(decision)
            if group.refusal_reported == fingerprint:
                summary.refused_again.append(group.name)
            else:
                summary.refused.append({"group": group.name, "cluster": group.cluster, "reason": decision.reason})
                tags[REFUSED_TAG] = fingerprint
        tags.update(self._at_max_and_node_size(group, decision, demand, now=now, engaged=engaged, summary=summary))
        if self.common.dry_run or engaged:
            # Under dry run and the kill switch only the refusal bookkeeping is written (never capacity, pause pods
            # or the other tags): without it every minute would report the same refusal again.
            tags = {key: value for key, value in tags.items() if key == REFUSED_TAG}
        if tags:
            self._remember(group, tags, reading.api)

    def _at_max_and_node_size(
        self, group: NodeGroup, decision: Decision, demand: GroupDemand, *, now: float, engaged: bool, summary: Summary
    ) -> dict[str, str | None]:
        """The at-max alert (once, when it starts) and the tags remembering it and a node's CPU."""
        tags: dict[str, str | None] = {}
        writes = not self.common.dry_run and not engaged  # tags too: nothing changes under either
        if decision.at_max:
            summary.at_max.append(group.name)
            # Alerted once, when it starts (the tag remembers); under dry run or the kill switch, in the report only.
            if group.at_max_since is None and writes:
                tags[AT_MAX_TAG] = format_time(now)
                self._alert_at_max(group, decision)
        elif group.at_max_since is not None:
            tags[AT_MAX_TAG] = None
        if demand.node_millicores and demand.node_millicores != group.remembered_node_millicores:
            tags[NODE_MILLICORES_TAG] = str(demand.node_millicores)
        return tags

    # -- actuators --------------------------------------------------------------------------------------------

    def _act(self, group: NodeGroup, decision: Decision, api: Any) -> None:
        if decision.actuator is Actuator.ASG:
            if group.autoscaler is not Autoscaler.NONE or not group.tagged:
                # The decision never gets here for such a group; this keeps it so whatever the decision says.
                raise _NotOurs(f"{group.name}: desired capacity is not eksops' to change ({group.autoscaler.value})")
            self._autoscaling.set_desired_capacity(
                AutoScalingGroupName=group.name, DesiredCapacity=decision.desired, HonorCooldown=False
            )
            return
        self._headroom.apply(
            api,
            group,
            replicas=decision.replicas,
            pod_millicores=decision.pod_millicores,
            deadline=time.monotonic() + APPLY_BUDGET_SECONDS,
        )

    def _pause_pods(self, group: NodeGroup, actuator: Actuator, api: Any) -> tuple[NodeGroup, int]:
        """The pause pods the group holds now; a NodePool's group also gets what the scaler remembers for it."""
        if group.nodepool is not None:
            held = self._headroom.read(api, group)
            return self._remembered(group, held), held.replicas
        return group, self._headroom.replicas(api, group) if actuator is Actuator.HEADROOM else 0

    def _remembered(self, group: NodeGroup, held: Held) -> NodeGroup:
        """A NodePool's group with what the scaler remembers for it, as the bookkeeping tags a group would carry:
        from its headroom Deployment's annotations, and the last refusal reported from this instance's memory."""
        tags = dict(group.tags)
        for key in BOOKKEEPING_TAGS:
            value = held.annotations.get(state_annotation(key))
            if value and key != REFUSED_TAG:
                tags[key] = value
        refused = self._pool_refused.get((group.cluster, group.name))
        if refused:
            tags[REFUSED_TAG] = refused
        return replace(group, tags=tags)

    def _remember(self, group: NodeGroup, tags: Mapping[str, str | None], api: Any) -> None:
        """Keep the bookkeeping: tags on an Auto Scaling group; on a NodePool, annotations of its headroom
        Deployment (created with no pause pods when a value must be kept and there is none yet)."""
        if group.nodepool is None:
            self._write_tags(group, tags)
            return
        if REFUSED_TAG in tags:
            if (refused := tags[REFUSED_TAG]) is None:
                self._pool_refused.pop((group.cluster, group.name), None)
            else:
                self._pool_refused[(group.cluster, group.name)] = refused
        # A pool's node size is measured every run (no node: the pool is skipped), so it is not kept.
        annotations = {
            state_annotation(key): value for key, value in tags.items() if key not in (REFUSED_TAG, NODE_MILLICORES_TAG)
        }
        if not annotations or self._headroom.annotate(api, group, annotations):
            return
        if any(value is not None for value in annotations.values()):
            self._headroom.apply(
                api,
                group,
                replicas=0,
                pod_millicores=self.cfg.headroom_pod_millicores,
                deadline=time.monotonic() + APPLY_BUDGET_SECONDS,
            )
            self._headroom.annotate(api, group, annotations)

    def _write_tags(self, group: NodeGroup, tags: Mapping[str, str | None]) -> None:
        put = [
            {
                "ResourceId": group.name,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": False,
            }
            for key, value in tags.items()
            if value is not None
        ]
        gone = [
            {"ResourceId": group.name, "ResourceType": "auto-scaling-group", "Key": key}
            for key, value in tags.items()
            if value is None
        ]
        if put:
            self._autoscaling.create_or_update_tags(Tags=put)
        if gone:
            self._autoscaling.delete_tags(Tags=gone)

    @staticmethod
    def _guarded(name: str, kind: str, summary: Summary, action: Callable[[], None]) -> None:
        # One group's failure (AccessDenied, a Kubernetes error, a quota) must not stop the others; the report lists
        # it and, when it is news (_news_only), the invocation fails at the end (Summary.raise_for_errors): the error
        # alarm and the dead-letter queue see it; the next scheduled run is the retry.
        try:
            action()
        except ClientError as exc:
            _record_error(summary, name, kind, exc)
        except EksopsError as exc:
            summary.errors.append({"group": name, "kind": kind, "code": type(exc).__name__, "message": str(exc)[:1000]})
            log.warning("%s of %s failed: %s", kind, name, type(exc).__name__)
        except Exception as exc:  # the kubernetes client's ApiException and connection errors
            summary.errors.append({"group": name, "kind": kind, "code": _why(exc), "message": _why(exc)})
            log.warning("%s of %s failed: %s", kind, name, _why(exc))

    # -- reporting --------------------------------------------------------------------------------------------

    def _alert_at_max(self, group: NodeGroup, decision: Decision) -> None:
        if group.nodepool is None:
            title = f"Node group {group.name} is at its maximum ({group.max_size} nodes)"
            summary = (
                f"The forecast for cluster {group.cluster} calls for {decision.wanted_nodes} nodes of "
                f"{group.name}, above its MaxSize {group.max_size}: pods will wait for capacity. Raise the "
                "group's maximum or add capacity elsewhere."
            )
        else:
            title = f"Karpenter NodePool {group.nodepool} is at its maximum ({group.max_size} nodes)"
            summary = (
                f"The forecast for cluster {group.cluster} calls for {decision.wanted_nodes} nodes of NodePool "
                f"{group.nodepool}, above the {group.max_size} its spec.limits.cpu allows (eksops assumes "
                f"{UNLIMITED_POOL_MAX_NODES} for a pool without one): pods will wait for capacity. Raise the "
                "NodePool's limits or add capacity elsewhere."
            )
        self._publisher.alert(
            Message(
                kind="scaling.at-max",
                severity=Severity.WARNING,
                title=title,
                summary=summary,
                details={"decision": _decision_entry(group, decision, None)},
                cluster=group.cluster,
                account=self._account or None,
                region=self._autoscaling.meta.region_name,
                lines=(_line(decision),),
            )
        )

    def _report(self, summary: Summary) -> None:
        # Alarm changes a dry run would make are the same every minute: listed when a report goes out, never one
        # on their own (the refusals' rule: news only).
        alarms = summary.alarms and not summary.dry_run
        if not (summary.changed or summary.refused or summary.errors or alarms or summary.not_owned):
            return
        verb = "would change" if summary.dry_run else "changed"
        decided = {d["group"]: d for d in summary.decisions}
        lines = [_line_of(decided[c["group"]]) for c in summary.changed]
        lines += [
            _line_of(decided[r["group"]]) if r.get("group") in decided else f"refused: {r['reason']}"
            for r in summary.refused
        ]
        lines += [f"{a['cluster']}: {a['action']} alarm {a['name']}" for a in summary.alarms]
        lines += [f"not eksops' own, left alone: {name}" for name in summary.not_owned]
        lines += [f"ERROR {e['group']} {e['kind']}: {e['code']}" for e in summary.errors]
        lines += summary.notes
        clusters = sorted({d["cluster"] for d in summary.decisions} | {r["cluster"] for r in summary.refused})
        title = _title(summary, verb)
        self._publisher.report(
            Message(
                kind="scaling.decision",
                severity=Severity.WARNING if summary.errors else Severity.INFO,
                title=title,
                summary=(
                    f"{verb} {len(summary.changed)} node group(s), refused {len(summary.refused)}, "
                    f"{len(summary.decisions)} decided; kill switch {summary.kill_switch}; trigger {summary.trigger}"
                    f"{'; dry run' if summary.dry_run else ''}."
                ),
                details={
                    "trigger": summary.trigger,
                    "dry_run": summary.dry_run,
                    "kill_switch": summary.kill_switch,
                    "decisions": summary.decisions,
                    "alarms": summary.alarms,
                    "errors": summary.errors,
                },
                cluster=clusters[0] if len(clusters) == 1 else None,
                account=self._account or None,
                region=self._autoscaling.meta.region_name,
                lines=tuple(lines),
            )
        )


def _error_key(error: Mapping[str, str]) -> tuple[str, str]:
    return (error.get("group", ""), error.get("kind", ""))


class _NotOurs(EksopsError):
    """A change to a group eksops must not change: never made."""


def _describe(trigger: Trigger) -> str:
    if isinstance(trigger, AlarmTrigger):
        return f"alarm {trigger.alarm_name} {trigger.state}"
    return f"schedule {trigger.rule}"


def _why(exc: BaseException) -> str:
    """What failed, without the exception's text (it may carry a request with a bearer token)."""
    status = getattr(exc, "status", None)
    code = error_code(exc) if isinstance(exc, ClientError) else ""
    hint = "no access: see docs/node-scaling.md, access to each cluster" if status in (401, 403) else ""
    return " ".join(p for p in (type(exc).__name__, f"HTTP {status}" if status else "", code, hint) if p)


def _record_error(summary: Summary, name: str, kind: str, exc: ClientError) -> None:
    summary.errors.append({"group": name, "kind": kind, "code": error_code(exc), "message": str(exc)[:1000]})
    log.warning("%s of %s failed: %s", kind, name, error_code(exc))


def _only_tagged_groups(group: NodeGroup, decision: Decision) -> Decision:
    """The asg actuator changes only groups that enrolled themselves with the tag (IAM allows no other)."""
    if decision.actuator is not Actuator.ASG or not decision.changed or group.tagged:
        return decision
    return replace(
        decision,
        action=Action.REFUSED,
        desired=group.desired,
        reason=(
            f"the asg actuator changes only groups tagged {ENROLL_TAG}=enabled (this one is enrolled through "
            f"SCALER_CLUSTERS); would set nodes {group.desired} -> {decision.proposed}"
        ),
    )


def _refusal_fingerprint(decision: Decision) -> str:
    """A short digest of what was refused and why: the reason names the actuator's unit, from and proposed size."""
    text = f"{decision.actuator.value}|{decision.proposed}|{decision.reason}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _history_summary(history: Iterable[Sample]) -> dict[str, Any]:
    values = [s.millicores for s in history]
    times = [s.at for s in history]
    if not values:
        return {"samples": 0}
    return {
        "samples": len(values),
        "minutes": round((max(times) - min(times)) / 60, 1),
        "min_millicores": round(min(values)),
        "max_millicores": round(max(values)),
    }


def _decision_entry(group: NodeGroup, decision: Decision, demand: GroupDemand | None) -> dict[str, Any]:
    entry = decision.as_dict()
    entry["history"] = _history_summary(decision.history)
    entry["cluster"] = group.cluster
    entry["min_size"], entry["max_size"], entry["desired_before"] = group.min_size, group.max_size, group.desired
    if demand is not None:
        entry["source"] = demand.source
        entry["pending_millicores"] = round(demand.pending)
        entry["ready_nodes"] = demand.nodes
    if group.nodepool is not None:
        entry["nodepool"] = group.nodepool
    entry["line"] = _line(decision)
    return entry


def _change_entry(group: NodeGroup, decision: Decision, *, before: int) -> dict[str, Any]:
    asg = decision.actuator is Actuator.ASG
    return {
        "group": group.name,
        "cluster": group.cluster,
        "actuator": decision.actuator.value,
        "action": decision.action.value,
        "unit": "nodes" if asg else "pause pods",
        "from": before,
        "to": decision.desired if asg else decision.replicas,
    }


def _line(decision: Decision) -> str:
    fc = decision.forecast
    forecast = (
        f"; forecast {fc.millicores / 1000:.1f} cores at +{round(fc.at - decision.history[-1].at)} s, headroom "
        f"{fc.headroom / 1000:.1f} cores ({fc.basis}, {fc.errors} misses measured)"
        if fc is not None and decision.history
        else ""
    )
    return (
        f"{decision.group}: {decision.action.value} ({decision.actuator.value}) - {decision.reason}; demand "
        f"{decision.demand / 1000:.1f} cores{forecast}; wanted {decision.wanted_nodes} nodes"
    )


def _line_of(entry: Mapping[str, Any]) -> str:
    return str(entry.get("line", entry.get("group")))


def _title(summary: Summary, verb: str) -> str:
    if len(summary.changed) == 1 and not summary.refused:
        change = summary.changed[0]
        return f"Node scaling: {verb} {change['group']} {change['unit']} {change['from']} -> {change['to']}"
    if summary.changed or summary.refused:
        return f"Node scaling: {verb} {len(summary.changed)}, refused {len(summary.refused)} node group change(s)"
    return f"Node scaling: {len(summary.alarms)} alarm change(s), {len(summary.errors)} error(s)"
