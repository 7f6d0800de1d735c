"""The pure helpers behind the Kubernetes rules: system namespaces and subjects, selectors, sockets, wildcards."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from eksops.compliance.model import rules
from eksops.compliance.rules.kubernetes_security import denies_ingress, reaches_socket, wildcards
from eksops.compliance.rules.observability import _image_name
from eksops.compliance.rules.reliability import quantity
from eksops.compliance.workloads import (
    WORKLOAD_READS,
    is_system_namespace,
    is_system_subject,
    selector_matches,
    summarise,
)
from eksops.kube import manifests


@pytest.mark.parametrize(
    ("namespace", "system"),
    [
        ("kube-system", True),
        ("kube-node-lease", True),
        ("amazon-cloudwatch", True),
        ("aws-observability", True),
        ("eks-pod-identity", True),
        ("eksops-headroom", True),
        ("default", False),
        ("shop", False),
        ("kube-systems", False),
        ("my-aws-app", False),
    ],
)
def test_system_namespaces(namespace: str, system: bool) -> None:
    assert is_system_namespace(namespace) is system


def test_every_protected_namespace_is_a_system_namespace() -> None:
    assert all(is_system_namespace(ns) for ns in manifests.PROTECTED_NAMESPACES)


@pytest.mark.parametrize(
    ("subject", "system"),
    [
        ({"kind": "Group", "name": "system:masters"}, True),
        ({"kind": "User", "name": "eks:addon-manager"}, True),
        ({"kind": "ServiceAccount", "name": "aws-node", "namespace": "kube-system"}, True),
        ({"kind": "User", "name": "system:serviceaccount:kube-system:x"}, True),
        ({"kind": "Group", "name": "system:serviceaccounts:amazon-cloudwatch"}, True),
        ({"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}, False),
        ({"kind": "User", "name": "system:serviceaccount:ci:deployer"}, False),
        ({"kind": "Group", "name": "system:serviceaccounts:ci"}, False),
        ({"kind": "Group", "name": "system:serviceaccounts"}, False),
        ({"kind": "Group", "name": "system:authenticated"}, False),
        ({"kind": "User", "name": "system:anonymous"}, False),
        ({"kind": "Group", "name": "developers"}, False),
        ({"kind": "User", "name": "arn:aws:iam::111122223333:role/admin"}, False),
    ],
)
def test_system_subjects(subject: dict[str, str], system: bool) -> None:
    assert is_system_subject(subject) is system


LABELS = {"app": "cart", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (None, False),
        ({}, True),
        ({"matchLabels": {"app": "cart"}}, True),
        ({"matchLabels": {"app": "cart", "tier": "db"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["cart", "web"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["cart"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]}, False),
        ({"matchLabels": {"app": "cart"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}, False),
    ],
)
def test_selector_matches(selector: dict[str, Any] | None, matches: bool) -> None:
    assert selector_matches(selector, LABELS) is matches


@pytest.mark.parametrize(
    ("path", "socket"),
    [
        ("/var/run/docker.sock", "/var/run/docker.sock"),
        ("/run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
        ("/run/containerd/", "/run/containerd/containerd.sock"),
        ("/var/run", "/var/run/docker.sock"),
        ("/", "/var/run/docker.sock"),
        ("/var/run/app", None),
        ("/var/log", None),
        ("/var/run/docker.sockets", None),
    ],
)
def test_reaches_socket(path: str, socket: str | None) -> None:
    assert reaches_socket(path) == socket


def test_wildcards() -> None:
    assert wildcards([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]) == []
    assert wildcards([{"apiGroups": ["", "apps"], "resources": ["*"], "verbs": ["get"]}]) == [
        "verbs get on * (core,apps)"
    ]
    assert wildcards([{"nonResourceURLs": ["*"], "verbs": ["*"]}]) == ["verbs * on - (non-resource URLs)"]


@pytest.mark.parametrize(
    ("spec", "denies"),
    [
        ({"podSelector": {}, "policyTypes": ["Ingress"]}, True),
        ({"podSelector": {}}, True),  # policyTypes defaults to Ingress
        ({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": [{}]}, True),
        ({"podSelector": {}, "policyTypes": ["Egress"]}, False),
        ({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}, False),
        ({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}, False),
    ],
)
def test_denies_ingress(spec: dict[str, Any], denies: bool) -> None:
    assert denies_ingress({"spec": spec}) is denies


def test_eksops_default_deny_counts_as_a_default_deny() -> None:
    for egress in (False, True):
        assert denies_ingress(manifests.default_deny("shop", egress=egress))


def test_quantities_and_images_and_summaries() -> None:
    assert quantity("500m") == Decimal("0.5")
    assert quantity("1Gi") == Decimal(2**30)
    assert quantity(2) == Decimal(2)
    assert quantity("lots") is None
    assert _image_name("public.ecr.aws/aws-observability/aws-for-fluent-bit:2.34.3") == "aws-for-fluent-bit"
    assert _image_name("registry:5000/cloudwatch-agent@sha256:abc") == "cloudwatch-agent"
    assert summarise(["a", "b", "c"], 2) == "a; b; and 1 more"
    assert summarise(["a"]) == "a"


KUBE_RULES = (
    "observability-cloudwatch-agent",
    "observability-fluent-bit",
    "observability-metrics-server",
    "namespace-default-deny",
    "namespace-pod-security",
    "rbac-cluster-admin-binding",
    "rbac-wildcard-clusterrole",
    "rbac-anonymous-binding",
    "pod-privileged",
    "pod-host-path",
    "pod-host-namespaces",
    "pod-run-as-root",
    "pod-privilege-escalation",
    "pod-container-socket",
    "pod-secrets-in-env",
    "pod-added-capabilities",
    "pod-service-account-token",
    "workload-missing-requests",
    "workload-limits-over-requests",
    "deployment-single-replica",
    "deployment-no-pdb",
    "deployment-no-hpa",
    "workload-no-probes",
)


def test_the_kubernetes_rules_are_registered_with_their_reads() -> None:
    registry = rules()
    assert set(KUBE_RULES) <= set(registry)
    for rule_id in KUBE_RULES:
        rule = registry[rule_id]
        assert rule.needs_kube, rule_id
        assert rule.reference.startswith(("hardeneks: ", "EKS BP: ")), rule_id
    workload_rules = [r for r in KUBE_RULES if r.startswith(("pod-", "workload-", "deployment-"))]
    for rule_id in workload_rules:
        assert set(WORKLOAD_READS) <= set(registry[rule_id].kube_permissions), rule_id
    assert {r for r in KUBE_RULES if registry[r].remediable} == {"namespace-default-deny", "namespace-pod-security"}
