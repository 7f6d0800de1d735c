"""`eksops uninstall`: remove what eksops created at run time, found by its ownership marks, before `sam delete`.

What the stack's functions create while they run is not in the CloudFormation stack, so `sam delete` leaves it.
Each capability's marks, from its own module:

* error_alarms: metric filters named FILTER_NAME / NAMESPACE_FILTER_NAME publishing to METRIC_NAMESPACE, alarms
  named by ``alarm_name`` tagged MANAGED_TAG_KEY=MANAGED_TAG_VALUE (or alarming on METRIC_NAMESPACE), dashboards whose
  body carries DASHBOARD_MARKER for this region, and the saved queries ``eksops/<cluster>/<QUERY_NAMES>``;
* node_scaler: reserved-CPU alarms (ALARM_SUFFIX, on ContainerInsights' METRIC) tagged with its MANAGED_TAG, the
  BOOKKEEPING_TAGS it writes on Auto Scaling groups, its headroom objects (labelled managed-by eksops);
* cluster_bootstrap: Kubernetes objects of its manifests labelled app.kubernetes.io/managed-by=eksops and written by
  no other field manager (eksops.kube.apply.delete_managed), the Pod Security labels where the PSA_ANNOTATION record
  still matches them, and the eksops:bootstrap cluster tag;
* compliance_sweep fixes things with the capabilities' own marks (above); its state table goes with the stack.

Left in place, and listed: what carries no mark of eksops' (the CloudWatchAgentServerPolicy attachment on node roles,
which bootstrap does not record, the observability add-on, the eksops:scaling enrolment tags you set), and settings
that are not resources (log group retention). Nothing without eksops' mark is touched. ``--dry-run`` lists only.
On the sandbox the command first seeds a cluster and runs the functions on it (bootstrap, error alarms, node scaler),
then uninstalls and scans again: the result shows what remains (nothing, unless something failed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from eksops_dev.cli import UsageError
from eksops_dev.status import SANDBOX_CLUSTER, Target, aws_target, note, sandbox_target
from eksops_dev.template import Template

SCALING_GROUP = f"{SANDBOX_CLUSTER}-general"


@dataclass
class Found:
    """One thing of eksops' own: what it is, and how to remove it (None: removed with others, e.g. Kubernetes)."""

    capability: str
    kind: str
    name: str
    cluster: str = ""
    remove: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if k != "remove" and v}


@dataclass(frozen=True)
class Left:
    """Something left in place, and why."""

    capability: str
    kind: str
    name: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class Result:
    found: list[Found] = field(default_factory=list)
    left: list[Left] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# -- error_alarms ----------------------------------------------------------------------------------------------


def error_alarm_resources(target: Target) -> list[Found]:
    """error_alarms' metric filters, alarms, dashboards and saved queries, by their marks."""
    return _error_filters(target) + _error_alarms(target) + _error_dashboards(target) + _error_queries(target)


def _error_filters(target: Target) -> list[Found]:
    from eksops.logs import error_alarms as ea

    logs = target.client("logs")
    found = []
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=ea.CONTAINER_INSIGHTS_PREFIX):
        for group in page.get("logGroups", []):
            name = group["logGroupName"]
            cluster = ea.cluster_of(name)
            if cluster is None:
                continue
            filters = logs.describe_metric_filters(logGroupName=name, filterNamePrefix=ea.FILTER_NAME)
            for item in filters.get("metricFilters", []):
                namespaces = {t.get("metricNamespace") for t in item.get("metricTransformations", [])}
                if item["filterName"] not in (ea.FILTER_NAME, ea.NAMESPACE_FILTER_NAME):
                    continue
                if namespaces == {ea.METRIC_NAMESPACE}:  # publishing to eksops' own metric namespace
                    remove = _call(logs.delete_metric_filter, logGroupName=name, filterName=item["filterName"])
                    found.append(
                        Found("error_alarms", "metric-filter", f"{name}:{item['filterName']}", cluster, remove)
                    )
    return found


def _error_alarms(target: Target) -> list[Found]:
    from eksops.logs import error_alarms as ea

    cloudwatch = target.client("cloudwatch")
    managed = {"Key": ea.MANAGED_TAG_KEY, "Value": ea.MANAGED_TAG_VALUE}
    found = []
    for alarm in _alarms(cloudwatch, ea.ALARM_PREFIX):
        name = alarm["AlarmName"]
        if not name.endswith(ea.ALARM_SUFFIX):
            continue
        # as error_alarms decides: tagged as its own, or (the tag removed by hand) on its metric namespace
        if alarm.get("Namespace") == ea.METRIC_NAMESPACE or managed in _tags(cloudwatch, alarm):
            cluster = name[len(ea.ALARM_PREFIX) : -len(ea.ALARM_SUFFIX)]
            remove = _call(cloudwatch.delete_alarms, AlarmNames=[name])
            found.append(Found("error_alarms", "alarm", name, cluster, remove))
    return found


def _error_dashboards(target: Target) -> list[Found]:
    from eksops.logs import error_alarms as ea

    cloudwatch = target.client("cloudwatch")
    marker = f"{ea.DASHBOARD_MARKER} region={target.region}"  # dashboards are global: this region's only
    found = []
    for page in cloudwatch.get_paginator("list_dashboards").paginate(DashboardNamePrefix=ea.DASHBOARD_PREFIX):
        for entry in page.get("DashboardEntries", []):
            name = entry["DashboardName"]
            if marker in cloudwatch.get_dashboard(DashboardName=name).get("DashboardBody", ""):
                remove = _call(cloudwatch.delete_dashboards, DashboardNames=[name])
                found.append(Found("error_alarms", "dashboard", name, name[len(ea.DASHBOARD_PREFIX) :], remove))
    return found


def _error_queries(target: Target) -> list[Found]:
    from eksops.logs import error_alarms as ea

    queries = ea.LogsQueryDefinitions(target.client("logs"))
    found = []
    for definition in queries.list(ea.QUERY_PREFIX):
        parts = definition.name.split("/")
        # only the names error_alarms gives: other queries saved under eksops/ are a person's
        if len(parts) == 3 and parts[2] in ea.QUERY_NAMES and definition.name == ea.query_name(parts[1], parts[2]):
            remove = _call(queries.delete, definition.id) if definition.id else None
            found.append(Found("error_alarms", "query", definition.name, parts[1], remove))
    return found


def _alarms(cloudwatch: Any, prefix: str | None = None) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"AlarmTypes": ["MetricAlarm"]}
    if prefix:
        kwargs["AlarmNamePrefix"] = prefix
    return [a for page in cloudwatch.get_paginator("describe_alarms").paginate(**kwargs) for a in page["MetricAlarms"]]


def _tags(cloudwatch: Any, alarm: dict[str, Any]) -> list[dict[str, str]]:
    return list(cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", []))


def _call(fn: Callable[..., object], *args: Any, **kwargs: Any) -> Callable[[], object]:
    return lambda: fn(*args, **kwargs)


# -- node_scaler ------------------------------------------------------------------------------------------------


def scaler_alarms(target: Target) -> list[Found]:
    """The scaler's reserved-CPU alarms: its suffix and metric, and its managed-by tag (whatever the stack's prefix)."""
    from eksops.scaling import alarms as sa

    cloudwatch = target.client("cloudwatch")
    found = []
    for alarm in _alarms(cloudwatch):
        name = alarm["AlarmName"]
        if not name.endswith(sa.ALARM_SUFFIX) or (alarm.get("Namespace"), alarm.get("MetricName")) != (
            sa.NAMESPACE,
            sa.METRIC,
        ):
            continue
        if sa.MANAGED_TAG in _tags(cloudwatch, alarm):
            cluster = next((d["Value"] for d in alarm.get("Dimensions", []) if d["Name"] == "ClusterName"), "")
            found.append(
                Found("node_scaler", "alarm", name, cluster, _call(cloudwatch.delete_alarms, AlarmNames=[name]))
            )
    return found


def scaler_group_tags(target: Target, result: Result) -> None:
    """The bookkeeping tags the scaler writes on Auto Scaling groups (the eksops:scaling enrolment tag is yours)."""
    from eksops.scaling.groups import BOOKKEEPING_TAGS, ENROLL_TAG

    autoscaling = target.client("autoscaling")
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate():
        for group in page.get("AutoScalingGroups", []):
            name = group["AutoScalingGroupName"]
            tags = {t["Key"]: t.get("Value", "") for t in group.get("Tags", [])}
            ours = sorted(set(tags) & set(BOOKKEEPING_TAGS))
            if ours:
                keys = [{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k} for k in ours]
                remove = _call(autoscaling.delete_tags, Tags=keys)
                result.found.append(Found("node_scaler", "asg-tags", f"{name}: {', '.join(ours)}", remove=remove))
            if ENROLL_TAG in tags:
                reason = "the enrolment tag is yours (eksops never writes it): remove it by hand if you like"
                result.left.append(Left("node_scaler", "asg-tag", f"{name}: {ENROLL_TAG}={tags[ENROLL_TAG]}", reason))


# -- cluster_bootstrap (and headroom): Kubernetes and the cluster tag ------------------------------------------


def clusters(target: Target) -> list[dict[str, Any]]:
    eks = target.client("eks")
    names = [c for page in eks.get_paginator("list_clusters").paginate() for c in page.get("clusters", [])]
    return [eks.describe_cluster(name=n)["cluster"] for n in names]


def kubernetes(target: Target, cluster: dict[str, Any], result: Result, *, dry_run: bool) -> None:
    """Pod Security labels eksops set (where its record still matches), then every object of eksops' manifests and
    headroom that carries its label and no other writer (delete_managed: dry-run asks the API server, dryRun=All)."""
    from eksops.kube import manifests
    from eksops.kube.apply import MANAGED_BY, delete_managed
    from eksops.scaling import headroom

    name = cluster["name"]
    region = str(cluster.get("arn", "::::").split(":")[3]) or target.region
    api = target.kube(name)
    namespaces = _list(api, "/api/v1/namespaces")
    key, value = MANAGED_BY
    for ns in namespaces:
        meta = ns["metadata"]
        record = (meta.get("annotations") or {}).get(manifests.PSA_ANNOTATION)
        if record is None or (meta.get("labels") or {}).get(key) == value:
            continue  # no record of eksops', or a namespace of eksops' own (deleted below)
        if not manifests.may_set_pod_security(meta):
            reason = f"its Pod Security labels changed since eksops set {record}: they are the owner's now"
            result.left.append(
                Left("cluster_bootstrap", "pod-security-labels", f"{name}: namespace/{meta['name']}", reason)
            )
            continue
        remove = _call(_remove_pod_security, api, meta["name"], record)
        result.found.append(
            Found("cluster_bootstrap", "pod-security-labels", f"namespace/{meta['name']} ({record})", name, remove)
        )
    docs = manifests.render_observability(name, region) + manifests.render_metrics_server(fargate=False)
    docs += manifests.render_fargate_logging(name, region)
    for ns in namespaces:
        ns_name = ns["metadata"]["name"]
        if ns_name not in manifests.PROTECTED_NAMESPACES:
            docs.append(manifests.default_deny(ns_name, egress=False))
    docs += headroom.base_objects()
    for deployment in _list(api, f"/apis/apps/v1/namespaces/{headroom.NAMESPACE}/deployments"):
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**deployment["metadata"]}})
    deleted, kept = delete_managed(api, docs, dry_run=dry_run)
    result.found += [Found("cluster_bootstrap", "kubernetes", ref, name) for ref in deleted]
    # Objects of eksops' names that are someone else's (a Helm release, an add-on) are reported, not removed.
    for ref in kept:
        result.left.append(Left("cluster_bootstrap", "kubernetes", f"{name}: {ref}", "not eksops' own"))


def _list(api: Any, path: str) -> list[dict[str, Any]]:
    from eksops.compliance.context import kube_request

    status, body = kube_request(api, "GET", path)
    if status == 404:
        return []
    if status >= 300:
        raise RuntimeError(f"GET {path}: HTTP {status}")
    return list((body or {}).get("items") or [])


def _remove_pod_security(api: Any, namespace: str, record: str) -> None:
    """A merge patch removing the Pod Security labels of the recorded modes and the record itself."""
    from eksops.compliance.context import kube_request
    from eksops.kube.manifests import PSA_ANNOTATION

    labels: dict[str, None] = {}
    for mode in (part.split("=", 1)[0] for part in record.split(",") if "=" in part):
        labels[f"pod-security.kubernetes.io/{mode}"] = None
        labels[f"pod-security.kubernetes.io/{mode}-version"] = None
    body = {"metadata": {"labels": labels, "annotations": {PSA_ANNOTATION: None}}}
    path = f"/api/v1/namespaces/{namespace}"
    status, _ = kube_request(api, "PATCH", path, body=body, content_type="application/merge-patch+json")
    if status >= 300:
        raise RuntimeError(f"PATCH {path}: HTTP {status}")


def bootstrap_aws(target: Target, cluster: dict[str, Any], result: Result) -> None:
    """The eksops:bootstrap tag and the stack's FargateLoggingPolicy on pod execution roles; the node roles'
    CloudWatchAgentServerPolicy and the add-on are listed, not touched."""
    from eksops.bootstrap.service import CLOUDWATCH_AGENT_POLICY, OBSERVABILITY_ADDON, TAG

    eks, iam = target.client("eks"), target.client("iam")
    name = cluster["name"]
    if TAG in (cluster.get("tags") or {}):
        remove = _call(eks.untag_resource, resourceArn=cluster["arn"], tagKeys=[TAG])
        result.found.append(Found("cluster_bootstrap", "cluster-tag", f"{TAG}={cluster['tags'][TAG]}", name, remove))
    roles = {
        eks.describe_nodegroup(clusterName=name, nodegroupName=ng)["nodegroup"]["nodeRole"].rsplit("/", 1)[-1]
        for page in eks.get_paginator("list_nodegroups").paginate(clusterName=name)
        for ng in page.get("nodegroups", [])
    }
    for role in sorted(roles):
        attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}
        if CLOUDWATCH_AGENT_POLICY in attached:
            result.left.append(
                Left(
                    "cluster_bootstrap",
                    "iam-attachment",
                    f"{name}: {CLOUDWATCH_AGENT_POLICY} on role {role}",
                    "attached by eksops or by you (eksops keeps no record of which): detach it by hand if eksops "
                    "added it and nothing else needs it",
                )
            )
    _fargate_logging_attachments(eks, iam, name, result)
    try:
        eks.describe_addon(clusterName=name, addonName=OBSERVABILITY_ADDON)
    except Exception:  # not installed (moto answers a bare 404 for the whole add-on API)
        return
    reason = "installed by eksops (BootstrapObservability=addon) or by you: delete it by hand if no longer wanted"
    result.left.append(Left("cluster_bootstrap", "eks-addon", f"{name}: {OBSERVABILITY_ADDON}", reason))


# The stack's FargateLoggingPolicy (CloudFormation names it <stack>-FargateLoggingPolicy-<suffix>), which
# cluster_bootstrap attaches to pod execution roles outside the stack. The policy
# is eksops' own, so its attachments are too; one left attached makes `sam delete` fail (IAM refuses to delete a
# policy still attached).
FARGATE_LOGGING_POLICY = "-FargateLoggingPolicy"


def _fargate_logging_attachments(eks: Any, iam: Any, cluster: str, result: Result) -> None:
    roles = set()
    for page in eks.get_paginator("list_fargate_profiles").paginate(clusterName=cluster):
        for profile in page.get("fargateProfileNames", []):
            described = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=profile)["fargateProfile"]
            roles.add(str(described["podExecutionRoleArn"]).rsplit("/", 1)[-1])
    listed = {(f.kind, f.name) for f in result.found}  # a role several clusters' profiles share is listed once
    for role in sorted(roles):
        for policy in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            arn, name = policy["PolicyArn"], f"{policy['PolicyName']} on role {role}"
            ours = FARGATE_LOGGING_POLICY in policy["PolicyName"] and ":aws:policy/" not in arn
            if ours and ("iam-attachment", name) not in listed:
                remove = _call(iam.detach_role_policy, RoleName=role, PolicyArn=arn)
                result.found.append(Found("cluster_bootstrap", "iam-attachment", name, cluster, remove))
                listed.add(("iam-attachment", name))


# -- the whole account ------------------------------------------------------------------------------------------


def scan(target: Target, *, dry_run: bool) -> Result:
    """Find (and unless ``dry_run`` remove) everything of eksops' own; list what is left in place and why.

    Kubernetes objects are removed while found (delete_managed); the rest is collected first, then removed.
    """
    result = Result()
    for cluster in clusters(target):
        try:
            kubernetes(target, cluster, result, dry_run=dry_run)
        except Exception as exc:  # one cluster out of reach must not stop the others; its tag stays with it
            result.errors.append(f"cluster {cluster['name']}: Kubernetes: {type(exc).__name__}: {exc}")
            continue
        bootstrap_aws(target, cluster, result)
    result.found += error_alarm_resources(target)
    result.found += scaler_alarms(target)
    scaler_group_tags(target, result)
    result.left.append(
        Left(
            "log_retention",
            "retention-policy",
            "log groups under a retention rule",
            "a retention is a setting of the log group, not a resource: removing it would make the logs never expire",
        )
    )
    if not dry_run:
        for item in result.found:
            if item.remove is None:
                continue
            try:
                item.remove()
            except Exception as exc:
                result.errors.append(f"{item.capability} {item.kind} {item.name}: {type(exc).__name__}: {exc}")
    return result


def run(template: Template, *, aws: bool, dry_run: bool, yes: bool, stdin: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin
    if aws and not dry_run and not yes and not stdin.isatty():
        raise UsageError("--aws removes resources from your account: add --yes to confirm, or --dry-run to list them")
    with aws_target(template, None) if aws else sandbox_target(template, prepare=populate) as target:
        if aws and not dry_run and not yes:
            planned = scan(target, dry_run=True)
            for item in planned.found:
                note(f"would remove {item.capability} {item.kind} {item.name}")
            sys.stderr.write(f"Remove these {len(planned.found)} item(s) from {target.where}, {target.region}? [y/N] ")
            sys.stderr.flush()
            if stdin.readline().strip().lower() not in ("y", "yes"):
                note("nothing removed")
                return 1
        result = scan(target, dry_run=dry_run)
        remaining = scan(target, dry_run=True).found if not dry_run and not aws else None
    payload: dict[str, Any] = {
        "where": target.where,
        "region": target.region,
        "dry_run": dry_run,
        "would_remove" if dry_run else "removed": [f.as_dict() for f in result.found],
        "left_in_place": [item.as_dict() for item in result.left],
        "errors": result.errors,
    }
    if remaining is not None:  # the sandbox scans again: what is still there (nothing, unless something failed)
        payload["remaining"] = [f.as_dict() for f in remaining]
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    if aws and not dry_run:
        note(
            "next: `sam delete --stack-name <your stack>` removes the stack itself (functions, topics, tables, "
            "roles); then run `eksops uninstall --aws` once more in case a scheduled run put something back "
            "meanwhile (docs/uninstall.md)"
        )
    return 1 if result.errors or remaining else 0


# -- the sandbox: something to uninstall ---------------------------------------------------------------------------


def populate(sandbox: Any) -> list[str]:
    """Run the functions on the seeded cluster as their schedules would: bootstrap, error alarms, node scaler (with an
    enrolled node group); returns one line per run."""
    from eksops_dev.dispatch import Dispatcher
    from eksops_dev.seed import ensure_role
    from eksops_dev.template import REGION

    sandbox.client("ec2").create_launch_template(
        LaunchTemplateName=SCALING_GROUP, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m7g.xlarge"}
    )
    tags = {"eks:cluster-name": SANDBOX_CLUSTER, "eksops:scaling": "enabled", "eksops:scaling-autoscaler": "none"}
    sandbox.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=SCALING_GROUP,
        LaunchTemplate={"LaunchTemplateName": SCALING_GROUP, "Version": "$Latest"},
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=1,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in tags.items()],
    )
    # a Fargate profile, whose pod execution role bootstrap gives the stack's FargateLoggingPolicy
    pod_role = ensure_role(sandbox, f"{SANDBOX_CLUSTER}-fargate-pods", "eks-fargate-pods.amazonaws.com")
    sandbox.client("eks").create_fargate_profile(
        clusterName=SANDBOX_CLUSTER,
        fargateProfileName="batch",
        podExecutionRoleArn=pod_role,
        selectors=[{"namespace": "batch"}],
    )
    log_path = sandbox.workdir / "functions.log"
    dispatcher = Dispatcher(sandbox, log=open(log_path, "a", encoding="utf-8"))  # noqa: SIM115 - the dispatcher closes it
    lines = []
    try:
        for function in ("cluster_bootstrap", "error_alarms", "node_scaler"):
            runs = [i for i in dispatcher.fire_schedule(function) if i.function == function]
            ok = all(i.ok for i in runs)
            lines.append(f"ran {function} on its schedule: {'ok' if ok else 'failed: ' + str(runs[-1].error)}")
    finally:
        dispatcher.close()
    return [*lines, f"function logs in {log_path}"]
