"""Retention enforcement: one log group on its CloudTrail event, every log group on the scheduled sweep."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import RateLimiter, error_code
from eksops.config import CommonConfig
from eksops.errors import InvalidEvent, PartialFailure, UnsupportedEvent
from eksops.events import AnyEvent, CloudTrailCall, ScheduledRun
from eksops.logs.groups import describe_log_group
from eksops.logs.retention_config import SKIP_TAG_KEY, SKIP_TAG_VALUE, RetentionConfig, decide
from eksops.notify import Message, Publisher, Severity
from eksops.sweeps import Continuer, Deadline

FUNCTION = "log_retention"
EVENT_NAMES = frozenset({"CreateLogGroup", "DeleteRetentionPolicy"})
PAGE_SIZE = 50  # DescribeLogGroups maximum
DESCRIBE_RATE = 10.0  # DescribeLogGroups quota
EXCLUDED_SAMPLE = 20
REPORT_ITEMS = 100  # per list in a report; about 90 bytes each, far under SNS's 256 KB
CARRIED_GONE = 20  # the earlier parts' gone groups and errors carried in a checkpoint (their counts are exact):
CARRIED_ERRORS = 20  # with 100 changes and 50 handled names of 512 characters a checkpoint stays under 150 KB
CARRIED_MESSAGE = 300  # characters of an error's message carried
_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogGroup:
    name: str
    retention: int | None
    group_class: str | None = None
    arn: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> LogGroup:
        return cls(
            item["logGroupName"], item.get("retentionInDays"), item.get("logGroupClass"), item.get("logGroupArn")
        )


@dataclass
class Tally:
    """What the earlier parts of a sweep did, carried from part to part in the checkpoint so that the last part
    reports the whole sweep in one message. Counts are exact; the lists keep their first items."""

    parts: int = 0
    changed: list[dict[str, Any]] = field(default_factory=list)
    changed_count: int = 0
    applied: int = 0  # of changed_count, the changes made for real (a live chain a dry-run deployment finished)
    unchanged: int = 0
    excluded: int = 0
    excluded_sample: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    gone_count: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: Any) -> Tally:
        """The tally of a checkpoint's ``report`` (absent in a checkpoint written before reports were carried)."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise InvalidEvent("must be a JSON object", field="detail.checkpoint.report")

        def count(key: str) -> int:
            value = raw.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidEvent("must be a count", field=f"detail.checkpoint.report.{key}")
            return value

        def items(key: str, valid: Callable[[Any], bool], what: str) -> list[Any]:
            value = raw.get(key, [])
            if not isinstance(value, list) or not all(valid(v) for v in value):
                raise InvalidEvent(f"must be a list of {what}", field=f"detail.checkpoint.report.{key}")
            return value

        tally = cls(
            parts=count("parts"),
            changed=items("changed", _is_change, '{"group", "from", "to"} objects'),
            changed_count=count("changed_count"),
            applied=count("applied"),
            unchanged=count("unchanged"),
            excluded=count("excluded"),
            excluded_sample=items("excluded_sample", _is_name, "log group names"),
            gone=items("gone", _is_name, "log group names"),
            gone_count=count("gone_count"),
            errors=items("errors", _is_error, '{"group", "code", "message"} objects'),
        )
        for listed, counted in (("changed", "changed_count"), ("gone", "gone_count"), ("applied", "changed_count")):
            size = getattr(tally, listed)
            if (len(size) if isinstance(size, list) else size) > getattr(tally, counted):
                raise InvalidEvent(f"is less than its {listed}", field=f"detail.checkpoint.report.{counted}")
        return tally

    def add(self, part: Summary) -> Tally:
        """This tally with ``part`` added: what the checkpoint carries to the next part, or the last part reports."""
        return Tally(
            parts=self.parts + 1,
            changed=(self.changed + part.changed)[:REPORT_ITEMS],
            changed_count=self.changed_count + len(part.changed),
            applied=self.applied + (0 if part.dry_run else len(part.changed)),
            unchanged=self.unchanged + part.unchanged,
            excluded=self.excluded + part.excluded,
            excluded_sample=(self.excluded_sample + part.excluded_sample)[:EXCLUDED_SAMPLE],
            gone=(self.gone + part.gone)[:CARRIED_GONE],
            gone_count=self.gone_count + len(part.gone),
            errors=(self.errors + [{**e, "message": e.get("message", "")[:CARRIED_MESSAGE]} for e in part.errors])[
                :CARRIED_ERRORS
            ],
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _is_name(value: Any) -> bool:
    return isinstance(value, str)


def _is_days(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _is_change(value: Any) -> bool:
    # "from" and "to" must be there: None (never expire) is a value, not a missing key
    return (
        isinstance(value, dict)
        and isinstance(value.get("group"), str)
        and all(key in value and _is_days(value[key]) for key in ("from", "to"))
    )


def _is_error(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("group", "code", "message"))


@dataclass(frozen=True)
class _Resume:
    """Where a sweep part starts: the page to read (again) and the names on it already handled."""

    page_token: str | None = None
    handled: tuple[str, ...] = ()
    errors: int = 0
    dry_run: bool = False  # a chain started under dry-run stays dry-run, whatever the function's own setting
    continued: bool = False
    tally: Tally = field(default_factory=Tally)

    @classmethod
    def parse(cls, checkpoint: Mapping[str, Any] | None) -> _Resume:
        if checkpoint is None:
            return cls()
        token, handled = checkpoint.get("page_token"), checkpoint.get("handled", [])
        errors, dry_run = checkpoint.get("errors", 0), checkpoint.get("dry_run", False)
        if token is not None and not isinstance(token, str):
            raise InvalidEvent("must be a string or null", field="detail.checkpoint.page_token")
        if not isinstance(handled, list) or not all(isinstance(n, str) for n in handled):
            raise InvalidEvent("must be a list of log group names", field="detail.checkpoint.handled")
        if not isinstance(errors, int) or isinstance(errors, bool) or errors < 0:
            raise InvalidEvent("must be a count", field="detail.checkpoint.errors")
        if not isinstance(dry_run, bool):
            raise InvalidEvent("must be a boolean", field="detail.checkpoint.dry_run")
        tally = Tally.parse(checkpoint.get("report"))
        if len(tally.errors) > errors:
            raise InvalidEvent("is less than the errors its report lists", field="detail.checkpoint.errors")
        return cls(token, tuple(handled), errors, dry_run, continued=True, tally=tally)


@dataclass
class Summary:
    """What one invocation did (or, under dry-run, would do)."""

    mode: str
    dry_run: bool
    changed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    excluded: int = 0
    excluded_sample: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    run_id: str | None = None
    part: int | None = None
    continued: bool = False
    earlier_errors: int = 0  # failures in earlier parts of the same sweep
    earlier: Tally = field(default_factory=Tally, repr=False)  # what the earlier parts did, for the sweep's report
    checkpoint: dict[str, Any] | None = field(default=None, repr=False)  # where the next part starts

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and k not in {"checkpoint", "earlier"}}

    def sweep_tally(self) -> Tally:
        """The whole sweep so far: the earlier parts' tally with this part added."""
        return self.earlier.add(self)

    def report_details(self) -> dict[str, Any]:
        """What the report says: this invocation, or for the last part of a sweep the whole sweep (every part), with
        the lists cut to REPORT_ITEMS (their counts exact), so a report always fits SNS's 256 KB."""
        tally = self.sweep_tally()
        details: dict[str, Any] = {"mode": self.mode, "dry_run": self.dry_run}
        if self.run_id:
            details.update(run_id=self.run_id, parts=tally.parts)
        details.update(
            changed=tally.changed[:REPORT_ITEMS],
            changed_count=tally.changed_count,
            applied=tally.applied,
            unchanged=tally.unchanged,
            excluded=tally.excluded,
            excluded_sample=tally.excluded_sample,
            gone=tally.gone[:REPORT_ITEMS],
            gone_count=tally.gone_count,
            errors=tally.errors[:REPORT_ITEMS],
            errors_count=self.earlier_errors + len(self.errors),
        )
        return details

    def raise_for_errors(self) -> None:
        """Fail the invocation when groups failed, after the work and the report are done.

        A sweep part that continued does not fail: a retry of it would fork a second chain. Its failures travel
        in the checkpoint and the last part fails for the whole sweep.
        """
        if self.continued:
            return
        if self.errors or self.earlier_errors:
            total = len(self.errors) + self.earlier_errors
            raise PartialFailure(f"{total} log group(s) failed; see the report(s)", self.errors)

    def counts(self) -> dict[str, int]:
        return {
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "excluded": self.excluded,
            "gone": len(self.gone),
            "errors": len(self.errors),
        }


class RetentionService:
    """Enforces retention with the clients and ports it is given (real boto3 clients in Lambda and tests)."""

    def __init__(
        self,
        cfg: RetentionConfig,
        common: CommonConfig,
        *,
        logs: Any,
        tagging: Any,
        publisher: Publisher,
        continuer: Continuer,
        put_limiter: RateLimiter | None = None,
        describe_limiter: RateLimiter | None = None,
    ) -> None:
        self.cfg = cfg
        self.common = common
        self._logs = logs
        self._tagging = tagging
        self._publisher = publisher
        self._continuer = continuer
        self._put_limiter = put_limiter or RateLimiter(cfg.put_rate)
        self._describe_limiter = describe_limiter or RateLimiter(DESCRIBE_RATE)
        self._account = ""

    # -- entry point ------------------------------------------------------------------------------------------

    def handle(self, event: AnyEvent, deadline: Deadline, *, account: str = "") -> Summary:
        """Act on a parsed event: one group for a CloudTrail call, a sweep for a schedule or continuation."""
        self._account = account
        with deadline.bounding_calls():  # every AWS call ends in time for the checkpoint (eksops.aws.budget)
            if isinstance(event, CloudTrailCall):
                summary = self.enforce_one(event)
            elif isinstance(event, ScheduledRun):
                summary = self.sweep(run_id=event.id or uuid.uuid4().hex, part=1, checkpoint=None, deadline=deadline)
            else:
                if event.function != FUNCTION:
                    raise UnsupportedEvent(f"continuation for {event.function!r} reached {FUNCTION}")
                summary = self.sweep(
                    run_id=event.run_id, part=event.part, checkpoint=event.checkpoint, deadline=deadline
                )
            self._report(summary)
            # Continue last: if anything before failed, the retry redoes this part and no second chain starts.
            if summary.checkpoint is not None:
                assert summary.run_id is not None and summary.part is not None
                self._continuer.continue_sweep(
                    run_id=summary.run_id, part=summary.part + 1, checkpoint=summary.checkpoint
                )
                summary.continued = True
        return summary

    # -- event path -------------------------------------------------------------------------------------------

    def enforce_one(self, call: CloudTrailCall) -> Summary:
        if call.source != "aws.logs" or call.event_name not in EVENT_NAMES:
            raise UnsupportedEvent(
                f"{FUNCTION} handles aws.logs {sorted(EVENT_NAMES)}, not {call.source} {call.event_name}"
            )
        name = call.request_parameters.get("logGroupName")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidEvent("must be a log group name", field="detail.requestParameters.logGroupName")
        summary = self._summary()
        if call.error_code:
            log.info("the %s call for %s failed (%s): nothing to do", call.event_name, name, call.error_code)
            return summary
        group = self._find(name)
        if group is None:
            log.info("log group %s no longer exists: nothing to do", name)
            summary.gone.append(name)
            return summary
        tagged = False if self.cfg.excluded(name) else self._tagged_skip(group)
        self._enforce(group, tagged, summary)
        return summary

    def _find(self, name: str) -> LogGroup | None:
        self._describe_limiter.acquire()
        found = describe_log_group(self._logs, name)
        return LogGroup.from_api(found) if found else None

    def _tagged_skip(self, group: LogGroup) -> bool:
        if not group.arn:
            return False
        try:
            tags = self._logs.list_tags_for_resource(resourceArn=group.arn).get("tags", {})
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        return bool(tags.get(SKIP_TAG_KEY) == SKIP_TAG_VALUE)

    # -- sweep ------------------------------------------------------------------------------------------------

    def sweep(self, *, run_id: str, part: int, checkpoint: Mapping[str, Any] | None, deadline: Deadline) -> Summary:
        """Page through every log group, fixing the non-compliant ones, until done or the time runs low.

        A part decides only on what it has just read: a continuation reads its page again (one more
        DescribeLogGroups per part) and skips the groups the earlier part handled, so a retried, late or redriven
        part never puts a value from an old reading over one that an operator set since.
        """
        resume = _Resume.parse(checkpoint)
        summary = self._summary(dry_run=self.common.dry_run or resume.dry_run)
        summary.run_id, summary.part = run_id, part
        summary.earlier_errors, summary.earlier = resume.errors, resume.tally
        skip = self._skip_tagged_names()
        page_token, handled = resume.page_token, set(resume.handled)
        while True:
            if deadline.low():
                return self._checkpoint(summary, page_token, handled)
            page, restarted = self._read_page(page_token, restart_if_expired=resume.continued)
            if restarted:  # from the first page now: a later checkpoint must not carry the refused token
                page_token, handled = None, set()
                # Every group is read (and a failed one tried) again: only the changes made for real stay in the
                # tally (a dry run's would be counted twice).
                earlier = summary.earlier
                kept = earlier.changed if earlier.applied == earlier.changed_count else []
                summary.earlier = replace(
                    earlier,
                    changed=kept,
                    changed_count=earlier.applied,
                    unchanged=0,
                    excluded=0,
                    excluded_sample=[],
                    errors=[],
                )
                summary.earlier_errors = 0
            token = page.get("nextToken")
            for item in page.get("logGroups", []):
                group = LogGroup.from_api(item)
                if group.name in handled:
                    continue
                if deadline.low():
                    return self._checkpoint(summary, page_token, handled)
                failures = len(summary.errors)
                self._enforce(group, group.name in skip, summary)
                if len(summary.errors) > failures and deadline.low():
                    # The margin came while this group's call was refused retries: the next part tries it again,
                    # with time to retry, rather than this part reporting it as failed.
                    summary.errors.pop()
                    return self._checkpoint(summary, page_token, handled)
                handled.add(group.name)
            if token is None:
                return summary
            page_token, handled = token, set()

    def _read_page(self, token: str | None, *, restart_if_expired: bool) -> tuple[dict[str, Any], bool]:
        """The page at ``token``, and whether the sweep had to start over from the first page instead."""
        try:
            return self._page(token), False
        except ClientError as exc:
            # A continuation redriven from the dead-letter queue may carry a token CloudWatch no longer accepts.
            # Starting over is safe: every decision is made on a fresh reading.
            if not (token and restart_if_expired and error_code(exc) == "InvalidParameterException"):
                raise
            log.warning("the checkpoint's page token was refused (%s): sweeping from the first page", error_code(exc))
            return self._page(None), True

    def _page(self, token: str | None) -> dict[str, Any]:
        self._describe_limiter.acquire()
        kwargs: dict[str, Any] = {"limit": PAGE_SIZE}
        if token:
            kwargs["nextToken"] = token
        return self._logs.describe_log_groups(**kwargs)  # type: ignore[no-any-return]

    def _skip_tagged_names(self) -> set[str]:
        """Names of log groups tagged eksops:retention=skip, from the tagging API (one call per 100 tagged groups,
        once per invocation)."""
        names: set[str] = set()
        paginator = self._tagging.get_paginator("get_resources")
        # Resource type "logs" (the service), which covers log groups in AWS and in moto alike.
        for page in paginator.paginate(
            ResourceTypeFilters=["logs"],
            TagFilters=[{"Key": SKIP_TAG_KEY, "Values": [SKIP_TAG_VALUE]}],
            ResourcesPerPage=100,
        ):
            for item in page.get("ResourceTagMappingList", []):
                arn = item["ResourceARN"]
                if ":log-group:" in arn:
                    names.add(arn.split(":log-group:", 1)[1].removesuffix(":*"))
        return names

    def _checkpoint(self, summary: Summary, page_token: str | None, handled: set[str]) -> Summary:
        assert summary.run_id is not None and summary.part is not None
        summary.checkpoint = {
            "page_token": page_token,
            "handled": sorted(handled),
            "errors": summary.earlier_errors + len(summary.errors),
            "dry_run": summary.dry_run,
            "report": summary.sweep_tally().as_dict(),  # the last part reports the whole sweep
        }
        log.info(
            "sweep %s part %d checkpointed after %d group(s) of its page", summary.run_id, summary.part, len(handled)
        )
        return summary

    # -- one group --------------------------------------------------------------------------------------------

    def _enforce(self, group: LogGroup, tagged_skip: bool, summary: Summary) -> None:
        decision = decide(self.cfg, group.name, group.retention, tagged_skip=tagged_skip, group_class=group.group_class)
        if decision.reason in {"excluded", "tagged-skip", "delivery-class"}:
            summary.excluded += 1
            if len(summary.excluded_sample) < EXCLUDED_SAMPLE:
                summary.excluded_sample.append(group.name)
            return
        if decision.target is None:
            summary.unchanged += 1
            return
        change = {"group": group.name, "from": group.retention, "to": decision.target}
        if summary.dry_run:
            summary.changed.append(change)
            return
        self._put_limiter.acquire()
        try:
            self._logs.put_retention_policy(logGroupName=group.name, retentionInDays=decision.target)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                summary.gone.append(group.name)  # deleted between listing and now: nothing to enforce
                return
            summary.errors.append({"group": group.name, "code": error_code(exc), "message": str(exc)})
            log.warning("PutRetentionPolicy failed for %s: %s", group.name, error_code(exc))
            return
        summary.changed.append(change)

    # -- reporting --------------------------------------------------------------------------------------------

    def _summary(self, *, dry_run: bool | None = None) -> Summary:
        return Summary(mode=str(self.cfg.mode), dry_run=self.common.dry_run if dry_run is None else dry_run)

    def _report(self, summary: Summary) -> None:
        """One report per event, and one per sweep: a part that continues reports nothing (its work travels in the
        checkpoint's tally); the last part reports every part's changes and errors."""
        if summary.checkpoint is not None:
            return
        details = summary.report_details()
        changed, errors = details["changed_count"], details["errors_count"]
        if not changed and not errors:
            return
        verb = "would change" if summary.dry_run else "changed"
        count = str(changed)
        if summary.dry_run and details["applied"]:  # a live chain finished by a dry-run deployment
            verb, count = "changed", f"{details['applied']} and would change {changed - details['applied']}"
        lines = [f"{c['group']}: {_days(c['from'])} -> {_days(c['to'])}" for c in details["changed"]]
        if changed > len(details["changed"]):
            lines.append(f"... and {changed - len(details['changed'])} more change(s) (see the function's logs)")
        lines += [f"ERROR {e['group']}: {e['code']}" for e in details["errors"]]
        if errors > len(details["errors"]):
            lines.append(f"... and {errors - len(details['errors'])} more error(s) (see the function's logs)")
        parts = details.get("parts", 1)
        sweep = f" (sweep {summary.run_id[:8]}, {parts} parts)" if summary.run_id and parts > 1 else ""
        self._publisher.report(
            Message(
                kind="retention.changes",
                severity=Severity.WARNING if errors else Severity.INFO,
                title=f"Log retention: {verb} {count} log group(s){sweep}",
                summary=f"{verb} {count}, unchanged {details['unchanged']}, excluded {details['excluded']}, "
                f"errors {errors}; mode {summary.mode}{', dry run' if summary.dry_run else ''}.",
                details=details,
                account=self._account or None,
                region=self._logs.meta.region_name,
                lines=tuple(lines),
            )
        )


def _days(value: int | None) -> str:
    return "never expire" if value is None else f"{value} days"


def iter_groups(logs: Any) -> Iterator[LogGroup]:
    """Every log group in the region (for tests and tools; the sweep pages by hand to checkpoint)."""
    for page in logs.get_paginator("describe_log_groups").paginate():
        for item in page.get("logGroups", []):
            yield LogGroup.from_api(item)
