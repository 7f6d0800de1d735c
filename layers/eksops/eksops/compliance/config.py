"""compliance_sweep settings from the environment, validated at start-up (a bad value names its variable)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from eksops import config
from eksops.compliance.model import Severity
from eksops.errors import ConfigError

COMPLIANCE_CLUSTERS = "COMPLIANCE_CLUSTERS"  # JSON list of globs; empty: every cluster
REMEDIATE = "REMEDIATE"  # JSON list of rule ids the sweep may fix
COMPLIANCE_ACCEPT = "COMPLIANCE_ACCEPT"  # JSON list of accepted findings (see parse in eksops.compliance.accept)
COMPLIANCE_MIN_NODES = "COMPLIANCE_MIN_NODES"  # the floor for a node group's minimum size
COMPLIANCE_LIMIT_RATIO = "COMPLIANCE_LIMIT_RATIO"  # limits above this many times the requests are findings
COMPLIANCE_MAX_CALLS = "COMPLIANCE_MAX_CALLS"  # API calls (AWS and Kubernetes) one cluster's sweep may make
COMPLIANCE_TABLE = "COMPLIANCE_TABLE"  # DynamoDB table of the findings seen by the last sweep
COMPLIANCE_STATE_DAYS = "COMPLIANCE_STATE_DAYS"  # TTL of the state of a cluster no sweep has seen since
COMPLIANCE_ALERT_SEVERITY = "COMPLIANCE_ALERT_SEVERITY"  # new findings at or above it go to the alerts topic
COMPLIANCE_SECURITY_HUB = "COMPLIANCE_SECURITY_HUB"  # true: export findings to AWS Security Hub (ASFF)


def _globs(variable: str, environ: Mapping[str, str] | None) -> tuple[str, ...]:
    raw = config.parse_json(variable, config.read(variable, environ) or "[]")
    if not isinstance(raw, list) or not all(isinstance(g, str) and g for g in raw):
        raise ConfigError(variable, 'must be a JSON list of non-empty strings, e.g. ["prod-*"]')
    return tuple(raw)


def _ratio(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(COMPLIANCE_LIMIT_RATIO, f"{raw!r} is not a number") from None
    if not 1.0 <= value <= 100.0:
        raise ConfigError(COMPLIANCE_LIMIT_RATIO, f"{value} is outside 1..100")
    return value


@dataclass(frozen=True)
class ComplianceConfig:
    clusters: tuple[str, ...] = ()
    remediate: frozenset[str] = frozenset()
    accept_raw: str = ""  # COMPLIANCE_ACCEPT as given: eksops.compliance.accept parses and validates it
    min_nodes: int = 2
    limit_ratio: float = 4.0
    max_calls: int = 2000
    table: str | None = None
    state_days: int = 30
    alert_severity: Severity = Severity.HIGH
    security_hub: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ComplianceConfig:
        from eksops.compliance.model import rules

        known = rules()
        remediate = _globs(REMEDIATE, environ)
        unknown = sorted(set(remediate) - set(known))
        if unknown:
            raise ConfigError(REMEDIATE, f"unknown rule id(s) {', '.join(unknown)}; see docs/compliance.md")
        not_fixable = sorted(r for r in remediate if not known[r].remediable)
        if not_fixable:
            fixable = ", ".join(sorted(i for i, r in known.items() if r.remediable))
            raise ConfigError(REMEDIATE, f"rule(s) {', '.join(not_fixable)} have no remediation; these do: {fixable}")
        severity = config.read(COMPLIANCE_ALERT_SEVERITY, environ) or "high"
        accept_raw = config.read(COMPLIANCE_ACCEPT, environ)
        from eksops.compliance.accept import parse_entries

        parse_entries(accept_raw, known)  # checked here, at start-up; the service parses it against its rules
        return cls(
            clusters=_globs(COMPLIANCE_CLUSTERS, environ),
            remediate=frozenset(remediate),
            accept_raw=accept_raw,
            min_nodes=config.parse_int(
                COMPLIANCE_MIN_NODES, config.read(COMPLIANCE_MIN_NODES, environ) or "2", minimum=0, maximum=1000
            ),
            limit_ratio=_ratio(config.read(COMPLIANCE_LIMIT_RATIO, environ) or "4"),
            max_calls=config.parse_int(
                COMPLIANCE_MAX_CALLS, config.read(COMPLIANCE_MAX_CALLS, environ) or "2000", minimum=10, maximum=100_000
            ),
            table=config.read(COMPLIANCE_TABLE, environ) or None,
            state_days=config.parse_int(
                COMPLIANCE_STATE_DAYS, config.read(COMPLIANCE_STATE_DAYS, environ) or "30", minimum=1, maximum=3650
            ),
            alert_severity=Severity(
                config.parse_choice(COMPLIANCE_ALERT_SEVERITY, severity, [str(s) for s in Severity])
            ),
            security_hub=config.parse_bool(COMPLIANCE_SECURITY_HUB, config.read(COMPLIANCE_SECURITY_HUB, environ)),
        )

    def sweeps(self, cluster: str) -> bool:
        return not self.clusters or any(fnmatch.fnmatchcase(cluster, g) for g in self.clusters)
