"""Every sample event in events/ has an id of its own: an EventBridge ``id``, an SNS ``MessageId`` (in an SQS batch
from the reports queue, each body's, and each record's ``messageId``).

Idempotency keys on them: two samples sharing one would make the second a "duplicate" in any test or demo that
delivers both (issue 9, defect 8: ecr_image_scan and eksops_error_alarms_changes did). Samples of direct invocations
(events/<function>/direct/, e.g. an on-demand compliance sweep) are a payload only: Lambda gives each invocation its
own request id, so they carry none.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "events").rglob("*.json"))


def ids_of(event: Any) -> Iterator[str]:
    """The delivery ids of one sample: its EventBridge id, or each SNS record's MessageId (and the id of an
    EventBridge event the message carries); an SQS record's messageId and the SNS notification in its body."""
    if not isinstance(event, dict):
        return
    if isinstance(event.get("id"), str) and "detail-type" in event:
        yield f"id {event['id']}"
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:sqs":
            yield f"messageId {record['messageId']}"  # what a partial batch response names
            sns = json.loads(record["body"])  # the notification, as the reports queue's subscription delivers it
        else:
            sns = record.get("Sns") or {}
        if "MessageId" in sns:
            yield f"MessageId {sns['MessageId']}"
        try:
            inner = json.loads(sns.get("Message") or "")
        except ValueError:
            continue
        yield from ids_of(inner)


def test_every_sample_event_id_is_unique() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in SAMPLES:
        keys = list(ids_of(json.loads(path.read_text())))
        if path.parent.name == "direct":
            assert keys == [], f"{path.relative_to(ROOT)}: a direct invocation's payload is no delivered event"
            continue
        assert keys, f"{path.relative_to(ROOT)} has no id or MessageId"
        for key in keys:
            seen[key].append(str(path.relative_to(ROOT)))
    shared = {key: paths for key, paths in seen.items() if len(paths) > 1}
    assert shared == {}, f"sample events sharing an id: {shared}"
    assert all(key.split(" ", 1)[1] for key in seen), "an empty id in a sample"
