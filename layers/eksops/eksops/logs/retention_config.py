"""Retention rules: which log group gets how many days, parsed from the environment, and the decision."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eksops import config
from eksops.errors import ConfigError

RETENTION_RULES = "RETENTION_RULES"
RETENTION_DEFAULT_DAYS = "RETENTION_DEFAULT_DAYS"
RETENTION_MODE = "RETENTION_MODE"
RETENTION_EXCLUDE = "RETENTION_EXCLUDE"
RETENTION_STACK_LOG_GROUPS = "RETENTION_STACK_LOG_GROUPS"  # names of the stack's own groups: CloudFormation sets theirs
RETENTION_PUT_RATE = "RETENTION_PUT_RATE"
RETENTION_SCOPE = "RETENTION_SCOPE"

DEFAULT_PUT_RATE = 5  # PutRetentionPolicy quota, requests per second per account and region

# The only values PutRetentionPolicy accepts (CloudWatch Logs API reference, type Days).
VALID_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

SKIP_TAG_KEY = "eksops:retention"
SKIP_TAG_VALUE = "skip"

# Defaults for the groups EKS and Container Insights create. Performance logs are raw EMF records whose
# metrics are already extracted, so they are kept briefly; application logs are what on-call reads;
# control-plane logs (audit, authenticator) are evidence for investigations and kept longest.
DEFAULT_RULES_JSON = (
    '[{"pattern": "/aws/containerinsights/*/performance", "days": 7},'
    ' {"pattern": "/aws/containerinsights/*/application", "days": 30},'
    ' {"pattern": "/aws/containerinsights/*/host", "days": 14},'
    ' {"pattern": "/aws/containerinsights/*/dataplane", "days": 14},'
    ' {"pattern": "/aws/eks/*/cluster", "days": 90}]'
)


# What RETENTION_DEFAULT_DAYS may reach under scope "eks": the groups EKS and Container Insights create. A group a
# rule matches, or one of the stack's own, is in scope whatever its name.
EKS_SCOPE_GLOBS = ("/aws/eks/*", "/aws/containerinsights/*")


class Scope(StrEnum):
    """Which log groups RETENTION_DEFAULT_DAYS applies to (rules always apply to the groups they match)."""

    EKS = "eks"  # EKS_SCOPE_GLOBS, groups a rule matches and the stack's own: other teams' groups are left alone
    REGION = "region"  # every log group of the account and region


class Mode(StrEnum):
    MISSING = "missing"  # only groups that never expire
    CAP = "cap"  # also shorten groups kept longer than the target
    EXACT = "exact"  # set exactly the target, lengthening too


@dataclass(frozen=True)
class RetentionRule:
    pattern: str
    days: int


@dataclass(frozen=True)
class RetentionConfig:
    rules: tuple[RetentionRule, ...]
    default_days: int | None
    mode: Mode
    exclude: tuple[str, ...]
    put_rate: int = DEFAULT_PUT_RATE
    scope: Scope = Scope.EKS
    stack_log_groups: tuple[str, ...] = ()  # the stack's own groups (also in ``exclude``): in scope "eks"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionConfig:
        raw_rules = config.read(RETENTION_RULES, environ) or DEFAULT_RULES_JSON
        raw_default = config.read(RETENTION_DEFAULT_DAYS, environ)
        raw_exclude = config.read(RETENTION_EXCLUDE, environ) or "[]"
        stack_log_groups = _stack_log_groups(environ)
        return cls(
            rules=_parse_rules(config.parse_json(RETENTION_RULES, raw_rules)),
            default_days=_parse_days(RETENTION_DEFAULT_DAYS, raw_default) if raw_default else None,
            mode=Mode(
                config.parse_choice(
                    RETENTION_MODE, config.read(RETENTION_MODE, environ) or "missing", [m.value for m in Mode]
                )
            ),
            exclude=_parse_globs(RETENTION_EXCLUDE, config.parse_json(RETENTION_EXCLUDE, raw_exclude))
            + stack_log_groups,
            put_rate=config.parse_int(
                RETENTION_PUT_RATE,
                config.read(RETENTION_PUT_RATE, environ) or str(DEFAULT_PUT_RATE),
                minimum=1,
                maximum=100,
            ),
            # Unset means "eks", the template's default: the default days never reach other teams' groups unless
            # someone asked for the whole region.
            scope=Scope(
                config.parse_choice(
                    RETENTION_SCOPE, config.read(RETENTION_SCOPE, environ) or Scope.EKS.value, [s.value for s in Scope]
                )
            ),
            stack_log_groups=stack_log_groups,
        )

    def rule_for(self, name: str) -> RetentionRule | None:
        """The first rule whose pattern matches ``name``."""
        return next((rule for rule in self.rules if fnmatch.fnmatchcase(name, rule.pattern)), None)

    def in_scope(self, name: str) -> bool:
        """Whether RETENTION_DEFAULT_DAYS may apply to ``name`` (RETENTION_SCOPE)."""
        if self.scope is Scope.REGION or name in self.stack_log_groups or self.rule_for(name) is not None:
            return True
        return any(fnmatch.fnmatchcase(name, glob) for glob in EKS_SCOPE_GLOBS)

    def target(self, name: str) -> int | None:
        """Days for ``name``: the first matching rule, else the default within the scope (None: leave it alone)."""
        rule = self.rule_for(name)
        if rule is not None:
            return rule.days
        return self.default_days if self.in_scope(name) else None

    def excluded(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.exclude)


def _parse_days(variable: str, raw: Any) -> int:
    if isinstance(raw, str):
        try:
            raw = int(raw)
        except ValueError:
            raise ConfigError(variable, f"{raw!r} is not a whole number of days") from None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw not in VALID_DAYS:
        allowed = ", ".join(map(str, VALID_DAYS))
        raise ConfigError(variable, f"{raw!r} is not a retention CloudWatch Logs accepts; use one of: {allowed}")
    return raw


def _parse_rules(raw: Any) -> tuple[RetentionRule, ...]:
    if not isinstance(raw, list):
        raise ConfigError(RETENTION_RULES, 'must be a JSON list of {"pattern": "<glob>", "days": <n>}')
    rules = []
    for index, item in enumerate(raw):
        where = f"{RETENTION_RULES}[{index}]"
        if not isinstance(item, dict) or set(item) != {"pattern", "days"}:
            raise ConfigError(
                RETENTION_RULES, f'item {index} must be {{"pattern": "<glob>", "days": <n>}}, got {item!r}'
            )
        pattern = item["pattern"]
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(where, "pattern must be a non-empty string")
        rules.append(RetentionRule(pattern=pattern, days=_parse_days(f"{where}.days", item["days"])))
    return tuple(rules)


def _stack_log_groups(environ: Mapping[str, str] | None) -> tuple[str, ...]:
    """The stack's own log group names, as exclusion globs (names hold no glob characters: each matches only
    itself). Empty entries are names the template could not resolve, e.g. `eksops invoke --aws` without a stack."""
    raw = config.parse_json(RETENTION_STACK_LOG_GROUPS, config.read(RETENTION_STACK_LOG_GROUPS, environ) or "[]")
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise ConfigError(RETENTION_STACK_LOG_GROUPS, "must be a JSON list of log group names")
    return tuple(name for name in raw if name)


def _parse_globs(variable: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(g, str) and g for g in raw):
        raise ConfigError(variable, "must be a JSON list of non-empty glob strings")
    return tuple(raw)


@dataclass(frozen=True)
class Decision:
    """What to do with one log group, and why."""

    target: int | None  # days to set, None when nothing is to be set
    reason: str  # "compliant", "excluded", "tagged-skip", "no-rule", "out-of-scope", "delivery-class", "set"

    @property
    def change(self) -> bool:
        return self.target is not None


def decide(
    cfg: RetentionConfig, name: str, current: int | None, *, tagged_skip: bool = False, group_class: str | None = None
) -> Decision:
    """Pure decision for one group. Applying the target and deciding again always gives 'compliant'."""
    if cfg.excluded(name):
        return Decision(None, "excluded")
    if tagged_skip:
        return Decision(None, "tagged-skip")
    if group_class == "DELIVERY":
        # Delivery-class groups have a fixed retention that PutRetentionPolicy cannot change.
        return Decision(None, "delivery-class")
    target = cfg.target(name)
    if target is None:
        # A default that RETENTION_SCOPE keeps from this group is "out-of-scope"; no rule and no default, "no-rule".
        out_of_scope = cfg.default_days is not None and not cfg.in_scope(name)
        return Decision(None, "out-of-scope" if out_of_scope else "no-rule")
    if current == target:
        return Decision(None, "compliant")
    if current is None or cfg.mode is Mode.EXACT or (cfg.mode is Mode.CAP and current > target):
        return Decision(target, "set")
    return Decision(None, "compliant")
