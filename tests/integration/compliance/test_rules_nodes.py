"""Node rules against moto over HTTP: managed node groups, self-managed Auto Scaling groups, EC2 instances and launch
templates, IAM roles; remediation through cluster_bootstrap's attach_policy."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from eksops.aws import client
from eksops.compliance.model import rules
from eksops_dev.moto_extras import add_aws_managed_policies
from tests.integration.compliance.conftest import ClusterUnderTest

POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"


def nodegroup(cluster: ClusterUnderTest, name: str, role: str | None = None, **params: Any) -> dict[str, Any]:
    return client("eks").create_nodegroup(  # type: ignore[no-any-return]
        clusterName=cluster.name,
        nodegroupName=name,
        nodeRole=role or cluster.role(service="ec2.amazonaws.com"),
        subnets=["subnet-1"],
        **params,
    )["nodegroup"]


def launch_template(metadata: dict[str, Any] | None = None) -> str:
    data = {"MetadataOptions": metadata} if metadata else {"InstanceType": "t3.medium"}
    name = f"lt-{uuid.uuid4().hex[:8]}"
    client("ec2").create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
    return name


def auto_scaling_group(name: str, tags: dict[str, str], minimum: int = 0) -> None:
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=minimum,
        MaxSize=4,
        DesiredCapacity=0,  # no instances: the metadata tests launch their own
        LaunchTemplate={"LaunchTemplateName": launch_template()},
        AvailabilityZones=["us-east-1a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in tags.items()],
    )


def instance(tags: dict[str, str], **metadata: Any) -> str:
    answer = client("ec2").run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        MetadataOptions=metadata,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )
    return str(answer["Instances"][0]["InstanceId"])


@pytest.fixture
def owned(cluster: ClusterUnderTest) -> dict[str, str]:
    """The tag that makes an instance or Auto Scaling group the cluster's."""
    return {f"kubernetes.io/cluster/{cluster.name}": "owned"}


# -- node-role-cloudwatch-policy ------------------------------------------------------------------------------


def test_node_role_cloudwatch_policy_compliant(cluster: ClusterUnderTest) -> None:
    add_aws_managed_policies(["CloudWatchAgentServerPolicy"])
    cluster.create_cluster()
    role = cluster.role("nodes", service="ec2.amazonaws.com")
    client("iam").attach_role_policy(RoleName="nodes", PolicyArn=POLICY)
    nodegroup(cluster, "a", role)
    nodegroup(cluster, "b", role)
    assert cluster.violations("node-role-cloudwatch-policy") == []


def test_node_role_cloudwatch_policy_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    role = cluster.role("nodes", service="ec2.amazonaws.com")
    nodegroup(cluster, "a", role)
    nodegroup(cluster, "b", role)
    [found] = cluster.violations("node-role-cloudwatch-policy")
    assert found.resource == "role/nodes"
    assert found.evidence == "node role of a, b lacks CloudWatchAgentServerPolicy"


def test_node_role_cloudwatch_policy_remediation(cluster: ClusterUnderTest) -> None:
    add_aws_managed_policies(["CloudWatchAgentServerPolicy"])
    cluster.create_cluster()
    nodegroup(cluster, "a", cluster.role("nodes", service="ec2.amazonaws.com"))
    rule = rules()["node-role-cloudwatch-policy"]
    [found] = cluster.violations(rule.id)

    cluster.common = replace(cluster.common, dry_run=True)
    assert rule.remediate(cluster.context(), found) == "would attach CloudWatchAgentServerPolicy to role nodes"
    assert client("iam").list_attached_role_policies(RoleName="nodes")["AttachedPolicies"] == []

    cluster.common = replace(cluster.common, dry_run=False)
    assert rule.remediate(cluster.context(), found) == "attached CloudWatchAgentServerPolicy to role nodes"
    attached = client("iam").list_attached_role_policies(RoleName="nodes")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [POLICY]
    assert cluster.violations(rule.id) == []
    assert rule.remediate(cluster.context(), found) == "CloudWatchAgentServerPolicy was already attached to role nodes"


# -- nodegroup-min-size ---------------------------------------------------------------------------------------


def test_nodegroup_min_size_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    nodegroup(cluster, "a", scalingConfig={"minSize": 2, "maxSize": 4, "desiredSize": 2})
    auto_scaling_group("self-managed", owned, minimum=3)
    auto_scaling_group("elsewhere", {"kubernetes.io/cluster/other": "owned"}, minimum=0)
    assert cluster.violations("nodegroup-min-size") == []


def test_nodegroup_min_size_non_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    nodegroup(cluster, "a", scalingConfig={"minSize": 2, "maxSize": 4, "desiredSize": 2})
    nodegroup(cluster, "b", scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 1})
    auto_scaling_group("self-managed", owned, minimum=0)
    found = {v.resource: v.evidence for v in cluster.violations("nodegroup-min-size", min_nodes=2)}
    assert found == {
        "nodegroup/b": "minSize 1 < 2 (COMPLIANCE_MIN_NODES); desired 1, max 4",
        "autoscaling-group/self-managed": "MinSize 0 < 2 (COMPLIANCE_MIN_NODES); desired 0, max 4",
    }
    assert {v.resource for v in cluster.violations("nodegroup-min-size", min_nodes=3)} == {
        "nodegroup/a",
        "nodegroup/b",
        "autoscaling-group/self-managed",
    }


# -- nodegroup-self-managed -----------------------------------------------------------------------------------


def test_nodegroup_self_managed_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    nodegroup(cluster, "a")
    auto_scaling_group("eks-a-1234", {**owned, "eks:nodegroup-name": "a"})  # a managed node group's own
    auto_scaling_group("elsewhere", {"kubernetes.io/cluster/other": "owned"})
    assert cluster.violations("nodegroup-self-managed") == []


def test_nodegroup_self_managed_non_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    auto_scaling_group("workers", owned)
    [found] = cluster.violations("nodegroup-self-managed")
    assert found.resource == "autoscaling-group/workers"
    assert found.evidence.startswith("self-managed Auto Scaling group with 0 instance(s), launch template lt-")


# -- node-imds-hop-limit --------------------------------------------------------------------------------------


def test_node_imds_hop_limit_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    instance(owned, HttpTokens="required", HttpPutResponseHopLimit=1)
    instance(owned, HttpPutResponseHopLimit=2, HttpEndpoint="disabled")  # no metadata service at all
    instance({"kubernetes.io/cluster/other": "owned"}, HttpPutResponseHopLimit=2)  # another cluster's
    nodegroup(cluster, "a", launchTemplate={"name": launch_template({"HttpTokens": "required"})})  # hop limit unset
    assert cluster.violations("node-imds-hop-limit") == []


def test_node_imds_hop_limit_non_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    bad = instance({**owned, "eks:nodegroup-name": "a"}, HttpTokens="required", HttpPutResponseHopLimit=2)
    instance({**owned, "eks:nodegroup-name": "a"}, HttpTokens="required", HttpPutResponseHopLimit=1)
    lone = instance({"aws:eks:cluster-name": cluster.name}, HttpTokens="required", HttpPutResponseHopLimit=3)
    template = launch_template({"HttpTokens": "required", "HttpPutResponseHopLimit": 2})
    nodegroup(cluster, "b", launchTemplate={"name": template, "version": "1"})
    found = {v.resource: v.evidence for v in cluster.violations("node-imds-hop-limit")}
    assert found == {
        "nodegroup/a": f"hop limit 2 on 1 of 2 instance(s) ({bad})",
        f"instance/{lone}": f"hop limit 3 on 1 of 1 instance(s) ({lone})",
        "nodegroup/b": f"launch template {template} version 1: hop limit 2",
    }


# -- node-imdsv2-optional -------------------------------------------------------------------------------------


def test_node_imdsv2_optional_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    instance(owned, HttpTokens="required")
    instance(owned, HttpTokens="optional", HttpEndpoint="disabled")
    nodegroup(cluster, "a", launchTemplate={"name": launch_template({"HttpPutResponseHopLimit": 1})})
    assert cluster.violations("node-imdsv2-optional") == []


def test_node_imdsv2_optional_non_compliant(cluster: ClusterUnderTest, owned: dict[str, str]) -> None:
    cluster.create_cluster()
    auto_scaling_group("workers", owned)
    optional = instance({**owned, "aws:autoscaling:groupName": "workers"}, HttpTokens="optional")
    template = launch_template({"HttpTokens": "optional"})
    nodegroup(cluster, "a", launchTemplate={"name": template})
    found = {v.resource: v.evidence for v in cluster.violations("node-imdsv2-optional")}
    assert found == {
        "autoscaling-group/workers": f"HttpTokens optional on 1 of 1 instance(s) ({optional})",
        "nodegroup/a": f"launch template {template} version 1: HttpTokens optional",
    }
