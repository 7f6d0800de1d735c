"""Every sample event in events/ against the rules of template.yaml, with moto's pattern engine.

events/<function>/*.json must reach <function>; events/<function>/unmatched/*.json must not. The engine is
moto's EventPattern, the one the sandbox's moto server uses to route events to rule targets.
events/<function>/direct/*.json are invoked directly (``aws lambda invoke``, ``eksops invoke``: compliance_sweep's
on-demand sweeps), never through a rule, so no rule may route them anywhere.
SNS samples reach a function through its SNS subscription, or through an SQS event source whose queue is subscribed
to the topic (the notifier's reports queue); SQS batch samples through the event source of their queue.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from eksops_dev.cloudtrail import CloudTrailShim
from eksops_dev.template import Template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAMPLES = sorted(p for p in EVENTS.rglob("*.json"))


def topic_matches(template: Template, topic_ref: Any, topic_arn: str) -> bool:
    """Whether an SNS sample's TopicArn names the topic ``topic_ref`` (its TopicName, any stack name)."""
    return _named(template.resources[topic_ref["Ref"]]["Properties"]["TopicName"], topic_arn)


def queue_matches(template: Template, queue_ref: Any, queue_arn: str) -> bool:
    """Whether an SQS sample's eventSourceARN names the queue ``queue_ref`` (its QueueName, any stack name)."""
    return _named(template.resources[queue_ref["Fn::GetAtt"][0]]["Properties"]["QueueName"], queue_arn)


def _named(name: Any, arn: str) -> bool:
    pattern = re.escape(name["Fn::Sub"]).replace(re.escape("${AWS::StackName}"), ".+")
    return re.fullmatch(pattern, arn.rsplit(":", 1)[-1]) is not None


def subscribed_topics(template: Template, queue_ref: Any) -> list[Any]:
    """The topics the queue ``queue_ref`` (``Fn::GetAtt [queue, Arn]``) is subscribed to."""
    return [
        s["Properties"]["TopicArn"]
        for s in template.of_type("AWS::SNS::Subscription").values()
        if s["Properties"].get("Protocol") == "sqs" and s["Properties"].get("Endpoint") == queue_ref
    ]


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(r.get("eventSource") == "aws:sqs" for r in records)


def notifications(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The SNS notifications a sample carries: an SNS event's records, or the bodies of an SQS batch (the queue's
    subscription delivers the notification, raw delivery off)."""
    if is_sqs_batch(event):
        return [json.loads(r["body"]) for r in event["Records"]]
    return [r["Sns"] for r in event["Records"]]


def forwarded_by(template: Template, topic_ref: Any, event: dict[str, Any]) -> list[str]:
    """AWS::Events::Rule resources that forward ``event`` to the topic."""
    return [
        logical_id
        for logical_id, rule in template.of_type("AWS::Events::Rule").items()
        if any(t["Arn"] == topic_ref for t in rule["Properties"]["Targets"])
        and EventPattern.load(json.dumps(rule["Properties"]["EventPattern"])).matches_event(event)
    ]


def routed_to(template: Template, function: str, event: dict[str, Any]) -> list[str]:
    """Event sources of ``function`` that receive ``event``."""
    hits = []
    for source in template.functions[function].events:
        if "Records" in event:
            topics = {n["TopicArn"] for n in notifications(event)}
            if source.kind == "sns" and not is_sqs_batch(event):
                if all(topic_matches(template, source.topic, arn) for arn in topics):
                    hits.append(source.logical_id)
            elif source.kind == "sqs":
                queues = {r["eventSourceARN"] for r in event["Records"]} if is_sqs_batch(event) else set()
                subscribed = subscribed_topics(template, source.queue)
                if all(queue_matches(template, source.queue, arn) for arn in queues) and all(
                    any(topic_matches(template, t, arn) for t in subscribed) for arn in topics
                ):
                    hits.append(source.logical_id)
            continue
        if source.kind == "eventbridge" and EventPattern.load(json.dumps(source.pattern)).matches_event(event):
            hits.append(source.logical_id)
        if (
            source.kind == "schedule"
            and event.get("source") == "aws.events"
            and event.get("detail-type") == "Scheduled Event"
        ):
            hits.append(source.logical_id)
    return hits


def test_there_are_samples_for_every_function(template: Template) -> None:
    assert {p.name for p in EVENTS.iterdir() if p.is_dir()} == set(template.functions)
    for function in template.functions:
        assert list((EVENTS / function).glob("*.json")), f"no sample events for {function}"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(EVENTS)))
def test_sample_reaches_its_function_or_not(template: Template, path: Path) -> None:
    function = path.relative_to(EVENTS).parts[0]
    event = json.loads(path.read_text())
    hits = routed_to(template, function, event)
    if path.parent.name in {"unmatched", "direct"}:
        assert hits == [], f"{path.name} should not reach {function}, but {hits} match"
    else:
        assert len(hits) == 1, f"{path.name} should reach {function} through exactly one source, got {hits}"


@pytest.mark.parametrize("path", [p for p in SAMPLES if "Records" in p.read_text()], ids=lambda p: p.name)
def test_forwarded_aws_events_match_their_forwarding_rule(template: Template, path: Path) -> None:
    """SNS samples (and SQS batches of SNS notifications) that carry an EventBridge event must be what a rule in the
    template forwards."""
    for sns in notifications(json.loads(path.read_text())):
        try:
            inner = json.loads(sns["Message"])
        except ValueError:
            continue
        if not isinstance(inner, dict) or "detail-type" not in inner:
            continue
        topic = next(
            ref
            for ref in (r for f in template.functions.values() for s in f.events for r in _topics_of(template, s))
            if topic_matches(template, ref, sns["TopicArn"])
        )
        assert len(forwarded_by(template, topic, inner)) == 1, f"{path.name}: no rule forwards this event"


def _topics_of(template: Template, source: Any) -> list[Any]:
    """The topics whose messages reach an event source: its own (SNS), or those its queue is subscribed to (SQS)."""
    if source.kind == "sns":
        return [source.topic]
    return subscribed_topics(template, source.queue) if source.kind == "sqs" else []


def _notifier_topics(template: Template) -> list[Any]:
    return [s.topic for s in template.functions["notifier"].events if s.kind == "sns"]


def test_the_moto_server_routes_samples_as_the_patterns_say(make_sandbox: Any, template: Template) -> None:
    sandbox, _ = make_sandbox()
    shim = CloudTrailShim(sandbox.client)
    expected: dict[str, int] = {}
    for path in SAMPLES:
        event = json.loads(path.read_text())
        if path.parent.name == "direct":
            assert not any(routed_to(template, f, event) for f in template.functions), path
            continue  # a direct invocation is no event on the bus
        if event.get("detail-type") == "Scheduled Event":
            continue  # schedules are rules without patterns; moto does not fire them
        if "Records" in event:  # an AWS event the template forwards to a topic: it must arrive via SNS
            try:
                inner = json.loads(notifications(event)[0]["Message"])
            except ValueError:
                continue
            if not isinstance(inner, dict) or "detail-type" not in inner:
                continue
            event = inner  # put on the bus as AWS would: the forwarding rule takes it to the topic, and the
        shim.put(event)  # rules of other functions may take it too (an ECR scan: the notifier and image_updater)
        for function in template.functions:  # a sample may also reach other functions; the engine says which
            hits = len(routed_to(template, function, event))
            if hits:
                expected[function] = expected.get(function, 0) + hits
        forwards = sum(len(forwarded_by(template, topic, event)) for topic in _notifier_topics(template))
        if forwards:
            expected["notifier"] = expected.get("notifier", 0) + forwards  # via a forwarding rule and the topic
    sandbox.pump_bridges()
    sqs = sandbox.client("sqs")
    delivered: dict[str, int] = {}
    for url, (function, _source) in sandbox.inboxes.items():
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            delivered[function] = delivered.get(function, 0) + len(messages)
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert delivered == expected
