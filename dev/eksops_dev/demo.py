"""`eksops demo`: the main job end to end on the local sandbox, printed as a readable timeline."""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from eksops_dev.alarms import AlarmShim
from eksops_dev.cloudtrail import CloudTrailShim, cloudtrail_event
from eksops_dev.dispatch import Dispatcher, Invocation
from eksops_dev.ecr import image_manifest
from eksops_dev.gitserver import GitServer
from eksops_dev.metrics import MetricFilterEmulator
from eksops_dev.sandbox import STACK, Sandbox
from eksops_dev.slack import SlackReceiver, render
from eksops_dev.template import ACCOUNT, PARTITION, REGION, Template

CLUSTER = "demo"
# The compliance sweep may fix what this rule finds (the others are reported only).
COMPLIANCE_REMEDIATE = ["namespace-pod-security"]
WEB_REPLICASET = "8a3c1f4e-5d2b-4c6a-9e7f-0b1d2c3e4f5a"
NEVER = None
# The node-scaling act: a node group of 4-core nodes, a demand trace in cores per minute, nodes ready 2 minutes
# after their instance starts (EKS takes about 2.5).
SCALING_GROUP = "demo-general"
NODE_MILLICORES = 3920  # allocatable CPU of a 4-core node on the EKS AMIs
NODE_CORES = 4
# What the default scheduler writes on a pod no node has room for (the scaler counts only such pending pods).
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
}
READY_MINUTES = 2
STEADY_CORES, STEADY_MINUTES = 6.0, 20  # what the scaler recorded before the act (its history metric, backdated)
DEMAND_CORES = [STEADY_CORES + 1.5 * m for m in range(13)]  # then +1.5 cores a minute
# The GitOps act: a config repository served over smart HTTP on 127.0.0.1, one kustomization, one IMAGE_MAP entry.
CONFIG_REPO = "gitops-config"
PAYMENTS_FILE = "apps/payments/overlays/prod/kustomization.yaml"
PAYMENTS_KUSTOMIZATION = (
    b"apiVersion: kustomize.config.k8s.io/v1beta1\n"
    b"kind: Kustomization\n"
    b"resources:\n  - ../../base\n"
    b"images:\n"
    b"  # the API; CI pushes it to ECR and eksops moves this tag\n"
    b"  - name: payments-api\n"
    b"    newName: 123456789012.dkr.ecr.us-east-1.amazonaws.com/payments-api\n"
    b'    newTag: "1.42.0"\n'
    b"  - name: envoy  # a sidecar, not eksops' to change\n"
    b"    newTag: v1.31.2\n"
)
IMAGE_MAP = [
    {
        "repository": "payments-api",
        "image": "payments-api",
        "files": [PAYMENTS_FILE],
        "policy": "semver",
        "constraint": ">=1.4,<2",
    }
]


@dataclass
class Timeline:
    out: TextIO
    failures: list[str] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)
    step_no: int = 0
    functions_log: Path | None = None  # where the handlers log (what the notifier did with a batch is there)

    def step(self, title: str) -> None:
        self.step_no += 1
        self.out.write(f"\n{self.step_no}. {title}\n")

    def line(self, text: str) -> None:
        self.out.write(f"   {text}\n")

    def show(self, invocations: list[Invocation], *, expect_failure: bool = False) -> None:
        for inv in invocations:
            self.invocations.append(inv)
            self.line(f"[{inv.trigger}] -> {inv.function}")
            if inv.ok:
                for text in describe_result(inv.result, inv.event, self.functions_log):
                    self.line(f"    {text}")
            else:
                where = "dead-letter queue" if inv.dead_lettered else "nowhere (no failure destination!)"
                verdict = "failed, as it should," if expect_failure else "FAILED"
                self.line(f"    {verdict} after {inv.attempts} attempt(s): {inv.error_type}: {inv.error}")
                self.line(f"    -> {where}")
                if not expect_failure:
                    self.failures.append(f"{inv.function} failed on {inv.trigger}: {inv.error}")

    def check(self, ok: bool, what: str) -> None:
        self.line(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)


def describe_result(result: Any, event: Any = None, functions_log: Path | None = None) -> list[str]:
    if not isinstance(result, dict):
        return [repr(result)]
    special = _describe_special(result, event, functions_log)
    if special is not None:
        return special
    verb = "would" if result.get("dry_run") else ""
    lines = []
    for change in result.get("changed", []):
        if "from" in change:  # log_retention
            lines.append(
                f"{verb + ' change' if verb else 'changed'} {change['group']}: "
                f"{_days(change['from'])} -> {_days(change['to'])}"
            )
        else:  # error_alarms
            lines.append(f"{verb + ' ' if verb else ''}{change['action']} {change['kind']} {change['name']}")
    lines += [f"gone: {g}" for g in result.get("gone", [])]
    counts = f"unchanged {result.get('unchanged', 0)}"
    if "excluded" in result:
        counts += f", excluded {result['excluded']}"
    if result.get("excluded_sample"):
        counts += f" ({', '.join(result['excluded_sample'])})"
    if result.get("continued"):
        counts += ", checkpointed and continued"
    return [*lines, counts]


def _describe_special(result: dict[str, Any], event: Any = None, functions_log: Path | None = None) -> list[str] | None:
    """The functions whose summaries are not lists of changes; None for the others."""
    if "batchItemFailures" in result:  # notifier, a batch of reports from the reports queue
        return _describe_batch(result, event, functions_log)
    if isinstance(result.get("clusters"), dict):  # cluster_bootstrap
        return _describe_bootstrap(result)
    if "decisions" in result:  # node_scaler
        return [str(d.get("line")) for d in result["decisions"] if d.get("action") != "hold"] + [
            f"{a['action']} alarm {a['name']}" for a in result.get("alarms", [])
        ]
    if "committed" in result:  # image_updater
        return _describe_images(result)
    if "dispatched" in result:  # compliance_sweep
        return _describe_compliance(result)
    if "posted" in result:  # notifier
        where = f"posted to Slack ({result.get('webhook')})" if result["posted"] else f"not posted: {result['reason']}"
        return [f"{result['kind']} ({result['severity']}): {where}"]
    return None


def _describe_batch(result: dict[str, Any], event: Any, functions_log: Path | None) -> list[str]:
    """A batch of reports: its partial batch response says only which records failed; what became of the others
    (digests posted, reports below the Slack threshold) is in the notifier's "reports handled" log line."""
    raw = event.get("Records") if isinstance(event, dict) else None
    records = raw if isinstance(raw, list) else []
    failed = len(result.get("batchItemFailures") or [])
    lines = [f"batch: {len(records) if records else '?'} record(s), {failed} failed"]
    handled = _reports_handled(functions_log, records) if functions_log and records else None
    if handled is None:
        return lines
    for digest in handled.get("digests", []):
        count = int(digest.get("reports", 0))
        what = f"digest of {count} report(s)" if count > 1 else f"{digest.get('kind')} ({digest.get('severity')})"
        where = f"posted to Slack ({digest.get('webhook')})" if digest.get("posted") else "not posted"
        lines.append(f"{what}: {where}" + ("" if digest.get("posted") else f": {digest.get('reason')}"))
    if handled.get("filtered"):
        lines.append(f"{handled['filtered']} report(s) below the Slack threshold: not posted")
    if failed:
        lines.append(f"{failed} record(s) left in the queue for SQS to retry")
    return lines


def _reports_handled(functions_log: Path, records: list[Any]) -> dict[str, Any] | None:
    """The notifier's "reports handled" log record for the batch ``records`` (known by the SNS message ids its
    digests name), or None."""
    ids = set()
    for record in records:
        try:
            body = json.loads(record["body"])
            ids.add(str(body["MessageId"]) if body.get("Type") == "Notification" else str(record["messageId"]))
        except (KeyError, TypeError, AttributeError, ValueError):
            ids.add(str(record.get("messageId")) if isinstance(record, dict) else "")
    try:
        text = functions_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        if '"reports handled"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        named = {i for d in entry.get("digests", []) for i in d.get("message_ids", [])}
        if entry.get("records") == len(records) and (named <= ids if named else entry.get("filtered") == len(records)):
            return entry  # type: ignore[no-any-return]
    return None


def _describe_images(result: dict[str, Any]) -> list[str]:
    if result.get("ignored"):
        return [f"ignored: {result['ignored']}"]
    lines = []
    for c in result["committed"]:
        where = f"commit {c['commit'][:12]}" if c.get("commit") else "dry run: no commit"
        lines.append(f"{'; '.join(c['changes'])} in {', '.join(c['files'])} ({where}, attempt {c['attempts']})")
    for kind in ("unchanged", "held", "blocked", "refused"):
        lines += [f"{kind} {i['image']}:{i.get('tag', '')}: {i['reason']}" for i in result.get(kind, [])]
    return lines


def _describe_compliance(result: dict[str, Any]) -> list[str]:
    if result["dispatched"]:
        return [f"fan-out: one sweep per cluster ({', '.join(result['dispatched'])})"]
    from eksops.compliance.report import ClusterReport

    lines = []
    for data in result["clusters"]:
        report = ClusterReport.from_dict(data)
        lines.append(f"cluster {report.cluster}: {report.summary_line()}")
        lines += [f"  {f.status}: {f.rule} {f.resource}: {f.remediation}" for f in report.remediated]
        lines += [f"  resolved: {r.rule} {r.resource}" for r in report.resolved]
    return lines + [f"error: {e.get('rule')}: {e.get('message')}" for e in result.get("errors", [])]


def _describe_bootstrap(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in result["clusters"].items():
        k8s = ", ".join(f"{n} {o}" for o, n in r["kubernetes"].items()) or "-"
        lines.append(f"cluster {name}: {r['status']}; Kubernetes objects: {k8s}")
        lines += [f"  {change}" for change in r["aws"]]
        shown = r["changed_objects"][:12]
        lines += [f"  applied {ref}" for ref in shown]
        if len(r["changed_objects"]) > len(shown):
            lines.append(f"  ... and {len(r['changed_objects']) - len(shown)} more objects")
    return lines + [f"error: {e['cluster']}: {e['message']}" for e in result.get("errors", [])]


def _days(value: int | None) -> str:
    return "never expire" if value is None else f"{value} days"


def run(out: TextIO = sys.stdout, root: Path | None = None) -> int:
    """Run the demo; returns the process exit code (0 when every step did what it should)."""
    template = Template.find(root)
    timeline = Timeline(out)
    served = template.root / ".sandbox" / "git"
    shutil.rmtree(served, ignore_errors=True)  # a fresh config repository every run
    with GitServer(served) as git:
        config_url = git.create(CONFIG_REPO, {PAYMENTS_FILE: PAYMENTS_KUSTOMIZATION})
        parameters = {
            "DryRun": "false",  # the demo shows eksops acting; a deployed stack starts as a dry run
            "ImageConfigRepoUrl": config_url,
            "ImageMap": json.dumps(IMAGE_MAP),
            "ComplianceRemediate": json.dumps(COMPLIANCE_REMEDIATE),
        }
        return _run(template, timeline, out, parameters, git)


def _run(template: Template, timeline: Timeline, out: TextIO, parameters: dict[str, str], git: GitServer) -> int:
    with Sandbox(template, parameters=parameters) as sandbox, SlackReceiver() as slack:
        secret = sandbox.client("secretsmanager").create_secret(Name="eksops/slack/demo", SecretString=slack.url)
        sandbox.set_parameters(SlackWebhookSecretArn=secret["ARN"])
        dispatcher = Dispatcher(sandbox)
        timeline.functions_log = sandbox.workdir / "functions.log"
        try:
            _scenario(sandbox, dispatcher, timeline, git)
            _show_slack(slack, timeline)
        finally:
            dispatcher.close()
    changed = sum(len(i.result.get("changed", [])) for i in timeline.invocations if i.ok and isinstance(i.result, dict))
    dead = sum(1 for i in timeline.invocations if i.dead_lettered)
    out.write(
        f"\nSummary: {len(timeline.invocations)} invocations, {changed} changes, "
        f"{dead} event(s) dead-lettered, {len(timeline.failures)} failure(s).\n"
    )
    for failure in timeline.failures:
        out.write(f"  FAIL: {failure}\n")
    out.write(f"Function logs (JSON, as in CloudWatch): {sandbox.workdir / 'functions.log'}\n")
    return 1 if timeline.failures else 0


def _scenario(sandbox: Sandbox, dispatcher: Dispatcher, t: Timeline, git: GitServer) -> None:
    logs = sandbox.client("logs")
    shim = CloudTrailShim(sandbox.client)
    t.out.write(f"eksops demo on the local sandbox (moto server at {sandbox.endpoint})\n")
    t.out.write(f"   created from template.yaml: {', '.join(sandbox.created)}\n")
    for note in sandbox.notes:
        t.out.write(f"   {note}\n")
    inbox = _subscribe_inbox(sandbox)

    _bootstrap(sandbox, dispatcher, t, shim)

    t.step("Log groups that existed before eksops was deployed (no event: only the sweep finds them)")
    existing: dict[str, tuple[int | None, dict[str, str]]] = {
        f"/aws/containerinsights/{CLUSTER}/performance": (NEVER, {}),
        f"/aws/eks/{CLUSTER}/cluster": (3653, {}),
        "/aws/lambda/payments-api": (NEVER, {}),  # another team's: outside RetentionScope eks
        "/legacy/audit-trail": (NEVER, {"eksops:retention": "skip"}),
    }
    for name, (days, tags) in existing.items():
        logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
        if days:
            logs.put_retention_policy(logGroupName=name, retentionInDays=days)
        note = " (tagged eksops:retention=skip)" if tags else ""
        if not name.startswith(("/aws/eks/", "/aws/containerinsights/")) and not tags:
            note = " (not an EKS group: RetentionScope=eks leaves it alone)"
        t.line(f"{name}: {_days(days)}{note}")

    t.step(f"Container Insights starts on cluster {CLUSTER!r}: Fluent Bit creates its log groups (CloudTrail events)")
    for kind in ("application", "host", "dataplane"):
        shim.call("logs", "create_log_group", logGroupName=f"/aws/containerinsights/{CLUSTER}/{kind}")
    t.show(dispatcher.drain())
    _check_error_resources(sandbox, t)

    t.step("The same CloudTrail event delivered again (EventBridge delivers at least once)")
    duplicate = cloudtrail_event(
        "logs", "CreateLogGroup", {"logGroupName": f"/aws/containerinsights/{CLUSTER}/application"}
    )
    shim.put(duplicate)
    shim.put(duplicate)
    runs = dispatcher.drain()
    t.show(runs)
    acted = [i for i in runs if i.function != "notifier"]
    t.check(
        all(i.ok and not i.result["changed"] for i in acted) and sum(i.function == "log_retention" for i in acted) == 2,
        "duplicates changed nothing",
    )

    t.step("Someone removes the retention by hand (DeleteRetentionPolicy): it is put back at once")
    shim.call("logs", "delete_retention_policy", logGroupName=f"/aws/containerinsights/{CLUSTER}/host")
    t.show(dispatcher.drain())

    _error_burst(sandbox, dispatcher, t)
    _node_scaling(sandbox, dispatcher, t)
    _image_updates(sandbox, dispatcher, t, shim, git)
    _failure_path(sandbox, dispatcher, t, shim)

    t.step("The daily sweep fires (schedule from template.yaml)")
    t.show(dispatcher.fire_schedule("log_retention"))

    t.step("The sweep runs again: everything is compliant, nothing changes")
    runs = dispatcher.fire_schedule("log_retention")
    t.show(runs)
    t.check(all(i.ok and not i.result["changed"] for i in runs), "second sweep changed nothing")

    t.step(f"Reports published to {STACK}-reports (what an email subscriber receives)")
    for message in _read_inbox(sandbox, inbox):
        envelope = json.loads(message["Message"])
        t.line(f"{message.get('Subject')}")
        t.line(f"    {envelope['summary']}")

    t.step("Final state of every log group")
    expected = {
        f"/aws/containerinsights/{CLUSTER}/application": 30,
        f"/aws/containerinsights/{CLUSTER}/host": 14,
        f"/aws/containerinsights/{CLUSTER}/dataplane": 14,
        f"/aws/containerinsights/{CLUSTER}/performance": 7,
        f"/aws/eks/{CLUSTER}/cluster": 3653,
        "/aws/lambda/payments-api": NEVER,  # RetentionScope=eks: RetentionDefaultDays is not for other teams' groups
        "/legacy/audit-trail": NEVER,
        f"/aws/lambda/{STACK}-log-retention": 30,
    }
    actual = {
        g["logGroupName"]: g.get("retentionInDays")
        for page in logs.get_paginator("describe_log_groups").paginate()
        for g in page["logGroups"]
    }
    for name, days in expected.items():
        t.check(actual.get(name, "missing") == days, f"{name:52} {_days(actual.get(name))}")

    _compliance(sandbox, dispatcher, t)


def _compliance(sandbox: Sandbox, dispatcher: Dispatcher, t: Timeline) -> None:
    """The daily compliance sweep, with REMEDIATE naming one rule: its finding is fixed, and the next sweep sees it
    resolved. The report is the one `eksops sweep` prints."""
    from eksops.compliance.model import rules
    from eksops.compliance.report import ClusterReport, render

    t.step("A team creates namespace 'checkout' (kubectl create namespace): no Pod Security labels yet")
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig_path), context=CLUSTER
    )
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="checkout")))
    t.line("namespace checkout created")

    t.step(f"The daily compliance sweep (schedule from template.yaml), REMEDIATE={COMPLIANCE_REMEDIATE}")
    runs = dispatcher.fire_schedule("compliance_sweep")
    t.show(runs)
    reports = [
        ClusterReport.from_dict(c)
        for i in runs
        if i.function == "compliance_sweep" and i.ok
        for c in i.result["clusters"]
    ]
    for text in render(reports, "table", rules=rules()).splitlines():
        t.line(text)
    fixed = [f for r in reports for f in r.findings if f.status == "remediated"]
    t.check(
        any(f.rule == "namespace-pod-security" and f.resource == "namespace/checkout" for f in fixed),
        "the sweep fixed namespace-pod-security on namespace/checkout (the bootstrap's Pod Security labels)",
    )

    t.step("The next day's sweep: what was fixed is reported resolved")
    runs = dispatcher.fire_schedule("compliance_sweep")
    t.show(runs)
    resolved = [
        r.rule + " " + r.resource
        for i in runs
        if i.function == "compliance_sweep" and i.ok
        for c in i.result["clusters"]
        for r in ClusterReport.from_dict(c).resolved
    ]
    t.check(
        "namespace-pod-security namespace/checkout" in resolved,
        "namespace-pod-security on namespace/checkout is resolved since the last sweep",
    )


def _bootstrap(sandbox: Sandbox, dispatcher: Dispatcher, t: Timeline, shim: CloudTrailShim) -> None:
    iam = sandbox.client("iam")

    def role(name: str, service: str) -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])

    t.step(f"A platform engineer creates EKS cluster {CLUSTER!r} (CloudTrail CreateCluster); it is still CREATING")
    emulator = sandbox.add_kube_cluster(CLUSTER)  # the cluster's Kubernetes API (emulated), via EKSOPS_KUBECONFIG
    sandbox.eks_shim.creating.add(CLUSTER)
    subnets = ["subnet-0a1b2c3d", "subnet-1a2b3c4d"]
    shim.call(
        "eks",
        "create_cluster",
        name=CLUSTER,
        roleArn=role("demo-cluster", "eks.amazonaws.com"),
        resourcesVpcConfig={"subnetIds": subnets},
        version="1.33",
    )
    t.show(dispatcher.drain())

    t.step("The cluster is ACTIVE; a managed node group is added (CloudTrail CreateNodegroup): bootstrap runs")
    sandbox.eks_shim.activate(CLUSTER)
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig_path), context=CLUSTER
    )
    core = k8s.CoreV1Api(api)
    for namespace in ("kube-system", "payments"):
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    node_role = role("demo-nodes", "ec2.amazonaws.com")
    shim.call(
        "eks", "create_nodegroup", clusterName=CLUSTER, nodegroupName="general", nodeRole=node_role, subnets=subnets
    )
    t.show(dispatcher.drain())
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="demo-nodes")["AttachedPolicies"]}
    t.check("CloudWatchAgentServerPolicy" in attached, "the node role has CloudWatchAgentServerPolicy")
    kinds = {o.raw.get("kind") for o in emulator.objects.values() if not o.deleted}
    t.check(
        {"DaemonSet", "Deployment", "APIService"} <= kinds,
        "the CloudWatch agent, Fluent Bit and metrics-server are in the cluster",
    )
    meta = core.read_namespace("payments").metadata
    labels = (meta.labels if meta else None) or {}
    t.check(
        labels.get("pod-security.kubernetes.io/enforce") == "baseline",
        "namespace payments has Pod Security labels (enforce baseline, warn and audit restricted)",
    )

    t.step("The 15-minute reconcile: the cluster carries eksops:bootstrap=<version>, everything is there")
    runs = dispatcher.fire_schedule("cluster_bootstrap")
    t.show(runs)
    t.check(
        all(
            r.ok and r.result["clusters"][CLUSTER]["status"] == "unchanged"
            for r in runs
            if r.function == "cluster_bootstrap"
        ),
        "the reconcile changed nothing",
    )


def _check_error_resources(sandbox: Sandbox, t: Timeline) -> None:
    """What error_alarms says it created is there: read back from moto (and the saved-query shim)."""
    from eksops.logs.error_alarms import (
        FILTER_NAME,
        MANAGED_TAG_KEY,
        MANAGED_TAG_VALUE,
        METRIC_NAMESPACE,
        QUERY_NAMES,
        alarm_name,
        dashboard_name,
        query_name,
    )

    group = f"/aws/containerinsights/{CLUSTER}/application"
    logs, cloudwatch = sandbox.client("logs"), sandbox.client("cloudwatch")
    found = logs.describe_metric_filters(logGroupName=group).get("metricFilters", [])
    transformations = [m for f in found if f["filterName"] == FILTER_NAME for m in f["metricTransformations"]]
    t.check(
        [(m["metricNamespace"], m["metricName"]) for m in transformations] == [(METRIC_NAMESPACE, CLUSTER)],
        f"metric filter {FILTER_NAME} on {group} counts into {METRIC_NAMESPACE}/{CLUSTER}",
    )
    alarms = cloudwatch.describe_alarms(AlarmNames=[alarm_name(CLUSTER)]).get("MetricAlarms", [])
    tags = cloudwatch.list_tags_for_resource(ResourceARN=alarms[0]["AlarmArn"])["Tags"] if alarms else []
    t.check(
        bool(alarms)
        and alarms[0]["AlarmActions"] == [sandbox.refs.get("AlertsTopic")]
        and {"Key": MANAGED_TAG_KEY, "Value": MANAGED_TAG_VALUE} in tags,
        f"alarm {alarm_name(CLUSTER)} notifies the alerts topic and is tagged {MANAGED_TAG_KEY}={MANAGED_TAG_VALUE}",
    )
    dashboards = {d["DashboardName"] for d in cloudwatch.list_dashboards().get("DashboardEntries", [])}
    t.check(dashboard_name(CLUSTER) in dashboards, f"dashboard {dashboard_name(CLUSTER)} exists")
    wanted = {query_name(CLUSTER, q) for q in QUERY_NAMES}
    saved = logs.describe_query_definitions(queryDefinitionNamePrefix=f"eksops/{CLUSTER}/")["queryDefinitions"]
    t.check(
        {q["name"] for q in saved} == wanted and all(q["logGroupNames"] == [group] for q in saved),
        f"saved queries {', '.join(sorted(wanted))} on {group}",
    )


def _error_burst(sandbox: Sandbox, dispatcher: Dispatcher, t: Timeline) -> None:
    group = f"/aws/containerinsights/{CLUSTER}/application"
    t.step(f"An error burst in {group} (metric filter and alarm evaluation emulated: moto does neither)")

    def record(log: str, pod: str, namespace: str = "payments") -> dict[str, Any]:
        return {
            "log": log,
            "stream": "stdout",
            "kubernetes": {
                "pod_name": pod,
                "namespace_name": namespace,
                "container_name": "app",
                "host": "ip-10-0-1-23",
            },
        }

    records = [
        record("2026-11-25T10:10:01Z ERROR charge failed: card processor timeout", "payments-api-7d9f-abc12"),
        record("2026-11-25T10:10:02Z INFO retrying charge 1/3", "payments-api-7d9f-abc12"),
        record("2026-11-25T10:10:03Z ERROR charge failed: card processor timeout", "payments-api-7d9f-abc12"),
        record("2026-11-25T10:10:04Z INFO report sent", "error-reporter-5c4b-x1y2z", "error-tracking"),
        record("Traceback (most recent call last):", "ledger-6f8e-qwe34"),
    ]
    for r in records:
        t.line(f"{r['kubernetes']['namespace_name']}/{r['kubernetes']['pod_name']}: {r['log']}")
    outcome = MetricFilterEmulator(sandbox.client).ingest(group, records)
    for metric, value in outcome["metrics"].items():
        t.line(f"metric {metric} = {value:g} (the 'error-reporter' pod name alone does not count)")
    t.check(f"eksops-{CLUSTER}-application-errors" in outcome["alarms"], "the application error alarm fired")
    runs = dispatcher.drain()
    t.show(runs)
    t.check(
        any(i.function == "notifier" and i.ok and i.result.get("kind") == "cloudwatch-alarm" for i in runs),
        "the alarm notification reached the alerts topic and the notifier",
    )


def _node_scaling(sandbox: Sandbox, dispatcher: Dispatcher, t: Timeline) -> None:
    """Reserved CPU climbs on cluster demo; node_scaler, run once a simulated minute through the dispatcher, grows
    the node group ahead of it. The clock is simulated (the run's minutes end now): each run measures demand from
    the cluster's pods, publishes it to its own history metric at that minute and reads the hour back."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    t.step(
        f"Predictive node scaling on {CLUSTER!r}: requested CPU climbs, node_scaler runs every (simulated) minute "
        f"and grows Auto Scaling group {SCALING_GROUP} before pods would wait (nodes ready {READY_MINUTES} min "
        "after launch)"
    )
    sandbox.client("ec2").create_launch_template(
        LaunchTemplateName="demo-nodes", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m7g.xlarge"}
    )
    autoscaling = sandbox.client("autoscaling")
    tags = {"eks:cluster-name": CLUSTER, "eksops:scaling": "enabled", "eksops:scaling-autoscaler": "none"}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=SCALING_GROUP,
        LaunchTemplate={"LaunchTemplateName": "demo-nodes", "Version": "$Latest"},
        MinSize=3,
        MaxSize=12,
        DesiredCapacity=3,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in tags.items()],
    )
    t.line(f"{SCALING_GROUP}: 3 nodes (min 3, max 12), tagged eksops:scaling=enabled, no other autoscaler")
    core = k8s.CoreV1Api(
        k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=CLUSTER)  # type: ignore[no-untyped-call]
    )
    _web_workload(api_client=core.api_client)
    scaler = dispatcher.module("node_scaler").service
    # On minute boundaries, as CloudWatch keeps one-minute points: every run reads the same history back.
    start = (time.time() // 60 - len(DEMAND_CORES)) * 60
    minute = {"now": start}
    scaler.clock = lambda: minute["now"]
    _seed_history(sandbox, start, t)
    launched: dict[str, int] = {}  # instance id -> minute it appeared
    pods: list[str] = []
    rows: list[tuple[int, float, int, int, int]] = []  # minute, demand, ready nodes, desired, pending millicores
    t.line("min  demand  reserved  ready  desired  forecast (+headroom)  action")
    for step, cores in enumerate(DEMAND_CORES):
        minute["now"] = start + 60 * step
        ready = _boot_nodes(core, autoscaling, launched, step)
        pending = _place_pods(core, pods, round(cores * 1000), ready)
        run = dispatcher.invoke("node_scaler", _scheduled_event(minute["now"]), f"schedule (minute {step})")
        t.invocations.append(run)
        _instances(autoscaling, launched, step)  # what this run launched boots from this minute on
        if not run.ok:
            t.failures.append(f"node_scaler failed at minute {step}: {run.error}")
            t.line(f"{step:3}  FAILED {run.error_type}: {run.error}")
            return
        (decision,) = [d for d in run.result["decisions"] if d["group"] == SCALING_GROUP]
        fc = decision["forecast"] or {}
        rows.append((step, cores, len(ready), decision["desired"], pending))
        t.line(
            f"{step:3}  {cores:5.1f}c  {100 * cores / max(len(ready) * NODE_CORES, 1):6.0f} %  {len(ready):5}  "
            f"{decision['desired_before']:>3} -> {decision['desired']:<3} "
            f"{fc.get('millicores', 0) / 1000:6.1f}c (+{fc.get('headroom_millicores', 0) / 1000:.1f})        "
            f"{decision['action']}"
        )
        for alarm in run.result["alarms"]:
            t.line(
                f"     {alarm['action']} alarm {alarm['name']} (reserved CPU >= 90 %: wakes the scaler between runs)"
            )
    first_growth = next((r for r, prev in zip(rows[1:], rows, strict=False) if r[3] > prev[3]), None)
    t.check(first_growth is not None, "the node group grew")
    if first_growth is not None:
        minute_grown, cores_then, ready_then, _, _ = first_growth
        t.check(
            cores_then * 1000 <= ready_then * NODE_MILLICORES,
            f"it grew at minute {minute_grown}, while {cores_then:.1f} cores still fit on its {ready_then} ready nodes",
        )
    t.check(all(pending == 0 for *_, pending in rows), "no pod waited for a node at any minute")
    t.check(
        rows[-1][3] > rows[0][3] + 3, f"{SCALING_GROUP} grew from {rows[0][3]} to {rows[-1][3]} nodes ahead of demand"
    )


def _seed_history(sandbox: Sandbox, start: float, t: Timeline) -> None:
    """The demand node_scaler recorded over the last STEADY_MINUTES (its metric eksops NodeGroupCpuDemand)."""
    from eksops.scaling.demand import HISTORY_METRIC, HISTORY_NAMESPACE

    dimensions = [{"Name": "ClusterName", "Value": CLUSTER}, {"Name": "AutoScalingGroupName", "Value": SCALING_GROUP}]
    sandbox.client("cloudwatch").put_metric_data(
        Namespace=HISTORY_NAMESPACE,
        MetricData=[
            {
                "MetricName": HISTORY_METRIC,
                "Dimensions": dimensions,
                "Timestamp": datetime.fromtimestamp(start - 60 * m, UTC),
                "Value": STEADY_CORES * 1000,
            }
            for m in range(STEADY_MINUTES, 0, -1)
        ],
    )
    t.line(
        f"the last {STEADY_MINUTES} minutes, as node_scaler recorded them: a steady {STEADY_CORES:g} cores requested"
    )


def _web_workload(api_client: Any) -> None:
    """The Deployment and ReplicaSet the web pods belong to (what the compliance rules judge, once per workload)."""
    from eksops.compliance.context import kube_request

    labels = {"app": "web"}
    container = {
        "name": "web",
        "image": "web:1",
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    template = {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
    spec = {"replicas": 3, "selector": {"matchLabels": labels}, "template": template}
    for path, obj in (
        (
            "/apis/apps/v1/namespaces/web/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "web"},
                "spec": spec,
            },
        ),
        (
            "/apis/apps/v1/namespaces/web/replicasets",
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": "web-5d8f7c",
                    "namespace": "web",
                    "uid": WEB_REPLICASET,
                    "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}
                    ],
                },
                "spec": spec,
            },
        ),
    ):
        kube_request(api_client, "POST", path, body=obj)


def _boot_nodes(core: Any, autoscaling: Any, launched: dict[str, int], step: int) -> list[str]:
    """Nodes join the cluster READY_MINUTES after their instance appears in the group; returns the ready ones."""
    ready = []
    for instance in _instances(autoscaling, launched, step):
        first = launched[instance]
        name = f"ip-{instance[2:10]}.ec2.internal"
        if step - first == READY_MINUTES or (step == 0 and first < 0):
            core.create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": {"eks.amazonaws.com/nodegroup": "general"}},
                    "spec": {"providerID": f"aws:///{REGION}a/{instance}"},
                    "status": {
                        "allocatable": {"cpu": f"{NODE_MILLICORES}m"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
        if step - first >= READY_MINUTES:
            ready.append(name)
    return ready


def _instances(autoscaling: Any, launched: dict[str, int], step: int) -> list[str]:
    """The group's instances, each with the minute it was launched noted (those there at minute 0 were ready)."""
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[SCALING_GROUP])["AutoScalingGroups"]
    instances = sorted(i["InstanceId"] for i in group["Instances"])
    for instance in instances:
        launched.setdefault(instance, step if step else -READY_MINUTES)
    return instances


def _place_pods(core: Any, pods: list[str], millicores: int, nodes: list[str]) -> int:
    """The scheduler's part, fluidly: requests fill the ready nodes, the rest waits in 1-core pods. Returns the
    pending millicores."""
    for name in pods:
        core.delete_namespaced_pod(name, "web")
    pods.clear()
    left = millicores
    for node in nodes:
        if left <= 0:
            break
        take = min(left, NODE_MILLICORES)
        pods.append(_pod(core, take, node))
        left -= take
    pending = left
    while left > 0:
        pods.append(_pod(core, min(left, 1000), None))
        left -= 1000
    return pending


def _pod(core: Any, millicores: int, node: str | None) -> str:
    name = f"web-{uuid.uuid4().hex[:8]}"
    spec: dict[str, Any] = {
        "containers": [{"name": "web", "image": "web:1", "resources": {"requests": {"cpu": f"{millicores}m"}}}]
    }
    if node:
        spec["nodeName"] = node
    core.create_namespaced_pod(
        "web",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            # Owned by the ReplicaSet of a Deployment, as a real web tier's pods are (rules judge the workload).
            "metadata": {
                "name": name,
                "namespace": "web",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "web-5d8f7c",
                        "uid": WEB_REPLICASET,
                        "controller": True,
                    }
                ],
            },
            "spec": spec,
            "status": {"phase": "Running"} if node else UNSCHEDULABLE,
        },
    )
    return name


def _scheduled_event(at: float) -> dict[str, Any]:
    rule = f"{STACK}-node-scaler-Forecast"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


def _image_updates(sandbox: Sandbox, dispatcher: Dispatcher, t: Timeline, shim: CloudTrailShim, git: GitServer) -> None:
    """CI pushes images to ECR; image_updater commits the tags the policy allows into the config repository."""
    t.show(dispatcher.drain())  # the node scaler's reports, under the act that made them
    ecr = sandbox.client("ecr")
    ecr.create_repository(repositoryName="payments-api", imageScanningConfiguration={"scanOnPush": True})
    t.step(
        f"GitOps: CI pushes payments-api:1.43.0 to ECR (scan on push); image_updater commits it to {CONFIG_REPO} "
        f"({git.url}, policy semver >=1.4,<2)"
    )
    t.line(f'{PAYMENTS_FILE} holds newTag "1.42.0"')
    before = len(git.log(CONFIG_REPO))
    shim.put(_image_pushed(ecr, "1.43.0", 1))
    runs = dispatcher.drain()
    t.show(runs)
    log = git.log(CONFIG_REPO)
    t.check(len(log) == before + 1, "one commit in the config repository")
    t.line("git log -p -1:")
    patch = io.StringIO()
    from dulwich import porcelain

    porcelain.show(str(git.root / CONFIG_REPO), objects=[log[0].id], outstream=patch)
    for line in patch.getvalue().splitlines():
        t.line(f"    {line}")
    text = git.read(CONFIG_REPO, PAYMENTS_FILE)
    t.check(text == PAYMENTS_KUSTOMIZATION.replace(b'"1.42.0"', b'"1.43.0"'), "only the tag changed, byte for byte")

    t.step("The same push event delivered again, then pushes the policy refuses: no commit")
    (first,) = [r for r in runs if r.function == "image_updater"]
    again = dispatcher.invoke("image_updater", first.event, "EventBridge redelivery (same event id)")
    t.show([again])
    t.line("(the first delivery's result, answered from the idempotency record: nothing ran again)")
    shim.put(_image_pushed(ecr, "2.0.0", 2))  # outside >=1.4,<2
    shim.put(_image_pushed(ecr, "1.41.0", 3))  # below the current 1.43.0: never moves down
    t.show(dispatcher.drain())
    t.check(len(git.log(CONFIG_REPO)) == before + 1, "still one commit: duplicates and refusals change nothing")


def _image_pushed(ecr: Any, tag: str, n: int) -> dict[str, Any]:
    """Push an image to the sandbox's ECR (its scan starts, as scan on push does) and return the ECR Image Action
    event EventBridge would deliver for it."""
    image = ecr.put_image(repositoryName="payments-api", imageManifest=image_manifest(n), imageTag=tag)["image"]
    digest = image["imageId"]["imageDigest"]
    ecr.start_image_scan(repositoryName="payments-api", imageId={"imageDigest": digest})
    return {
        "source": "aws.ecr",
        "detail-type": "ECR Image Action",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": "payments-api",
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
        },
    }


def _failure_path(sandbox: Sandbox, dispatcher: Dispatcher, t: Timeline, shim: CloudTrailShim) -> None:
    t.step("A malformed event (CreateLogGroup without a log group name) takes the failure path")
    shim.put(cloudtrail_event("logs", "CreateLogGroup", {}))
    runs = dispatcher.drain()
    t.show(runs, expect_failure=True)
    dlq = sandbox.client("sqs").receive_message(QueueUrl=sandbox.refs["DeadLetterQueue"], MaxNumberOfMessages=10)
    records = [json.loads(m["Body"]) for m in dlq.get("Messages", [])]
    t.check(
        len(records) == 1 and records[0]["responsePayload"]["errorType"] == "InvalidEvent",
        "the dead-letter queue holds the event with errorType InvalidEvent",
    )

    attributes = sandbox.client("sqs").get_queue_attributes(
        QueueUrl=sandbox.refs["DeadLetterQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    depth = sum(int(v) for v in attributes.values())
    t.line(f"the dead-letter queue holds {depth} message(s): its alarm fires (alarm evaluation emulated)")
    AlarmShim(sandbox.client).set_state(
        f"{STACK}-dead-letters", "ALARM", f"Threshold Crossed: 1 datapoint [{depth}.0] was >= the threshold (1.0)."
    )
    t.show(dispatcher.drain())


def _show_slack(slack: SlackReceiver, t: Timeline) -> None:
    t.step(f"Slack: the {len(slack.received)} message(s) the local webhook received, as Slack shows them")
    for number, payload in enumerate(slack.received, 1):
        t.line(f"--- message {number} ---")
        for text in render(payload):
            t.line(f"  {text}")
    kinds = [p["attachments"][0]["blocks"][0]["text"]["text"] for p in slack.received]
    t.check(any("dead-letters is ALARM" in k for k in kinds), "the dead-letter alarm reached Slack")
    # A report is a message of its own, or one entry of a digest ("eksops: N reports"), which names its title.
    retention = sum(
        line.startswith(("== ", "• ")) and "Log retention:" in line for p in slack.received for line in render(p)
    )
    t.check(retention >= 5, f"every retention change report reached Slack ({retention}, some in digests)")
    digests = [int(m.group(1)) for k in kinds if (m := re.search(r"eksops: (\d+) reports", k))]
    t.check(
        bool(digests),
        f"reports that came together reached Slack as {len(digests)} digest(s) of {sum(digests)} reports, "
        f"so {len(slack.received)} messages in all",
    )
    t.check(any("application-errors is ALARM" in k for k in kinds), "the application error alarm reached Slack")


def _subscribe_inbox(sandbox: Sandbox) -> str:
    sqs = sandbox.client("sqs")
    url = sqs.create_queue(QueueName=f"{STACK}-demo-reports-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sandbox.client("sns").subscribe(TopicArn=sandbox.refs["ReportsTopic"], Protocol="sqs", Endpoint=arn)
    return str(url)


def _read_inbox(sandbox: Sandbox, url: str) -> list[dict[str, Any]]:
    sqs, messages = sandbox.client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in batch:
            messages.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return messages
