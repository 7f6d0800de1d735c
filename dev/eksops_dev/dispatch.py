"""Runs handlers as Lambda would: drains the sandbox's delivery queues, retries, and dead-letters failures."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, TextIO

from eksops_dev.sandbox import Sandbox, patched_environ
from eksops_dev.template import ACCOUNT, PARTITION, REGION, EventSource, FunctionSpec

MAX_ROUNDS = 50  # continuation chains in the sandbox are short; this only stops a runaway loop


class LambdaContext:
    """The parts of the Lambda context object handlers and Powertools use."""

    def __init__(
        self,
        function_name: str,
        memory: int,
        timeout_s: int,
        remaining_ms: Callable[[], int] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = datetime.now(UTC).strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        deadline = time.monotonic() + timeout_s
        self._remaining = remaining_ms or (lambda: int((deadline - time.monotonic()) * 1000))

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining()


@dataclass
class Invocation:
    """One handler run (after its retries), for the timeline."""

    function: str
    trigger: str
    event: Any
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    attempts: int = 1
    dead_lettered: bool = False
    duration_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class Dispatcher:
    """Delivers events to handlers with each function's own environment, as the Lambda service would."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        log: TextIO | None = None,
        remaining_ms: Callable[[str], Callable[[], int] | None] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self._modules: dict[str, ModuleType] = {}
        self._log = log or open(sandbox.workdir / "functions.log", "a", encoding="utf-8")  # noqa: SIM115
        self._remaining_ms = remaining_ms
        self.history: list[Invocation] = []

    def close(self) -> None:
        self._log.close()

    def handler(self, fn: FunctionSpec) -> Callable[[Any, Any], Any]:
        """Import the function's module once (its start-up, with its environment), return the handler."""
        if fn.name not in self._modules:
            env = self.sandbox.function_env(fn)
            with patched_environ(env), contextlib.redirect_stdout(self._log):
                self._modules[fn.name] = load_module(fn, env.get("POWERTOOLS_SERVICE_NAME"))
        return getattr(self._modules[fn.name], fn.handler.rsplit(".", 1)[1])  # type: ignore[no-any-return]

    def module(self, name: str) -> ModuleType:
        """The function's handler module, loaded as its cold start would (the demo sets a service's clock on it)."""
        self.handler(self.sandbox.function(name))
        return self._modules[name]

    def invoke(
        self, name: str, event: Any, trigger: str, *, retries: int | None = None, synchronous: bool = False
    ) -> Invocation:
        """An asynchronous invocation: up to 1 + MaximumRetryAttempts tries, then the on-failure destination.
        ``synchronous`` (an event source mapping's poller): one try, and a failure goes back to the caller."""
        fn = self.sandbox.function(name)
        attempts = 1 if synchronous else 1 + (self.sandbox.max_retries(fn) if retries is None else retries)
        inv = Invocation(function=name, trigger=trigger, event=event)
        started = time.perf_counter()
        request_id = str(uuid.uuid4())  # Lambda retries an asynchronous invocation under the same request id
        for attempt in range(1, attempts + 1):
            inv.attempts = attempt
            context = LambdaContext(
                self.sandbox.function_name(fn),
                fn.memory,
                fn.timeout,
                self._remaining_ms(name) if self._remaining_ms else None,
                request_id=request_id,
            )
            try:
                handler = self.handler(fn)
                with patched_environ(self.sandbox.function_env(fn)), contextlib.redirect_stdout(self._log):
                    inv.result = handler(json.loads(json.dumps(event)), context)
                inv.error = inv.error_type = None
                break
            except Exception as exc:
                inv.error, inv.error_type = str(exc), type(exc).__name__
                inv.extra["exception"] = exc
        inv.duration_ms = (time.perf_counter() - started) * 1000
        self._log.flush()  # functions.log is current after every invocation (for tail -f, and for tests)
        if inv.error is not None and not synchronous:
            inv.dead_lettered = self._dead_letter(fn, event, inv, context)
        self.history.append(inv)
        return inv

    def _dead_letter(self, fn: FunctionSpec, event: Any, inv: Invocation, context: LambdaContext) -> bool:
        url = self.sandbox.dead_letter_queue_url(fn)
        if url is None:
            return False
        record = {  # the shape of a Lambda on-failure destination record
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "requestId": context.aws_request_id,
                "functionArn": context.invoked_function_arn,
                "condition": "RetriesExhausted",
                "approximateInvokeCount": inv.attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": inv.error, "errorType": inv.error_type},
        }
        self.sandbox.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(record))
        return True

    def fire_schedule(self, name: str) -> list[Invocation]:
        """A schedule of ``name`` fires (moto does not run schedules), then whatever it set off is drained."""
        fn = self.sandbox.function(name)
        schedules = self.sandbox.schedules.get(name)
        if not schedules:
            raise KeyError(f"{name} has no schedule in template.yaml")
        logical_id, expression = schedules[0]
        rule = f"{self.sandbox.function_name(fn)}-{logical_id}"
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{rule}"],
            "detail": {},
        }
        first = self.invoke(name, event, f"schedule {logical_id} {expression}")
        return [first, *self.drain()]

    def drain(self) -> list[Invocation]:
        """Deliver every queued event, including those the deliveries themselves cause, until all are empty."""
        done: list[Invocation] = []
        sqs = self.sandbox.client("sqs")
        for _ in range(MAX_ROUNDS):
            delivered = self.sandbox.pump_bridges()
            for url, (name, source) in self.sandbox.inboxes.items():
                while True:
                    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                    if not messages:
                        break
                    for message in messages:
                        event = to_lambda_event(json.loads(message["Body"]))
                        done.append(self.invoke(name, event, f"{source}: {describe(event)}"))
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                        delivered += 1
            for url, (function, mapping) in self.sandbox.batch_inboxes.items():
                while batch := self._receive_batch(url, mapping.batch_size):
                    done.append(self._poll(function, mapping, url, batch))
                    delivered += len(batch)
            if not delivered:
                return done
        raise RuntimeError(f"events were still being delivered after {MAX_ROUNDS} rounds: a loop?")

    def _receive_batch(self, url: str, size: int) -> list[dict[str, Any]]:
        """Up to ``size`` visible messages, as an SQS event source mapping's poller gathers a batch (the sandbox's
        batching window ends when the queue has no more)."""
        sqs = self.sandbox.client("sqs")
        batch: list[dict[str, Any]] = []
        while len(batch) < size:
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, size - len(batch)), AttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                break
            batch += got
        return batch

    def _poll(self, name: str, source: EventSource, url: str, batch: list[dict[str, Any]]) -> Invocation:
        """One batch to the function, as Lambda's SQS poller does: a synchronous invocation; the messages it
        handled are deleted. A failed invocation deletes none, and with ReportBatchItemFailures the ones it names
        stay: in flight until the queue's visibility timeout (moto's default is 30 s), as in AWS, where the queue's
        redrive policy then takes over."""
        arn = next(a for a, u in self.sandbox.queue_urls.items() if u == url)
        event = sqs_event(batch, arn)
        inv = self.invoke(name, event, f"{source.logical_id}: {describe(event)}", synchronous=True)
        if not inv.ok:
            return inv
        failed: set[str] = set()
        if source.report_failures and isinstance(inv.result, dict):
            failed = {str(f.get("itemIdentifier")) for f in inv.result.get("batchItemFailures") or []}
        sqs = self.sandbox.client("sqs")
        for message in batch:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return inv


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Received SQS messages as the Lambda event an SQS event source mapping sends."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def load_module(fn: FunctionSpec, service: str | None = None) -> ModuleType:
    """Import a function's handler module afresh, as a cold start does (under a name of its own).

    A new execution environment has no state: Powertools keeps its handler on the stdlib logger named after
    the service, and its parameter providers (with their boto3 clients) in a module dict; both are cleared
    first, so the new Logger writes to the current stdout and secrets are read from the current endpoint.
    """
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    DEFAULT_PROVIDERS.clear()  # Powertools' cached secret/parameter clients would keep an old endpoint
    if service:
        named = logging.getLogger(service)
        for handler in list(named.handlers):
            named.removeHandler(handler)
        for attribute in ("init", "powertools_handler"):
            if hasattr(named, attribute):
                delattr(named, attribute)
    module_name = fn.handler.rsplit(".", 1)[0]
    spec = importlib.util.spec_from_file_location(
        f"eksops_functions.{fn.name}.{uuid.uuid4().hex[:8]}", fn.code_dir / f"{module_name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_lambda_event(body: dict[str, Any]) -> dict[str, Any]:
    """An SQS-delivered body as the Lambda event: EventBridge events as they are, SNS wrapped in Records."""
    if body.get("Type") == "Notification" and "TopicArn" in body:
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": f"{body['TopicArn']}:{uuid.uuid4()}",
                    "Sns": {
                        k: body.get(k)
                        for k in (
                            "Type",
                            "MessageId",
                            "TopicArn",
                            "Subject",
                            "Message",
                            "Timestamp",
                            "SignatureVersion",
                            "Signature",
                            "SigningCertUrl",
                            "UnsubscribeUrl",
                            "MessageAttributes",
                        )
                    },
                }
            ]
        }
    return body


def describe(event: Any) -> str:
    """A short human description of an event for the timeline."""
    records = event.get("Records") if isinstance(event, dict) else None
    if (
        isinstance(records, list)
        and records
        and isinstance(records[0], dict)
        and records[0].get("eventSource") == "aws:sqs"
    ):
        queue = str(records[0].get("eventSourceARN", "")).rsplit(":", 1)[-1]
        return f"SQS batch of {len(records)} from {queue}"
    if isinstance(event, dict) and "Records" in event:
        sns = event["Records"][0].get("Sns", {})
        return f"SNS {str(sns.get('TopicArn', '')).rsplit(':', 1)[-1]}: {sns.get('Subject') or ''}".strip()
    if not isinstance(event, dict):
        return type(event).__name__
    raw_detail = event.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    if event.get("detail-type") == "AWS API Call via CloudTrail":
        params = detail.get("requestParameters") or {}
        subject = next(iter(params.values()), "") if isinstance(params, dict) else ""
        return f"CloudTrail {detail.get('eventName')} {subject}".strip()
    if event.get("detail-type") == "eksops sweep continuation":
        return f"continuation of sweep {detail.get('run_id')} part {detail.get('part')}"
    return f"{event.get('source')} {event.get('detail-type')}"
