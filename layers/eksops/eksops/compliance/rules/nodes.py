"""Compliance rules about the cluster's nodes: node groups, their IAM role, Auto Scaling and instance metadata.

Where nodes are found (shared with the logs rules): managed node groups from EKS; EC2 instances tagged
``kubernetes.io/cluster/<cluster>`` (self-managed nodes, Karpenter) or ``aws:eks:cluster-name`` (managed nodes);
self-managed Auto Scaling groups are those tagged ``kubernetes.io/cluster/<cluster>`` (the tag EKS's node templates
and eksctl put there) that no managed node group owns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eksops.bootstrap.service import CLOUDWATCH_AGENT_POLICY, attach_policy, node_policy_arn
from eksops.compliance.context import ClusterContext
from eksops.compliance.model import Category, Rule, Severity, Violation, register

RUNNING = ("pending", "running")
SAMPLE = 5  # instance ids named in evidence


def _cluster_tag(ctx: ClusterContext) -> str:
    return f"kubernetes.io/cluster/{ctx.name}"


def cluster_instances(ctx: ClusterContext) -> list[dict[str, Any]]:
    """The cluster's pending and running EC2 instances (DescribeInstances, memoised), each once."""
    state = {"Name": "instance-state-name", "Values": list(RUNNING)}
    found: dict[str, dict[str, Any]] = {}
    for tag_filter in (
        {"Name": "tag-key", "Values": [_cluster_tag(ctx)]},
        {"Name": "tag:aws:eks:cluster-name", "Values": [ctx.name]},
    ):
        for reservation in ctx.aws_pages("ec2", "describe_instances", "Reservations", Filters=[tag_filter, state]):
            for instance in reservation.get("Instances") or []:
                found.setdefault(str(instance["InstanceId"]), instance)
    return [found[k] for k in sorted(found)]


def self_managed_groups(ctx: ClusterContext) -> list[dict[str, Any]]:
    """Auto Scaling groups tagged for the cluster that no managed node group owns."""
    managed = {
        str(g.get("name"))
        for ng in ctx.nodegroups()
        for g in (ng.get("resources") or {}).get("autoScalingGroups") or []
    }
    groups = ctx.aws_pages(
        "autoscaling",
        "describe_auto_scaling_groups",
        "AutoScalingGroups",
        Filters=[{"Name": "tag-key", "Values": [_cluster_tag(ctx)]}],
    )
    return [
        g
        for g in groups
        if g["AutoScalingGroupName"] not in managed
        and not any(t.get("Key") == "eks:nodegroup-name" for t in g.get("Tags") or [])
    ]


@register
class NodeRoleCloudWatchPolicy(Rule):
    """The roles of the managed node groups. Remediation attaches the policy through cluster_bootstrap's own
    attach_policy (one copy of that logic); it only adds a managed policy, so it cannot cut any access."""

    id = "node-role-cloudwatch-policy"
    title = f"Node role without {CLOUDWATCH_AGENT_POLICY}"
    severity = Severity.MEDIUM
    category = Category.NODES
    why = (
        "The CloudWatch agent (Container Insights metrics) and Fluent Bit (container logs) run on the nodes with the "
        "node role's credentials: without this policy they cannot write, and metrics, logs and the error alarm go "
        "silent."
    )
    fix = (
        f"aws iam attach-role-policy --role-name <node role> --policy-arn arn:aws:iam::aws:policy/"
        f"{CLOUDWATCH_AGENT_POLICY} (cluster_bootstrap does this for the node groups it sees; REMEDIATE does it too)."
    )
    reference = (
        "EKS BP: Observability > Container Insights (the agent's IAM permissions); eksops' cluster_bootstrap "
        "baseline (no hardeneks rule)"
    )
    adds = "checks every managed node group's role and attaches the policy when REMEDIATE lists the rule"
    iam_actions = (
        "eks:DescribeCluster",  # the partition of the policy ARN
        "eks:ListNodegroups",
        "eks:DescribeNodegroup",
        "iam:ListAttachedRolePolicies",
    )
    remediation_iam_actions = ("iam:ListAttachedRolePolicies", "iam:AttachRolePolicy")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        policy = node_policy_arn(ctx.partition)
        users: dict[str, list[str]] = defaultdict(list)
        for ng in ctx.nodegroups():
            if ng.get("nodeRole"):
                users[str(ng["nodeRole"])].append(str(ng["nodegroupName"]))
        for role_arn, nodegroups in sorted(users.items()):
            role = role_arn.rsplit("/", 1)[-1]
            attached = ctx.aws_pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=role)
            if policy not in {p.get("PolicyArn") for p in attached}:
                yield Violation(
                    f"role/{role}",
                    f"node role of {', '.join(sorted(nodegroups))} lacks {CLOUDWATCH_AGENT_POLICY}",
                    data={"role_arn": role_arn},
                )

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        role_arn = str(violation.data["role_arn"])
        role = role_arn.rsplit("/", 1)[-1]
        ctx.spend("iam:ListAttachedRolePolicies")
        if not ctx.dry_run:
            ctx.spend("iam:AttachRolePolicy")
        done = attach_policy(ctx.client("iam"), role_arn, node_policy_arn(ctx.partition), dry_run=ctx.dry_run)
        if not done:
            return f"{CLOUDWATCH_AGENT_POLICY} was already attached to role {role}"
        return f"{'would attach' if ctx.dry_run else 'attached'} {CLOUDWATCH_AGENT_POLICY} to role {role}"


@register
class NodegroupMinSize(Rule):
    """Managed node groups (scalingConfig.minSize) and self-managed Auto Scaling groups (MinSize) against
    COMPLIANCE_MIN_NODES (default 2). A group meant to scale to zero (batch, GPU) is accepted, not exempted."""

    id = "nodegroup-min-size"
    title = "Node group minimum size below the floor"
    severity = Severity.MEDIUM
    category = Category.NODES
    why = (
        "A group that may shrink below the floor (COMPLIANCE_MIN_NODES, default 2) can lose its only node to one "
        "instance or Availability Zone failure, and every replica of a workload scheduled there with it."
    )
    fix = (
        "Raise the minimum: aws eks update-nodegroup-config --cluster-name <cluster> --nodegroup-name <group> "
        "--scaling-config minSize=2,... (self-managed: aws autoscaling update-auto-scaling-group --min-size 2), "
        "or accept the finding for groups meant to scale to zero."
    )
    reference = "EKS BP: Reliability > EKS Data Plane (run nodes across Availability Zones); no hardeneks rule"
    adds = "a configurable floor for managed and self-managed groups"
    iam_actions = ("eks:ListNodegroups", "eks:DescribeNodegroup", "autoscaling:DescribeAutoScalingGroups")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        floor = ctx.settings.min_nodes
        for ng in ctx.nodegroups():
            scaling = ng.get("scalingConfig") or {}
            minimum = scaling.get("minSize")
            if minimum is not None and int(minimum) < floor:
                yield Violation(
                    f"nodegroup/{ng['nodegroupName']}",
                    f"minSize {minimum} < {floor} (COMPLIANCE_MIN_NODES); desired {scaling.get('desiredSize')}, "
                    f"max {scaling.get('maxSize')}",
                )
        for group in self_managed_groups(ctx):
            if int(group.get("MinSize", 0)) < floor:
                yield Violation(
                    f"autoscaling-group/{group['AutoScalingGroupName']}",
                    f"MinSize {group.get('MinSize')} < {floor} (COMPLIANCE_MIN_NODES); desired "
                    f"{group.get('DesiredCapacity')}, max {group.get('MaxSize')}",
                )


@register
class NodegroupSelfManaged(Rule):
    """Self-managed groups as found by ``self_managed_groups``. Nodes that need what managed node groups cannot give
    (Outposts, a lifecycle of their own) are accepted with a reason."""

    id = "nodegroup-self-managed"
    title = "Self-managed Auto Scaling group where a managed node group would do"
    severity = Severity.LOW
    category = Category.NODES
    why = (
        "Managed node groups drain nodes before replacing them, roll AMI and Kubernetes updates, and report health "
        "in EKS; self-managed groups leave each of those to the operator, and are skipped by eksops' bootstrap."
    )
    fix = (
        "Create a managed node group with the same launch template (custom AMIs, Spot and Bottlerocket are "
        "supported), move the workloads, then delete the Auto Scaling group; accept the finding where self-managed "
        "nodes are needed."
    )
    reference = "hardeneks: use_managed_nodegroups; EKS BP: Cluster Autoscaling > Configuring your Node Groups"
    adds = "reads the Auto Scaling groups from AWS (hardeneks reads node labels, so needs the Kubernetes API)"
    iam_actions = ("eks:ListNodegroups", "eks:DescribeNodegroup", "autoscaling:DescribeAutoScalingGroups")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for group in self_managed_groups(ctx):
            template = _asg_template(group)
            how = (
                f"launch template {template.get('LaunchTemplateName') or template.get('LaunchTemplateId')}"
                if template
                else f"launch configuration {group.get('LaunchConfigurationName') or '?'}"
            )
            yield Violation(
                f"autoscaling-group/{group['AutoScalingGroupName']}",
                f"self-managed Auto Scaling group with {len(group.get('Instances') or [])} instance(s), {how}",
            )


def _asg_template(group: Mapping[str, Any]) -> dict[str, Any]:
    mixed = (group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
    return dict(group.get("LaunchTemplate") or mixed.get("LaunchTemplateSpecification") or {})


# -- instance metadata ----------------------------------------------------------------------------------------


@dataclass
class _Metadata:
    """What one node group (or Karpenter node pool, or lone instance) exposes: the instances and launch template that
    break the rule, with the value seen."""

    resource: str
    bad_instances: list[str] = field(default_factory=list)
    instances: int = 0
    values: set[str] = field(default_factory=set)
    template: str | None = None  # "launch template <name> version <v>: <value>"


def _owner(instance: Mapping[str, Any]) -> str:
    tags = {t.get("Key"): t.get("Value") for t in instance.get("Tags") or []}
    if tags.get("eks:nodegroup-name"):
        return f"nodegroup/{tags['eks:nodegroup-name']}"
    if tags.get("aws:autoscaling:groupName"):
        return f"autoscaling-group/{tags['aws:autoscaling:groupName']}"
    if tags.get("karpenter.sh/nodepool"):
        return f"nodepool/{tags['karpenter.sh/nodepool']}"
    return f"instance/{instance['InstanceId']}"


def _template_ref(template_id: object, name: object) -> dict[str, str]:
    return {"LaunchTemplateId": str(template_id)} if template_id else {"LaunchTemplateName": str(name)}


def _templates(ctx: ClusterContext) -> list[tuple[str, dict[str, str], str]]:
    """(resource, launch template id or name, version) of the managed and self-managed groups that use one."""
    refs: list[tuple[str, dict[str, str], str]] = []
    for ng in ctx.nodegroups():
        lt = ng.get("launchTemplate") or {}
        if lt.get("id") or lt.get("name"):
            ref = _template_ref(lt.get("id"), lt.get("name"))
            refs.append((f"nodegroup/{ng['nodegroupName']}", ref, str(lt.get("version") or "$Default")))
    for group in self_managed_groups(ctx):
        spec = _asg_template(group)
        if spec.get("LaunchTemplateId") or spec.get("LaunchTemplateName"):
            ref = _template_ref(spec.get("LaunchTemplateId"), spec.get("LaunchTemplateName"))
            version = str(spec.get("Version") or "$Default")
            refs.append((f"autoscaling-group/{group['AutoScalingGroupName']}", ref, version))
    return refs


def _metadata_findings(ctx: ClusterContext, value: Callable[..., str | None]) -> list[_Metadata]:
    """Per node group: the instances and launch template whose metadata options ``value`` calls bad.

    ``value(options) -> str | None`` gives the offending value (e.g. "hop limit 2") of a MetadataOptions dict, None
    when it is fine. Instances are what pods can reach now; a launch template is what new nodes get. Only what a
    launch template states explicitly is judged (an absent option comes from the AMI or the account default, which
    the instances show)."""
    found: dict[str, _Metadata] = {}
    for instance in cluster_instances(ctx):
        entry = found.setdefault(_owner(instance), _Metadata(_owner(instance)))
        entry.instances += 1
        bad = value(instance.get("MetadataOptions") or {})
        if bad:
            entry.bad_instances.append(str(instance["InstanceId"]))
            entry.values.add(bad)
    for resource, ref, version in _templates(ctx):
        versions = ctx.aws("ec2", "describe_launch_template_versions", **ref, Versions=[version])
        for item in versions.get("LaunchTemplateVersions") or []:
            options = (item.get("LaunchTemplateData") or {}).get("MetadataOptions") or {}
            bad = value(options, explicit=True)
            if bad:
                entry = found.setdefault(resource, _Metadata(resource))
                name = item.get("LaunchTemplateName") or item.get("LaunchTemplateId")
                entry.template = f"launch template {name} version {item.get('VersionNumber')}: {bad}"
    return [m for m in found.values() if m.bad_instances or m.template]


def _evidence(entry: _Metadata) -> str:
    parts = []
    if entry.bad_instances:
        sample = ", ".join(entry.bad_instances[:SAMPLE]) + (" ..." if len(entry.bad_instances) > SAMPLE else "")
        parts.append(
            f"{'; '.join(sorted(entry.values))} on {len(entry.bad_instances)} of {entry.instances} instance(s) "
            f"({sample})"
        )
    if entry.template:
        parts.append(entry.template)
    return "; ".join(parts)


def _endpoint_on(options: Mapping[str, Any]) -> bool:
    return str(options.get("HttpEndpoint") or "enabled") != "disabled"


@register
class ImdsHopLimit(Rule):
    """Judges the running instances (the hop limit they have now) and the launch templates of the cluster's groups
    (explicit values only). An instance with the metadata endpoint disabled is compliant."""

    id = "node-imds-hop-limit"
    title = "Instance metadata reachable from pods (IMDS hop limit above 1)"
    severity = Severity.HIGH
    category = Category.NODES
    why = (
        "With a hop limit above 1, a pod (not on the host network) reaches the node's metadata service and takes "
        "the node role's credentials, whatever IRSA or Pod Identity gives the pod itself."
    )
    fix = (
        "Set HttpPutResponseHopLimit 1 and HttpTokens required in the node groups' launch template (MetadataOptions) "
        "and roll the nodes; for running instances: aws ec2 modify-instance-metadata-options --instance-id <id> "
        "--http-put-response-hop-limit 1 --http-tokens required. Pods that need the node's identity should use "
        "IRSA or Pod Identity instead."
    )
    reference = (
        "hardeneks: check_access_to_instance_profile; EKS BP: Security > Identity and Access Management > "
        "Restrict access to the instance profile assigned to the worker node"
    )
    adds = "also judges launch templates (what new nodes get) and reports per node group, not per instance"
    iam_actions = (
        "eks:ListNodegroups",
        "eks:DescribeNodegroup",
        "autoscaling:DescribeAutoScalingGroups",
        "ec2:DescribeInstances",
        "ec2:DescribeLaunchTemplateVersions",
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        def value(options: Mapping[str, Any], explicit: bool = False) -> str | None:
            limit = options.get("HttpPutResponseHopLimit")
            if limit is None and explicit:
                return None
            if _endpoint_on(options) and int(limit or 1) > 1:
                return f"hop limit {limit}"
            return None

        for entry in _metadata_findings(ctx, value):
            yield Violation(entry.resource, _evidence(entry))


@register
class ImdsV2Optional(Rule):
    """As node-imds-hop-limit: running instances and explicit launch template values; an absent HttpTokens on an
    instance counts as optional (EC2's default before IMDSv2-only AMIs and account defaults)."""

    id = "node-imdsv2-optional"
    title = "Nodes allow IMDSv1 (HttpTokens optional)"
    severity = Severity.MEDIUM
    category = Category.NODES
    why = (
        "IMDSv1 answers any unauthenticated GET, so a server-side request forgery in any workload on the node can "
        "read the node role's credentials; IMDSv2 needs a session token obtained with a PUT first."
    )
    fix = (
        "Set HttpTokens required in the launch template's MetadataOptions (AL2023 and Bottlerocket AMIs default to "
        "it) and roll the nodes; for running instances: aws ec2 modify-instance-metadata-options --instance-id <id> "
        "--http-tokens required."
    )
    reference = (
        "hardeneks: check_access_to_instance_profile; EKS BP: Security > Identity and Access Management > "
        "Restrict access to the instance profile assigned to the worker node"
    )
    adds = "a finding of its own, separate from the hop limit; launch templates judged too"
    iam_actions = ImdsHopLimit.iam_actions

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        def value(options: Mapping[str, Any], explicit: bool = False) -> str | None:
            tokens = options.get("HttpTokens")
            if tokens is None and explicit:
                return None
            if _endpoint_on(options) and str(tokens or "optional") == "optional":
                return "HttpTokens optional"
            return None

        for entry in _metadata_findings(ctx, value):
            yield Violation(entry.resource, _evidence(entry))
