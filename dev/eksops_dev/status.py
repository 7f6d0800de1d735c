"""`eksops status`: what eksops manages on the sandbox or (``--aws``, read-only) in your account and region.

Per capability, counts of what it manages and its drift, decided by the capability's own code (the retention rules'
``decide``, error_alarms' names and ownership marks, bootstrap's tag and manifest version, the scaler's enrolment,
the compliance state table), with the configuration each function would start with: on the sandbox the template's
(after seeding a cluster with typical drift, eksops_dev.seed); with ``--aws`` the template defaults overlaid by your
environment (as `eksops invoke --aws`). Nothing is written. The JSON or table goes to stdout, notes to stderr.

:class:`Target` (clients, each function's environment, Kubernetes access) is shared with `eksops uninstall`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from eksops_dev.template import Template

SANDBOX_CLUSTER = "demo"
DEFAULT_STACK = "eksops"  # `make deploy`'s and the guided deploy's stack name
CAPABILITIES = (
    "log_retention",
    "error_alarms",
    "cluster_bootstrap",
    "node_scaler",
    "image_updater",
    "compliance_sweep",
    "notifier",
)
SAMPLE = 10  # drifted items listed by name per capability (the counts cover all)


@dataclass
class Target:
    """Where eksops runs: AWS clients, each function's environment, and a Kubernetes client per cluster."""

    where: str  # "sandbox" or "account <id>"
    region: str
    client: Callable[[str], Any]
    environments: Mapping[str, Mapping[str, str]]  # function name -> its environment (deployed functions only)
    kube: Callable[[str], Any]  # cluster name -> kubernetes ApiClient

    def env(self, function: str) -> Mapping[str, str]:
        return self.environments.get(function, {})


def note(text: str) -> None:
    sys.stderr.write(f"eksops: {text}\n")


# -- targets -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def sandbox_target(template: Template, prepare: Callable[[Any], list[str]] | None = None) -> Iterator[Target]:
    """A started sandbox with cluster ``demo`` seeded, then ``prepare(sandbox)`` (e.g. running functions)."""
    from eksops_dev.sandbox import Sandbox
    from eksops_dev.seed import seed_cluster

    # DryRun=false: the functions ``prepare`` runs act, so there is something for status and uninstall to find.
    with Sandbox(template, parameters={"DryRun": "false"}) as sandbox:
        for line in seed_cluster(sandbox, SANDBOX_CLUSTER):
            note(f"sandbox: seeded {line}")
        for line in prepare(sandbox) if prepare else []:
            note(f"sandbox: {line}")
        yield sandbox_as_target(sandbox)


def sandbox_as_target(sandbox: Any) -> Target:
    """A running sandbox as a Target: its clients, its functions' environments (those deployed), its kubeconfig."""
    from eksops.kube.auth import api_client
    from eksops_dev.template import REGION

    template = sandbox.template
    environments = {
        name: sandbox.function_env(fn)
        for name, fn in template.functions.items()
        if sandbox.resolver.condition_holds(template.resources[fn.logical_id])
    }
    kubeconfig = str(sandbox.kubeconfig_path)
    return Target(
        where="sandbox",
        region=REGION,
        client=sandbox.client,
        environments=environments,
        kube=lambda name: api_client(
            name, eks_client=sandbox.client("eks"), sts_client=sandbox.client("sts"), kubeconfig=kubeconfig
        ),
    )


@contextlib.contextmanager
def aws_target(template: Template, stack_name: str | None = DEFAULT_STACK) -> Iterator[Target]:
    """Your account and region (credentials and region as the AWS CLI finds them), as a Target.

    Each function's environment is the deployed stack's: its parameter values and its resources (the state table,
    the topics), read from CloudFormation, overlaid by the variables your environment sets. Without that stack in
    the region (or the right to read it), the template's defaults stand in, and a note says so. Kubernetes access is
    EKS's (an STS token, as `aws eks get-token`), or your EKSOPS_KUBECONFIG when set. ``stack_name`` None: the
    template's defaults without asking (uninstall finds things by their marks, not by the configuration).
    """
    import boto3

    from eksops.kube.auth import api_client
    from eksops_dev.invoke import _caller, layering
    from eksops_dev.template import Resolver
    from eksops_dev.validate import env_str

    identity, region = _caller()
    session = boto3.session.Session(region_name=region)
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service)  # type: ignore[call-overload]
        return clients[service]

    parameters, physical = _deployed(client("cloudformation"), stack_name, region) if stack_name else ({}, {})
    resolver = Resolver(
        template,
        {**template.parameter_defaults(), **parameters},
        ref=lambda name: physical.get(name, ""),
        getatt=lambda _name, _attr: "",
        stack_name=stack_name or DEFAULT_STACK,
    )
    resolver.pseudo["AWS::Region"] = region
    resolver.pseudo["AWS::AccountId"] = identity["Account"]
    environments: dict[str, dict[str, str]] = {}
    for name, fn in template.functions.items():
        env = {k: env_str(v) for k, v in resolver.resolve(fn.environment).items()}
        env.update(layering(template, fn, {}, os.environ, sandbox=False).from_environment)
        env["AWS_REGION"] = region
        environments[name] = env
    kubeconfig = os.environ.get("EKSOPS_KUBECONFIG") or None
    yield Target(
        where=f"account {identity['Account']}",
        region=region,
        client=client,
        environments=environments,
        kube=lambda name: api_client(name, eks_client=client("eks"), sts_client=client("sts"), kubeconfig=kubeconfig),
    )


def _deployed(cloudformation: Any, stack_name: str, region: str) -> tuple[dict[str, str], dict[str, str]]:
    """The stack's parameter values and its resources' physical IDs by logical ID; empty (with a note) without it."""
    from botocore.exceptions import ClientError

    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        note(
            f"no stack {stack_name} read in {region} ({error.get('Code')}: {error.get('Message')}): judging against "
            "the template's defaults and your environment (--stack-name names your stack)"
        )
        return {}, {}
    parameters = {
        p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", "")) for p in stack.get("Parameters", [])
    }
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in resources}
    note(
        f"stack {stack_name}: {len(parameters)} parameter value(s) and {len(physical)} resource(s) from CloudFormation"
    )
    return parameters, physical


# -- the command ---------------------------------------------------------------------------------------------------


def run(template: Template, *, aws: bool, fmt: str, stack_name: str = DEFAULT_STACK) -> int:
    with aws_target(template, stack_name) if aws else sandbox_target(template) as target:
        report = collect(target)
    if fmt == "json":
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    else:
        sys.stdout.write(render_table(report))
    return 1 if any(c.get("error") for c in report["capabilities"].values()) else 0


def collect(target: Target) -> dict[str, Any]:
    """The status of every capability; one that cannot be read carries ``error`` and the others are still shown."""
    steps: dict[str, Callable[[Target], dict[str, Any]]] = {
        "log_retention": log_retention,
        "error_alarms": error_alarms,
        "cluster_bootstrap": cluster_bootstrap,
        "node_scaler": node_scaler,
        "image_updater": image_updater,
        "compliance_sweep": compliance_sweep,
        "notifier": notifier,
    }
    capabilities: dict[str, dict[str, Any]] = {}
    for name, step in steps.items():
        if name not in target.environments:
            summary = "not deployed: its template condition is false with these parameters"
            capabilities[name] = {"managed": 0, "drift": 0, "summary": summary, "deployed": False}
            continue
        try:
            capabilities[name] = step(target)
        except Exception as exc:  # one capability's failure (a permission, a bad setting) must not hide the others
            capabilities[name] = {"managed": 0, "drift": 0, "error": f"{type(exc).__name__}: {exc}"}
            note(f"status of {name} failed: {type(exc).__name__}: {exc}")
    return {"where": target.where, "region": target.region, "capabilities": capabilities}


def render_table(report: dict[str, Any]) -> str:
    rows = [("CAPABILITY", "MANAGED", "DRIFT", "DETAILS")]
    for name, status in report["capabilities"].items():
        details = status.get("error") or status.get("summary", "")
        rows.append((name, str(status.get("managed", "")), str(status.get("drift", "")), details))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"eksops status: {report['where']}, region {report['region']}"]
    lines += [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows]
    return "\n".join(lines) + "\n"


# -- one capability each ---------------------------------------------------------------------------------------


def log_retention(target: Target) -> dict[str, Any]:
    """Log groups whose retention differs from what the rules decide (RETENTION_MODE included)."""
    from eksops.logs.retention import iter_groups
    from eksops.logs.retention_config import SKIP_TAG_KEY, SKIP_TAG_VALUE, RetentionConfig, decide

    cfg = RetentionConfig.from_env(target.env("log_retention"))
    skipped = _tagged_log_groups(target.client("resourcegroupstaggingapi"), SKIP_TAG_KEY, SKIP_TAG_VALUE)
    reasons: Counter[str] = Counter()
    drifted: list[dict[str, Any]] = []
    for group in iter_groups(target.client("logs")):
        decision = decide(
            cfg, group.name, group.retention, tagged_skip=group.name in skipped, group_class=group.group_class
        )
        reasons["drift" if decision.change else decision.reason] += 1
        if decision.change:
            drifted.append({"log_group": group.name, "retention": group.retention, "target": decision.target})
    managed = reasons["compliant"] + reasons["drift"]
    return {
        "managed": managed,
        "drift": len(drifted),
        "summary": f"{managed} log group(s) under a rule, {len(drifted)} with another retention than the rules "
        f"decide (mode {cfg.mode.value}); left alone: {reasons['no-rule']} without rule, "
        f"{reasons['out-of-scope']} outside RETENTION_SCOPE {cfg.scope.value}, "
        f"{reasons['excluded'] + reasons['tagged-skip']} excluded",
        "counts": dict(sorted(reasons.items())),
        "drifted": drifted[:SAMPLE],
    }


def _tagged_log_groups(tagging: Any, key: str, value: str) -> set[str]:
    names: set[str] = set()
    for page in tagging.get_paginator("get_resources").paginate(
        ResourceTypeFilters=["logs"], TagFilters=[{"Key": key, "Values": [value]}]
    ):
        for item in page.get("ResourceTagMappingList", []):
            arn = item["ResourceARN"]
            if ":log-group:" in arn:
                names.add(arn.split(":log-group:", 1)[1].removesuffix(":*"))
    return names


def error_alarms(target: Target) -> dict[str, Any]:
    """Per Container Insights application group: the metric filter, alarm, dashboard and saved queries eksops keeps."""
    from eksops_dev.uninstall import error_alarm_resources

    logs = target.client("logs")
    from eksops.logs.error_alarms import CONTAINER_INSIGHTS_PREFIX, cluster_of

    clusters = sorted(
        {
            c
            for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=CONTAINER_INSIGHTS_PREFIX)
            for g in page.get("logGroups", [])
            if (c := cluster_of(g["logGroupName"]))
        }
    )
    found = error_alarm_resources(target)
    have: dict[str, set[str]] = {}
    for item in found:
        have.setdefault(item.cluster, set()).add(item.kind)
    wanted = {"metric-filter", "alarm", "dashboard", "query"}
    missing = [{"cluster": c, "missing": sorted(wanted - have.get(c, set()))} for c in clusters]
    missing = [m for m in missing if m["missing"]]
    orphans = sorted(set(have) - set(clusters))  # resources of a cluster whose group is gone: the sweep removes them
    return {
        "managed": len(found),
        "drift": len(missing) + len(orphans),
        "summary": f"{len(found)} resource(s) for {len(clusters)} application log group(s); "
        f"{len(missing)} group(s) missing some, {len(orphans)} cluster(s) gone with resources left",
        "application_groups": len(clusters),
        "missing": missing[:SAMPLE],
        "orphaned_clusters": orphans[:SAMPLE],
    }


def cluster_bootstrap(target: Target) -> dict[str, Any]:
    """Clusters with the eksops:bootstrap tag at the shipped manifest version, an older one, or none."""
    from eksops.bootstrap.config import BootstrapConfig
    from eksops.bootstrap.service import TAG
    from eksops.kube.manifests import MANIFEST_VERSION

    cfg = BootstrapConfig.from_env(target.env("cluster_bootstrap"))
    eks = target.client("eks")
    current: list[str] = []
    outdated: list[dict[str, str]] = []
    untagged: list[str] = []
    ignored = 0
    for name in _clusters(eks):
        if not cfg.manages(name):
            ignored += 1
            continue
        tag = eks.describe_cluster(name=name)["cluster"].get("tags", {}).get(TAG)
        if tag == MANIFEST_VERSION:
            current.append(name)
        elif tag:
            outdated.append({"cluster": name, "version": tag})
        else:
            untagged.append(name)
    managed = len(current) + len(outdated)
    return {
        "managed": managed,
        "drift": len(outdated) + len(untagged),
        "summary": f"{len(current)} cluster(s) at manifest version {MANIFEST_VERSION}, {len(outdated)} older, "
        f"{len(untagged)} not bootstrapped yet; {ignored} outside BOOTSTRAP_CLUSTERS",
        "manifest_version": MANIFEST_VERSION,
        "current": current[:SAMPLE],
        "outdated": outdated[:SAMPLE],
        "not_bootstrapped": untagged[:SAMPLE],
    }


def _clusters(eks: Any) -> list[str]:
    return [c for page in eks.get_paginator("list_clusters").paginate() for c in page.get("clusters", [])]


def node_scaler(target: Target) -> dict[str, Any]:
    """Enrolled node groups, and whether each enrolled cluster has its reserved-CPU alarm."""
    from eksops.scaling.alarms import AlarmSettings
    from eksops.scaling.config import ScalerConfig
    from eksops.scaling.groups import discover
    from eksops_dev.uninstall import scaler_alarms

    env = target.env("node_scaler")
    groups = discover(target.client("autoscaling"), ScalerConfig.from_env(env))
    enrolled = [g for g in groups if g.enrolled]
    alarms = {a.cluster for a in scaler_alarms(target)}
    wants_alarms = bool(AlarmSettings.from_env(env).topic_arn)
    clusters = {g.cluster for g in enrolled}
    without = sorted(clusters - alarms) if wants_alarms else []
    stale = sorted(alarms - clusters)
    return {
        "managed": len(enrolled),
        "drift": len(without) + len(stale),
        "summary": f"{len(enrolled)} of {len(groups)} EKS node group(s) enrolled in {len(clusters)} cluster(s); "
        f"{len(alarms)} reserved-CPU alarm(s), {len(without)} enrolled cluster(s) without one, {len(stale)} stale",
        "enrolled_groups": [g.name for g in enrolled][:SAMPLE],
        "clusters_without_alarm": without[:SAMPLE],
        "stale_alarms": stale[:SAMPLE],
    }


def image_updater(target: Target) -> dict[str, Any]:
    """The IMAGE_MAP entries it keeps up to date (the config repository is read only when a push comes)."""
    from eksops.images.config import CONFIG_REPO_URL, UpdaterConfig

    env = target.env("image_updater")
    if not env.get(CONFIG_REPO_URL):
        return {"managed": 0, "drift": 0, "summary": f"not configured: no {CONFIG_REPO_URL} (ImageConfigRepoUrl)"}
    cfg = UpdaterConfig.from_env(env)
    return {
        "managed": len(cfg.images),
        "drift": 0,
        "summary": f"{len(cfg.images)} IMAGE_MAP entr{'y' if len(cfg.images) == 1 else 'ies'}; drift shows as the "
        "next push's commit (not read here)",
    }


def compliance_sweep(target: Target) -> dict[str, Any]:
    """Open findings the last sweep of each cluster stored in COMPLIANCE_TABLE (nothing when no table is set)."""
    from eksops.compliance.config import COMPLIANCE_CLUSTERS, COMPLIANCE_TABLE, ComplianceConfig
    from eksops.compliance.state import StateStore

    env = target.env("compliance_sweep")
    table = env.get(COMPLIANCE_TABLE) or ""
    if not table:
        return {"managed": 0, "drift": 0, "summary": f"no {COMPLIANCE_TABLE}: no findings are kept between sweeps"}
    store = StateStore(target.client("dynamodb"), table)
    cfg = ComplianceConfig.from_env(env)
    every = _clusters(target.client("eks"))
    clusters = [name for name in every if cfg.sweeps(name)]
    by_severity: Counter[str] = Counter()
    swept = 0
    for cluster in clusters:
        findings = store.load(cluster)
        swept += bool(findings)
        by_severity.update(f.severity for f in findings.values() if f.status == "open")
    total = sum(by_severity.values())
    return {
        "managed": len(clusters),
        "drift": total,
        "summary": f"{total} open finding(s) in {table} over {swept} swept cluster(s) of {len(clusters)}"
        + (f" ({', '.join(f'{n} {s}' for s, n in sorted(by_severity.items()))})" if total else "")
        + f"; {len(every) - len(clusters)} outside {COMPLIANCE_CLUSTERS}",
        "open_by_severity": dict(sorted(by_severity.items())),
    }


def notifier(target: Target) -> dict[str, Any]:
    """The Slack webhook secrets it posts with, and those eksops/slack/* secrets no setting names."""
    from eksops.notify.notifier import NotifierConfig

    cfg = NotifierConfig.from_env(target.env("notifier"))
    configured = {cfg.default_secret_arn} if cfg.default_secret_arn else set()
    configured |= {r.secret_arn for r in cfg.routes}
    secrets = [
        s["ARN"]
        for page in target.client("secretsmanager")
        .get_paginator("list_secrets")
        .paginate(Filters=[{"Key": "name", "Values": ["eksops/slack/"]}])
        for s in page.get("SecretList", [])
    ]
    missing = sorted(configured - set(secrets))
    return {
        "managed": len(configured),
        "drift": len(missing),
        "summary": f"{len(configured)} Slack webhook secret(s) configured, {len(missing)} of them not found; "
        f"{len(secrets)} eksops/slack/* secret(s) in the region",
        "missing_secrets": missing[:SAMPLE],
    }
