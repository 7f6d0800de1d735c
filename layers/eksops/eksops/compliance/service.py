"""compliance_sweep: every cluster checked against the rules, daily and on demand; findings, trends, opt-in fixes.

* **Fan-out** (the schedule, or ``{"sweep": "all"}``): list the clusters (COMPLIANCE_CLUSTERS filters them) and put
  one continuation event per cluster (eksops.sweeps), so each cluster is swept in its own invocation, retried and
  dead-lettered on its own, and one slow or unreachable cluster never holds up the others.
* **Cluster sweep** (a continuation, or ``{"sweep": {"cluster": name}}``): one :class:`ClusterContext`, bounded in
  API calls (COMPLIANCE_MAX_CALLS) and time (the invocation's deadline, less the margin and CLOSING_RESERVE_MS for
  the state, Security Hub and the reports). The rule ``cluster-kubernetes-unreachable`` runs first: when it fires,
  the Kubernetes rules are not run (said so, with the reason) and the AWS-side rules still are. Each rule runs on its
  own: :class:`SweepBudgetSpent` stops the sweep at a clean point (the rules left are reported as not run), any
  other exception is that rule's error (reported, and the invocation then fails with PartialFailure).
* Each violation becomes a :class:`Finding`: accepted (eksops.compliance.accept) with its reason, or open; open
  findings of rules listed in REMEDIATE are remediated (under DRY_RUN the rule says what it would do and changes
  nothing): remediated, would-remediate or remediation-failed, always reported.
* With state (COMPLIANCE_TABLE): new = not in the last sweep's state; resolved = in it, not found now, and its rule
  ran to the end (eksops.compliance.state). The state and Security Hub are bookkeeping of what was seen, like the
  reports: they are written under DRY_RUN too, so a dry-run deployment does not report the same findings as new
  every day.
* Reports: one ``compliance.sweep`` message per sweep to the reports topic. With a gather store (COMPLIANCE_TABLE,
  eksops.compliance.gather) and 1..GATHER_MAX_CLUSTERS clusters, the fan-out opens the sweep's item before putting
  the continuations, each cluster's part records its compact report there, and the part that completes the sweep
  posts the one digest; a sweep that never completes (a part dead-lettered) is posted by a later fan-out after
  STALE_AFTER, naming the clusters missing. A cluster swept on its own (no item for its run), a part that comes after
  its sweep's digest, more clusters than GATHER_MAX_CLUSTERS, or no table: that cluster's own report, as before.
  New findings still open at or above COMPLIANCE_ALERT_SEVERITY go to the alerts topic at once, per cluster
  (``compliance.findings``; without state, every such open finding), and reopened ones: accepted in the last
  sweep's state, open now because their acceptance expired or was removed; an EMF metric per rule and severity
  (open findings) through ``emit_metric``; optionally Security Hub (ASFF). The report goes out before the state is
  written: if anything fails in between, the retry alerts again rather than never.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.bootstrap.service import safe_message
from eksops.compliance.accept import Acceptances, parse_entries
from eksops.compliance.context import ClusterContext, ClusterUnreachable, SweepBudgetSpent, Tools
from eksops.compliance.gather import GATHER_MAX_CLUSTERS, STALE_AFTER, Gathered, SweepGather, compact, digest_message
from eksops.compliance.gather import iso as _iso
from eksops.compliance.model import Finding, NotRemediated, Rule, Severity, Violation
from eksops.compliance.report import ClusterReport
from eksops.compliance.securityhub import SecurityHubExport
from eksops.compliance.state import StateStore, StoredFinding
from eksops.compliance.triggers import FUNCTION, ClusterSweep, FanOut, Trigger
from eksops.errors import EksopsError, PartialFailure, TemporaryError
from eksops.notify import Message, Publisher
from eksops.notify import Severity as MessageSeverity
from eksops.sweeps import Continuer, Deadline

__all__ = ["CLOSING_RESERVE_MS", "UNREACHABLE_RULE", "ComplianceService", "Summary"]

UNREACHABLE_RULE = "cluster-kubernetes-unreachable"
# Time kept after the rules (beyond the sweep margin) for the state, Security Hub, the reports and the metrics.
CLOSING_RESERVE_MS = 30_000
CONTINUATION_PART = 2  # the fan-out is part 1 of a run; each cluster's sweep is part 2
NOT_SWEPT = frozenset({"CREATING", "DELETING", "FAILED"})  # cluster statuses with no usable API to check
REPORT_LINES = 60
ALERT_NAMED = 3  # findings an alert's summary names
MAX_EVIDENCE = 1000  # evidence of one finding, when a rule reports the same resource more than once

log = logging.getLogger(__name__)
EmitMetric = Callable[[str, str, int], None]


@dataclass
class Summary:
    """What one invocation did: the continuations it put (fan-out) or the cluster it swept."""

    dry_run: bool
    trigger: str
    run_id: str
    dispatched: list[str] = field(default_factory=list)  # clusters a continuation was put for
    not_selected: int = 0  # clusters COMPLIANCE_CLUSTERS leaves out
    reports: list[ClusterReport] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> list[dict[str, Any]]:
        """Remediations made (or, under dry run, that would be): the key every function's summary shares."""
        return [{"cluster": r.cluster, **f.as_dict()} for r in self.reports for f in r.remediated]

    def add(self, report: ClusterReport) -> None:
        self.reports.append(report)
        self.errors += [{"cluster": report.cluster, **e} for e in report.errors]

    def counts(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for report in self.reports:
            counts = report.counts()
            totals.update({k: counts[k] for k in ("findings", "open", "new", "resolved", "accepted", "remediated")})
            totals["not_run"] += counts["not_run"]
        return {
            "dispatched": len(self.dispatched),
            "clusters": len(self.reports),
            **{k: totals[k] for k in ("findings", "open", "new", "resolved", "accepted", "remediated", "not_run")},
            "errors": len(self.errors),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "trigger": self.trigger,
            "run_id": self.run_id,
            "dispatched": list(self.dispatched),
            "not_selected": self.not_selected,
            "counts": self.counts(),
            "changed": self.changed,
            "clusters": [r.as_dict() for r in self.reports],
            "errors": list(self.errors),
        }

    def raise_for_errors(self) -> None:
        """Fail the invocation when a rule, remediation or export failed, after everything was reported."""
        if self.errors:
            raise PartialFailure(
                f"{len(self.errors)} compliance check(s) or action(s) failed; see the report", self.errors
            )


@dataclass
class _Item:
    """A finding with the rule and violation it came from (remediation needs both)."""

    finding: Finding
    rule: Rule
    violation: Violation


@dataclass
class _Progress:
    """Why the rules left are not run: the sweep stopped (budget, time) or the Kubernetes API cannot be used."""

    stop: str | None = None
    kube_down: str | None = None


class ComplianceService:
    """Sweeps clusters with the rules it is given (None: the registry) and the clients and ports of ``tools``.

    COMPLIANCE_ACCEPT is parsed here, against these rules: the handler builds the service at start-up, so a bad
    entry fails the cold start with a ConfigError naming the entry.
    """

    def __init__(
        self,
        tools: Tools,
        *,
        publisher: Publisher,
        continuer: Continuer,
        state: StateStore | None = None,
        security_hub: SecurityHubExport | None = None,
        gather: SweepGather | None = None,
        emit_metric: EmitMetric | None = None,
        rules: Mapping[str, Rule] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if rules is None:
            from eksops.compliance.model import rules as registry

            rules = registry()
        self.tools = tools
        self.rules: dict[str, Rule] = dict(rules)
        self._accept = parse_entries(tools.settings.accept_raw, self.rules)
        self._publisher = publisher
        self._continuer = continuer
        self._state = state
        self._security_hub = security_hub
        self._gather = gather
        self._emit_metric = emit_metric
        self._now = now or (lambda: datetime.now(UTC))
        self._account = ""

    @property
    def dry_run(self) -> bool:
        return self.tools.common.dry_run

    # -- entry point ------------------------------------------------------------------------------------------

    def handle(self, trigger: Trigger, deadline: Deadline, *, account: str = "") -> Summary:
        """Fan out (one continuation per cluster) or sweep one cluster, as the trigger asks."""
        self._account = account
        summary = Summary(dry_run=self.dry_run, trigger=_describe(trigger), run_id=trigger.run_id)
        with deadline.bounding_calls():  # AWS calls leave the margin to the report (eksops.aws.budget)
            if isinstance(trigger, FanOut):
                self.fan_out(trigger, summary)
            else:
                summary.add(self.sweep(trigger.cluster, deadline, run_id=trigger.run_id))
        return summary

    def fan_out(self, trigger: FanOut, summary: Summary) -> None:
        """One continuation per selected cluster; a continuation that cannot be put is that cluster's error. First
        the stale sweeps are posted; the sweep's gather item is opened before any continuation is put."""
        self._post_stale()
        eks = self.tools.aws("eks")
        names = [n for page in eks.get_paginator("list_clusters").paginate() for n in page.get("clusters", [])]
        selected = [n for n in names if self.tools.settings.sweeps(n)]
        summary.not_selected = len(names) - len(selected)
        gathering = self._open(trigger.run_id, selected)
        failed: list[str] = []
        for name in selected:
            try:
                self._continuer.continue_sweep(
                    run_id=trigger.run_id, part=CONTINUATION_PART, checkpoint={"cluster": name}
                )
            except (EksopsError, ClientError) as exc:
                code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                log.warning("could not put the sweep of cluster %s: %s: %s", name, code, safe_message(exc))
                summary.errors.append({"cluster": name, "stage": "fan-out", "code": code, "message": safe_message(exc)})
                failed.append(name)
            else:
                summary.dispatched.append(name)
        if gathering and failed:
            self._forget(trigger.run_id, failed, summary)
        log.info(
            "compliance sweep %s: %d cluster(s) dispatched, %d not selected",
            trigger.run_id,
            len(summary.dispatched),
            summary.not_selected,
        )

    # -- one cluster ------------------------------------------------------------------------------------------

    def sweep(self, cluster: str, deadline: Deadline, *, run_id: str) -> ClusterReport:
        """Check one cluster against every rule, judge, remediate, compare with the state, export and report."""
        started = self._now()
        stamp = _iso(started)
        report = ClusterReport(cluster=cluster, run_id=run_id, dry_run=self.dry_run, started_at=stamp)
        seconds = max(0.0, (deadline.remaining_ms() - deadline.margin_ms - CLOSING_RESERVE_MS) / 1000)
        ctx = ClusterContext(
            cluster, self.tools, deadline=self.tools.clock() + seconds, max_calls=self.tools.settings.max_calls
        )
        if not self._describe(ctx, report):
            report.finished_at = _iso(self._now())
            if report.status == "failed":
                self._publish(report)
            else:  # gone or not active: no report of its own, as ever, but its sweep's digest counts it as reported
                self._gathered(report, self._report_message(report))
            return report
        previous = self._load_state(report)
        items = self._check(ctx, report, deadline)
        self._judge(ctx, report, items, started)
        self._remediate(ctx, report, items, deadline)
        report.findings = [i.finding for i in items]
        self._compare(report, previous)
        report.calls = ctx.calls
        report.finished_at = _iso(self._now())
        self._metrics(report)
        self._export(report, previous, stamp)
        self._publish(report)
        self._save(report, previous, stamp)
        log.info("cluster %s swept: %s", cluster, report.summary_line())
        return report

    def _describe(self, ctx: ClusterContext, report: ClusterReport) -> bool:
        """Fill in the cluster's identity; False when it is not to be swept (gone, not active, DescribeCluster
        failed)."""
        try:
            cluster = ctx.cluster
            report.cluster_arn = str(cluster.get("arn") or "")
            report.account, report.region, report.partition = ctx.account or self._account, ctx.region, ctx.partition
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                report.status = "gone"
                report.notes.append("the cluster no longer exists: nothing to check")
                return False
            report.status = "failed"
            self._error(report, "-", "describe-cluster", exc)
            return False
        except EksopsError as exc:
            report.status = "failed"
            self._error(report, "-", "describe-cluster", exc)
            return False
        status = str(cluster.get("status") or "")
        if status in NOT_SWEPT:
            report.status = "not-active"
            report.notes.append(f"the cluster is {status}: not swept (the next sweep checks it once it is ACTIVE)")
            return False
        return True

    def _load_state(self, report: ClusterReport) -> dict[str, StoredFinding] | None:
        if self._state is None:
            return None
        try:
            previous = self._state.load(report.cluster)
        except (ClientError, EksopsError) as exc:
            self._error(report, "-", "state", exc)
            report.notes.append("the last sweep's state could not be read: new and resolved are not known")
            return None
        report.state = True
        return previous

    # -- rules ------------------------------------------------------------------------------------------------

    def _ordered(self) -> list[Rule]:
        """The reachability check first (its finding decides whether the Kubernetes rules run), then the rest."""
        first = [r for r in self.rules.values() if r.id == UNREACHABLE_RULE]
        return first + [r for r in self.rules.values() if r.id != UNREACHABLE_RULE]

    def _check(self, ctx: ClusterContext, report: ClusterReport, deadline: Deadline) -> list[_Item]:
        found: dict[str, _Item] = {}
        progress = _Progress()
        for rule in self._ordered():
            reason = self._skip_reason(ctx, rule, progress, deadline)
            if reason:
                report.not_run.append({"rule": rule.id, "reason": reason})
                continue
            violations = self._run(ctx, rule, report, progress)
            if violations is None:
                continue
            report.rules_run.append(rule.id)
            if rule.id == UNREACHABLE_RULE and violations:
                progress.kube_down = f"the Kubernetes API cannot be used (see the {UNREACHABLE_RULE} finding)"
            for violation in violations:
                _add(found, rule, violation, ctx.name)
        return list(found.values())

    def _skip_reason(self, ctx: ClusterContext, rule: Rule, progress: _Progress, deadline: Deadline) -> str | None:
        if progress.stop:
            return progress.stop
        if progress.kube_down and rule.needs_kube and rule.id != UNREACHABLE_RULE:
            return progress.kube_down
        if deadline.low() or self.tools.clock() >= ctx.deadline:
            progress.stop = "out of time: the cluster's sweep stopped before this rule"
            return progress.stop
        return None

    def _run(
        self, ctx: ClusterContext, rule: Rule, report: ClusterReport, progress: _Progress
    ) -> list[Violation] | None:
        """The rule's violations; None when it did not run to the end (not run, or its error, is recorded)."""
        try:
            return list(rule.check(ctx))
        except SweepBudgetSpent as exc:
            progress.stop = f"budget spent: {safe_message(exc)}"
            report.not_run.append({"rule": rule.id, "reason": progress.stop})
        except ClusterUnreachable as exc:
            progress.kube_down = f"the Kubernetes API became unreachable during the sweep ({safe_message(exc)})"
            self._error(report, rule.id, "check", exc)
        except Exception as exc:  # one rule's failure (a bug included) must not keep the others from running
            self._error(report, rule.id, "check", exc)
        return None

    # -- acceptance and remediation ---------------------------------------------------------------------------

    def _judge(self, ctx: ClusterContext, report: ClusterReport, items: list[_Item], now: datetime) -> None:
        acceptances = Acceptances(self._accept, cluster=ctx.name, today=now.date())
        namespaces = self._namespace_annotations(ctx, report) if any(i.violation.namespace for i in items) else {}
        for item in items:
            ns = item.violation.namespace
            verdict = acceptances.judge(item.rule.id, item.violation, namespaces.get(ns) if ns else None)
            item.finding.acceptance_note = verdict.note
            if verdict.accepted:
                item.finding.status = "accepted"
                item.finding.accepted = verdict.accepted

    @staticmethod
    def _namespace_annotations(ctx: ClusterContext, report: ClusterReport) -> dict[str, dict[str, str]]:
        """Each namespace's annotations (the rules have usually listed namespaces already: memoised)."""
        try:
            return {
                str(ns["metadata"]["name"]): dict((ns.get("metadata") or {}).get("annotations") or {})
                for ns in ctx.namespaces()
            }
        except Exception as exc:  # the findings stay open; the report says why their namespaces were not read
            report.notes.append(
                f"namespace annotations could not be read, so acceptances on namespaces were not applied: "
                f"{safe_message(exc)}"
            )
            return {}

    def _remediate(self, ctx: ClusterContext, report: ClusterReport, items: list[_Item], deadline: Deadline) -> None:
        stop: str | None = None
        for item in items:
            finding, rule = item.finding, item.rule
            if finding.status != "open" or rule.id not in self.tools.settings.remediate or not rule.remediable:
                continue
            if stop is None and (deadline.low() or self.tools.clock() >= ctx.deadline):
                stop = "out of time"
            if stop:
                finding.remediation = f"not attempted: {stop}"
                continue
            try:
                done = rule.remediate(ctx, item.violation)
            except SweepBudgetSpent as exc:
                stop = f"budget spent ({safe_message(exc)})"
                finding.remediation = f"not attempted: {stop}"
            except NotRemediated as exc:  # left as it is on purpose: the finding stays open and says why
                finding.remediation = f"not remediated: {safe_message(exc)}"
            except Exception as exc:  # reported on the finding and as an error; the other fixes go on
                finding.status = "remediation-failed"
                finding.remediation = safe_message(exc)
                self._error(report, rule.id, "remediate", exc)
            else:
                finding.status = "would-remediate" if ctx.dry_run else "remediated"
                finding.remediation = done or ("would be fixed" if ctx.dry_run else "fixed")

    # -- state, metrics, export, reports ----------------------------------------------------------------------

    @staticmethod
    def _compare(report: ClusterReport, previous: Mapping[str, StoredFinding] | None) -> None:
        """New and resolved against the last sweep's state; only rules that ran to the end resolve anything."""
        if previous is None:
            return
        current = {f.key for f in report.findings}
        ran = set(report.rules_run)
        for finding in report.findings:
            before = previous.get(finding.key)
            finding.new = before is None
            finding.reopened = before is not None and before.status == "accepted" and finding.status != "accepted"
        resolved = [s for key, s in previous.items() if key not in current and s.rule in ran]
        report.resolved = sorted(resolved, key=lambda s: (-_rank(s.severity), s.rule, s.resource))

    def _metrics(self, report: ClusterReport) -> None:
        """Open findings per rule and severity; a rule that ran and found nothing open reports 0 at its severity."""
        if self._emit_metric is None:
            return
        counts = Counter((f.rule, str(f.severity)) for f in report.open)
        for rule_id in report.rules_run:
            pairs = {sev: n for (rule, sev), n in counts.items() if rule == rule_id}
            if not pairs:
                pairs = {str(self.rules[rule_id].severity): 0}
            for severity, count in sorted(pairs.items()):
                self._emit_metric(rule_id, severity, count)

    def _export(self, report: ClusterReport, previous: Mapping[str, StoredFinding] | None, stamp: str) -> None:
        if self._security_hub is None:
            return
        try:
            result = self._security_hub.export(report, previous=previous, now=stamp)
        except (ClientError, EksopsError) as exc:
            self._error(report, "-", "security-hub", exc)
            return
        report.security_hub = result.as_dict()
        if result.failed:
            first = result.failed[0]
            message = f"{len(result.failed)} finding(s) not exported; first: {first['code']}: {first['message']}"
            report.errors.append({"rule": "-", "stage": "security-hub", "code": "FailedFindings", "message": message})

    def _save(self, report: ClusterReport, previous: Mapping[str, StoredFinding] | None, stamp: str) -> None:
        if self._state is None or previous is None:
            return
        try:
            self._state.save(
                report.cluster, report.findings, previous=previous, resolved=[r.key for r in report.resolved], now=stamp
            )
        except (ClientError, EksopsError) as exc:
            self._error(report, "-", "state", exc)

    def _publish(self, report: ClusterReport) -> None:
        """The report into its sweep's digest (or, on its own, to the reports topic), then the alert, at once."""
        message = self._report_message(report)
        if not self._gathered(report, message):
            self._publisher.report(message, subject=f"cluster/{report.cluster}")
        alertable = report.alertable(self.tools.settings.alert_severity)
        if alertable:
            self._publisher.alert(self._alert_message(report, alertable))

    # -- one report per sweep (eksops.compliance.gather) --------------------------------------------------------

    def _open(self, run_id: str, clusters: list[str]) -> bool:
        """Open the sweep's gather item; False (each cluster then reports on its own) without a store, for no or
        too many clusters, or when the item cannot be written."""
        if self._gather is None or not 1 <= len(clusters) <= GATHER_MAX_CLUSTERS:
            if self._gather is not None and clusters:
                log.info(
                    "compliance sweep %s: %d clusters, over %d: one report per cluster",
                    run_id,
                    len(clusters),
                    GATHER_MAX_CLUSTERS,
                )
            return False
        try:
            self._gather.open(run_id, clusters, now=self._now())
        except (ClientError, EksopsError) as exc:
            log.warning(
                "compliance sweep %s: its gather item could not be written (%s: %s): one report per cluster",
                run_id,
                _code(exc),
                safe_message(exc),
            )
            return False
        return True

    def _forget(self, run_id: str, clusters: list[str], summary: Summary) -> None:
        """Clusters whose continuation could not be put are not waited for; if the others have all reported
        meanwhile, this fan-out posts the digest."""
        assert self._gather is not None
        try:
            item = self._gather.forget(run_id, clusters)
            if item is not None and item.complete and not item.posted:
                self._post(item)
        except (ClientError, EksopsError) as exc:
            code, text = _code(exc), safe_message(exc)
            log.warning("compliance sweep %s: its report could not be completed: %s: %s", run_id, code, text)
            summary.errors.append({"cluster": "-", "stage": "report", "code": code, "message": text})

    def _gathered(self, report: ClusterReport, message: Message) -> bool:
        """Record the cluster's report in its sweep's item, and post the digest when it completes the sweep. False
        when the report is to go out on its own: no store, no open item for the run, or the item cannot be written
        (the report is not lost; the sweep, missing this cluster, is posted as stale later)."""
        if self._gather is None:
            return False
        try:
            item = self._gather.record(report.run_id, report.cluster, compact(report, message))
        except (ClientError, EksopsError) as exc:
            log.warning(
                "report of %s could not be gathered for sweep %s (%s: %s): published on its own",
                report.cluster,
                report.run_id,
                _code(exc),
                safe_message(exc),
            )
            return False
        if item is None:
            return False
        if item.posted:
            log.info("report of %s: sweep %s was reported already", report.cluster, report.run_id)
        elif item.complete:
            self._post(item)
        else:
            log.info(
                "report of %s gathered for sweep %s: %d of %d clusters",
                report.cluster,
                report.run_id,
                len(item.done & item.expected),
                len(item.expected),
            )
        return True

    def _post(self, item: Gathered, *, stale: bool = False) -> None:
        """Claim the sweep's digest and publish it; only the claim's winner posts. A failed publish gives the claim
        back and raises TemporaryError, so the invocation's retry (or the next fan-out, for a stale one) posts it."""
        assert self._gather is not None
        claimed = self._gather.claim(item.run_id, now=self._now())
        if claimed is None:
            log.info("compliance sweep %s: its report is posted by another invocation", item.run_id)
            return
        if not claimed.reports and not claimed.expected:
            log.info("compliance sweep %s: no cluster was dispatched: nothing to report", item.run_id)
            return
        message = digest_message(claimed, dry_run=self.dry_run, stale=stale)
        try:  # its identity names the sweep: a cluster's own report from an earlier attempt is another report
            self._publisher.report(message, subject=f"sweep/{claimed.run_id}")
        except Exception as exc:  # whatever failed, the claim must go back or the digest is never posted
            try:
                self._gather.release(claimed)
            except (ClientError, EksopsError) as release_exc:
                log.warning(
                    "compliance sweep %s: the claim of its report could not be released: %s",
                    item.run_id,
                    safe_message(release_exc),
                )
            raise TemporaryError(
                f"the report of compliance sweep {item.run_id} could not be published: {safe_message(exc)}"
            ) from exc
        log.info(
            "compliance sweep %s reported: %d cluster(s) in one message, %d not reported",
            item.run_id,
            len(claimed.reports),
            len(claimed.missing),
        )

    def _post_stale(self) -> None:
        """Level-triggered: sweeps a dead part left incomplete for STALE_AFTER are posted with what they have, the
        clusters missing named. A failure is logged; the next fan-out tries again."""
        if self._gather is None:
            return
        try:
            stale = self._gather.stale(before=self._now() - STALE_AFTER)
        except (ClientError, EksopsError) as exc:
            log.warning(
                "stale compliance sweeps not read (the next fan-out tries again): %s: %s", _code(exc), safe_message(exc)
            )
            return
        for item in stale:
            log.warning(
                "compliance sweep %s incomplete since %s: reported without %s",
                item.run_id,
                item.started_at,
                ", ".join(item.missing) or "-",
            )
            try:
                self._post(item, stale=True)
            except (ClientError, EksopsError) as exc:
                log.warning(
                    "compliance sweep %s not reported (the next fan-out tries again): %s: %s",
                    item.run_id,
                    _code(exc),
                    safe_message(exc),
                )

    def _report_message(self, report: ClusterReport) -> Message:
        threshold = self.tools.settings.alert_severity
        attention = report.errors or any(f.severity.rank >= threshold.rank for f in report.open)
        lines = [f"error {e['rule']} ({e['stage']}): {e['code']}: {e['message']}" for e in report.errors]
        # What changed since the last sweep first (new and reopened findings, then the resolved), then what stays
        # open: the lines are cut (REPORT_LINES, and fewer in a sweep's one report), news must not be.
        ordered = _by_severity(report.findings)
        lines += [_line(f) for f in ordered if f.new or f.reopened]
        lines += [f"resolved [{r.severity}] {r.rule} {r.resource}" for r in report.resolved]
        lines += [_line(f) for f in ordered if not (f.new or f.reopened)]
        lines += [f"not run {n['rule']}: {n['reason']}" for n in report.not_run]
        lines += report.notes
        counts = report.counts()
        title = f"Compliance sweep of {report.cluster}: {counts['open']} open"
        if report.state:
            title += f", {counts['new']} new, {counts['resolved']} resolved"
        return Message(
            kind="compliance.sweep",
            severity=MessageSeverity.WARNING if attention else MessageSeverity.INFO,
            title=title + (" (dry run)" if report.dry_run else ""),
            summary=report.summary_line() + ".",
            details=report.as_dict(),
            cluster=report.cluster,
            account=report.account or None,
            region=report.region or None,
            lines=tuple(lines[:REPORT_LINES]),
        )

    def _alert_message(self, report: ClusterReport, findings: list[Finding]) -> Message:
        threshold = self.tools.settings.alert_severity
        what, why = _alert_what(report, findings)
        lines: list[str] = []
        for finding in _by_severity(findings):
            lines += [_line(finding), f"    fix: {finding.fix}"]
        critical = any(f.severity is Severity.CRITICAL for f in findings)
        return Message(
            kind="compliance.findings",
            severity=MessageSeverity.CRITICAL if critical else MessageSeverity.WARNING,
            title=f"{len(findings)} {what} compliance finding(s) in {report.cluster}",
            # The findings are named in the summary: burst dedup compares summaries, and two alerts about different
            # findings of a cluster must never look identical to it.
            summary=f"{len(findings)} {what} finding(s){why} at or above {threshold} in cluster {report.cluster}: "
            f"{_named(findings)}.",
            details={
                "cluster": report.cluster,
                "run_id": report.run_id,
                "threshold": str(threshold),
                "findings": [f.as_dict() for f in findings],
            },
            cluster=report.cluster,
            account=report.account or None,
            region=report.region or None,
            lines=tuple(lines[:REPORT_LINES]),
        )

    @staticmethod
    def _error(report: ClusterReport, rule: str, stage: str, exc: BaseException) -> None:
        code = _code(exc)
        error = {"rule": rule, "stage": stage, "code": code, "message": safe_message(exc)}
        if not isinstance(exc, EksopsError | ClientError):
            error["where"] = _where(exc)  # a bug: where it happened (the traceback stays out of logs: it may hold
            # the exception's unredacted text)
        log.warning("%s %s on cluster %s failed: %s: %s", stage, rule, report.cluster, code, error["message"])
        report.errors.append(error)


def _add(found: dict[str, _Item], rule: Rule, violation: Violation, cluster: str) -> None:
    """One finding per rule and resource: a rule that reports a resource twice gets its evidence joined."""
    finding = Finding(
        rule=rule.id,
        title=rule.title,
        severity=Severity(violation.severity or rule.severity),
        category=rule.category,
        cluster=cluster,
        resource=violation.resource,
        evidence=violation.evidence,
        fix=rule.fix,
    )
    item = found.get(finding.key)
    if item is None:
        found[finding.key] = _Item(finding, rule, violation)
        return
    if violation.evidence and violation.evidence not in item.finding.evidence:
        item.finding.evidence = f"{item.finding.evidence}; {violation.evidence}"[:MAX_EVIDENCE]
    if finding.severity.rank > item.finding.severity.rank:
        item.finding.severity = finding.severity


def _by_severity(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, not (f.new or f.reopened), f.rule, f.resource))


def _alert_what(report: ClusterReport, findings: list[Finding]) -> tuple[str, str]:
    """What the alerted findings are ("new", "reopened", ...) and why they alert, for the alert's title and summary."""
    if not report.state:
        return "open", " (no state to tell new ones)"
    reopened = sum(f.reopened for f in findings)
    if not reopened:
        return "new", ""
    if reopened == len(findings):
        return "reopened", " (their acceptance ended)"
    return "new or reopened", f" ({reopened} whose acceptance ended)"


def _named(findings: list[Finding]) -> str:
    """The findings by rule and resource (the first ALERT_NAMED, then how many more; a digest of the rest when
    there are more, so two alerts naming the same first ones still differ)."""
    keys = sorted(f.key for f in findings)
    named = ", ".join(key.replace("|", " ") for key in keys[:ALERT_NAMED])
    if len(keys) > ALERT_NAMED:
        rest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:8]
        named += f" and {len(keys) - ALERT_NAMED} more (set {rest})"
    return named


def _line(finding: Finding) -> str:
    flag = " NEW" if finding.new else ""
    if finding.reopened:  # the note, when there is one, says which acceptance expired and when
        flag = " REOPENED (acceptance expired)" if finding.acceptance_note else " REOPENED (no longer accepted)"
    line = f"[{finding.severity}] {finding.status}{flag} {finding.rule} {finding.resource}: {finding.evidence}"
    if finding.accepted:
        line += f" (accepted: {finding.accepted.reason})"
    elif finding.acceptance_note:
        line += f" ({finding.acceptance_note})"
    if finding.remediation:
        line += f" (remediation: {finding.remediation})"
    return line


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return -1


def _code(exc: BaseException) -> str:
    """An AWS error's code, else the exception's class name (never its text: that is safe_message's business)."""
    return error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "-"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def _describe(trigger: Trigger) -> str:
    if isinstance(trigger, ClusterSweep):
        return f"{FUNCTION} of cluster {trigger.cluster} ({trigger.origin})"
    return f"{FUNCTION} fan-out ({trigger.origin})"
