"""One sandbox for fuzzing every function: moto, the sandbox's shims, a Slack receiver, each target's world.

``Harness.run(target, event)`` invokes the function once, as Lambda would (``Dispatcher.invoke``, no retries),
then reads the target's world back and classifies the outcome. The contract it checks:

- rejected (InvalidEvent, or UnsupportedEvent for a well-formed event of another source): nothing changed;
- accepted: whatever the function did is undone (``Target.rearm``) so the next event meets the same world;
  the target may check more (the notifier: the message was delivered, once);
- anything else is a violation, unless the target lists it among its allowed errors.

The world is "armed": every valid sample would change it (a log group without retention, a cluster whose status
must be read, a Slack webhook, a config repository naming an older image), so a rejected event that acted anyway
shows up in the snapshot. A world that lives outside moto (image_updater's Git server) is started by its target's
``prepare`` before the sandbox, and the template parameters it returns (the repository's URL) join the others.

Reading the world back costs several requests to moto; a rejected event that sent no request at all (AWS,
Kubernetes or Git, counted at urllib3 while the handler runs) and posted nothing to Slack cannot have changed it,
so its snapshot is skipped. Any request made, and the snapshot decides.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import STACK, Sandbox
from eksops_dev.slack import SlackReceiver
from eksops_dev.template import ACCOUNT, FunctionSpec, Template

if TYPE_CHECKING:
    from eksops_dev.fuzz.targets import Target

T = TypeVar("T")
REJECTED = frozenset({"InvalidEvent", "UnsupportedEvent"})
# Invocations between emptying the dead-letter queue (the platform's copy of each failure) and the functions' inboxes
# and event source queues (where their reports and continuations also land: the reports queue); nothing reads them
# during a fuzz run.
EMPTY_EVERY = 200


class RequestCounter:
    """Counts HTTP requests sent through urllib3 (botocore's and the kubernetes client's transport) while
    ``active``: the handler's own, not the harness's reads nor the sandbox's dead-lettering."""

    def __init__(self) -> None:
        self.active = False
        self.count = 0

    @contextmanager
    def installed(self) -> Iterator[None]:
        from urllib3.connectionpool import HTTPConnectionPool

        original = HTTPConnectionPool.urlopen
        counter = self

        def urlopen(pool: HTTPConnectionPool, *args: Any, **kwargs: Any) -> Any:
            if counter.active:
                counter.count += 1
            return original(pool, *args, **kwargs)

        HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            HTTPConnectionPool.urlopen = original  # type: ignore[method-assign]


class CountingDispatcher(Dispatcher):
    """The sandbox's dispatcher, counting the requests each handler call sends."""

    def __init__(self, sandbox: Sandbox, counter: RequestCounter) -> None:
        super().__init__(sandbox)
        self.counter = counter

    def handler(self, fn: FunctionSpec) -> Callable[[Any, Any], Any]:
        handler = super().handler(fn)

        def counted(event: Any, context: Any) -> Any:
            self.counter.active = True
            try:
                return handler(event, context)
            finally:
                self.counter.active = False

        return counted


class HarnessError(RuntimeError):
    """The harness itself failed (a world that did not return to its armed state): not the function's fault."""


@dataclass(frozen=True)
class Outcome:
    """How one invocation ended: ``label`` for the counts, ``violation`` when the contract was broken."""

    label: str  # "ok", "ok+changed", "InvalidEvent", "UnsupportedEvent", or another error type
    violation: str | None = None


class Harness:
    """Start with ``with Harness(template) as h:``; ``endpoint`` reuses a running moto server (emptied first)."""

    def __init__(self, template: Template, *, workdir: Path, endpoint: str | None = None) -> None:
        self.template = template
        self.workdir = workdir
        self.endpoint = endpoint
        self._stack = ExitStack()
        self.slack: SlackReceiver
        self.sandbox: Sandbox
        self.dispatcher: Dispatcher
        self.requests = RequestCounter()
        self.witness = ""  # SQS queue receiving whatever the functions publish (SNS) or put on the bus
        self.armed: dict[str, dict[str, Any]] = {}
        self.state: dict[str, Any] = {}  # what targets keep between arm and rearm (counters)
        self._invocations = 0

    def __enter__(self) -> Harness:
        from eksops_dev.fuzz.targets import TARGETS

        try:
            if self.endpoint:
                reset = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
                urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - the loopback moto server
            self.slack = self._stack.enter_context(SlackReceiver())
            # The functions act (the template's default is a dry run): the invariants are about what they change.
            parameters = {"DryRun": "false", **{k: v for target in TARGETS for k, v in target.parameters.items()}}
            for target in TARGETS:  # worlds outside moto (a Git server) that the template's parameters must name
                parameters.update(target.prepare(self))
            self.sandbox = Sandbox(self.template, parameters=parameters, workdir=self.workdir, endpoint=self.endpoint)
            self._stack.callback(self.sandbox.stop)
            self.sandbox.start()
            secret = self.sandbox.client("secretsmanager").create_secret(
                Name="eksops/slack/fuzz", SecretString=self.slack.url
            )
            self.sandbox.set_parameters(SlackWebhookSecretArn=secret["ARN"])
            self._stack.enter_context(self.requests.installed())
            self.dispatcher = CountingDispatcher(self.sandbox, self.requests)
            self._stack.callback(self.dispatcher.close)
            self.witness = self._witness_queue()
            for target in TARGETS:
                target.arm(self)
            for target in TARGETS:  # each function's start-up, once, after its world exists
                self.dispatcher.handler(self.sandbox.function(target.function))
            self.armed = {target.function: target.snapshot(self) for target in TARGETS}
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def enter(self, resource: AbstractContextManager[T]) -> T:
        """Enter ``resource`` (a server a target's world needs) until the harness closes, after the sandbox."""
        return self._stack.enter_context(resource)

    # -- one event ----------------------------------------------------------------------------------------------

    def run(self, target: Target, event: Any) -> Outcome:
        """Invoke ``target``'s handler with ``event`` and check the contract (see the module docstring)."""
        self._invocations += 1
        if self._invocations % EMPTY_EVERY == 0:  # keep moto's memory flat over long runs
            queues = (*self.sandbox.inboxes, *self.sandbox.batch_inboxes, *self.sandbox.bridges)
            for url in (self.sandbox.refs["DeadLetterQueue"], *queues):
                self.empty(url)
        armed = self.armed[target.function]
        sent, posts = self.requests.count, self.slack.attempts
        inv = self.dispatcher.invoke(target.function, event, "fuzz", retries=0)
        self.dispatcher.history.clear()
        untouched = inv.error_type in REJECTED and self.requests.count == sent and self.slack.attempts == posts
        after = armed if untouched else target.snapshot(self)
        changed = after != armed
        if inv.error_type in REJECTED:
            label = str(inv.error_type)
            violation = f"rejected ({label}) but changed the world: {_diff(armed, after)}" if changed else None
        elif inv.error_type is None:
            label = "ok+changed" if changed else "ok"
            violation = target.accepted(self, inv.result, armed, after)
        elif inv.error_type in target.allowed_errors:
            label, violation = str(inv.error_type), None
        else:
            label, violation = str(inv.error_type), f"crashed: {inv.error_type}: {str(inv.error)[:300]}"
        if changed:
            target.rearm(self, after)
            again = target.snapshot(self)
            if again != armed:
                raise HarnessError(
                    f"{target.function}: the world did not return to its armed state: {_diff(armed, again)}"
                )
        return Outcome(label, violation)

    # -- shared pieces of the worlds ------------------------------------------------------------------------------

    def _witness_queue(self) -> str:
        """An SQS queue subscribed to both topics and to every event on the default bus."""
        sqs, events, sns = (self.sandbox.client(s) for s in ("sqs", "events", "sns"))
        url = str(sqs.create_queue(QueueName=f"{STACK}-fuzz-witness")["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for topic in ("AlertsTopic", "ReportsTopic"):
            sns.subscribe(TopicArn=self.sandbox.refs[topic], Protocol="sqs", Endpoint=arn)
        events.put_rule(Name=f"{STACK}-fuzz-witness", EventPattern=json.dumps({"account": [ACCOUNT]}))
        events.put_targets(Rule=f"{STACK}-fuzz-witness", Targets=[{"Id": "witness", "Arn": arn}])
        return url

    def published(self) -> int:
        """Messages the functions published or put on the bus since the last purge."""
        attributes = self.sandbox.client("sqs").get_queue_attributes(
            QueueUrl=self.witness,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def purge_deliveries(self) -> None:
        """Empty the witness queue (what an accepted event published or put on the bus)."""
        self.empty(self.witness)

    def empty(self, url: str) -> None:
        """Receive and delete every message (PurgeQueue is allowed once a minute per queue)."""
        sqs = self.sandbox.client("sqs")
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    changed = {
        k: (before.get(k), after.get(k)) for k in sorted(before.keys() | after.keys()) if before.get(k) != after.get(k)
    }
    text = json.dumps(changed, default=str)
    return text if len(text) <= 2000 else text[:2000] + "..."


@contextmanager
def harness(root: Path, workdir: Path, endpoint: str | None = None) -> Iterator[Harness]:
    with Harness(Template(root / "template.yaml"), workdir=workdir, endpoint=endpoint) as h:
        yield h
