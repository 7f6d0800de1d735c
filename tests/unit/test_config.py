from __future__ import annotations

import pytest

from eksops.config import CommonConfig
from eksops.errors import ConfigError
from eksops.logs import Mode, RetentionConfig, Scope
from eksops.logs.retention_config import VALID_DAYS


def test_common_defaults_are_safe_to_run() -> None:
    cfg = CommonConfig.from_env({})
    assert cfg.dry_run is False
    assert cfg.alerts_topic_arn is None and cfg.reports_topic_arn is None
    assert cfg.event_bus_name == "default"


@pytest.mark.parametrize(
    ("env", "variable", "fragment"),
    [
        ({"DRY_RUN": "maybe"}, "DRY_RUN", "use true or false"),
        ({"ALERTS_TOPIC_ARN": "alerts"}, "ALERTS_TOPIC_ARN", "is not an SNS topic ARN"),
        ({"REPORTS_TOPIC_ARN": "arn:aws:sqs:us-east-1:123456789012:q"}, "REPORTS_TOPIC_ARN", "is not an SNS topic ARN"),
    ],
)
def test_common_invalid_values_name_the_variable(env: dict[str, str], variable: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        CommonConfig.from_env(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert fragment in str(info.value)


def test_retention_defaults_cover_container_insights() -> None:
    cfg = RetentionConfig.from_env({})
    assert cfg.mode is Mode.MISSING
    assert cfg.default_days is None  # unset: groups no rule matches are left alone
    assert cfg.target("/aws/containerinsights/prod/application") == 30
    assert cfg.target("/aws/containerinsights/prod/host") == 14
    assert cfg.target("/aws/containerinsights/prod/dataplane") == 14
    assert cfg.target("/aws/containerinsights/prod/performance") == 7
    assert cfg.target("/aws/eks/prod/cluster") == 90
    assert cfg.target("/aws/lambda/anything") is None


def test_rules_first_match_wins_and_default_applies() -> None:
    cfg = RetentionConfig.from_env(
        {
            "RETENTION_RULES": '[{"pattern": "/aws/lambda/critical-*", "days": 365},'
            ' {"pattern": "/aws/lambda/*", "days": 14}]',
            "RETENTION_DEFAULT_DAYS": "60",
            "RETENTION_EXCLUDE": '["/audit/*"]',
            "RETENTION_MODE": "cap",
            "RETENTION_SCOPE": "region",
        }
    )
    assert cfg.target("/aws/lambda/critical-payments") == 365
    assert cfg.target("/aws/lambda/other") == 14
    assert cfg.target("/something/else") == 60
    assert cfg.excluded("/audit/trail") and not cfg.excluded("/aws/lambda/other")
    assert cfg.mode is Mode.CAP
    assert cfg.scope is Scope.REGION


def test_retention_scope_defaults_to_eks_groups() -> None:
    cfg = RetentionConfig.from_env(
        {
            "RETENTION_RULES": '[{"pattern": "/aws/lambda/critical-*", "days": 365}]',
            "RETENTION_DEFAULT_DAYS": "60",
            "RETENTION_STACK_LOG_GROUPS": '["/aws/lambda/eksops-notifier"]',
        }
    )
    assert cfg.scope is Scope.EKS  # unset: the template's default
    assert cfg.target("/aws/eks/prod/cluster") == 60  # no default rules here: the default reaches EKS groups
    assert cfg.target("/aws/containerinsights/prod/prometheus") == 60
    assert cfg.target("/aws/lambda/critical-payments") == 365  # a rule names it: in scope
    assert cfg.target("/aws/lambda/someone-else") is None
    assert cfg.target("/aws/eksctl/whatever") is None  # "/aws/eks/*" is a path prefix, not a name prefix
    assert cfg.in_scope("/aws/lambda/eksops-notifier")  # the stack's own (excluded all the same)
    assert cfg.excluded("/aws/lambda/eksops-notifier")


@pytest.mark.parametrize(
    ("env", "variable", "fragment"),
    [
        ({"RETENTION_DEFAULT_DAYS": "10"}, "RETENTION_DEFAULT_DAYS", "is not a retention CloudWatch Logs accepts"),
        ({"RETENTION_DEFAULT_DAYS": "forever"}, "RETENTION_DEFAULT_DAYS", "is not a whole number"),
        ({"RETENTION_MODE": "strict"}, "RETENTION_MODE", "use one of: missing, cap, exact"),
        ({"RETENTION_RULES": "[{"}, "RETENTION_RULES", "not valid JSON"),
        ({"RETENTION_RULES": '{"pattern": "x", "days": 7}'}, "RETENTION_RULES", "must be a JSON list"),
        ({"RETENTION_RULES": '[{"pattern": "x", "days": 8}]'}, "RETENTION_RULES[0].days", "use one of: 1, 3, 5"),
        ({"RETENTION_RULES": '[{"pattern": "x", "days": true}]'}, "RETENTION_RULES[0].days", "is not a retention"),
        ({"RETENTION_RULES": '[{"pattern": "", "days": 7}]'}, "RETENTION_RULES[0]", "non-empty"),
        ({"RETENTION_RULES": '[{"glob": "x", "days": 7}]'}, "RETENTION_RULES", "item 0 must be"),
        ({"RETENTION_EXCLUDE": '"/audit/*"'}, "RETENTION_EXCLUDE", "JSON list"),
        ({"RETENTION_PUT_RATE": "0"}, "RETENTION_PUT_RATE", "outside 1..100"),
        ({"RETENTION_PUT_RATE": "fast"}, "RETENTION_PUT_RATE", "not a whole number"),
        ({"RETENTION_SCOPE": "global"}, "RETENTION_SCOPE", "use one of: eks, region"),
        ({"RETENTION_SCOPE": "EKS"}, "RETENTION_SCOPE", "use one of: eks, region"),
    ],
)
def test_retention_invalid_values_name_the_variable(env: dict[str, str], variable: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        RetentionConfig.from_env(env)
    assert info.value.variable == variable
    assert fragment in str(info.value)


@pytest.mark.parametrize("days", VALID_DAYS)
def test_every_accepted_retention_parses(days: int) -> None:
    assert RetentionConfig.from_env({"RETENTION_DEFAULT_DAYS": str(days)}).default_days == days
