"""At most once per key, for a while, on the notifier's DynamoDB table: ``Once`` (one record per key),
``RepeatCounter`` (the copies held back) and ``PostedReports`` (the reports posted, by identity).

``Once`` serves each SNS delivery (key: the MessageId, or a content hash; kept 24 hours), burst dedup (key: an
alert's content hash, kept for SLACK_DEDUP_SECONDS) and digests (key: the webhook and the reports in it, kept 24
hours). It keeps Powertools idempotency's protocol and item shape (``id``, ``status``, ``expiration`` for the
table's TTL, ``in_progress_expiration``, ``data``) with the low-level DynamoDB client, because the notifier is one
of the three light functions whose cold start must stay within 1.3x a bare Powertools handler (issue 9), and
importing ``aws_lambda_powertools.utilities.idempotency`` imports boto3, with s3transfer and multiprocessing: about
35 ms of CPU on each cold start, which alone put the notifier over (docs/reliability.md, "Cold start").
node_scaler and image_updater, which have no such target, keep Powertools idempotency.

The protocol, per key:

1. claim: a conditional PutItem of an INPROGRESS record, which succeeds when there is no record, or the record
   expired, or it is an INPROGRESS record whose invocation is past its deadline (a timed-out invocation's);
2. a claim refused by a COMPLETED record returns that record's result, marked replayed; by a live INPROGRESS
   record, raises :class:`InProgress` (a TemporaryError: the retry finds it completed, or free);
3. the action runs; its result completes the record (kept ``expires_after_seconds``);
4. an action that raises deletes the record, so a retry runs it again, then the error goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws.clients import error_code
from eksops.errors import TemporaryError

log = logging.getLogger(__name__)

REPEATS_TTL_S = 24 * 3600
POSTED_TTL_S = 24 * 3600  # a retried invocation reports again within minutes; a duplicate delivery, sooner
INPROGRESS, COMPLETED = "INPROGRESS", "COMPLETED"
# An invocation that never told Once its deadline (register_lambda_context) holds a claim this long at most: the
# longest a Lambda invocation can run.
DEFAULT_IN_PROGRESS_MS = 15 * 60 * 1000


class InProgress(TemporaryError):
    """Another invocation is running the action for the same key right now."""


class _Claims:
    """Claim records in the idempotency table, one per key (id ``<prefix>#sha256:<key's digest>``): what ``Once`` and
    ``PostedReports`` share. A claim lapses with the invocation that made it (``register_lambda_context``); a
    completed record is kept ``expires_after_seconds`` (the table's TTL attribute, ``expiration``)."""

    def __init__(
        self,
        *,
        table: str,
        dynamodb: Any,
        key_prefix: str,
        expires_after_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if expires_after_seconds <= 0:
            raise ValueError(f"expires_after_seconds must be positive, not {expires_after_seconds}")
        self.expires_after_seconds = expires_after_seconds
        self._table = table
        self._ddb = dynamodb
        self._prefix = key_prefix
        self._clock = clock
        self._remaining_ms: Callable[[], int] = lambda: DEFAULT_IN_PROGRESS_MS

    def register_lambda_context(self, context: Any) -> None:
        """Each invocation: a claim then expires with the invocation, so a timed-out one holds its key no longer."""
        self._remaining_ms = context.get_remaining_time_in_millis

    def _claim_item(self, item_id: str) -> dict[str, Any] | None:
        """None when claimed; else the record that holds it (see :func:`_claim`)."""
        return _claim(
            self._ddb,
            self._table,
            item_id,
            now=self._clock(),
            expires_after_seconds=self.expires_after_seconds,
            remaining_ms=self._remaining_ms(),
        )

    def _put_completed(self, item_id: str, data: str | None = None) -> None:
        item = {
            "id": {"S": item_id},
            "status": {"S": COMPLETED},
            "expiration": {"N": str(int(self._clock()) + self.expires_after_seconds)},
        }
        if data is not None:
            item["data"] = {"S": data}
        self._ddb.put_item(TableName=self._table, Item=item)

    def _delete(self, item_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key={"id": {"S": item_id}})

    def _id(self, key: str) -> str:
        return f"{self._prefix}#sha256:{_sha256(key)}"


class Once(_Claims):
    """``run(key, action)`` calls ``action`` unless a call for ``key`` succeeded within ``expires_after_seconds``;
    then it returns that call's result instead. Returns ``(result, replayed)``. The result must be JSON."""

    def run(self, key: str, action: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        item_id = self._id(key)
        done = self._claim(item_id, key)
        if done is not None:
            return done, True
        try:
            result = action()
        except BaseException:
            self._release(item_id)
            raise
        self._complete(item_id, result)
        return result, False

    def _claim(self, item_id: str, key: str) -> dict[str, Any] | None:
        """Claim ``item_id``; or the stored result when a call for it completed. Raises InProgress when another
        invocation holds it."""
        held = self._claim_item(item_id)
        if held is None:
            return None
        if held.get("status", {}).get("S") == COMPLETED:
            try:
                stored = json.loads(held.get("data", {}).get("S", ""))
            except ValueError:
                stored = None
            if isinstance(stored, dict):
                return stored
        raise InProgress(f"another invocation is posting the same content now ({key[:19]}...); retry later")

    def _complete(self, item_id: str, result: dict[str, Any]) -> None:
        try:
            self._put_completed(item_id, json.dumps(result, default=str, separators=(",", ":")))
        except Exception as exc:  # DynamoDB refusing, unreachable or out of time: all the same here
            # The action is done (posted): failing now would make Lambda retry it and post it again. The claim
            # lapses at this invocation's deadline; a copy arriving after that is posted again.
            log.warning("done, but not recorded as done (%s): a copy delivered later may be posted again", exc)

    def _release(self, item_id: str) -> None:
        try:
            self._delete(item_id)
        except Exception as exc:  # the action's own error matters more; the claim lapses at the deadline
            log.warning("could not release the claim on %s after a failure (%s)", item_id, exc)


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


class PostedReports(_Claims):
    """The reports digests have posted, by identity, for POSTED_TTL_S: one item each in the same table (id
    ``<prefix>#<sha256 of the identity>``, expiring through the table's TTL attribute), so a report that comes again
    (a retried invocation's, a duplicate delivery's) is acknowledged, not posted twice.

    A report is claimed before its digest is posted (the conditional write ``Once`` makes), so two batches holding
    copies of one report, run at the same time, post it once: the second finds the claim and acknowledges its copy.
    That is safe because the holder either posts it or releases it and fails its own record, which SQS delivers
    again. After the digest, its reports are marked posted (``done``) or released (not posted: Slack down, a dry run,
    refused and dead-lettered)."""

    def __init__(self, *, table: str, dynamodb: Any, key_prefix: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(
            table=table, dynamodb=dynamodb, key_prefix=key_prefix, expires_after_seconds=POSTED_TTL_S, clock=clock
        )

    def claim(self, identity: str) -> bool:
        """True when this invocation may post the report; False when it was posted, or is being posted elsewhere."""
        return self._claim_item(self._id(identity)) is None

    def done(self, identity: str) -> None:
        self._put_completed(self._id(identity))

    def release(self, identity: str) -> None:
        self._delete(self._id(identity))


def _claim(
    dynamodb: Any, table: str, item_id: str, *, now: float, expires_after_seconds: int, remaining_ms: int
) -> dict[str, Any] | None:
    """Claim ``item_id`` with a conditional PutItem of an INPROGRESS record: None when claimed, else the record that
    holds it (COMPLETED and unexpired, or INPROGRESS before its invocation's deadline)."""
    try:
        dynamodb.put_item(
            TableName=table,
            Item={
                "id": {"S": item_id},
                "status": {"S": INPROGRESS},
                "expiration": {"N": str(int(now) + expires_after_seconds)},
                "in_progress_expiration": {"N": str(int(now * 1000) + max(int(remaining_ms), 0))},
            },
            ConditionExpression=(
                "attribute_not_exists(id) OR expiration < :now"
                " OR (#status = :inprogress AND in_progress_expiration < :now_ms)"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":now": {"N": str(int(now))},
                ":now_ms": {"N": str(int(now * 1000))},
                ":inprogress": {"S": INPROGRESS},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return None
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        # the record that refused the claim (DynamoDB returns it; a store that does not is asked)
        returned = exc.response.get("Item")
    if isinstance(returned, dict) and returned:
        return returned
    held: dict[str, Any] = dynamodb.get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True).get(
        "Item"
    ) or {"status": {"S": INPROGRESS}}  # gone since: released a moment ago; count it as busy, a retry will see
    return held


def _sha256(text: str) -> str:
    """The key's digest; event text may hold lone surrogates, which strict UTF-8 refuses."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
