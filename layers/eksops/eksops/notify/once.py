"""At most once per key, for a while: Powertools idempotency on the notifier's DynamoDB table, and a small counter of
the copies it held back.

``Once`` serves burst dedup (key: an alert's content hash, kept for SLACK_DEDUP_SECONDS) and digests (key: the
webhook and the reports in it, kept 24 hours). Each needs a Powertools persistence layer of its own (the handler
makes them, with eksops' DynamoDB client): Powertools configures a layer once, with the first config it sees, so two
configs on one layer would share the first one's expiry.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eksops.errors import TemporaryError

REPLAYED = "__eksops_replayed__"  # marks a result that came from the store instead of the action
REPEATS_TTL_S = 24 * 3600
POSTED_TTL_S = 24 * 3600  # a retried invocation reports again within minutes; a duplicate delivery, sooner


class InProgress(TemporaryError):
    """Another invocation is running the action for the same key right now."""


class Once:
    """``run(key, action)`` calls ``action`` unless a call for ``key`` succeeded within ``expires_after_seconds``;
    then it returns that call's result instead. Returns ``(result, replayed)``."""

    def __init__(self, *, persistence: Any, key_prefix: str, expires_after_seconds: int) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

        self.expires_after_seconds = expires_after_seconds
        self.config = IdempotencyConfig(
            event_key_jmespath="key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
            response_hook=_replayed,
        )
        self._action: Callable[[], dict[str, Any]] | None = None

        def once(data: dict[str, str]) -> dict[str, Any]:
            if self._action is None:
                raise RuntimeError("Once: called outside run()")
            return self._action()

        self._once = idempotent_function(
            once,
            data_keyword_argument="data",
            persistence_store=persistence,
            config=self.config,
            key_prefix=key_prefix,
        )

    def register_lambda_context(self, context: Any) -> None:
        """Each invocation: an in-progress record of a timed-out invocation then expires with it."""
        self.config.register_lambda_context(context)

    def run(self, key: str, action: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        self._action = action
        busy = False
        try:
            result: dict[str, Any] = self._once(data={"key": key})
        except IdempotencyAlreadyInProgressError:
            busy = True
        finally:
            self._action = None
        if busy:  # raised here, outside the except block: Powertools' error names the key, ours says what to do
            raise InProgress(f"another invocation is posting the same content now ({key[:19]}...); retry later")
        replayed = bool(result.pop(REPLAYED, False))
        return result, replayed


def _replayed(response: Any, idempotent_data: Any) -> Any:
    return {**response, REPLAYED: True} if isinstance(response, dict) else response


@dataclass(frozen=True)
class Repeats:
    count: int
    last_seen: str  # ISO 8601, UTC


class RepeatCounter:
    """How many copies of an alert were held back since it was last posted: one item per alert in the same table
    (id ``<prefix>#<key>``, expiring through the table's TTL attribute), added to by each copy and taken by the
    next post."""

    def __init__(self, *, table: str, dynamodb: Any, key_prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._ddb = dynamodb
        self._prefix = key_prefix
        self._clock = clock

    def add(self, key: str) -> int:
        """Count one more copy; returns the count since the last post."""
        now = self._clock()
        answer = self._ddb.update_item(
            TableName=self._table,
            Key={"id": {"S": self._id(key)}},
            UpdateExpression="ADD repeats :one SET last_seen = :now, expiration = :expiration",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":now": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))},
                ":expiration": {"N": str(int(now) + REPEATS_TTL_S)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["repeats"]["N"])

    def peek(self, key: str) -> Repeats | None:
        """The copies counted since the last post, if any (an item past its expiry counts as none: TTL deletes
        items late)."""
        item = self._ddb.get_item(TableName=self._table, Key={"id": {"S": self._id(key)}}, ConsistentRead=True).get(
            "Item"
        )
        if not item or int(item.get("expiration", {}).get("N", "0")) < self._clock():
            return None
        count = int(item.get("repeats", {}).get("N", "0"))
        return Repeats(count, item.get("last_seen", {}).get("S", "")) if count > 0 else None

    def settle(self, key: str, seen: Repeats) -> None:
        """Take away the copies a post has just reported (copies counted during the post stay for the next)."""
        self._ddb.update_item(
            TableName=self._table,
            Key={"id": {"S": self._id(key)}},
            # an item TTL removed meanwhile comes back with a count of zero or less, and an expiry again
            UpdateExpression="ADD repeats :taken SET expiration = if_not_exists(expiration, :expiration)",
            ExpressionAttributeValues={
                ":taken": {"N": str(-seen.count)},
                ":expiration": {"N": str(int(self._clock()) + REPEATS_TTL_S)},
            },
        )

    def _id(self, key: str) -> str:
        return f"{self._prefix}#{key}"


class PostedReports:
    """The reports a digest has posted, by identity, for POSTED_TTL_S: one item each in the same table (id
    ``<prefix>#<sha256 of the identity>``, expiring through the table's TTL attribute). A report that comes again (a
    retried invocation's, a duplicate delivery's) is then recognised in a later batch and not posted twice."""

    def __init__(self, *, table: str, dynamodb: Any, key_prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._ddb = dynamodb
        self._prefix = key_prefix
        self._clock = clock

    def seen(self, identity: str) -> bool:
        item = self._ddb.get_item(
            TableName=self._table, Key={"id": {"S": self._id(identity)}}, ConsistentRead=True
        ).get("Item")
        return bool(item) and int(item.get("expiration", {}).get("N", "0")) >= self._clock()

    def mark(self, identity: str) -> None:
        self._ddb.put_item(
            TableName=self._table,
            Item={
                "id": {"S": self._id(identity)},
                "expiration": {"N": str(int(self._clock()) + POSTED_TTL_S)},
            },
        )

    def _id(self, identity: str) -> str:
        return f"{self._prefix}#sha256:{hashlib.sha256(identity.encode()).hexdigest()}"
