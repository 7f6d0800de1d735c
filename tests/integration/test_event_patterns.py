"""Every sample event in events/ against the rules of template.yaml, with moto's pattern engine.

events/<function>/*.json must reach <function>; events/<function>/unmatched/*.json must not. The engine is
moto's EventPattern, the one the sandbox's moto server uses to route events to rule targets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eksops.local.cloudtrail import CloudTrailShim
from eksops.local.template import Template
from moto.events.models import EventPattern

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAMPLES = sorted(p for p in EVENTS.rglob("*.json"))


def routed_to(template: Template, function: str, event: dict[str, Any]) -> list[str]:
    """Event sources of ``function`` that receive ``event``."""
    hits = []
    for source in template.functions[function].events:
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
    if path.parent.name == "unmatched":
        assert hits == [], f"{path.name} should not reach {function}, but {hits} match"
    else:
        assert len(hits) == 1, f"{path.name} should reach {function} through exactly one source, got {hits}"


def test_the_moto_server_routes_samples_as_the_patterns_say(make_sandbox: Any) -> None:
    sandbox, _ = make_sandbox()
    shim = CloudTrailShim(sandbox.client)
    expected: dict[str, int] = {}
    for path in SAMPLES:
        event = json.loads(path.read_text())
        if event.get("detail-type") == "Scheduled Event":
            continue  # schedules are rules without patterns; moto does not fire them
        shim.put(event)
        if path.parent.name != "unmatched":
            expected[path.relative_to(EVENTS).parts[0]] = expected.get(path.relative_to(EVENTS).parts[0], 0) + 1
    sqs = sandbox.client("sqs")
    delivered: dict[str, int] = {}
    for url, (function, _source) in sandbox.inboxes.items():
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            delivered[function] = delivered.get(function, 0) + len(messages)
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert delivered == expected
