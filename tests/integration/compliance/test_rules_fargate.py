"""Fargate rules against moto's Fargate profiles and the Kubernetes emulator over HTTP; remediation through
cluster_bootstrap's Fargate logging manifests and server-side apply."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from eksops.aws import client
from eksops.compliance.context import kube_request
from eksops.compliance.model import rules
from tests.integration.compliance.conftest import ClusterUnderTest


def profile(cluster: ClusterUnderTest, name: str, *selectors: dict[str, Any]) -> None:
    client("eks").create_fargate_profile(
        clusterName=cluster.name,
        fargateProfileName=name,
        podExecutionRoleArn=cluster.role(service="eks-fargate-pods.amazonaws.com"),
        subnets=["subnet-1"],
        selectors=list(selectors),
    )


def network_policy(cluster: ClusterUnderTest, namespace: str, name: str) -> None:
    cluster.kube_create(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
    )


def get(cluster: ClusterUnderTest, path: str) -> Any:
    status, body = kube_request(cluster.api(), "GET", path)
    return body if status == 200 else None


@pytest.fixture
def fargate(cluster: ClusterUnderTest) -> ClusterUnderTest:
    cluster.create_cluster()
    return cluster


# -- fargate-network-policy -----------------------------------------------------------------------------------


def test_fargate_network_policy_compliant(fargate: ClusterUnderTest) -> None:
    for namespace in ("shop", "batch"):
        fargate.namespace(namespace)
    network_policy(fargate, "shop", "deny-all")
    assert fargate.violations("fargate-network-policy") == []  # no Fargate profile at all
    profile(fargate, "jobs", {"namespace": "batch*"})
    assert fargate.violations("fargate-network-policy") == []  # the policy's namespace runs on nodes


def test_fargate_network_policy_non_compliant(fargate: ClusterUnderTest) -> None:
    fargate.namespace("shop", annotations={"owner": "shop-team"})
    fargate.namespace("web")
    network_policy(fargate, "shop", "deny-all")
    network_policy(fargate, "shop", "allow-web")
    network_policy(fargate, "web", "deny-all")
    profile(fargate, "apps", {"namespace": "sh?p", "labels": {"tier": "api"}})
    found = fargate.violations("fargate-network-policy")
    assert [(v.resource, v.evidence) for v in found] == [
        (
            "namespace/shop",
            "NetworkPolicy allow-web, deny-all not enforced on Fargate: profile apps (pods labelled tier=api)",
        )
    ]
    assert found[0].namespace == "shop" and found[0].annotations == {"owner": "shop-team"}


# -- fargate-logging-configmap --------------------------------------------------------------------------------


def test_fargate_logging_configmap_compliant(fargate: ClusterUnderTest) -> None:
    assert fargate.violations("fargate-logging-configmap") == []  # no Fargate profile: nothing to log
    profile(fargate, "apps", {"namespace": "shop"})
    fargate.namespace("aws-observability", labels={"aws-observability": "enabled"})
    fargate.kube_create(  # the operator's own configuration is as good as eksops'
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "aws-logging", "namespace": "aws-observability"},
            "data": {"output.conf": "[OUTPUT]\n    Name cloudwatch_logs\n"},
        }
    )
    assert fargate.violations("fargate-logging-configmap") == []


def test_fargate_logging_configmap_non_compliant(fargate: ClusterUnderTest) -> None:
    profile(fargate, "apps", {"namespace": "shop"})
    [found] = fargate.violations("fargate-logging-configmap")
    assert found.resource == "configmap/aws-observability/aws-logging"
    assert found.evidence == (
        "Fargate profiles but no namespace aws-observability and no ConfigMap aws-observability/aws-logging"
    )
    fargate.namespace("aws-observability")  # without the label Fargate looks for
    [found] = fargate.violations("fargate-logging-configmap")
    assert found.evidence == (
        "Fargate profiles but no label aws-observability=enabled on namespace aws-observability and no ConfigMap "
        "aws-observability/aws-logging"
    )


def test_fargate_logging_configmap_remediation(fargate: ClusterUnderTest) -> None:
    profile(fargate, "apps", {"namespace": "shop"})
    rule = rules()["fargate-logging-configmap"]
    [found] = fargate.violations(rule.id)

    fargate.common = replace(fargate.common, dry_run=True)
    assert rule.remediate(fargate.context(), found) == (
        "would apply: created Namespace/aws-observability, created ConfigMap/aws-observability/aws-logging"
    )
    assert get(fargate, "/api/v1/namespaces/aws-observability") is None

    fargate.common = replace(fargate.common, dry_run=False)
    assert rule.remediate(fargate.context(), found) == (
        "created Namespace/aws-observability, created ConfigMap/aws-observability/aws-logging"
    )
    configmap = get(fargate, "/api/v1/namespaces/aws-observability/configmaps/aws-logging")
    assert f"/aws/containerinsights/{fargate.name}/application" in configmap["data"]["output.conf"]
    assert fargate.violations(rule.id) == []
    assert rule.remediate(fargate.context(), found).startswith("nothing to change")


def test_an_operators_configmap_is_never_overwritten(fargate: ClusterUnderTest) -> None:
    profile(fargate, "apps", {"namespace": "shop"})
    fargate.namespace("aws-observability")
    mine = {"output.conf": "[OUTPUT]\n    Name kinesis_firehose\n"}
    fargate.kube_create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "aws-logging", "namespace": "aws-observability"},
            "data": mine,
        }
    )
    rule = rules()["fargate-logging-configmap"]
    [found] = fargate.violations(rule.id)  # only the label is missing
    assert rule.remediate(fargate.context(), found) == "configured Namespace/aws-observability"
    assert get(fargate, "/api/v1/namespaces/aws-observability/configmaps/aws-logging")["data"] == mine
    assert fargate.violations(rule.id) == []
