"""Versioned Kubernetes manifests that cluster_bootstrap server-side-applies, rendered per cluster and region.

The manifests are JSON files shipped in the package (``kube/manifests/*.json``): the layer has no YAML parser.
Placeholders are ``${cluster}`` and ``${region}``, substituted in string values only after parsing, so a value can
never change the structure of an object. Other ``${NAME}`` occurrences (Fluent Bit's own environment variables in
its configuration) are left alone on purpose.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from eksops.errors import EksopsError
from eksops.names import is_cluster_name

__all__ = [
    "DENY_POLICY_NAME",
    "FARGATE_SECURE_PORT",
    "IMAGES",
    "MANIFEST_FILES",
    "MANIFEST_VERSION",
    "PROTECTED_NAMESPACES",
    "PSA_ANNOTATION",
    "PSA_LEVELS",
    "InvalidManifestInput",
    "default_deny",
    "deny_namespaces",
    "may_set_pod_security",
    "metrics_server_pod_labels",
    "namespace_with_pod_security",
    "pod_security_labels",
    "render_container_insights",
    "render_fargate_logging",
    "render_fluent_bit",
    "render_metrics_server",
    "render_observability",
]

# Recorded on the cluster as the tag eksops:bootstrap=<version>; bump it whenever a manifest file changes.
MANIFEST_VERSION = "2026.11.2"

# Every image the manifests pin (a unit test checks the files against this table and the docs against it).
IMAGES: dict[str, str] = {
    "cloudwatch-agent": "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300062.0b1304",
    "aws-for-fluent-bit": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.34.3",
    "metrics-server": "registry.k8s.io/metrics-server/metrics-server:v0.8.1",
}

MANIFEST_FILES: tuple[str, ...] = ("container-insights", "fluent-bit", "metrics-server", "fargate-logging")

# Namespaces that never get the default-deny policy nor application Pod Security labels: the system namespaces
# (kube-system runs CoreDNS, the VPC CNI and metrics-server, which the API server must reach) and the namespaces
# eksops itself installs. "default" is not listed: its built-in object is the kubernetes Service, whose endpoints
# are the control plane rather than pods, so a policy there only affects workloads the operator put there.
PROTECTED_NAMESPACES: frozenset[str] = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "amazon-cloudwatch", "aws-observability"}
)

DENY_POLICY_NAME = "eksops-default-deny"
PSA_LEVELS: tuple[str, ...] = ("privileged", "baseline", "restricted")
PSA_MODES: tuple[str, ...] = ("enforce", "warn", "audit")
PSA_PREFIX = "pod-security.kubernetes.io/"
# Set with the Pod Security labels: the levels eksops applied ("enforce=baseline,warn=restricted,audit=restricted").
# eksops relabels a namespace only when it has no Pod Security level labels or still has exactly these, so a
# level its owner set (say enforce=privileged for an agent that needs it) is never overridden.
PSA_ANNOTATION = "eksops/pod-security"

# On Fargate, 10250 belongs to the kubelet of the pod's own micro-VM; metrics-server must listen elsewhere.
# 10251 is what the Amazon EKS add-on of metrics-server uses.
KUBELET_PORT = 10250
FARGATE_SECURE_PORT = 10251

_MANAGED_BY = {"app.kubernetes.io/managed-by": "eksops"}
_PLACEHOLDER = re.compile(r"\$\{(cluster|region)\}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PSA_VERSION = re.compile(r"latest|v1\.\d{1,3}")


class InvalidManifestInput(EksopsError, ValueError):
    """A cluster name, region, namespace or Pod Security setting that the manifests cannot be rendered with."""


@cache
def _load(name: str) -> tuple[dict[str, Any], ...]:
    text = resources.files("eksops.kube").joinpath("manifests", f"{name}.json").read_text(encoding="utf-8")
    objects = json.loads(text)
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise TypeError(f"manifest {name}.json must hold a JSON list of objects")
    return tuple(objects)


def _substitute(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    return value


def _render(name: str, values: dict[str, str]) -> list[dict[str, Any]]:
    return [_substitute(obj, values) for obj in _load(name)]


def _cluster_values(cluster: str, region: str) -> dict[str, str]:
    if not is_cluster_name(cluster):
        raise InvalidManifestInput(f"{cluster!r} is not a valid EKS cluster name")
    if not _REGION.fullmatch(region):
        raise InvalidManifestInput(f"{region!r} is not an AWS region name")
    return {"cluster": cluster, "region": region}


def render_observability(cluster: str, region: str) -> list[dict[str, Any]]:
    """Container Insights (CloudWatch agent) and Fluent Bit objects for one cluster, in file order."""
    return render_container_insights(cluster, region) + render_fluent_bit(cluster, region)


def render_container_insights(cluster: str, region: str) -> list[dict[str, Any]]:
    """The CloudWatch agent's objects (with the amazon-cloudwatch namespace) for one cluster."""
    return _render("container-insights", _cluster_values(cluster, region))


def render_fluent_bit(cluster: str, region: str) -> list[dict[str, Any]]:
    """Fluent Bit's objects (in the amazon-cloudwatch namespace) for one cluster."""
    return _render("fluent-bit", _cluster_values(cluster, region))


def render_metrics_server(fargate: bool) -> list[dict[str, Any]]:
    """The upstream metrics-server objects; with ``fargate`` its secure port moves off the kubelet's 10250."""
    objects = _render("metrics-server", {})
    if not fargate:
        return objects
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            container["args"] = [
                f"--secure-port={FARGATE_SECURE_PORT}" if arg.startswith("--secure-port=") else arg
                for arg in container["args"]
            ]
            for port in container["ports"]:
                if port["containerPort"] == KUBELET_PORT:
                    port["containerPort"] = FARGATE_SECURE_PORT
    return objects


def render_fargate_logging(cluster: str, region: str) -> list[dict[str, Any]]:
    """The aws-observability namespace and aws-logging ConfigMap of the Fargate built-in log router.

    Fargate pods' logs go to the cluster's Container Insights application log group, streams prefixed
    ``fargate-``, so the same retention rule and error alarms cover pods on nodes and on Fargate.
    """
    return _render("fargate-logging", _cluster_values(cluster, region))


def _check_namespace(namespace: str) -> None:
    if not _NAMESPACE.fullmatch(namespace):
        raise InvalidManifestInput(f"{namespace!r} is not a valid namespace name")


def default_deny(namespace: str, *, egress: bool) -> dict[str, Any]:
    """NetworkPolicy ``eksops-default-deny`` selecting every pod of ``namespace``: no ingress is allowed.

    With ``egress`` it also denies egress, except DNS to CoreDNS in kube-system: without that exception every
    name lookup in the namespace fails, which breaks even the traffic later policies mean to allow.
    """
    _check_namespace(namespace)
    if namespace in PROTECTED_NAMESPACES:
        raise InvalidManifestInput(f"namespace {namespace!r} is protected: eksops never puts a default-deny there")
    spec: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress"]}
    if egress:
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = [
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": DENY_POLICY_NAME, "namespace": namespace, "labels": dict(_MANAGED_BY)},
        "spec": spec,
    }


def deny_namespaces(namespaces: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The namespaces matching any glob of BOOTSTRAP_DENY_NAMESPACES, protected ones left out, sorted."""
    globs = tuple(patterns)
    return sorted(
        ns
        for ns in set(namespaces)
        if ns not in PROTECTED_NAMESPACES and any(fnmatch.fnmatchcase(ns, g) for g in globs)
    )


def pod_security_labels(
    enforce: str = "baseline", warn: str = "restricted", audit: str = "restricted", version: str = "latest"
) -> dict[str, str]:
    """Pod Security Admission labels (PodSecurityPolicy was removed in Kubernetes 1.25)."""
    labels: dict[str, str] = {}
    for mode, level in (("enforce", enforce), ("warn", warn), ("audit", audit)):
        if level not in PSA_LEVELS:
            raise InvalidManifestInput(f"Pod Security {mode} level {level!r}: allowed {', '.join(PSA_LEVELS)}")
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    if not _PSA_VERSION.fullmatch(version):
        raise InvalidManifestInput(f"Pod Security version {version!r}: allowed 'latest' or 'v1.<minor>'")
    return labels


def _psa_record(labels: dict[str, str]) -> str:
    return ",".join(f"{mode}={labels[PSA_PREFIX + mode]}" for mode in PSA_MODES if PSA_PREFIX + mode in labels)


def namespace_with_pod_security(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """A Namespace object carrying only ``labels`` and the PSA_ANNOTATION record of their levels.

    Applied with field manager eksops, it owns just those fields and leaves the namespace's others alone.
    """
    _check_namespace(namespace)
    if namespace in PROTECTED_NAMESPACES:
        raise InvalidManifestInput(f"namespace {namespace!r} is protected: eksops does not relabel it")
    metadata = {"name": namespace, "labels": dict(labels), "annotations": {PSA_ANNOTATION: _psa_record(labels)}}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def may_set_pod_security(metadata: dict[str, Any]) -> bool:
    """Whether eksops may (re)label a namespace with this ``metadata``: it has no Pod Security level label, or
    only the levels eksops itself set last time (PSA_ANNOTATION), so nobody else chose them."""
    labels = {k: str(v) for k, v in (metadata.get("labels") or {}).items()}
    current = _psa_record(labels)
    if not current:
        return True
    return (metadata.get("annotations") or {}).get(PSA_ANNOTATION) == current


def metrics_server_pod_labels() -> dict[str, str]:
    """The labels of metrics-server's pods, as a Fargate profile selector would have to match them."""
    (deployment,) = [o for o in _load("metrics-server") if o["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["metadata"]["labels"])
