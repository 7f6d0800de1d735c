"""RetentionScope on the sandbox: with "eks" (the default) RetentionDefaultDays reaches only EKS-related log groups,
with "region" every never-expire group; log_retention's sweep and event path and compliance_sweep read the same
setting."""

from __future__ import annotations

from typing import Any

import pytest

from eksops.logs import RetentionConfig, Scope
from eksops_dev.cloudtrail import CloudTrailShim

# name -> retention when the sweep starts (None: never expires)
GROUPS: dict[str, int | None] = {
    "/aws/lambda/someone-else": None,  # another team's function: not EKS
    "/aws/containerinsights/shop/prometheus": None,  # Container Insights, no rule names it: the default
    "/aws/eks/shop/cluster": None,  # a rule: 90 days
    "/aws/eks/shop/cluster-archive": None,  # EKS, no rule: the default
}


def retentions(sandbox: Any) -> dict[str, int | None]:
    pages = sandbox.client("logs").get_paginator("describe_log_groups").paginate()
    return {g["logGroupName"]: g.get("retentionInDays") for page in pages for g in page["logGroups"]}


def sweep(make_sandbox: Any, **parameters: str) -> tuple[dict[str, int | None], dict[str, Any]]:
    sandbox, dispatcher = make_sandbox(parameters)
    logs = sandbox.client("logs")
    for name in GROUPS:
        logs.create_log_group(logGroupName=name)
    (run,) = [r for r in dispatcher.fire_schedule("log_retention") if r.function == "log_retention"]
    assert run.ok, run.error
    return {name: days for name, days in retentions(sandbox).items() if name in GROUPS}, run.result


def test_default_scope_leaves_other_teams_groups_alone(make_sandbox: Any) -> None:
    after, result = sweep(make_sandbox)  # the template's defaults: RetentionDefaultDays 365, RetentionScope eks
    assert after == {
        "/aws/lambda/someone-else": None,
        "/aws/containerinsights/shop/prometheus": 365,
        "/aws/eks/shop/cluster": 90,
        "/aws/eks/shop/cluster-archive": 365,
    }
    assert {c["group"] for c in result["changed"]} == set(GROUPS) - {"/aws/lambda/someone-else"}
    assert result["unchanged"] >= 1  # someone-else, counted as left alone, not as an error or exclusion


def test_region_scope_sets_every_never_expire_group(make_sandbox: Any) -> None:
    after, result = sweep(make_sandbox, RetentionScope="region")
    assert after["/aws/lambda/someone-else"] == 365
    assert after["/aws/eks/shop/cluster"] == 90  # rules come first in every scope
    assert {c["group"] for c in result["changed"]} == set(GROUPS)


def test_the_event_path_follows_the_scope_too(make_sandbox: Any) -> None:
    sandbox, dispatcher = make_sandbox()
    shim = CloudTrailShim(sandbox.client)
    shim.call("logs", "create_log_group", logGroupName="/aws/lambda/someone-else")
    shim.call("logs", "create_log_group", logGroupName="/aws/eks/shop/cluster")
    runs = [r for r in dispatcher.drain() if r.function == "log_retention"]
    assert len(runs) == 2 and all(r.ok for r in runs)
    assert [c["group"] for r in runs for c in r.result["changed"]] == ["/aws/eks/shop/cluster"]
    assert retentions(sandbox)["/aws/lambda/someone-else"] is None


@pytest.mark.parametrize("scope", ["eks", "region"])
def test_log_retention_and_compliance_sweep_read_the_same_scope(make_sandbox: Any, scope: str) -> None:
    sandbox, _ = make_sandbox({"RetentionScope": scope})
    for function in ("log_retention", "compliance_sweep"):
        env = sandbox.function_env(sandbox.function(function))
        assert RetentionConfig.from_env(env).scope is Scope(scope), function
