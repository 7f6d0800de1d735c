"""Sandbox state: a cluster as a platform team's would look a few weeks in (what `eksops sweep` and `eksops status`
find), and the world a sample event implies (what `eksops invoke` seeds, so that every sample does something).

``seed_cluster`` creates, on a running sandbox, an ACTIVE EKS cluster with a Kubernetes API (the emulator), a managed
node group whose role lacks the CloudWatch agent policy, Container Insights log groups that never expire, and a few
namespaces and workloads with the drift compliance rules look for (no default-deny policy, a privileged container,
a single replica without requests). Everything is created through the APIs, as a real team would have done it.

``plan`` and :class:`EventSeed` read one event and seed what it names, before the function runs: the log group a
CreateLogGroup made, the cluster (ACTIVE, with its Kubernetes API and roles) a CreateCluster made, the node group of a
CreateNodegroup, the Auto Scaling group of an alarm's cluster, the image an ECR push names and a config repository
holding an older tag of it, and for every function a Slack webhook (a local receiver). Names come from the event;
an event that names nothing (a schedule) finds the sandbox cluster ``demo``. Parameters the user set are never
replaced.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eksops.compliance.context import kube_request
from eksops_dev.template import REGION

SUBNETS = ["subnet-0a1b2c3d", "subnet-1a2b3c4d"]
SANDBOX_CLUSTER = "demo"  # the cluster of `eksops sweep` and `eksops status`, and of events that name none


def ensure_role(sandbox: Any, name: str, service: str) -> str:
    iam = sandbox.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _create(api: Any, obj: dict[str, Any]) -> None:
    api_version, kind = obj["apiVersion"], obj["kind"]
    plural = {"NetworkPolicy": "networkpolicies"}.get(kind, kind.lower() + "s")
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    status, body = kube_request(api, "POST", path, body=obj)
    if status >= 300 and status != 409:  # 409: there already (a second seed of the same sandbox)
        raise RuntimeError(f"seeding {kind} {obj['metadata']['name']}: HTTP {status} {body}")


def _deployment(namespace: str, name: str, containers: list[dict[str, Any]], replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def seed_cluster(sandbox: Any, name: str = "demo") -> list[str]:
    """Create cluster ``name`` with its drift on the sandbox; returns one line per thing seeded."""
    from kubernetes import config as k8s_config

    eks, logs = sandbox.client("eks"), sandbox.client("logs")
    if name not in sandbox.kube_clusters:
        sandbox.add_kube_cluster(name)
    existing = eks.list_clusters().get("clusters", [])
    if name not in existing:
        eks.create_cluster(
            name=name,
            version="1.31",
            roleArn=ensure_role(sandbox, f"{name}-cluster", "eks.amazonaws.com"),
            resourcesVpcConfig={"subnetIds": SUBNETS, "endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]},
        )
        eks.create_nodegroup(
            clusterName=name,
            nodegroupName="general",
            nodeRole=ensure_role(sandbox, f"{name}-nodes", "ec2.amazonaws.com"),
            subnets=SUBNETS,
            scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2},
        )
    for kind in ("application", "host", "dataplane", "performance"):
        group = f"/aws/containerinsights/{name}/{kind}"
        if not logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups"):
            logs.create_log_group(logGroupName=group)
    api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=name)  # type: ignore[no-untyped-call]
    for namespace in ("kube-system", "payments", "web"):
        labels = {"kubernetes.io/metadata.name": namespace}
        _create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}})
    requests = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    _create(
        api,
        _deployment(
            "payments",
            "payments-api",
            [{"name": "api", "image": "payments-api:1.4.2", "resources": requests}],
            replicas=2,
        ),
    )
    _create(
        api,
        _deployment(
            "web",
            "storefront",
            [{"name": "web", "image": "storefront:latest", "securityContext": {"privileged": True}}],
        ),
    )
    return [
        f"EKS cluster {name!r} (public endpoint open to 0.0.0.0/0) with node group 'general'"
        f" (role {name}-nodes without CloudWatchAgentServerPolicy)",
        f"Container Insights log groups of {name} that never expire",
        "namespaces payments and web without a default-deny NetworkPolicy or Pod Security labels",
        "deployment web/storefront: one replica, no resource requests, a privileged container on :latest",
    ]


# -- what a sample event implies (`eksops invoke`) ------------------------------------------------------------------

CONTAINER_INSIGHTS_KINDS = ("application", "host", "dataplane", "performance")
CLOUDTRAIL = "AWS API Call via CloudTrail"
SLACK_SECRET = "eksops/slack/sandbox"  # noqa: S105 - a secret's name; its value is the local receiver's URL
CONFIG_REPO = "gitops-config"
# When an event names no image tag (a pipeline stage, the schedule): the config repository holds CURRENT_TAG and the
# registry has NEW_TAG, as in the demo.
CURRENT_TAG, NEW_TAG = "1.42.0", "1.43.0"
NODE_MILLICORES = 3920  # allocatable CPU of a 4-core node on the EKS AMIs
NODES = 3
_VERSION = re.compile(r"^(v?)(\d+)\.(\d+)\.(\d+)$")


@dataclass
class EventSeed:
    """The sandbox state one event implies for one function: template parameters decided before the sandbox starts
    (``parameters``, defaults that --param and your environment override; ``environment``, function variables), then
    the AWS and Kubernetes state that :meth:`apply` creates once it runs. ``close()`` stops what it started."""

    function: str
    event: Any
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, dict[str, str]] = field(default_factory=dict)  # function -> variables
    notes: list[str] = field(default_factory=list)
    images: list[tuple[str, str, str | None]] = field(default_factory=list)  # (repository, tag, digest) to push
    fixed: dict[str, str] = field(default_factory=dict)  # parameters the user set: never the seed's
    slack: Any = None  # the local Slack webhook (SlackReceiver)
    git: Any = None  # the config repository's GitServer, when the seed serves one
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self._stack.close()

    def prepare(self, sandbox: Any) -> list[str]:
        """Before any function starts: the Slack webhook's secret, which the notifier reads (its ARN exists only once
        the sandbox runs)."""
        secret = sandbox.client("secretsmanager").create_secret(Name=SLACK_SECRET, SecretString=self.slack.url)
        if "SlackWebhookSecretArn" not in self.fixed:
            sandbox.set_parameters(SlackWebhookSecretArn=secret["ARN"])
        return [f"Slack webhook (a local receiver) in secret {SLACK_SECRET}", *self.notes]

    def apply(self, sandbox: Any) -> list[str]:
        """Create the state the event implies on the running sandbox; one line per thing seeded."""
        return _SEEDERS[self.function](sandbox, self) if self.function in _SEEDERS else []


def plan(function: str, event: Any, *, workdir: Path, fixed: Mapping[str, str]) -> EventSeed:
    """What ``function`` needs for ``event`` to act on: parameters the seed sets (none of ``fixed``, the ones the
    user set), and a config repository served for image_updater. Nothing runs yet but that Git server."""
    from eksops_dev.slack import SlackReceiver

    seed = EventSeed(function, event, fixed=dict(fixed))
    seed.slack = seed._stack.enter_context(SlackReceiver())
    if function == "image_updater":
        _plan_images(seed, workdir, fixed)
    elif function == "node_scaler":
        _plan_node_scaler_alarm(seed)
    return seed


# -- event shapes -------------------------------------------------------------------------------------------------


def _detail(event: Any) -> Mapping[str, Any]:
    detail = event.get("detail") if isinstance(event, Mapping) else None
    return detail if isinstance(detail, Mapping) else {}


def _cloudtrail(event: Any) -> tuple[str, str, Mapping[str, Any]] | None:
    """(service, operation, request parameters) of a successful CloudTrail call, or None."""
    if not isinstance(event, Mapping) or event.get("detail-type") != CLOUDTRAIL:
        return None
    detail = _detail(event)
    params = detail.get("requestParameters")
    if detail.get("errorCode") or not isinstance(params, Mapping):  # a failed call made nothing
        return None
    return str(detail.get("eventSource", "")).split(".", 1)[0], str(detail.get("eventName", "")), params


def _sweeps(event: Any, function: str) -> bool:
    """Whether ``event`` starts a sweep that names no object of its own (the function's schedule, a continuation of
    its sweep, a direct sweep of every cluster): the sweep finds the sandbox cluster's."""
    if not isinstance(event, Mapping):
        return False
    if event.get("detail-type") == "Scheduled Event" or event.get("sweep") == "all":
        return True
    detail = _detail(event)
    return event.get("source") == "eksops" and detail.get("function") == function and _swept_cluster(event) is None


def _alarms(event: Any) -> list[Mapping[str, Any]]:
    """The CloudWatch alarm notifications among an SNS event's records."""
    found = []
    records = event.get("Records") if isinstance(event, Mapping) else None
    for record in records if isinstance(records, list) else []:
        message = record.get("Sns", {}).get("Message") if isinstance(record, Mapping) else None
        try:
            alarm = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            continue
        if isinstance(alarm, Mapping) and "AlarmName" in alarm and "NewStateValue" in alarm:
            found.append(alarm)
    return found


def _alarm_cluster(alarm: Mapping[str, Any]) -> str | None:
    trigger = alarm.get("Trigger")
    dimensions = trigger.get("Dimensions", []) if isinstance(trigger, Mapping) else []
    return next((str(d.get("value")) for d in dimensions if d.get("name") == "ClusterName"), None)


def _swept_cluster(event: Any) -> str | None:
    """The one cluster a compliance sweep's event names (a continuation's checkpoint, a direct sweep), or None."""
    if not isinstance(event, Mapping):
        return None
    sweep = event.get("sweep")
    if isinstance(sweep, Mapping) and isinstance(sweep.get("cluster"), str):
        return str(sweep["cluster"])
    checkpoint = _detail(event).get("checkpoint")
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("cluster"), str):
        return str(checkpoint["cluster"])
    return None


def _role_name(arn: Any) -> str | None:
    return arn.rsplit("/", 1)[-1] if isinstance(arn, str) and ":role/" in arn else None


# -- building blocks ----------------------------------------------------------------------------------------------


def _log_groups(sandbox: Any, names: list[str]) -> list[str]:
    """Log groups that never expire (as created), unless there already."""
    logs, made = sandbox.client("logs"), []
    for name in names:
        if not logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups"):
            logs.create_log_group(logGroupName=name)
            made.append(name)
    return [f"log group {name} (never expires)" for name in made]


def _kube_api(sandbox: Any, name: str) -> Any:
    from kubernetes import config as k8s_config

    if name not in sandbox.kube_clusters:
        sandbox.add_kube_cluster(name)
    return k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=name)  # type: ignore[no-untyped-call]


def _namespaces(api: Any, names: tuple[str, ...]) -> None:
    for namespace in names:
        labels = {"kubernetes.io/metadata.name": namespace}
        _create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}})


def _request(client: Any, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudTrail call's request parameters that the API's model knows (CloudTrail may record others)."""
    members = client.meta.service_model.operation_model(operation).input_shape.members
    return {k: v for k, v in params.items() if k in members}


def _eks_cluster(sandbox: Any, name: str, request: Mapping[str, Any] | None = None) -> list[str]:
    """An ACTIVE EKS cluster ``name`` with its Kubernetes API (the emulator, with a new cluster's namespaces):
    created with ``request`` (a CreateCluster call's parameters) or with defaults."""
    eks = sandbox.client("eks")
    api = _kube_api(sandbox, name)
    _namespaces(api, ("default", "kube-system", "kube-public", "kube-node-lease"))
    if name in eks.list_clusters().get("clusters", []):
        return []
    params = _request(eks, "CreateCluster", request or {})
    role = _role_name(params.get("roleArn")) or f"{name}-cluster"
    params.update(name=name, roleArn=ensure_role(sandbox, role, "eks.amazonaws.com"))
    params.setdefault("resourcesVpcConfig", {"subnetIds": SUBNETS})
    params.setdefault("version", "1.31")
    eks.create_cluster(**params)
    return [f"EKS cluster {name!r} (ACTIVE, role {role}) with its Kubernetes API (emulated)"]


def _replay_eks(sandbox: Any, operation: str, params: Mapping[str, Any]) -> list[str]:
    """What an EKS CloudTrail call made, made again: the cluster (ACTIVE), or the node group or Fargate profile
    on its cluster, with the IAM roles the call names."""
    eks = sandbox.client("eks")
    cluster = str(params.get("name" if operation == "CreateCluster" else "clusterName") or "")
    if not cluster:
        return []
    if operation == "CreateCluster":
        return _eks_cluster(sandbox, cluster, params)
    seeded = _eks_cluster(sandbox, cluster)
    if operation == "CreateNodegroup":
        role = _role_name(params.get("nodeRole")) or f"{cluster}-nodes"
        request = {**_request(eks, operation, params), "nodeRole": ensure_role(sandbox, role, "ec2.amazonaws.com")}
        request.setdefault("subnets", SUBNETS)
        eks.create_nodegroup(**request)
        seeded.append(f"node group {params.get('nodegroupName')} of {cluster} (role {role})")
    elif operation == "CreateFargateProfile":
        role = _role_name(params.get("podExecutionRoleArn")) or f"{cluster}-fargate-pods"
        request = {
            **_request(eks, operation, params),
            "podExecutionRoleArn": ensure_role(sandbox, role, "eks-fargate-pods.amazonaws.com"),
        }
        eks.create_fargate_profile(**request)
        seeded.append(f"Fargate profile {params.get('fargateProfileName')} of {cluster} (role {role})")
    return seeded


# -- per function -------------------------------------------------------------------------------------------------


def _seed_log_retention(sandbox: Any, seed: EventSeed) -> list[str]:
    if _sweeps(seed.event, seed.function):  # the sandbox cluster's log groups, none with a retention yet
        return _log_groups(
            sandbox,
            [f"/aws/containerinsights/{SANDBOX_CLUSTER}/{k}" for k in CONTAINER_INSIGHTS_KINDS]
            + [f"/aws/eks/{SANDBOX_CLUSTER}/cluster"],
        )
    call = _cloudtrail(seed.event)
    group = call[2].get("logGroupName") if call is not None else None
    # CreateLogGroup made a group that never expires; DeleteRetentionPolicy left one
    return _log_groups(sandbox, [group]) if call and isinstance(group, str) and call[1] != "DeleteLogGroup" else []


def _seed_error_alarms(sandbox: Any, seed: EventSeed) -> list[str]:
    if _sweeps(seed.event, seed.function):  # the schedule reconciles every cluster's application log group
        return _log_groups(sandbox, [f"/aws/containerinsights/{SANDBOX_CLUSTER}/application"])
    call = _cloudtrail(seed.event)
    group = call[2].get("logGroupName") if call is not None else None
    if call is None or not isinstance(group, str):
        return []
    seeded = _log_groups(sandbox, [group])
    if call[1] == "DeleteLogGroup":  # the group had eksops' filter, alarm, dashboard and queries; now it is gone
        seeded = _error_resources(sandbox, group)
        sandbox.client("logs").delete_log_group(logGroupName=group)
        seeded.append(f"log group {group} deleted (as the call did)")
    return seeded


def _error_resources(sandbox: Any, group: str) -> list[str]:
    """What error_alarms keeps for the cluster of ``group``, made by its own code (as an earlier run would have)."""
    from eksops.config import CommonConfig
    from eksops.logs import ErrorAlarmsConfig, ErrorAlarmsService
    from eksops.logs.error_alarms import Summary, cluster_of
    from eksops.notify import Publisher

    cluster = cluster_of(group)
    if cluster is None:
        return []
    env = sandbox.function_env(sandbox.function("error_alarms"))
    common = replace(CommonConfig.from_env(env), dry_run=False)
    service = ErrorAlarmsService(
        ErrorAlarmsConfig.from_env(env),
        common,
        logs=sandbox.client("logs"),
        cloudwatch=sandbox.client("cloudwatch"),
        publisher=Publisher(sandbox.client("sns"), alerts_topic_arn=None, reports_topic_arn=None),
    )
    summary = Summary(dry_run=False)
    service.ensure(cluster, summary)
    kinds = sorted({c["kind"] for c in summary.changed})
    return [f"error_alarms' {', '.join(kinds)} of cluster {cluster} (as its earlier run made them)"]


def _seed_cluster_bootstrap(sandbox: Any, seed: EventSeed) -> list[str]:
    if _sweeps(seed.event, seed.function):  # the schedule reconciles every cluster
        return _eks_cluster(sandbox, SANDBOX_CLUSTER)
    call = _cloudtrail(seed.event)
    return _replay_eks(sandbox, call[1], call[2]) if call is not None and call[0] == "eks" else []


def _seed_compliance_sweep(sandbox: Any, seed: EventSeed) -> list[str]:
    if _sweeps(seed.event, seed.function):
        return seed_cluster(sandbox, SANDBOX_CLUSTER)
    cluster = _swept_cluster(seed.event)  # a continuation's or a direct sweep's one cluster
    return seed_cluster(sandbox, cluster) if cluster else []


def _seed_node_scaler(sandbox: Any, seed: EventSeed) -> list[str]:
    if _sweeps(seed.event, seed.function):  # the every-minute run forecasts every enrolled group
        return _scaling_group(sandbox, SANDBOX_CLUSTER)
    # an alarm that fired (one back to OK makes the scaler read nothing: nothing to seed)
    clusters = [c for a in _alarms(seed.event) if a.get("NewStateValue") == "ALARM" and (c := _alarm_cluster(a))]
    return [line for cluster in dict.fromkeys(clusters) for line in _scaling_group(sandbox, cluster)]


def _plan_node_scaler_alarm(seed: EventSeed) -> None:
    """The sample's alarm is named after the stack that raised it (``<stack>-scaling-<cluster>-cpu-reserved``): the
    sandbox's node_scaler takes that stack's prefix, so that it knows the alarm as its own."""
    from eksops.scaling.alarms import ALARM_SUFFIX, SCALER_ALARM_PREFIX

    for alarm in _alarms(seed.event):
        name, cluster = str(alarm.get("AlarmName", "")), _alarm_cluster(alarm)
        suffix = f"{cluster}{ALARM_SUFFIX}"
        if cluster and name.endswith(suffix) and len(name) > len(suffix):
            prefix = name[: -len(suffix)]
            seed.environment.setdefault("node_scaler", {})[SCALER_ALARM_PREFIX] = prefix
            seed.notes.append(f"node_scaler's {SCALER_ALARM_PREFIX} {prefix} (the stack that raised the alarm {name})")


def _scaling_group(sandbox: Any, cluster: str) -> list[str]:
    """An Auto Scaling group of ``cluster`` enrolled in node scaling, its nodes in Kubernetes nearly full and one pod
    waiting for room: demand above SCALER_TARGET_PERCENT, so the scaler grows the group."""
    group = f"{cluster}-general"
    sandbox.client("ec2").create_launch_template(
        LaunchTemplateName=group, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m7g.xlarge"}
    )
    autoscaling = sandbox.client("autoscaling")
    tags = {"eks:cluster-name": cluster, "eksops:scaling": "enabled", "eksops:scaling-autoscaler": "none"}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateName": group, "Version": "$Latest"},
        MinSize=NODES,
        MaxSize=4 * NODES,
        DesiredCapacity=NODES,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in tags.items()],
    )
    (described,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    api = _kube_api(sandbox, cluster)
    _namespaces(api, ("kube-system", "web"))
    per_node = int(NODE_MILLICORES * 0.97)
    for n, instance in enumerate(sorted(i["InstanceId"] for i in described["Instances"])):
        node = f"ip-10-0-1-{10 + n}.ec2.internal"
        _create(
            api,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node, "labels": {"eks.amazonaws.com/nodegroup": "general"}},
                "spec": {"providerID": f"aws:///{REGION}a/{instance}"},
                "status": {
                    "allocatable": {"cpu": f"{NODE_MILLICORES}m"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            },
        )
        _create(api, _pod(f"web-{n}", per_node, node))
    _create(api, _pod("web-pending", 1000, None))
    return [
        f"Auto Scaling group {group} of cluster {cluster}: {NODES} nodes of {NODE_MILLICORES}m, tagged "
        "eksops:scaling=enabled",
        f"pods requesting {per_node}m on each node (97 %) and one 1000m pod pending (Unschedulable)",
    ]


def _pod(name: str, millicores: int, node: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "web", "image": "web:1", "resources": {"requests": {"cpu": f"{millicores}m"}}}]
    }
    status: dict[str, Any] = {"phase": "Running"}
    if node:
        spec["nodeName"] = node
    else:
        status = {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "web"},
        "spec": spec,
        "status": status,
    }


def _plan_images(seed: EventSeed, workdir: Path, fixed: Mapping[str, str]) -> None:
    """image_updater's world: a config repository served on 127.0.0.1 whose kustomization holds an older tag of each
    repository the event names (the pipeline's own name for a pipeline stage; payments-api for the schedule), an
    IMAGE_MAP entry for each, and the image in ECR (pushed by :func:`_seed_image_updater`)."""
    from eksops_dev.gitserver import GitServer
    from eksops_dev.template import ACCOUNT

    detail = _detail(seed.event)
    if detail.get("pipeline") and detail.get("stage"):  # a CodePipeline stage: it built its repository's next tag
        repository, tags, digest = str(detail["pipeline"]), [NEW_TAG], None
        if "ImagePipelineStages" not in fixed:
            seed.parameters["ImagePipelineStages"] = json.dumps([f"{detail['pipeline']}/{detail['stage']}"])
    elif detail.get("repository-name"):  # an ECR push or scan: its tag(s), at its digest
        repository = str(detail["repository-name"])
        tags = (
            [str(detail["image-tag"])] if detail.get("image-tag") else [str(t) for t in detail.get("image-tags") or []]
        )
        tags, digest = tags or [NEW_TAG], detail.get("image-digest")
    else:  # the schedule: the demo's payments-api, one version behind the registry
        repository, tags, digest = "payments-api", [NEW_TAG], None
    seed.images += [(repository, tag, digest if isinstance(digest, str) else None) for tag in tags]
    current, path = _older(tags[0]), f"apps/{repository}/overlays/prod/kustomization.yaml"
    if "ImageMap" not in fixed:
        entry = {"repository": repository, "image": repository, "files": [path], "policy": "semver"}
        seed.parameters["ImageMap"] = json.dumps([entry])
    if "ImageConfigRepoUrl" in fixed:
        return
    served = workdir / "git"
    shutil.rmtree(served, ignore_errors=True)  # a fresh config repository every run
    seed.git = seed._stack.enter_context(GitServer(served))
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}"
    seed.parameters["ImageConfigRepoUrl"] = seed.git.create(
        CONFIG_REPO, {path: _kustomization(repository, current, uri)}
    )
    seed.notes.append(
        f"config repository {CONFIG_REPO} (bare, in {served / CONFIG_REPO}): {path} holds {repository} {current}"
    )


def _kustomization(image: str, tag: str, name: str) -> bytes:
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n  - ../../base\n"
        "images:\n"
        f"  - name: {image}\n"
        f"    newName: {name}\n"
        f'    newTag: "{tag}"\n'
    ).encode()


def _older(tag: str) -> str:
    """A version just below ``tag`` (1.43.0 -> 1.42.0, 2.0.0 -> 1.0.0); CURRENT_TAG for a tag that is no version."""
    match = _VERSION.match(tag)
    if match is None:
        return CURRENT_TAG
    v, parts = match.group(1), [int(p) for p in match.groups()[1:]]
    last = max((i for i, p in enumerate(parts) if p), default=None)
    if last is None:
        return CURRENT_TAG
    parts[last] -= 1
    return v + ".".join(map(str, parts))


def _seed_image_updater(sandbox: Any, seed: EventSeed) -> list[str]:
    from eksops_dev.ecr import image_manifest
    from eksops_dev.template import ACCOUNT

    ecr, seeded = sandbox.client("ecr"), []
    layers: dict[tuple[str, str | None], int] = {}  # one manifest per image: its tags share it
    for repository, tag, digest in seed.images:
        if repository not in {r["repositoryName"] for r in ecr.describe_repositories().get("repositories", [])}:
            ecr.create_repository(repositoryName=repository, imageScanningConfiguration={"scanOnPush": True})
        manifest = image_manifest(layers.setdefault((repository, digest or tag), len(layers) + 1))
        # moto takes the digest it is given (ECR checks it against the manifest): the event's own
        extra = {"imageDigest": digest} if digest else {}
        image = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag, **extra)["image"]
        pushed = image["imageId"]["imageDigest"]
        ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": pushed})  # scan on push
        seeded.append(f"ECR image {repository}:{tag} ({pushed[:19]}...), scanned on push")
    detail = _detail(seed.event)
    if detail.get("pipeline") and detail.get("execution-id"):
        pipeline, stage = str(detail["pipeline"]), str(detail.get("stage"))
        uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{pipeline}:{NEW_TAG}"
        sandbox.codepipeline_shim.record(
            pipeline,
            str(detail["execution-id"]),
            stage=stage,
            action="Build",
            variables={"IMAGE_URI": uri},
            revision="4f2a9c1e7b3d5a8f0c6e2b4d9a1f3c5e7b9d0a2c",
            revision_summary="payments: retry card charges once on timeout",
        )
        seeded.append(f"pipeline {pipeline} execution {detail['execution-id']}: stage {stage} exported IMAGE_URI {uri}")
    return seeded


_SEEDERS = {
    "log_retention": _seed_log_retention,
    "error_alarms": _seed_error_alarms,
    "cluster_bootstrap": _seed_cluster_bootstrap,
    "node_scaler": _seed_node_scaler,
    "image_updater": _seed_image_updater,
    "compliance_sweep": _seed_compliance_sweep,
}
