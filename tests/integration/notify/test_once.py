"""Once: at most once per key, on a DynamoDB table in moto over HTTP, with Powertools idempotency's protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from eksops.aws import client
from eksops.notify.once import InProgress, Once
from tests.integration.notify.conftest import IDEMPOTENCY_TABLE

TABLE = IDEMPOTENCY_TABLE


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def once(dynamodb: Any, clock: Clock, expires: int = 600) -> Once:
    made = Once(table=TABLE, dynamodb=dynamodb, key_prefix="fn.test", expires_after_seconds=expires, clock=clock)
    made.register_lambda_context(Context(60_000))
    return made


def counting(result: dict[str, Any]) -> tuple[list[int], Callable[[], dict[str, Any]]]:
    calls: list[int] = []

    def action() -> dict[str, Any]:
        calls.append(1)
        return result

    return calls, action


def items(dynamodb: Any) -> list[dict[str, Any]]:
    return list(dynamodb.scan(TableName=TABLE)["Items"])


def test_the_first_call_runs_and_a_repeat_returns_its_result(ddb: Any) -> None:
    clock = Clock()
    calls, action = counting({"posted": True, "n": 1, "text": "caf\u00e9 \u2713"})
    first = once(ddb, clock)
    assert first.run("k", action) == ({"posted": True, "n": 1, "text": "caf\u00e9 \u2713"}, False)
    clock.now += 599
    again = once(ddb, clock)  # another execution environment: only the table is shared
    assert again.run("k", action) == ({"posted": True, "n": 1, "text": "caf\u00e9 \u2713"}, True)
    assert calls == [1]
    [item] = items(ddb)
    assert item["id"]["S"].startswith("fn.test#sha256:") and item["status"]["S"] == "COMPLETED"
    assert int(item["expiration"]["N"]) == 1_800_000_000 + 600  # the table's TTL attribute
    assert once(ddb, clock).run("other key", action)[1] is False and calls == [1, 1]


def test_after_the_expiry_the_action_runs_again(ddb: Any) -> None:
    clock = Clock()
    calls, action = counting({"ok": 1})
    assert once(ddb, clock).run("k", action)[1] is False
    clock.now += 601  # TTL deletes late: the expired item is still there, and counts as gone
    assert len(items(ddb)) == 1
    assert once(ddb, clock).run("k", action)[1] is False
    assert calls == [1, 1]


def test_a_failed_action_leaves_no_record_so_the_retry_runs_it(ddb: Any) -> None:
    clock = Clock()

    def fails() -> dict[str, Any]:
        raise RuntimeError("Slack is down")

    with pytest.raises(RuntimeError, match="Slack is down"):
        once(ddb, clock).run("k", fails)
    assert items(ddb) == []
    calls, action = counting({"ok": 1})
    assert once(ddb, clock).run("k", action) == ({"ok": 1}, False) and calls == [1]


def test_a_key_in_progress_elsewhere_is_refused_until_that_invocation_s_deadline(
    ddb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    holder = once(ddb, clock)
    holder.register_lambda_context(Context(30_000))
    seen: list[BaseException] = []

    def slow() -> dict[str, Any]:
        # while the holder runs, a second invocation asks for the same key
        calls, action = counting({"ok": 2})
        with pytest.raises(InProgress, match="retry later") as refused:
            once(ddb, clock).run("k", action)
        seen.append(refused.value)
        assert calls == []
        return {"ok": 1}

    assert holder.run("k", slow) == ({"ok": 1}, False) and len(seen) == 1

    # a holder whose record stays INPROGRESS (it timed out, or could not release it): refused until its
    # deadline, then taken over
    stuck = Once(
        table=TABLE, dynamodb=Refusing(ddb, "delete_item"), key_prefix="fn.test", expires_after_seconds=600, clock=clock
    )
    stuck.register_lambda_context(Context(30_000))
    with pytest.raises(RuntimeError, match="boom"):
        stuck.run("stuck", _boom)
    assert "could not release the claim" in caplog.text
    calls, action = counting({"ok": 3})
    clock.now += 29
    with pytest.raises(InProgress):
        once(ddb, clock).run("stuck", action)
    clock.now += 2
    assert once(ddb, clock).run("stuck", action) == ({"ok": 3}, False) and calls == [1]


def _boom() -> dict[str, Any]:
    raise RuntimeError("boom")


class Refusing:
    """The real client, with one operation refused as a throttled DynamoDB refuses it; ``when`` picks the calls."""

    def __init__(
        self,
        dynamodb: Any,
        operation: str,
        when: Callable[[dict[str, Any]], bool] = lambda _: True,
        error: Exception | None = None,
    ) -> None:
        self._ddb = dynamodb
        self._operation = operation
        self._when = when
        self._error = error

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._ddb, name)
        if name != self._operation:
            return real

        def refused(**kwargs: Any) -> Any:
            if self._when(kwargs):
                raise self._error or ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, name
                )
            return real(**kwargs)

        return refused


def test_without_a_registered_context_a_claim_holds_for_the_longest_invocation(ddb: Any) -> None:
    clock = Clock()
    bare = Once(table=TABLE, dynamodb=ddb, key_prefix="fn.test", expires_after_seconds=3600, clock=clock)

    def peek() -> dict[str, Any]:
        [item] = items(ddb)
        return {"in_progress_expiration": int(item["in_progress_expiration"]["N"])}

    result, _ = bare.run("k", peek)
    assert result["in_progress_expiration"] == 1_800_000_000_000 + 15 * 60 * 1000


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (None, "ThrottlingException"),
        (EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"), "Could not connect"),
    ],
)
def test_a_result_that_cannot_be_recorded_is_still_returned(
    ddb: Any, caplog: pytest.LogCaptureFixture, error: Exception | None, logged: str
) -> None:
    """The action is done (posted to Slack): failing now would make Lambda retry it and post it twice."""
    clock = Clock()
    calls, action = counting({"posted": True})
    flaky = Once(
        table=TABLE,
        dynamodb=Refusing(ddb, "put_item", lambda call: call["Item"]["status"]["S"] == "COMPLETED", error),
        key_prefix="fn.test",
        expires_after_seconds=600,
        clock=clock,
    )
    flaky.register_lambda_context(Context(10_000))
    assert flaky.run("k", action) == ({"posted": True}, False)
    assert "not recorded as done" in caplog.text and logged in caplog.text
    clock.now += 11  # the claim lapsed with that invocation: a later copy runs again (at least once)
    assert once(ddb, clock).run("k", action)[1] is False and calls == [1, 1]


def test_other_dynamodb_errors_are_not_taken_for_a_held_key(aws: str) -> None:
    """No table: the claim's error is DynamoDB's, not InProgress (which would retry for ever)."""
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        once(client("dynamodb"), Clock()).run("k", lambda: {"ok": 1})


def test_a_key_with_a_lone_surrogate_is_kept_like_any_other(ddb: Any) -> None:
    clock = Clock()
    calls, action = counting({"ok": 1})
    assert once(ddb, clock).run("m-\ud800", action)[1] is False
    assert once(ddb, clock).run("m-\ud800", action)[1] is True and calls == [1]


def test_a_non_positive_expiry_is_refused(aws: str) -> None:
    with pytest.raises(ValueError, match="expires_after_seconds"):
        Once(table=TABLE, dynamodb=client("dynamodb"), key_prefix="p", expires_after_seconds=0)


class NoItemOnConflict:
    """The real client, as a store that does not return the record refusing a conditional write."""

    def __init__(self, dynamodb: Any) -> None:
        self._ddb = dynamodb
        self.conflicts = 0

    def put_item(self, **kwargs: Any) -> Any:
        try:
            return self._ddb.put_item(**kwargs)
        except ClientError as exc:
            self.conflicts += 1
            exc.response.pop("Item", None)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ddb, name)


def test_the_record_that_refused_a_claim_is_read_when_not_returned(ddb: Any) -> None:
    clock = Clock()
    calls, action = counting({"ok": 1})
    assert once(ddb, clock).run("k", action)[1] is False
    store = NoItemOnConflict(ddb)
    assert once(store, clock).run("k", action) == ({"ok": 1}, True)
    assert store.conflicts == 1 and calls == [1]
