"""The log groups compliance_sweep may fix are within what its role allows, as IAM evaluates the ARN: PutRetentionPolicy
and PutMetricFilter are authorised against ``arn:...:log-group:<name>:*`` (the log group ARN with a trailing ``:*``),
so a resource pattern ending in the bare name never matches (the review of issue 12 found one)."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from tests.unit.compliance.test_registry import as_list, remediating, statements

ARN = "arn:aws:logs:us-east-1:123456789012:log-group:{}:*"


def allowed(action: str, arn: str, found: list[dict[str, Any]]) -> bool:
    return any(
        st.get("Effect") == "Allow"
        and action in as_list(st["Action"])
        and any(isinstance(r, str) and fnmatch.fnmatchcase(arn, r) for r in as_list(st["Resource"]))
        for st in found
    )


def resolved(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements with ${AWS::...} pseudo parameters as the tests' account and region."""
    out = []
    for st in found:
        resources = [
            r.replace("${AWS::Partition}", "aws")
            .replace("${AWS::Region}", "us-east-1")
            .replace("${AWS::AccountId}", "123456789012")
            if isinstance(r, str)
            else r
            for r in as_list(st.get("Resource", []))
        ]
        out.append({**st, "Resource": resources})
    return out


@pytest.mark.parametrize(
    "group", ["/aws/eks/prod/cluster", "/aws/containerinsights/prod/application", "/aws/containerinsights/prod/host"]
)
def test_logs_retention_remediation_may_set_every_group_the_rule_checks(group: str) -> None:
    found = resolved(statements(**remediating("logs-retention")))
    assert allowed("logs:PutRetentionPolicy", ARN.format(group), found), group


def test_the_resource_check_can_fail() -> None:
    found = resolved(statements(**remediating("logs-retention")))
    assert not allowed("logs:PutRetentionPolicy", ARN.format("/aws/lambda/someone-else"), found)
    assert not allowed("logs:PutRetentionPolicy", ARN.format("/aws/eks/prod/cluster"), resolved(statements()))
