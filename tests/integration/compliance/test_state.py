"""StateStore against DynamoDB in the moto server over HTTP (and Stubber for unprocessed items, which moto never
returns)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from eksops.aws import client
from eksops.compliance.model import Category, Finding, Severity
from eksops.compliance.state import StateStore, sort_key
from eksops.errors import TemporaryError

TABLE = "eksops-compliance-state"
NOW = 1_780_000_000.0


def create_table(name: str = TABLE) -> None:
    """The state table as template.yaml declares it: cluster (S) / finding (S), TTL on expires_at."""
    dynamodb = client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "cluster", "KeyType": "HASH"}, {"AttributeName": "finding", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "cluster", "AttributeType": "S"},
            {"AttributeName": "finding", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


@pytest.fixture
def store(aws: str) -> StateStore:
    create_table()
    return StateStore(client("dynamodb"), TABLE, days=30, clock=lambda: NOW)


def finding(resource: str, *, rule: str = "pod-privileged", status: str = "open") -> Finding:
    return Finding(
        rule=rule,
        title="Privileged containers",
        severity=Severity.HIGH,
        category=Category.SECURITY,
        cluster="prod",
        resource=resource,
        evidence="privileged: true",
        fix="Set privileged: false.",
        status=status,
    )


def item(cluster: str, key: str) -> dict[str, Any]:
    key_value = {"cluster": {"S": cluster}, "finding": {"S": sort_key(key)}}
    found: dict[str, Any] = client("dynamodb").get_item(TableName=TABLE, Key=key_value, ConsistentRead=True)
    return dict(found.get("Item", {}))


def test_a_saved_sweep_loads_back_with_ttl(store: StateStore) -> None:
    store.save(
        "prod",
        [finding("pod/a/x"), finding("namespace/a", rule="ns-deny", status="remediated")],
        previous={},
        resolved=[],
        now="2026-06-15T06:00:00.000Z",
    )
    loaded = store.load("prod")
    assert set(loaded) == {"pod-privileged|pod/a/x", "ns-deny|namespace/a"}
    stored = loaded["ns-deny|namespace/a"]
    assert (stored.rule, stored.resource, stored.severity, stored.status) == (
        "ns-deny",
        "namespace/a",
        "high",
        "remediated",
    )
    assert stored.first_seen == stored.last_seen == "2026-06-15T06:00:00.000Z"
    assert stored.fix == "Set privileged: false." and stored.category == "security"
    assert item("prod", "pod-privileged|pod/a/x")["expires_at"] == {"N": str(int(NOW) + 30 * 86_400)}
    ttl = client("dynamodb").describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    assert store.load("other") == {}


def test_first_seen_is_kept_and_resolved_findings_are_deleted(store: StateStore) -> None:
    store.save(
        "prod", [finding("pod/a/x"), finding("pod/a/y")], previous={}, resolved=[], now="2026-06-14T06:00:00.000Z"
    )
    store.save("dev", [finding("pod/a/x")], previous={}, resolved=[], now="2026-06-14T06:00:00.000Z")
    previous = store.load("prod")
    count = store.save(
        "prod",
        [finding("pod/a/x")],
        previous=previous,
        resolved=["pod-privileged|pod/a/y"],
        now="2026-06-15T06:00:00.000Z",
    )
    assert count == 2  # one put, one delete
    loaded = store.load("prod")
    assert list(loaded) == ["pod-privileged|pod/a/x"]
    assert loaded["pod-privileged|pod/a/x"].first_seen == "2026-06-14T06:00:00.000Z"
    assert loaded["pod-privileged|pod/a/x"].last_seen == "2026-06-15T06:00:00.000Z"
    assert list(store.load("dev")) == ["pod-privileged|pod/a/x"]  # another cluster's state is its own


def test_many_findings_are_written_in_batches_and_read_in_pages(store: StateStore) -> None:
    findings = [finding(f"deployment/shop/app-{i:03d}") for i in range(130)]
    assert store.save("prod", findings, previous={}, resolved=[], now="t") == 130
    assert len(store.load("prod")) == 130


def test_a_key_over_dynamodbs_limit_is_hashed_and_loads_by_rule_and_resource(store: StateStore) -> None:
    resource = "image/" + "r" * 1500
    store.save("prod", [finding(resource)], previous={}, resolved=[], now="t")
    loaded = store.load("prod")
    assert list(loaded) == [f"pod-privileged|{resource}"]
    assert len(sort_key(f"pod-privileged|{resource}").encode()) <= 1024
    store.save("prod", [], previous=loaded, resolved=[f"pod-privileged|{resource}"], now="t")
    assert store.load("prod") == {}


def test_unprocessed_items_are_retried_then_reported() -> None:
    import botocore.session

    dynamodb = botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    waits: list[float] = []
    store = StateStore(dynamodb, TABLE, clock=lambda: NOW, sleep=waits.append)
    put = {"PutRequest": {"Item": {"cluster": {"S": "prod"}, "finding": {"S": "k"}}}}
    with Stubber(dynamodb) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": {TABLE: [put]}})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}})
        store.save("prod", [finding("pod/a/x")], previous={}, resolved=[], now="t")
        stub.assert_no_pending_responses()
        assert waits == [0.1]
        for _ in range(5):
            stub.add_response("batch_write_item", {"UnprocessedItems": {TABLE: [put]}})
        with pytest.raises(TemporaryError, match="1 finding\\(s\\) left unprocessed"):
            store.save("prod", [finding("pod/a/x")], previous={}, resolved=[], now="t")
