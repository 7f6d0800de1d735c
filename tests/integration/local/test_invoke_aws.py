"""`eksops invoke --aws`: the handler runs here against "your account" (the moto server as AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from eksops.aws import client
from eksops.sweeps import Deadline
from eksops_dev import invoke

ROOT = Path(__file__).resolve().parents[3]
SWEEP = str(ROOT / "events/log_retention/scheduled_sweep.json")


def _seed(count: int) -> list[str]:
    names = [f"/app/svc-{i:03}" for i in range(count)]
    for name in names:
        client("logs").create_log_group(logGroupName=name)
    return names


def _retention(name: str) -> int | None:
    return client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"][0].get("retentionInDays")


def _low_every(n: int) -> Any:
    """Deadline.low() that says the time runs low at every n-th look, so the sweep continues mid-page."""
    looks = {"n": 0}

    def low(_self: Deadline) -> bool:
        looks["n"] += 1
        return looks["n"] % n == 0

    return low


def _output(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]  # the result alone: logs go to stderr


def test_dry_run_on_your_account_changes_nothing_and_continues_here(
    aws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    names = _seed(30)
    queue = client("sqs").create_queue(QueueName="bus-watch")["QueueUrl"]
    arn = client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("events").put_rule(Name="catch-continuations", EventPattern=json.dumps({"source": ["eksops"]}))
    client("events").put_targets(Rule="catch-continuations", Targets=[{"Id": "q", "Arn": arn}])
    with mock.patch.object(Deadline, "low", _low_every(7)):
        code = invoke.run("log_retention", SWEEP, aws=True, dry_run=True, params=[])
    report = _output(capsys)
    assert code == 0 and report["ok"], report
    assert report["parts"] > 2  # the chain ran here, part after part
    assert report["result"]["dry_run"] is True
    assert all(_retention(name) is None for name in names)
    assert client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []) == []  # bus untouched


def test_a_live_run_on_your_account_sets_every_group(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    names = _seed(30)
    with mock.patch.object(Deadline, "low", _low_every(7)):
        # acting (the template's default is a dry run), on groups of any name (the default scope is EKS groups)
        code = invoke.run(
            "log_retention", SWEEP, aws=True, dry_run=False, params=["DryRun=false", "RetentionScope=region"]
        )
    report = _output(capsys)
    assert code == 0 and report["ok"], report
    assert report["parts"] > 2
    assert all(_retention(name) == 365 for name in names)
