"""What the compliance rules really send, against what they declare and what operators grant.

One cluster with a bit of everything (moto and the Kubernetes emulator over HTTP): node groups, a self-managed
group, a Fargate profile, log groups, an ECR image, namespaces, workloads, RBAC bindings, autoscalers. Each rule's
check then runs in a context of its own, and its remediation too where it has one, while the AWS calls (botocore's
events on eksops' session) and the Kubernetes requests (the emulator's journal) are recorded:

- every AWS call is among the rule's ``iam_actions`` (``remediation_iam_actions`` for remediate);
- every Kubernetes request is among its ``kube_permissions`` (``remediation_kube_permissions``), and the RBAC file
  operators apply (deploy/kubernetes/eksops-compliance-rbac.yaml) allows it, object names included: the read role
  for checks, the read and remediate roles together for remediations.

tests/unit/compliance/test_registry.py compares the declarations with template.yaml and the RBAC file; this test
keeps the declarations true.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from eksops.aws import RateLimiter, client
from eksops.bootstrap.config import BootstrapConfig
from eksops.compliance.context import ClusterContext
from eksops.compliance.model import KubePermission, Rule, rules
from eksops.logs import ErrorAlarmsConfig, ErrorAlarmsService, RetentionConfig
from eksops.notify import Publisher
from eksops_dev.ecr import image_manifest
from eksops_dev.moto_extras import add_aws_managed_policies
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.logs.test_error_alarms import MemoryQueries
from tests.unit.compliance.test_registry import RBAC_FILE, READ_ROLE, REMEDIATE_ROLE
from tests.unit.kube.test_rbac import allows

# Calls the context makes for every rule (the cluster's endpoint, region and account; eksops' own principal), which
# need no declaration: DescribeCluster is the function's own (template.yaml grants it), GetCallerIdentity needs no
# permission at all.
CONTEXT_CALLS = {"eks:DescribeCluster", "sts:GetCallerIdentity"}
DISCOVERY = re.compile(r"^/(version|openapi/.*|api|apis)(/[^/]+){0,2}/?$")
ACCOUNT, REGION = "123456789012", "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# (API group, resource, verb, name or None for a request of objects of any name): one authorization check.
Need = tuple[str, str, str, str | None]


# -- recording ----------------------------------------------------------------------------------------------------


@contextmanager
def aws_calls() -> Iterator[list[str]]:
    """The AWS operations made through eksops' clients in the block, as IAM actions ("eks:DescribeCluster")."""
    from eksops.aws.clients import SERVICES

    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(f"{model.service_model.service_name}:{model.name}")

    emitters = [client(service).meta.events for service in sorted(SERVICES)]  # each client's own copy
    for events in emitters:
        events.register("before-call", record, unique_id="compliance-permissions-test")
    try:
        yield seen
    finally:
        for events in emitters:
            events.unregister("before-call", unique_id="compliance-permissions-test")


def kube_needs(requests: list[Any]) -> Iterator[Need]:
    """The authorization checks the API server makes for the emulator's requests (discovery is everyone's)."""
    for request in requests:
        path = str(request.url.path)
        method = str(getattr(request.method, "value", request.method)).upper()
        if DISCOVERY.match(path):
            continue
        group, resource, name = _target(path)
        if method == "GET":
            yield group, resource, "get" if name else "list", name
        elif method == "PATCH":
            yield group, resource, "patch", name
            if str(request.action).lower().endswith("create"):  # the apply created the object
                yield group, resource, "create", name
        elif method == "POST":
            body = request.data if isinstance(request.data, dict) else {}
            yield group, resource, "create", (body.get("metadata") or {}).get("name")
        else:
            yield group, resource, method.lower(), name


def _target(path: str) -> tuple[str, str, str | None]:
    """(group, resource, name) of a resource URL, also for types the emulator does not serve (its 404)."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]  # /namespaces/<ns>/<resource>[/<name>]
    return group, rest[0], rest[1] if len(rest) > 1 else None


def declared(permissions: tuple[KubePermission, ...]) -> set[tuple[str, str, str]]:
    return {(p.api_group, p.resource, verb) for p in permissions for verb in p.verbs}


def role_rules(name: str) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(RBAC_FILE.read_text())
    (role,) = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == name]
    return list(role["rules"])


def granted_by(role: list[dict[str, Any]], need: Need) -> bool:
    group, resource, verb, name = need
    if name is None:  # any name: only a rule without resourceNames allows it
        return allows([r for r in role if not r.get("resourceNames")], group, resource, verb, "")
    return allows(role, group, resource, verb, name)


# -- the world ------------------------------------------------------------------------------------------------------


def iam_role(cluster: ClusterUnderTest, name: str, service: str) -> str:
    return cluster.role(f"{cluster.name}-{name}", service=service)


@pytest.fixture
def world(cluster: ClusterUnderTest, aws: str) -> ClusterUnderTest:
    """A cluster where most rules find something, so that each sends the requests its findings take."""
    add_aws_managed_policies(["CloudWatchAgentServerPolicy"])
    cluster.create_cluster()
    ec2, eks, logs, ecr = client("ec2"), client("eks"), client("logs"), client("ecr")
    template = f"{cluster.name}-nodes"
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2}},
    )
    eks.create_nodegroup(
        clusterName=cluster.name,
        nodegroupName="general",
        nodeRole=iam_role(cluster, "nodes", "ec2.amazonaws.com"),
        subnets=["subnet-1"],
        scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1},
        launchTemplate={"name": template},
    )
    owned = {f"kubernetes.io/cluster/{cluster.name}": "owned"}
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=f"{cluster.name}-self-managed",
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateName": template},
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in owned.items()],
    )
    ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        MetadataOptions={"HttpTokens": "optional", "HttpPutResponseHopLimit": 2},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in owned.items()]}],
    )
    eks.create_fargate_profile(
        clusterName=cluster.name,
        fargateProfileName="serverless",
        podExecutionRoleArn=iam_role(cluster, "pods", "eks-fargate-pods.amazonaws.com"),
        selectors=[{"namespace": "serverless"}],
    )
    logs.create_log_group(logGroupName=f"/aws/containerinsights/{cluster.name}/application")
    logs.create_log_group(logGroupName=f"/aws/eks/{cluster.name}/cluster")
    ecr.create_repository(repositoryName="cart", imageTagMutability="MUTABLE")
    digest = ecr.put_image(repositoryName="cart", imageManifest=image_manifest(1), imageTag="1.0")["image"]["imageId"]
    ecr.start_image_scan(repositoryName="cart", imageId={"imageDigest": digest["imageDigest"]})

    cluster.namespace("shop")
    cluster.namespace("serverless")
    cluster.namespace("aws-observability")  # Fargate's logging namespace, without its ConfigMap
    risky = {
        "name": "app",
        "image": f"{REGISTRY}/cart:1.0",
        "securityContext": {"privileged": True, "allowPrivilegeEscalation": True},
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}],
        "volumeMounts": [{"name": "docker", "mountPath": "/var/run/docker.sock"}],
    }
    spec = {
        "containers": [risky, {"name": "debug", "image": "busybox:latest"}],
        "hostNetwork": True,
        "volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}],
    }
    labels = {"app": "cart"}
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        body: dict[str, Any] = {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        }
        if kind != "DaemonSet":
            body["replicas"] = 1
        cluster.kube_create(
            {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "cart", "namespace": "shop"}, "spec": body}
        )
    cluster.kube_create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug", "namespace": "shop"},
            "spec": spec,
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "imageID": f"{REGISTRY}/cart@x"}]},
        }
    )
    cluster.kube_create(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-web", "namespace": "serverless"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]},
        }
    )
    cluster.kube_create(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 3,
            },
        }
    )
    cluster.kube_create(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        }
    )
    rbac = "rbac.authorization.k8s.io"
    cluster.kube_create(
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "everything"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        }
    )
    for kind, name, role, subject in (
        ("ClusterRoleBinding", "alice-admin", "cluster-admin", {"kind": "User", "name": "alice"}),
        ("ClusterRoleBinding", "ops-everything", "everything", {"kind": "Group", "name": "ops"}),
        ("RoleBinding", "anonymous-view", "view", {"kind": "User", "name": "system:anonymous"}),
    ):
        meta = {"name": name, **({"namespace": "shop"} if kind == "RoleBinding" else {})}
        cluster.kube_create(
            {
                "apiVersion": f"{rbac}/v1",
                "kind": kind,
                "metadata": meta,
                "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": rbac, **subject}],
            }
        )
    cluster.kube_create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}}
    )
    cluster.kube_create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-0-1.ec2.internal"}})

    def error_alarms() -> ErrorAlarmsService:
        return ErrorAlarmsService(
            ErrorAlarmsConfig(),
            cluster.common,
            logs=client("logs"),
            cloudwatch=client("cloudwatch"),
            publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=None),
            queries=MemoryQueries(),  # saved queries: not emulated by moto (the port's own test covers the API)
            filter_limiter=RateLimiter(1000),
            alarm_limiter=RateLimiter(1000),
            describe_limiter=RateLimiter(1000),
        )

    # bootstrap opts every namespace in to the default deny here, so its remediation has something to do
    bootstrap = BootstrapConfig.from_env({"BOOTSTRAP_DENY_NAMESPACES": '["*"]'})
    cluster.tools_extra.update(error_alarms=error_alarms, retention=RetentionConfig.from_env({}), bootstrap=bootstrap)
    return cluster


def run(cluster: ClusterUnderTest, action: Callable[[ClusterContext], Any]) -> tuple[Any, list[str], list[Need]]:
    """``action`` in a fresh context (nothing memoised from another rule): its result, AWS calls, Kubernetes needs."""
    ctx = cluster.context()
    journal = cluster.emulator
    start = len(list(journal))
    with aws_calls() as calls:
        result = action(ctx)
    return result, calls, list(kube_needs(list(journal)[start:]))


# -- the tests ------------------------------------------------------------------------------------------------------


def test_every_check_sends_only_what_its_rule_declares_and_the_read_role_allows(world: ClusterUnderTest) -> None:
    read = role_rules(READ_ROLE)
    wrong: dict[str, list[str]] = {}
    sent_kube = sent_aws = 0
    for rule_id, rule in sorted(rules().items()):
        _, calls, needs = run(world, lambda ctx, rule=rule: list(rule.check(ctx)))
        sent_aws += len(calls)
        sent_kube += len(needs)
        problems = [f"AWS {c} undeclared" for c in sorted(set(calls) - set(rule.iam_actions) - CONTEXT_CALLS)]
        problems += [
            f"Kubernetes {n[:3]} undeclared"
            for n in sorted(set(needs), key=str)
            if n[:3] not in declared(rule.kube_permissions)
        ]
        problems += [f"{READ_ROLE} denies {n}" for n in sorted(set(needs), key=str) if not granted_by(read, n)]
        if problems:
            wrong[rule_id] = problems
    assert not wrong, json.dumps(wrong, indent=1)
    assert sent_aws > 30 and sent_kube > 30, (sent_aws, sent_kube)  # the world made the rules read


def remediable() -> list[Rule]:
    return [rule for rule in rules().values() if rule.remediable]


@pytest.mark.parametrize("rule_id", sorted(r.id for r in remediable()))
def test_every_remediation_sends_only_what_it_declares_and_the_roles_allow(
    world: ClusterUnderTest, rule_id: str
) -> None:
    rule = rules()[rule_id]
    both = role_rules(READ_ROLE) + role_rules(REMEDIATE_ROLE)
    violations = list(rule.check(world.context()))
    assert violations, f"the world gives {rule_id} nothing to remediate: the test would prove nothing"
    failures: list[str] = []

    def remediate_all(ctx: ClusterContext) -> None:
        for violation in violations:
            try:
                rule.remediate(ctx, violation)
            except Exception as exc:  # what was sent until then is still checked
                failures.append(f"{type(exc).__name__}: {exc}")

    _, calls, needs = run(world, remediate_all)
    assert not failures, failures
    allowed_aws = set(rule.remediation_iam_actions) | CONTEXT_CALLS
    assert not set(calls) - allowed_aws, f"{rule_id} remediation calls {sorted(set(calls) - allowed_aws)} undeclared"
    mine = declared(rule.remediation_kube_permissions) | declared(rule.kube_permissions)
    assert not {n[:3] for n in needs} - mine, f"{rule_id} remediation sends {sorted({n[:3] for n in needs} - mine)}"
    denied = sorted({n for n in needs if not granted_by(both, n)}, key=str)
    assert not denied, f"{RBAC_FILE.name} would deny {rule_id}'s remediation: {denied}"
    assert calls or needs, f"{rule_id} remediated without a single call"
    # and it did fix: the check finds nothing left
    assert list(rule.check(world.context())) == [], f"{rule_id} still finds something after remediation"


def test_the_request_parsing_can_fail() -> None:
    assert _target("/api/v1/namespaces") == ("", "namespaces", None)
    assert _target("/api/v1/namespaces/shop") == ("", "namespaces", "shop")
    assert _target("/apis/apps/v1/namespaces/shop/deployments/cart") == ("apps", "deployments", "cart")
    assert _target("/apis/batch/v1/cronjobs") == ("batch", "cronjobs", None)
    read = role_rules(READ_ROLE)
    assert not granted_by(read, ("", "configmaps", "get", "other"))
    assert not granted_by(read, ("", "configmaps", "list", None))
    assert granted_by(read, ("", "configmaps", "get", "aws-logging"))
