"""cluster_bootstrap settings from the environment, validated at start-up."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eksops import config
from eksops.errors import ConfigError

BOOTSTRAP_CLUSTERS = "BOOTSTRAP_CLUSTERS"
BOOTSTRAP_OBSERVABILITY = "BOOTSTRAP_OBSERVABILITY"
BOOTSTRAP_DENY_NAMESPACES = "BOOTSTRAP_DENY_NAMESPACES"
BOOTSTRAP_DENY_EGRESS = "BOOTSTRAP_DENY_EGRESS"
BOOTSTRAP_PSA_NAMESPACES = "BOOTSTRAP_PSA_NAMESPACES"
BOOTSTRAP_PSA_EXCLUDE = "BOOTSTRAP_PSA_EXCLUDE"
BOOTSTRAP_PSA_ENFORCE = "BOOTSTRAP_PSA_ENFORCE"
BOOTSTRAP_PSA_WARN = "BOOTSTRAP_PSA_WARN"
BOOTSTRAP_PSA_AUDIT = "BOOTSTRAP_PSA_AUDIT"
FARGATE_LOGGING_POLICY_ARN = "FARGATE_LOGGING_POLICY_ARN"

OBSERVABILITY_MODES = ("manifests", "addon")
PSA_LEVELS = ("privileged", "baseline", "restricted")
# Namespaces of the platform and of well-known add-ons (CNI, AWS agents, GuardDuty, ...) that often need more than
# baseline: never labelled unless BOOTSTRAP_PSA_EXCLUDE is set to another list. eksops' own are always excluded.
DEFAULT_PSA_EXCLUDE = '["kube-*", "amazon-*", "aws-*", "eks-*", "calico-*", "tigera-*"]'


def _globs(variable: str, environ: Mapping[str, str] | None, default: str) -> tuple[str, ...]:
    raw: Any = config.parse_json(variable, config.read(variable, environ) or default)
    if not isinstance(raw, list) or not all(isinstance(g, str) and g for g in raw):
        raise ConfigError(variable, 'must be a JSON list of non-empty globs, e.g. ["prod-*"]')
    return tuple(raw)


def _level(variable: str, environ: Mapping[str, str] | None, default: str) -> str:
    return config.parse_choice(variable, config.read(variable, environ) or default, PSA_LEVELS)


@dataclass(frozen=True)
class BootstrapConfig:
    clusters: tuple[str, ...]  # globs; empty: every cluster
    observability: str  # "manifests" (CloudWatch agent + Fluent Bit) or "addon" (amazon-cloudwatch-observability)
    deny_namespaces: tuple[str, ...]  # globs of namespaces that get the default-deny NetworkPolicy
    deny_egress: bool
    psa_namespaces: tuple[str, ...]  # globs of application namespaces that get Pod Security labels
    psa_exclude: tuple[str, ...]  # globs of namespaces that never get them (system and add-on namespaces)
    psa_enforce: str
    psa_warn: str
    psa_audit: str
    fargate_logging_policy_arn: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BootstrapConfig:
        mode = config.read(BOOTSTRAP_OBSERVABILITY, environ) or "manifests"
        policy = config.read(FARGATE_LOGGING_POLICY_ARN, environ) or None
        if policy and (not policy.startswith("arn:") or ":policy/" not in policy):
            raise ConfigError(FARGATE_LOGGING_POLICY_ARN, f"{policy!r} is not an IAM policy ARN")
        return cls(
            clusters=_globs(BOOTSTRAP_CLUSTERS, environ, "[]"),
            observability=config.parse_choice(BOOTSTRAP_OBSERVABILITY, mode, OBSERVABILITY_MODES),
            deny_namespaces=_globs(BOOTSTRAP_DENY_NAMESPACES, environ, "[]"),
            deny_egress=config.parse_bool(BOOTSTRAP_DENY_EGRESS, config.read(BOOTSTRAP_DENY_EGRESS, environ)),
            psa_namespaces=_globs(BOOTSTRAP_PSA_NAMESPACES, environ, '["*"]'),
            psa_exclude=_globs(BOOTSTRAP_PSA_EXCLUDE, environ, DEFAULT_PSA_EXCLUDE),
            psa_enforce=_level(BOOTSTRAP_PSA_ENFORCE, environ, "baseline"),
            psa_warn=_level(BOOTSTRAP_PSA_WARN, environ, "restricted"),
            psa_audit=_level(BOOTSTRAP_PSA_AUDIT, environ, "restricted"),
            fargate_logging_policy_arn=policy,
        )

    def manages(self, cluster: str) -> bool:
        return not self.clusters or any(fnmatch.fnmatchcase(cluster, g) for g in self.clusters)

    def labels_pod_security(self, namespace: str) -> bool:
        """Whether ``namespace`` is one of the application namespaces that get Pod Security labels."""
        return any(fnmatch.fnmatchcase(namespace, g) for g in self.psa_namespaces) and not any(
            fnmatch.fnmatchcase(namespace, g) for g in self.psa_exclude
        )
