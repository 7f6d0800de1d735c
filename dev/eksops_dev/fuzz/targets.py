"""The one list of fuzzed functions: each one's samples, generated shapes, allowed outcomes and world.

A new function joins the fuzz test (tests/integration/test_fuzz.py) and benchmarks/fuzz.py by adding one
``Target`` to ``TARGETS``; a meta-test fails while a folder under functions/ has none.

A target's world is what its valid events act on, armed in the shared sandbox (``arm``), or served beside it
(``prepare``: image_updater's Git server); ``snapshot`` reads it back over HTTP (moto, the logs shim), from the EKS
shim's request count, the Slack receiver and the Git server's refs; ``rearm`` undoes what an accepted event did.
Everything named here is what the samples in events/ name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from eksops_dev.ecr import image_manifest
from eksops_dev.fuzz import strategies
from eksops_dev.fuzz.harness import Harness
from eksops_dev.template import ACCOUNT, REGION

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
CLUSTER = "prod-eu"  # the cluster every sample names
APPLICATION_GROUP = f"/aws/containerinsights/{CLUSTER}/application"
HOST_GROUP = f"/aws/containerinsights/{CLUSTER}/host"

Snapshot = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One function under fuzz. ``accepted`` returns a violation for an accepted event, or None."""

    function: str  # the folder under functions/ and events/
    shapes: Callable[[], st.SearchStrategy[Any]]  # generated events of the function's source family
    arm: Callable[[Harness], None]
    snapshot: Callable[[Harness], Snapshot]
    rearm: Callable[[Harness, Snapshot], None]  # given the snapshot that differed from the armed one
    accepted: Callable[[Harness, Any, Snapshot, Snapshot], str | None] = lambda *_: None
    # Failures a valid event may end in, in this world (none today: every world is healthy).
    allowed_errors: frozenset[str] = frozenset()
    # Valid samples that change nothing in this world (the sanity test expects every other one to act).
    inert_samples: frozenset[str] = frozenset()
    # Template parameters the world is deployed with (the one sandbox merges every target's).
    parameters: Mapping[str, str] = field(default_factory=dict)
    # Before the sandbox starts: a world outside moto (a server, entered with ``Harness.enter``); returns more
    # template parameters (where that server is).
    prepare: Callable[[Harness], Mapping[str, str]] = lambda h: {}

    def samples(self, *, unmatched: bool | None = None) -> dict[str, Any]:
        """This function's samples by case name ("unmatched/x" for those its rules must not route to it)."""
        folder = EVENTS / self.function
        found = {}
        if unmatched in (None, False):
            found.update({p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))})
            # direct invocations (compliance_sweep's on-demand runs): no rule routes them, the handler takes them
            found.update({f"direct/{p.stem}": json.loads(p.read_text()) for p in sorted(folder.glob("direct/*.json"))})
        if unmatched in (None, True):
            found.update(
                {f"unmatched/{p.stem}": json.loads(p.read_text()) for p in sorted(folder.glob("unmatched/*.json"))}
            )
        return found

    def events(self) -> st.SearchStrategy[Any]:
        """Mutated samples (this function's, sometimes another's), generated shapes and arbitrary JSON."""
        return _events(self.function)


@functools.cache
def _events(function: str) -> st.SearchStrategy[Any]:
    own = target(function)
    others = [event for t in TARGETS if t is not own for event in t.samples().values()]
    return strategies.events(list(own.samples().values()), others, own.shapes())


# -- log_retention ---------------------------------------------------------------------------------------------------


def _retentions(h: Harness) -> dict[str, int | None]:
    logs = h.sandbox.client("logs")
    return {
        g["logGroupName"]: g.get("retentionInDays")
        for page in logs.get_paginator("describe_log_groups").paginate()
        for g in page["logGroups"]
    }


def _arm_log_groups(h: Harness) -> None:
    logs = h.sandbox.client("logs")
    existing = _retentions(h)
    for name in (APPLICATION_GROUP, HOST_GROUP):
        if name not in existing:
            logs.create_log_group(logGroupName=name)


def _retention_snapshot(h: Harness) -> Snapshot:
    return {"retention": _retentions(h), "published": h.published()}


def _retention_rearm(h: Harness, now: Snapshot) -> None:
    armed = h.armed["log_retention"]["retention"]
    logs = h.sandbox.client("logs")
    for name, days in now["retention"].items():
        if name not in armed:
            logs.delete_log_group(logGroupName=name)
        elif days != armed[name]:
            if armed[name] is None:
                logs.delete_retention_policy(logGroupName=name)
            else:
                logs.put_retention_policy(logGroupName=name, retentionInDays=armed[name])
    if now["published"]:
        h.purge_deliveries()


# -- error_alarms ----------------------------------------------------------------------------------------------------


def _error_alarms_snapshot(h: Harness) -> Snapshot:
    logs, cloudwatch = h.sandbox.client("logs"), h.sandbox.client("cloudwatch")
    return {
        "filters": sorted(
            (f["logGroupName"], f["filterName"], f["filterPattern"])
            for page in logs.get_paginator("describe_metric_filters").paginate()
            for f in page["metricFilters"]
        ),
        "alarms": {
            a["AlarmName"]: str(a.get("AlarmConfigurationUpdatedTimestamp"))
            for page in cloudwatch.get_paginator("describe_alarms").paginate()
            for a in page["MetricAlarms"]
        },
        "dashboards": {
            d["DashboardName"]: str(d.get("LastModified"))
            for page in cloudwatch.get_paginator("list_dashboards").paginate()
            for d in page["DashboardEntries"]
        },
        "queries": {q["name"]: q["lastModified"] for q in logs.describe_query_definitions()["queryDefinitions"]},
        "published": h.published(),
    }


def _error_alarms_rearm(h: Harness, now: Snapshot) -> None:
    armed = h.armed["error_alarms"]
    logs, cloudwatch = h.sandbox.client("logs"), h.sandbox.client("cloudwatch")
    for group, name, _pattern in set(now["filters"]) - set(armed["filters"]):
        logs.delete_metric_filter(logGroupName=group, filterName=name)
    if extra := sorted(now["alarms"].keys() - armed["alarms"].keys()):
        cloudwatch.delete_alarms(AlarmNames=extra)
    if extra := sorted(now["dashboards"].keys() - armed["dashboards"].keys()):
        cloudwatch.delete_dashboards(DashboardNames=extra)
    if now["queries"].keys() - armed["queries"].keys():
        for query in logs.describe_query_definitions()["queryDefinitions"]:
            if query["name"] not in armed["queries"]:
                logs.delete_query_definition(queryDefinitionId=query["queryDefinitionId"])
    if now["published"]:
        h.purge_deliveries()


# -- cluster_bootstrap -----------------------------------------------------------------------------------------------
# prod-eu exists and is CREATING (the sandbox's EKS shim reports it so): a valid event reads its status, and stops
# there. A reachable, ACTIVE cluster would make every accepted event a full bootstrap against the Kubernetes
# emulator (1 to 3 s each, slower as its request journal grows): tests/integration/bootstrap covers that path.
# Here the shim counts every request EKS receives, so a rejected event that reached EKS at all is seen: validation
# comes first (a 300 KB cluster name once went to DescribeCluster).


def _role(h: Harness, name: str, service: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    iam = h.sandbox.client("iam")
    return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _arm_cluster(h: Harness) -> None:
    h.sandbox.client("eks").create_cluster(
        name=CLUSTER,
        roleArn=_role(h, f"{CLUSTER}-fuzz-cluster", "eks.amazonaws.com"),
        resourcesVpcConfig={"subnetIds": ["subnet-0a1b2c3d", "subnet-1a2b3c4d"]},
    )
    shim = h.sandbox.eks_shim
    shim.creating.add(CLUSTER)
    h.state["eks_requests"] = 0
    forward = shim.rewrite  # called once for every request the shim forwards to moto

    def counted(method: str, path: str, status: int, body: bytes) -> bytes:
        h.state["eks_requests"] += 1
        return forward(method, path, status, body)  # type: ignore[no-any-return]

    shim.rewrite = counted


def _bootstrap_snapshot(h: Harness) -> Snapshot:
    return {"eks_requests": h.state["eks_requests"], "published": h.published()}


def _bootstrap_rearm(h: Harness, now: Snapshot) -> None:
    h.state["eks_requests"] = 0
    if now["published"]:
        h.purge_deliveries()


# -- notifier --------------------------------------------------------------------------------------------------------


def _idempotency_items(h: Harness) -> list[dict[str, Any]]:
    table = h.sandbox.refs["IdempotencyTable"]
    return list(h.sandbox.client("dynamodb").scan(TableName=table, ProjectionExpression="id").get("Items", []))


def _notifier_snapshot(h: Harness) -> Snapshot:
    return {"slack_posts": h.slack.attempts, "idempotency_records": len(_idempotency_items(h))}


def _notifier_rearm(h: Harness, _now: Snapshot) -> None:
    ddb, table = h.sandbox.client("dynamodb"), h.sandbox.refs["IdempotencyTable"]
    for item in _idempotency_items(h):
        ddb.delete_item(TableName=table, Key={"id": item["id"]})
    h.slack.received.clear()
    h.slack.attempts = 0


def _delivered_once(h: Harness, result: Any, before: Snapshot, after: Snapshot) -> str | None:
    """Any SNS record is delivered as text: one post to Slack, the result says so. A batch from the reports queue
    (every report bound for the one webhook the harness configures) is one digest: one post, and its partial batch
    response leaves no record to retry."""
    if isinstance(result, Mapping) and "batchItemFailures" in result:
        posted = result["batchItemFailures"] == []
    else:
        posted = isinstance(result, Mapping) and result.get("posted") is True
    posts = after["slack_posts"] - before["slack_posts"]
    if not posted or posts != 1:
        return f"accepted but not delivered once: {posts} post(s), result {result!r:.300}"
    return None


# -- node_scaler -----------------------------------------------------------------------------------------------------
# An enrolled node group of prod-eu (no other autoscaler). The cluster's Kubernetes API is not reachable from the
# sandbox (no kubeconfig context) and Container Insights has no data, so a scheduled run measures no demand and
# changes no capacity; what it does change is the cluster's reserved-CPU alarm (created) and the report. The sample
# alarm names the stack "eksops", not the sandbox's: a refusal, reported. tests/integration/scaling covers scaling.
SCALING_GROUP = f"{CLUSTER}-general"


def _arm_node_group(h: Harness) -> None:
    h.sandbox.client("ec2").create_launch_template(
        LaunchTemplateName="fuzz-nodes", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m7g.xlarge"}
    )
    tags = {"eks:cluster-name": CLUSTER, "eksops:scaling": "enabled", "eksops:scaling-autoscaler": "none"}
    h.sandbox.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=SCALING_GROUP,
        LaunchTemplate={"LaunchTemplateName": "fuzz-nodes", "Version": "$Latest"},
        MinSize=1,
        MaxSize=10,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in tags.items()],
    )


def _scaling_alarms(h: Harness) -> list[str]:
    from eksops_dev.sandbox import STACK

    alarms = h.sandbox.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{STACK}-scaling-")["MetricAlarms"]
    return sorted(a["AlarmName"] for a in alarms)


def _scaler_records(h: Harness) -> list[dict[str, Any]]:
    return [item for item in _idempotency_items(h) if "node-scaler" in item["id"]["S"]]


def _scaler_snapshot(h: Harness) -> Snapshot:
    (group,) = h.sandbox.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[SCALING_GROUP])[
        "AutoScalingGroups"
    ]
    return {
        "desired": group["DesiredCapacity"],
        "tags": sorted((t["Key"], t["Value"]) for t in group["Tags"]),
        "alarms": _scaling_alarms(h),
        "idempotency_records": len(_scaler_records(h)),
        "published": h.published(),
    }


def _scaler_rearm(h: Harness, now: Snapshot) -> None:
    armed = h.armed["node_scaler"]
    autoscaling = h.sandbox.client("autoscaling")
    if now["desired"] != armed["desired"]:
        autoscaling.set_desired_capacity(AutoScalingGroupName=SCALING_GROUP, DesiredCapacity=armed["desired"])
    added = [key for key, _ in now["tags"] if key not in dict(armed["tags"])]
    if added:
        autoscaling.delete_tags(
            Tags=[{"ResourceId": SCALING_GROUP, "ResourceType": "auto-scaling-group", "Key": key} for key in added]
        )
    if now["alarms"]:
        h.sandbox.client("cloudwatch").delete_alarms(AlarmNames=now["alarms"])
    ddb, table = h.sandbox.client("dynamodb"), h.sandbox.refs["IdempotencyTable"]
    for item in _scaler_records(h):
        ddb.delete_item(TableName=table, Key={"id": item["id"]})
    if now["published"]:
        h.purge_deliveries()


# -- image_updater ---------------------------------------------------------------------------------------------------
# The config repository is a real Git repository served over smart HTTP on 127.0.0.1 (eksops_dev.gitserver), started
# before the sandbox so that ImageConfigRepoUrl names it. Its kustomization names payments-api at 1.42.0. ECR (moto)
# holds payments-api 1.42.0 and 1.43.0, the latter under the samples' digest (PutImage's imageDigest) and scanned
# (moto reports one HIGH finding: under the CRITICAL gate); the CodePipeline shim holds the samples' execution of
# payments-api/Build, which exported that image. So each valid sample commits 1.43.0: a push judges the pushed tag,
# a scan and a stage reconcile payments-api, the schedule every entry. ``rearm`` moves the branch back to the armed
# commit (the Git server's reset: no client can) and drops the function's idempotency records.
IMAGE_REPOSITORY = "payments-api"
CONFIG_REPO = "config"
CONFIG_BRANCH = "main"
IMAGE_FILE = "apps/payments/kustomization.yaml"
ARMED_TAG = "1.42.0"
KUSTOMIZATION = (
    "# payments: production overlay\n"
    "resources:\n  - ../base\n"
    "images:\n"
    "  - name: payments-api  # the API\n"
    f"    newTag: {ARMED_TAG}\n"
    "  - name: sidecar\n    newTag: 0.3.0\n"
)
IMAGE_MAP = [
    {
        "repository": IMAGE_REPOSITORY,
        "image": IMAGE_REPOSITORY,
        "files": [IMAGE_FILE],
        "policy": "semver",
        "constraint": ">=1.4,<2",
    }
]


def _image_sample(case: str) -> dict[str, Any]:
    return json.loads((EVENTS / "image_updater" / f"{case}.json").read_text())  # type: ignore[no-any-return]


def _serve_config_repo(h: Harness) -> Mapping[str, str]:
    from eksops_dev.gitserver import GitServer

    git = h.enter(GitServer(h.workdir / "git"))
    h.state["git"] = git
    return {"ImageConfigRepoUrl": git.create(CONFIG_REPO, {IMAGE_FILE: KUSTOMIZATION.encode()}, branch=CONFIG_BRANCH)}


def _arm_images(h: Harness) -> None:
    push, stage = _image_sample("ecr_image_push")["detail"], _image_sample("pipeline_stage_succeeded")["detail"]
    tag, digest = push["image-tag"], push["image-digest"]
    ecr = h.sandbox.client("ecr")
    ecr.create_repository(repositoryName=IMAGE_REPOSITORY)
    ecr.put_image(repositoryName=IMAGE_REPOSITORY, imageManifest=image_manifest(1), imageTag=ARMED_TAG)
    ecr.put_image(repositoryName=IMAGE_REPOSITORY, imageManifest=image_manifest(2), imageTag=tag, imageDigest=digest)
    ecr.start_image_scan(repositoryName=IMAGE_REPOSITORY, imageId={"imageDigest": digest})
    h.sandbox.codepipeline_shim.record(
        stage["pipeline"],
        stage["execution-id"],
        stage=stage["stage"],
        action="Image",
        variables={"IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{IMAGE_REPOSITORY}:{tag}@{digest}"},
        revision="8d2c1f0e9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
    )


def _updater_records(h: Harness) -> list[dict[str, Any]]:
    return [item for item in _idempotency_items(h) if "image-updater" in item["id"]["S"]]


def _images_snapshot(h: Harness) -> Snapshot:
    """What an event may change: the config repository's refs, the function's idempotency records, the messages
    it published. (ECR is only read: the function's role may not write it.)"""
    return {
        "refs": h.state["git"].refs(CONFIG_REPO),
        "idempotency_records": len(_updater_records(h)),
        "published": h.published(),
    }


def _images_rearm(h: Harness, now: Snapshot) -> None:
    branch = f"refs/heads/{CONFIG_BRANCH}"
    armed = h.armed["image_updater"]["refs"][branch]
    if now["refs"].get(branch) != armed:
        h.state["git"].reset(CONFIG_REPO, armed, branch=CONFIG_BRANCH)
    ddb, table = h.sandbox.client("dynamodb"), h.sandbox.refs["IdempotencyTable"]
    for item in _updater_records(h):
        ddb.delete_item(TableName=table, Key={"id": item["id"]})
    if now["published"]:
        h.purge_deliveries()


def _committed_only_the_tag(h: Harness, result: Any, before: Snapshot, after: Snapshot) -> str | None:
    """A commit is one commit on the armed tip that changes the image's tag, and not another byte, to the one tag
    this world allows: the registry's scanned payments-api 1.43.0 (1.42.0 is older, and no other tag exists)."""
    branch = f"refs/heads/{CONFIG_BRANCH}"
    head, armed = after["refs"].get(branch), before["refs"][branch]
    if head == armed:
        return None
    git = h.state["git"]
    commit = git.log(CONFIG_REPO, CONFIG_BRANCH)[0]
    if [p.decode() for p in commit.parents] != [armed]:
        return f"accepted and committed {head} on {[p.decode() for p in commit.parents]}, not one commit on {armed}"
    text = git.read(CONFIG_REPO, IMAGE_FILE, commit=head).decode()
    old, new = KUSTOMIZATION.splitlines(keepends=True), text.splitlines(keepends=True)
    changed = [(a, b) for a, b in zip(old, new, strict=False) if a != b]
    tag_only = len(old) == len(new) and len(changed) == 1 and changed[0][0] == f"    newTag: {ARMED_TAG}\n"
    if not tag_only or not changed[0][1].startswith("    newTag: "):
        return f"accepted and committed more than the tag: {text!r:.500}"
    allowed = _image_sample("ecr_image_push")["detail"]["image-tag"]
    if changed[0][1] != f"    newTag: {allowed}\n":
        return f"accepted and committed {changed[0][1].strip()!r}, not the registry's scanned {allowed}"
    return None


# -- compliance_sweep ------------------------------------------------------------------------------------------------
# The schedule's fan-out lists the clusters (prod-eu, which cluster_bootstrap's world keeps CREATING in the EKS shim)
# and puts one continuation per cluster on the bus: the witness queue sees it. A continuation or an on-demand run for
# prod-eu reads its status and stops there (a cluster being created is not swept; tests/integration/compliance sweeps
# real clusters). As for cluster_bootstrap, the EKS shim's request count is part of the world (every accepted sample
# reads EKS, and a rejected event must not have reached it); ``rearm`` puts the count back for the other targets.


def _compliance_items(h: Harness) -> int:
    table = h.sandbox.refs["ComplianceStateTable"]
    return int(h.sandbox.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


def _compliance_snapshot(h: Harness) -> Snapshot:
    return {"eks_requests": h.state["eks_requests"], "published": h.published(), "state_items": _compliance_items(h)}


def _compliance_rearm(h: Harness, now: Snapshot) -> None:
    h.state["eks_requests"] = h.armed["compliance_sweep"]["eks_requests"]
    if now["published"]:
        h.purge_deliveries()
    if now["state_items"]:
        ddb, table = h.sandbox.client("dynamodb"), h.sandbox.refs["ComplianceStateTable"]
        for page in ddb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="#c, finding", ExpressionAttributeNames={"#c": "cluster"}
        ):
            for item in page["Items"]:
                ddb.delete_item(TableName=table, Key=item)


TARGETS: tuple[Target, ...] = (
    Target(
        "log_retention",
        strategies.eventbridge_shapes,
        _arm_log_groups,
        _retention_snapshot,
        _retention_rearm,
        # No sample is inert: the continuation's checkpoint lists the two armed groups as handled already, so its part
        # changes no group, but as the sweep's last part it reports the tally its checkpoint carries.
        # The quota's 5 puts/s would add 200 ms to every accepted event that puts twice: moto has no quota.
        parameters={"RetentionPutRate": "100"},
        # A well-formed continuation whose checkpoint counts errors of earlier parts ends the sweep failed (the
        # documented way a sweep with failures reaches the failure path), whatever this part did.
        allowed_errors=frozenset({"PartialFailure"}),
    ),
    Target(
        "error_alarms",
        strategies.eventbridge_shapes,
        _arm_log_groups,
        _error_alarms_snapshot,
        _error_alarms_rearm,
    ),
    Target(
        "cluster_bootstrap",
        strategies.eventbridge_shapes,
        _arm_cluster,
        _bootstrap_snapshot,
        _bootstrap_rearm,
    ),
    Target(
        "node_scaler",
        lambda: st.one_of(strategies.eventbridge_shapes(), strategies.sns_shapes()),  # its schedule and its topic
        _arm_node_group,
        _scaler_snapshot,
        _scaler_rearm,
        inert_samples=frozenset({"reserved_cpu_ok"}),  # an alarm going back to OK is no reason to scale
    ),
    Target(
        "notifier",
        strategies.sns_shapes,
        lambda h: None,  # the harness configures the Slack webhook (a secret) for every function
        _notifier_snapshot,
        _notifier_rearm,
        accepted=_delivered_once,
    ),
    Target(
        "image_updater",
        strategies.image_shapes,
        _arm_images,
        _images_snapshot,
        _images_rearm,
        accepted=_committed_only_the_tag,
        parameters={
            "ImageMap": json.dumps(IMAGE_MAP),
            "ImagePipelineStages": json.dumps(["payments-api/Build"]),
        },
        prepare=_serve_config_repo,
    ),
    Target(
        "compliance_sweep",
        # its schedule and continuations, and on-demand payloads ({"sweep": ...}, direct invocations)
        lambda: st.one_of(strategies.eventbridge_shapes(), strategies.on_demand_shapes()),
        lambda h: None,  # prod-eu exists (cluster_bootstrap's world), and the eks_requests count it keeps
        _compliance_snapshot,
        _compliance_rearm,
    ),
)


def target(function: str) -> Target:
    for t in TARGETS:
        if t.function == function:
            return t
    raise KeyError(f"no fuzz target {function!r}; known: {[t.function for t in TARGETS]}")
