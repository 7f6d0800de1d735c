"""The log_retention handler as Lambda runs it: sandbox routing, retries, failure destination, config."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eksops.aws import client
from eksops_dev.cli import main
from eksops_dev.cloudtrail import CloudTrailShim, cloudtrail_event
from tests.integration.conftest import CallCounter

ROOT = Path(__file__).resolve().parents[3]


def dead_letters(sandbox: Any) -> list[dict[str, Any]]:
    sqs = sandbox.client("sqs")
    messages = sqs.receive_message(QueueUrl=sandbox.refs["DeadLetterQueue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def retentions(sandbox: Any) -> dict[str, int | None]:
    return {
        g["logGroupName"]: g.get("retentionInDays") for g in sandbox.client("logs").describe_log_groups()["logGroups"]
    }


def test_create_event_is_routed_and_enforced(make_sandbox: Any) -> None:
    sandbox, dispatcher = make_sandbox()
    CloudTrailShim(sandbox.client).call("logs", "create_log_group", logGroupName="/aws/containerinsights/c1/host")
    runs = dispatcher.drain()
    # the change report reaches the notifier through the reports topic and its queue: a batch of one, none failed
    assert [(r.function, r.ok) for r in runs] == [("log_retention", True), ("notifier", True)]
    assert runs[1].trigger == "Reports: SQS batch of 1 from eksops-local-reports"
    assert runs[1].result == {"batchItemFailures": []}
    [record] = runs[1].event["Records"]
    assert json.loads(json.loads(record["body"])["Message"])["kind"] == "retention.changes"
    assert runs[0].result["changed"] == [{"group": "/aws/containerinsights/c1/host", "from": None, "to": 14}]
    assert retentions(sandbox)["/aws/containerinsights/c1/host"] == 14


@pytest.mark.parametrize(
    ("event", "error_type", "fragment"),
    [
        ({"hello": "world"}, "InvalidEvent", "key is missing (field: source)"),
        ("just a string", "InvalidEvent", "must be a JSON object"),
        (cloudtrail_event("logs", "CreateLogGroup", None), "InvalidEvent", "detail.requestParameters.logGroupName"),
        (cloudtrail_event("logs", "CreateLogGroup", {"logGroupName": ""}), "InvalidEvent", "logGroupName"),
        (cloudtrail_event("ec2", "RunInstances", {"instanceType": "m7g.large"}), "UnsupportedEvent", "aws.ec2"),
        ({"source": "aws.health", "detail-type": "AWS Health Event", "detail": {}}, "UnsupportedEvent", "aws.health"),
    ],
)
def test_bad_events_fail_specifically_change_nothing_and_are_dead_lettered(
    make_sandbox: Any, event: Any, error_type: str, fragment: str
) -> None:
    sandbox, dispatcher = make_sandbox()
    sandbox.client("logs").create_log_group(logGroupName="/app/untouched")
    before = retentions(sandbox)
    inv = dispatcher.invoke("log_retention", event, "test")
    assert not inv.ok and inv.error_type == error_type and fragment in str(inv.error)
    assert inv.attempts == 3  # Lambda's two asynchronous retries, then the failure destination
    assert retentions(sandbox) == before
    [record] = dead_letters(sandbox)
    assert record["responsePayload"]["errorType"] == error_type
    assert record["requestPayload"] == event
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    log = (sandbox.workdir / "functions.log").read_text()
    assert '"message":"invalid event: nothing was changed"' in log
    # the three attempts ran under one request id, as Lambda's retries do (a report's identity rests on it)
    failed = [json.loads(line) for line in log.splitlines() if '"invalid event: nothing was changed"' in line]
    assert len(failed) == 3 and len({line["function_request_id"] for line in failed}) == 1


@pytest.mark.parametrize(
    ("parameter", "value", "variable"),
    [
        ("RetentionMode", "strict", "RETENTION_MODE"),
        ("RetentionDefaultDays", "10", "RETENTION_DEFAULT_DAYS"),
        ("RetentionRules", '[{"pattern": "*", "days": 2}]', "RETENTION_RULES[0].days"),
        ("RetentionExclude", "[1]", "RETENTION_EXCLUDE"),
        ("DryRun", "perhaps", "DRY_RUN"),
    ],
)
def test_invalid_configuration_fails_at_start_up_naming_the_variable(
    make_sandbox: Any, parameter: str, value: str, variable: str
) -> None:
    sandbox, dispatcher = make_sandbox(parameters={parameter: value})
    sandbox.client("logs").create_log_group(logGroupName="/app/untouched")
    before = retentions(sandbox)
    inv = dispatcher.invoke(
        "log_retention", json.loads((ROOT / "events/log_retention/scheduled_sweep.json").read_text()), "test"
    )
    assert inv.error_type == "ConfigError"
    assert str(inv.error).startswith(f"{variable}: ")
    assert retentions(sandbox) == before and before["/app/untouched"] is None
    [record] = dead_letters(sandbox)
    assert record["responsePayload"]["errorType"] == "ConfigError"


def test_sweep_continues_through_eventbridge_until_done(make_sandbox: Any, counter: CallCounter) -> None:
    checks = {"n": 0}

    def remaining_for(_function: str) -> Callable[[], int]:
        def remaining() -> int:
            checks["n"] += 1
            return 900_000 if checks["n"] % 40 else 5_000  # time runs low every 40 groups

        return remaining

    # groups of any name: RetentionScope=region (the default scope, eks, is tested in logs/test_retention_scope.py)
    sandbox, dispatcher = make_sandbox(
        parameters={"RetentionPutRate": "100", "RetentionScope": "region"}, remaining_ms=remaining_for
    )
    names = [f"/app/svc-{i:03}" for i in range(120)]
    for name in names:
        sandbox.client("logs").create_log_group(logGroupName=name)
    dispatcher.handler(sandbox.function("log_retention"))
    counter.attach(client("logs"))  # the handler's own cached client
    runs = [r for r in dispatcher.fire_schedule("log_retention") if r.function == "log_retention"]
    assert all(r.ok for r in runs)
    assert len(runs) >= 3
    assert [r.trigger.split(":")[0] for r in runs[1:]] == ["SweepContinued"] * (len(runs) - 1)
    assert sum(len(r.result["changed"]) for r in runs) == len(names)
    assert {n: counter.puts[n] for n in names} == {n: 1 for n in names}
    assert all(days == 365 for name, days in retentions(sandbox).items() if name in names)


def test_cli_invoke_runs_a_sample_event_on_the_sandbox(
    capsys: pytest.CaptureFixture[str], aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["invoke", "log_retention", "--event", "events/log_retention/create_log_group.json", "--dry-run"])
    output = json.loads(capsys.readouterr().out)
    assert code == 0 and output["ok"] is True
    assert output["result"]["dry_run"] is True
    # the sandbox is seeded with the group the event names; the dry run says what it would set
    group = "/aws/containerinsights/prod-eu/application"
    assert output["result"]["changed"] == [{"group": group, "from": None, "to": 30}]


def test_cli_invoke_reports_failure_with_exit_code(
    capsys: pytest.CaptureFixture[str], aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "aws.logs"}')
    assert main(["invoke", "log_retention", "--event", str(bad)]) == 1
    output = json.loads(capsys.readouterr().out)
    assert output["errorType"] == "InvalidEvent"


def _log_lines(sandbox: Any) -> list[dict[str, Any]]:
    lines = (sandbox.workdir / "functions.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_group_already_gone_is_a_logged_no_op(make_sandbox: Any) -> None:
    sandbox, dispatcher = make_sandbox()
    event = cloudtrail_event("logs", "CreateLogGroup", {"logGroupName": "/app/deleted-meanwhile"})
    inv = dispatcher.invoke("log_retention", event, "test")
    assert inv.ok and inv.result["gone"] == ["/app/deleted-meanwhile"] and inv.result["changed"] == []
    said = [line for line in _log_lines(sandbox) if "no longer exists" in str(line.get("message"))]
    assert len(said) == 1, said
    # the package's own line goes out as the function's structured JSON, with its service and Lambda context
    assert said[0]["level"] == "INFO" and said[0]["service"] and said[0]["function_request_id"]
    assert "/app/deleted-meanwhile" in said[0]["message"]


def test_counts_go_out_as_emf_metrics(make_sandbox: Any) -> None:
    sandbox, dispatcher = make_sandbox(parameters={"RetentionScope": "region"})  # /app/new gets the default
    sandbox.client("logs").create_log_group(logGroupName="/app/new")
    inv = dispatcher.invoke(
        "log_retention", cloudtrail_event("logs", "CreateLogGroup", {"logGroupName": "/app/new"}), "t"
    )
    assert inv.ok
    emf = [line for line in _log_lines(sandbox) if "_aws" in line and "LogGroupsChanged" in line]
    assert emf, "no EMF line with LogGroupsChanged"
    metric = emf[-1]
    names = {m["Name"] for d in metric["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"LogGroupsChanged", "LogGroupsUnchanged", "LogGroupsExcluded", "LogGroupsErrors"} <= names
    assert metric["LogGroupsChanged"] == [1.0] and metric["LogGroupsErrors"] == [0.0]
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "eksops"
