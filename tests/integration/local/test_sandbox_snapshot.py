"""Sandbox provisioning snapshots: a sandbox restored from a snapshot holds what a provisioned one holds, in moto and
in its own wiring; parameters that change provisioning get their own; moto holding anything else means provisioning."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from eksops_dev import sandbox as sandbox_module
from eksops_dev.cloudtrail import CloudTrailShim
from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from eksops_dev.template import Template

PARAMETERS = {"ImageConfigRepoUrl": "codecommit://eksops-config", "DryRun": "false"}


def reset(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()


def observed(sb: Sandbox) -> dict[str, Any]:
    """What the provisioning made, read back over HTTP, and the sandbox's own wiring."""
    c = sb.client
    return {
        "queues": sorted(c("sqs").list_queues().get("QueueUrls", [])),
        "topics": sorted(t["TopicArn"] for t in c("sns").list_topics()["Topics"]),
        "subscriptions": sorted((s["TopicArn"], s["Endpoint"]) for s in c("sns").list_subscriptions()["Subscriptions"]),
        "rules": sorted(
            (
                r["Name"],
                r.get("EventPattern"),
                tuple(t["Arn"] for t in c("events").list_targets_by_rule(Rule=r["Name"])["Targets"]),
            )
            for r in c("events").list_rules()["Rules"]
        ),
        "tables": c("dynamodb").list_tables()["TableNames"],
        "log_groups": sorted(
            (g["logGroupName"], g.get("retentionInDays")) for g in c("logs").describe_log_groups()["logGroups"]
        ),
        "alarms": sorted(a["AlarmName"] for a in c("cloudwatch").describe_alarms()["MetricAlarms"]),
        "roles": sorted(r["RoleName"] for r in c("iam").list_roles()["Roles"]),
        "role_policies": sorted(
            (r["RoleName"], p)
            for r in c("iam").list_roles()["Roles"]
            for p in c("iam").list_role_policies(RoleName=r["RoleName"])["PolicyNames"]
        ),
        "keys": len(c("kms").list_keys()["Keys"]),
        "wiring": (sb.refs, sb.attrs, sb.queue_urls, sb.inboxes, sb.batch_inboxes, sb.schedules, sb.bridges),
        "notes": sb.notes,
    }


def start(template: Template, endpoint: str, tmp_path: Path, name: str, **parameters: str) -> Sandbox:
    reset(endpoint)
    sb = Sandbox(template, parameters={**PARAMETERS, **parameters}, endpoint=endpoint, workdir=tmp_path / name)
    sb.start()
    return sb


@pytest.fixture
def snapshots(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An empty snapshot store for the test (others in the process keep theirs)."""
    store: dict[str, Any] = {}
    monkeypatch.setattr(sandbox_module, "_SNAPSHOTS", store)
    monkeypatch.delenv("EKSOPS_SANDBOX_SNAPSHOTS", raising=False)
    return store


def test_a_restored_sandbox_holds_what_a_provisioned_one_does(
    moto_endpoint: str, template: Template, tmp_path: Path, snapshots: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = start(template, moto_endpoint, tmp_path, "a")  # provisions, and saves what it made
    expected = observed(first)
    first.stop()
    assert len(next(iter(snapshots.values()))) == 1
    restored = start(template, moto_endpoint, tmp_path, "c")
    try:
        assert restored.created == first.created
        assert observed(restored) == expected
        assert len(expected["queues"]) > 10 and len(expected["rules"]) > 5  # the comparison compares something
        # and it works: a new log group goes by its rule to log_retention, whose report reaches the notifier
        CloudTrailShim(restored.client).call("logs", "create_log_group", logGroupName="/aws/containerinsights/c1/host")
        dispatcher = Dispatcher(restored)
        runs = dispatcher.drain()
        dispatcher.close()
        assert [(r.function, r.ok) for r in runs] == [("log_retention", True), ("notifier", True)]
        groups = restored.client("logs").describe_log_groups(logGroupNamePrefix="/aws/containerinsights/c1/host")
        assert groups["logGroups"][0].get("retentionInDays"), "log_retention set no retention"
    finally:
        restored.stop()
    # what the restored sandbox changed stays out of the snapshot: the next one starts as provisioned again
    again = start(template, moto_endpoint, tmp_path, "d")
    try:
        assert observed(again) == expected
    finally:
        again.stop()
    # EKSOPS_SANDBOX_SNAPSHOTS=0 provisions anew (a new key, new subscriptions), with the same resources
    monkeypatch.setenv("EKSOPS_SANDBOX_SNAPSHOTS", "0")
    anew = start(template, moto_endpoint, tmp_path, "e")
    try:
        fresh = observed(anew)
    finally:
        anew.stop()
    assert fresh["wiring"][0]["EksopsKey"] != expected["wiring"][0]["EksopsKey"]
    same = ("queues", "topics", "tables", "log_groups", "alarms", "roles", "role_policies", "keys", "notes")
    assert {k: fresh[k] for k in same} == {k: expected[k] for k in same}
    assert len(next(iter(snapshots.values()))) == 1, "EKSOPS_SANDBOX_SNAPSHOTS=0 saves none"


def test_parameters_that_change_provisioning_get_their_own(
    moto_endpoint: str, template: Template, tmp_path: Path, snapshots: dict[str, Any]
) -> None:
    start(template, moto_endpoint, tmp_path, "a").stop()
    without_scaler = start(template, moto_endpoint, tmp_path, "b", EnableNodeScaler="false")
    try:
        assert "node_scaler" not in {function for function, _ in without_scaler.inboxes.values()}
        assert "node_scaler" not in without_scaler.schedules
    finally:
        without_scaler.stop()
    assert len(next(iter(snapshots.values()))) == 2
    # a parameter provisioning does not read (DryRun only reaches the functions' environment) shares a snapshot
    start(template, moto_endpoint, tmp_path, "c", DryRun="true").stop()
    assert len(next(iter(snapshots.values()))) == 2


def test_a_moto_holding_something_else_is_provisioned_not_restored(
    moto_endpoint: str, template: Template, tmp_path: Path, snapshots: dict[str, Any]
) -> None:
    start(template, moto_endpoint, tmp_path, "a").stop()
    reset(moto_endpoint)
    sb = Sandbox(template, parameters=PARAMETERS, endpoint=moto_endpoint, workdir=tmp_path / "b")
    sb.client("sqs").create_queue(QueueName="someone-elses")
    sb.start()
    try:
        queues = sb.client("sqs").list_queues()["QueueUrls"]
        assert any(q.endswith("/someone-elses") for q in queues)
        assert len(queues) > 10
    finally:
        sb.stop()
    assert len(next(iter(snapshots.values()))) == 1, "a sandbox over other state is not saved as a snapshot"


def test_restored_queue_urls_follow_a_new_server(template: Template, tmp_path: Path, snapshots: dict[str, Any]) -> None:
    """`eksops invoke` starts a server per run: the queue URLs a snapshot holds carry the old port."""
    with Sandbox(template, parameters=PARAMETERS, workdir=tmp_path / "a") as first:
        old = str(first.endpoint)
    with Sandbox(template, parameters=PARAMETERS, workdir=tmp_path / "b") as second:
        assert second.endpoint != old
        assert all(url.startswith(str(second.endpoint)) for url in second.queue_urls.values())
        assert all(url.startswith(str(second.endpoint)) for url in second.inboxes)
        listed = set(second.client("sqs").list_queues()["QueueUrls"])
        assert set(second.queue_urls.values()) <= listed
