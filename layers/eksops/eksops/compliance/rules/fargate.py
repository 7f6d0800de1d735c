"""Compliance rules about Fargate: NetworkPolicies Fargate does not enforce, and Fargate's log router ConfigMap.

The aws-logging ConfigMap is cluster_bootstrap's (``manifests.render_fargate_logging``), applied with its server-side
apply (``apply_manifests``): the rule's remediation is the bootstrap step, not a second copy of it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from eksops.compliance.context import ClusterContext
from eksops.compliance.model import Category, KubePermission, Rule, Severity, Violation, register
from eksops.kube import manifests
from eksops.kube.apply import apply_manifests

LOGGING_NAMESPACE = "aws-observability"
LOGGING_CONFIGMAP = "aws-logging"
LOGGING_LABEL = ("aws-observability", "enabled")  # Fargate reads the ConfigMap only from a namespace labelled so


def _selectors(profiles: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, dict[str, str]]]:
    """(profile name, namespace glob, pod labels) of every Fargate profile selector."""
    return [
        (str(p.get("fargateProfileName")), str(s.get("namespace") or ""), dict(s.get("labels") or {}))
        for p in profiles
        for s in p.get("selectors") or []
    ]


@register
class FargateNetworkPolicy(Rule):
    """Namespaces a Fargate profile selects (EKS selector namespaces may hold * and ? wildcards) that have
    NetworkPolicies. A selector with labels selects only the pods carrying them; the evidence says which. System
    namespaces are not left out: a policy not enforced is a gap wherever it is."""

    id = "fargate-network-policy"
    title = "NetworkPolicy in a namespace served by Fargate, where it is not enforced"
    severity = Severity.MEDIUM
    category = Category.FARGATE
    why = (
        "Amazon VPC CNI network policies are not enforced for Fargate pods: a namespace that relies on NetworkPolicy "
        "for isolation is open for the pods Fargate runs, though the policy objects suggest otherwise."
    )
    fix = (
        "Run the pods that need network isolation on EC2 nodes (narrow the Fargate profile's selectors), or isolate "
        "Fargate pods with security groups for pods (SecurityGroupPolicy); then remove or accept the finding."
    )
    reference = (
        "EKS BP: Security > Network security (network policies are not supported on Fargate; use security groups "
        "for pods); no hardeneks rule"
    )
    adds = "matches Fargate profile selectors against the namespaces that hold NetworkPolicies"
    iam_actions = ("eks:ListFargateProfiles", "eks:DescribeFargateProfile")
    kube_permissions = (
        KubePermission("networking.k8s.io", "networkpolicies", ("list",)),
        KubePermission("", "namespaces", ("list",)),
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        selectors = _selectors(ctx.fargate_profiles())
        if not selectors:
            return
        policies: dict[str, list[str]] = {}
        for policy in ctx.kube_list("networking.k8s.io/v1", "networkpolicies"):
            meta = policy.get("metadata") or {}
            policies.setdefault(str(meta.get("namespace")), []).append(str(meta.get("name")))
        annotations = {
            str((n.get("metadata") or {}).get("name")): dict((n.get("metadata") or {}).get("annotations") or {})
            for n in ctx.namespaces()
        }
        for namespace, names in sorted(policies.items()):
            served = [
                f"profile {profile} ({'pods labelled ' + _labels(labels) if labels else 'all pods'})"
                for profile, glob, labels in selectors
                if fnmatch.fnmatchcase(namespace, glob)
            ]
            if served:
                yield Violation(
                    f"namespace/{namespace}",
                    f"NetworkPolicy {', '.join(sorted(names))} not enforced on Fargate: {'; '.join(served)}",
                    annotations=annotations.get(namespace, {}),
                    namespace=namespace,
                )


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@register
class FargateLoggingConfigMap(Rule):
    """A cluster with Fargate profiles needs the namespace aws-observability, labelled aws-observability=enabled, with
    the ConfigMap aws-logging. Remediation applies what is missing of cluster_bootstrap's Fargate logging manifests
    (server-side apply, field manager eksops): the namespace (or its label), and the ConfigMap only when there is
    none, so an operator's own aws-logging is never overwritten. It needs no access change and cuts none."""

    id = "fargate-logging-configmap"
    title = "Fargate cluster without the aws-observability logging ConfigMap"
    severity = Severity.MEDIUM
    category = Category.FARGATE
    why = (
        "Fargate pods have no node agent: their logs leave only through Fargate's built-in log router, which reads "
        "aws-observability/aws-logging. Without it, Fargate pods' logs go nowhere and the error alarm never sees them."
    )
    fix = (
        "Let cluster_bootstrap run (it applies the namespace and ConfigMap for clusters with Fargate profiles), or "
        "REMEDIATE this rule; also give the pod execution role the logging policy (FARGATE_LOGGING_POLICY_ARN)."
    )
    reference = "EKS BP: Observability > Logging (Fargate logging with the built-in log router); no hardeneks rule"
    adds = "checks the namespace label Fargate requires too, and applies cluster_bootstrap's manifests when allowed"
    iam_actions = ("eks:ListFargateProfiles", "eks:DescribeFargateProfile")
    kube_permissions = (
        KubePermission("", "namespaces", ("get",)),
        KubePermission("", "configmaps", ("get",)),
    )
    remediation_iam_actions = ("eks:DescribeCluster",)
    remediation_kube_permissions = (
        KubePermission("", "namespaces", ("get", "create", "patch")),
        KubePermission("", "configmaps", ("get", "create", "patch")),
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        if not ctx.fargate_profiles():
            return
        namespace = ctx.kube_get("v1", "namespaces", LOGGING_NAMESPACE)
        missing: list[str] = []
        if namespace is None:
            missing.append(f"namespace {LOGGING_NAMESPACE}")
        elif ((namespace.get("metadata") or {}).get("labels") or {}).get(LOGGING_LABEL[0]) != LOGGING_LABEL[1]:
            missing.append(f"label {LOGGING_LABEL[0]}={LOGGING_LABEL[1]} on namespace {LOGGING_NAMESPACE}")
        has_configmap = (
            namespace is not None
            and ctx.kube_get("v1", "configmaps", LOGGING_CONFIGMAP, namespace=LOGGING_NAMESPACE) is not None
        )
        if not has_configmap:
            missing.append(f"ConfigMap {LOGGING_NAMESPACE}/{LOGGING_CONFIGMAP}")
        if missing:
            yield Violation(
                f"configmap/{LOGGING_NAMESPACE}/{LOGGING_CONFIGMAP}",
                f"Fargate profiles but no {' and no '.join(missing)}",
                data={"configmap": not has_configmap},
            )

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        docs = manifests.render_fargate_logging(ctx.name, ctx.region)
        if not violation.data.get("configmap"):
            docs = [d for d in docs if d["kind"] == "Namespace"]
        for doc in docs:
            ctx.spend(f"apply {doc['kind']}")
        applied = apply_manifests(ctx.api(), docs, dry_run=ctx.dry_run, force="owned")
        changed = [f"{o.outcome} {o.ref}" for o in applied.objects if o.outcome != "unchanged"]
        if not changed:
            return "nothing to change: the namespace and ConfigMap are in place"
        return ("would apply: " if ctx.dry_run else "") + ", ".join(changed)
