"""What starts image_updater, parsed once at the edge: an image pushed to ECR, an image's scan finished, a
pipeline stage succeeded, or the reconcile schedule.

A malformed event is InvalidEvent naming the field; nothing is read or changed before the event has parsed. An
event of the right kind that says nothing happened (a failed push, a DELETE, a stage that failed) parses to a
trigger whose ``acts`` is False: the rules in template.yaml do not deliver those, and if one arrives anyway it is
logged and skipped, as the other functions skip failed CloudTrail calls.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import InvalidEvent, UnsupportedEvent
from eksops.events import CloudTrailCall, ScheduledRun, parse_eventbridge

__all__ = [
    "ImagePushed",
    "ScanCompleted",
    "StageSucceeded",
    "Trigger",
    "parse_trigger",
]

ECR_SOURCE = "aws.ecr"
PUSH_DETAIL_TYPE = "ECR Image Action"
SCAN_DETAIL_TYPE = "ECR Image Scan"
PIPELINE_SOURCE = "aws.codepipeline"
STAGE_DETAIL_TYPE = "CodePipeline Stage Execution State Change"

# ECR's own limits: repository names 2-256 characters of lowercase letters, digits and ._-/ in path segments;
# tags up to 300 characters of letters, digits and ._- (starting with a letter, digit or _); digests sha256.
_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# CodePipeline: pipeline and stage names 1-100 of letters, digits and ._-; execution ids are UUIDs.
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9.@_-]{1,100}")
_EXECUTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SEVERITIES = frozenset({"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNDEFINED"})
_QUOTED = 80


@dataclass(frozen=True)
class ImagePushed:
    """ECR Image Action: an image was pushed (``acts``) or deleted, or a push failed (logged only)."""

    id: str
    repository: str
    tag: str | None  # None: an untagged push (by digest only)
    digest: str
    action: str
    result: str
    time: str
    account: str
    region: str
    idempotency_key: str  # Powertools idempotency keys on it (see _key)

    @property
    def acts(self) -> bool:
        return self.action == "PUSH" and self.result == "SUCCESS" and self.tag is not None


@dataclass(frozen=True)
class ScanCompleted:
    """ECR Image Scan (basic scanning): the scan of one image finished; an update held for it may go ahead."""

    id: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    status: str
    severity_counts: Mapping[str, int]
    time: str
    account: str
    region: str
    idempotency_key: str  # Powertools idempotency keys on it (see _key)

    @property
    def acts(self) -> bool:
        return self.status == "COMPLETE"


@dataclass(frozen=True)
class StageSucceeded:
    """CodePipeline Stage Execution State Change: a stage finished; SUCCEEDED stages in PIPELINE_STAGES act."""

    id: str
    pipeline: str
    stage: str
    execution_id: str
    state: str
    time: str
    account: str
    region: str
    idempotency_key: str  # Powertools idempotency keys on it (see _key)

    @property
    def acts(self) -> bool:
        return self.state == "SUCCEEDED"


Trigger = ImagePushed | ScanCompleted | StageSucceeded | ScheduledRun
EventTrigger = ImagePushed | ScanCompleted | StageSucceeded


def parse_trigger(event: Any) -> Trigger:
    """Classify an EventBridge event; anything but the three sources and the schedule is UnsupportedEvent."""
    if isinstance(event, Mapping) and isinstance(event.get("detail"), Mapping):
        source, detail_type = event.get("source"), event.get("detail-type")
        if source == ECR_SOURCE and detail_type == PUSH_DETAIL_TYPE:
            return _pushed(event, event["detail"])
        if source == ECR_SOURCE and detail_type == SCAN_DETAIL_TYPE:
            return _scanned(event, event["detail"])
        if source == PIPELINE_SOURCE and detail_type == STAGE_DETAIL_TYPE:
            return _stage(event, event["detail"])
    parsed = parse_eventbridge(event)
    if isinstance(parsed, ScheduledRun):
        return parsed
    what = (
        f"the CloudTrail call {parsed.event_name[:_QUOTED]!r}"
        if isinstance(parsed, CloudTrailCall)
        else "a sweep continuation"
    )
    raise UnsupportedEvent(
        f"image_updater acts on ECR pushes and scans, CodePipeline stage changes and its schedule, not on {what}"
    )


def _pushed(event: Mapping[str, Any], detail: Mapping[str, Any]) -> ImagePushed:
    action = _text(detail, "action-type")
    tag = _optional(detail, "image-tag")
    event_id, repository = _envelope(event, "id"), _repository(detail)
    tag = _check(tag, _TAG, "detail.image-tag", "an ECR image tag") if tag else None
    digest = _check(_text(detail, "image-digest"), _DIGEST, "detail.image-digest", "a sha256 digest")
    result = _text(detail, "result")
    return ImagePushed(
        id=event_id,
        repository=repository,
        tag=tag,
        digest=digest,
        action=action,
        result=result,
        time=_envelope(event, "time"),
        account=_envelope(event, "account"),
        region=_envelope(event, "region"),
        idempotency_key=_key("push", event_id, repository, tag or "", digest, action, result),
    )


def _scanned(event: Mapping[str, Any], detail: Mapping[str, Any]) -> ScanCompleted:
    tags = detail.get("image-tags", [])
    if not isinstance(tags, list):
        raise InvalidEvent(f"must be a list of tags, got {type(tags).__name__}", field="detail.image-tags")
    counts = detail.get("finding-severity-counts", {})
    if counts is None:
        counts = {}
    if not isinstance(counts, Mapping):
        raise InvalidEvent("must be a JSON object", field="detail.finding-severity-counts")
    parsed_counts: dict[str, int] = {}
    for severity, count in counts.items():
        field = f"detail.finding-severity-counts.{str(severity)[:_QUOTED]}"
        if severity not in _SEVERITIES:
            raise InvalidEvent(f"not an ECR severity ({', '.join(sorted(_SEVERITIES))})", field=field)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 10**9:
            raise InvalidEvent("must be a count (a whole number from 0)", field=field)
        parsed_counts[severity] = count
    event_id, repository = _envelope(event, "id"), _repository(detail)
    digest = _check(_text(detail, "image-digest"), _DIGEST, "detail.image-digest", "a sha256 digest")
    status = _text(detail, "scan-status")
    return ScanCompleted(
        id=event_id,
        repository=repository,
        digest=digest,
        tags=tuple(_check(tag, _TAG, f"detail.image-tags[{i}]", "an ECR image tag") for i, tag in enumerate(tags)),
        status=status,
        severity_counts=parsed_counts,
        time=_envelope(event, "time"),
        account=_envelope(event, "account"),
        region=_envelope(event, "region"),
        idempotency_key=_key("scan", event_id, repository, digest, status),
    )


def _stage(event: Mapping[str, Any], detail: Mapping[str, Any]) -> StageSucceeded:
    event_id = _envelope(event, "id")
    pipeline = _check(_text(detail, "pipeline"), _PIPELINE_NAME, "detail.pipeline", "a CodePipeline name")
    stage = _check(_text(detail, "stage"), _PIPELINE_NAME, "detail.stage", "a CodePipeline stage name")
    execution = _check(_text(detail, "execution-id"), _EXECUTION_ID, "detail.execution-id", "a pipeline execution id")
    state = _text(detail, "state")
    return StageSucceeded(
        id=event_id,
        pipeline=pipeline,
        stage=stage,
        execution_id=execution,
        state=state,
        time=_envelope(event, "time"),
        account=_envelope(event, "account"),
        region=_envelope(event, "region"),
        idempotency_key=_key("stage", event_id, pipeline, stage, execution, state),
    )


def _repository(detail: Mapping[str, Any]) -> str:
    name = _text(detail, "repository-name")
    if len(name) > 256 or not _REPOSITORY.fullmatch(name):
        raise InvalidEvent("must be an ECR repository name", field="detail.repository-name")
    return name


def _text(detail: Mapping[str, Any], key: str) -> str:
    value = detail.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("missing, empty or not a string", field=f"detail.{key}")
    return value


def _optional(detail: Mapping[str, Any], key: str) -> str | None:
    value = detail.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"must be a string, got {type(value).__name__}", field=f"detail.{key}")
    return value


def _envelope(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 256:
        raise InvalidEvent("must be a string of at most 256 characters", field=key)
    return value


def _check(value: Any, pattern: re.Pattern[str], field: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidEvent(f"must be {what}", field=field)
    return value


def _key(*parts: str) -> str:
    """The Powertools idempotency key: the EventBridge id, and the content, so a re-sent event with a new id but
    the same image and the same event with a reused id are both told apart correctly."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
