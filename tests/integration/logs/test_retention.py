"""RetentionService against the moto server over HTTP: event path, sweep, checkpoints, throttling."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from eksops.aws import RateLimiter, client
from eksops.config import CommonConfig
from eksops.errors import InvalidEvent, PartialFailure, UnsupportedEvent
from eksops.events import CloudTrailCall, Continuation, ScheduledRun, parse_eventbridge
from eksops.logs import RetentionConfig, RetentionService
from eksops.notify import Publisher
from eksops.sweeps import Deadline
from eksops_dev.cloudtrail import cloudtrail_event
from tests.integration.conftest import CallCounter, FaultProxy

FOREVER = Deadline(lambda: 900_000)


class RecordingContinuer:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def continue_sweep(self, *, run_id: str, part: int, checkpoint: Any) -> None:
        self.calls.append({"run_id": run_id, "part": part, "checkpoint": json.loads(json.dumps(checkpoint))})


@pytest.fixture
def inbox(aws: str) -> tuple[str, str]:
    """A reports topic with an SQS subscription to read what was published."""
    topic = client("sns").create_topic(Name="reports")["TopicArn"]
    url = client("sqs").create_queue(QueueName="reports-inbox")["QueueUrl"]
    arn = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, url


def received(url: str) -> list[dict[str, Any]]:
    messages = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def make_service(
    env: dict[str, str] | None = None,
    *,
    reports: str | None = None,
    dry_run: bool = False,
    counter: CallCounter | None = None,
) -> tuple[RetentionService, RecordingContinuer]:
    logs = client("logs")
    if counter:
        counter.attach(logs)
    continuer = RecordingContinuer()
    service = RetentionService(
        # The sweep's mechanics on groups of any name: the default reaches every group (RetentionScope=region;
        # the eks scope, the template's default, is tested in test_retention_scope.py).
        RetentionConfig.from_env({"RETENTION_SCOPE": "region", **(env or {"RETENTION_DEFAULT_DAYS": "365"})}),
        CommonConfig.from_env(
            {"DRY_RUN": "true" if dry_run else "false", **({"REPORTS_TOPIC_ARN": reports} if reports else {})}
        ),
        logs=logs,
        tagging=client("resourcegroupstaggingapi"),
        publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=reports),
        continuer=continuer,  # type: ignore[arg-type]
        put_limiter=RateLimiter(1000),
        describe_limiter=RateLimiter(1000),
    )
    return service, continuer


def created(name: str) -> CloudTrailCall:
    event = parse_eventbridge(cloudtrail_event("logs", "CreateLogGroup", {"logGroupName": name}))
    assert isinstance(event, CloudTrailCall)
    return event


def retention(name: str) -> int | None:
    groups = client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next(g.get("retentionInDays") for g in groups if g["logGroupName"] == name)


def seed(groups: dict[str, int | None], tags: dict[str, dict[str, str]] | None = None) -> None:
    logs = client("logs")
    for name, days in groups.items():
        logs.create_log_group(logGroupName=name, **({"tags": tags[name]} if tags and name in tags else {}))
        if days:
            logs.put_retention_policy(logGroupName=name, retentionInDays=days)


def test_event_sets_retention_then_a_duplicate_changes_nothing(
    aws: str, counter: CallCounter, inbox: tuple[str, str]
) -> None:
    name = "/aws/containerinsights/prod/application"
    seed({name: None})
    service, _ = make_service(reports=inbox[0], counter=counter)
    first = service.handle(created(name), FOREVER)
    assert first.changed == [{"group": name, "from": None, "to": 30}]
    assert retention(name) == 30
    second = service.handle(created(name), FOREVER)
    assert second.changed == [] and second.unchanged == 1
    assert counter.puts == {name: 1}
    reports = received(inbox[1])
    assert len(reports) == 1  # only the change was reported
    envelope = json.loads(reports[0]["Message"])
    assert envelope["kind"] == "retention.changes" and envelope["details"]["changed"][0]["to"] == 30
    assert reports[0]["MessageAttributes"]["severity"]["Value"] == "info"


def test_skip_tag_and_exclude_glob_are_respected(aws: str, counter: CallCounter) -> None:
    seed({"/legacy/audit": None, "/compliance/trail": None}, tags={"/legacy/audit": {"eksops:retention": "skip"}})
    service, _ = make_service(
        {"RETENTION_DEFAULT_DAYS": "365", "RETENTION_EXCLUDE": '["/compliance/*"]'}, counter=counter
    )
    for name in ("/legacy/audit", "/compliance/trail"):
        summary = service.handle(created(name), FOREVER)
        assert summary.excluded == 1 and summary.changed == []
        assert retention(name) is None
    swept = service.handle(ScheduledRun(id="run", rule="r"), FOREVER)
    assert swept.excluded == 2 and swept.changed == []
    assert counter.puts == {}


def test_a_group_already_gone_is_a_logged_no_op(aws: str, counter: CallCounter) -> None:
    service, _ = make_service(counter=counter)
    summary = service.handle(created("/aws/lambda/deleted-already"), FOREVER)
    assert summary.gone == ["/aws/lambda/deleted-already"] and summary.changed == []
    assert counter.puts == {}


def test_prefix_sibling_is_not_mistaken_for_the_group(aws: str) -> None:
    seed({"/app/api-v2": None})
    service, _ = make_service()
    summary = service.handle(created("/app/api"), FOREVER)
    assert summary.gone == ["/app/api"]
    assert retention("/app/api-v2") is None


def test_dry_run_reports_and_changes_nothing(aws: str, counter: CallCounter, inbox: tuple[str, str]) -> None:
    seed({"/aws/containerinsights/prod/host": None, "/app/x": None})
    service, _ = make_service(reports=inbox[0], dry_run=True, counter=counter)
    summary = service.handle(ScheduledRun(id="run", rule="r"), FOREVER)
    assert {c["group"] for c in summary.changed} == {"/aws/containerinsights/prod/host", "/app/x"}
    assert summary.dry_run
    assert retention("/aws/containerinsights/prod/host") is None and retention("/app/x") is None
    assert counter.puts == {}
    report = received(inbox[1])[0]
    assert "would change 2" in report["Subject"]


@pytest.mark.parametrize(("mode", "expected"), [("missing", 3653), ("cap", 365), ("exact", 365)])
def test_modes(aws: str, mode: str, expected: int) -> None:
    seed({"/app/long": 3653, "/app/short": 7})
    service, _ = make_service({"RETENTION_DEFAULT_DAYS": "365", "RETENTION_MODE": mode})
    service.handle(ScheduledRun(id="run", rule="r"), FOREVER)
    assert retention("/app/long") == expected
    assert retention("/app/short") == (365 if mode == "exact" else 7)


def test_exact_mode_leaves_the_stacks_own_log_groups_to_cloudformation(aws: str) -> None:
    seed({"/aws/lambda/eksops-notifier": 30, "/aws/lambda/eksops-dev-notifier": 30, "/aws/lambda/other-app": 30})
    env = {
        "RETENTION_DEFAULT_DAYS": "365",
        "RETENTION_MODE": "exact",
        "RETENTION_STACK_LOG_GROUPS": '["/aws/lambda/eksops-notifier", ""]',
    }
    service, _ = make_service(env)
    summary = service.handle(ScheduledRun(id="run", rule="r"), FOREVER)
    assert retention("/aws/lambda/eksops-notifier") == 30
    # another stack's group (a name sharing the prefix) and anyone else's are enforced as usual
    assert retention("/aws/lambda/eksops-dev-notifier") == 365 and retention("/aws/lambda/other-app") == 365
    assert summary.excluded == 1


def test_sweep_pages_and_calls_only_for_non_compliant_groups(aws: str, counter: CallCounter) -> None:
    groups: dict[str, int | None] = {f"/app/svc-{i:03}": (None if i % 3 else 365) for i in range(130)}
    seed(groups)
    non_compliant = {name for name, days in groups.items() if days is None}
    service, continuer = make_service(counter=counter)
    summary = service.handle(ScheduledRun(id="run", rule="r"), FOREVER)
    assert len(summary.changed) == len(non_compliant)
    assert summary.unchanged == len(groups) - len(non_compliant)
    assert set(counter.puts) == non_compliant and set(counter.puts.values()) == {1}
    assert counter.sends["DescribeLogGroups"] == 3  # 130 groups, 50 per page
    assert continuer.calls == []
    assert all(retention(name) is not None for name in groups)


def test_checkpoint_and_continue_skips_none_and_repeats_none(aws: str, counter: CallCounter) -> None:
    groups: dict[str, int | None] = {f"/app/svc-{i:03}": None for i in range(137)}
    seed(groups)
    service, continuer = make_service(counter=counter)
    budget = {"checks": 0}

    def remaining() -> int:  # the time runs low every 23 checks: checkpoints land mid-page
        budget["checks"] += 1
        return 900_000 if budget["checks"] % 23 else 1_000

    summary = service.handle(ScheduledRun(id="run-1", rule="r"), Deadline(remaining))
    parts = [summary]
    while continuer.calls:
        call = continuer.calls.pop()
        assert call["run_id"] == "run-1" and call["part"] == parts[-1].part + 1  # type: ignore[operator]
        event = Continuation(
            id="c", function="log_retention", run_id=call["run_id"], part=call["part"], checkpoint=call["checkpoint"]
        )
        parts.append(service.handle(event, Deadline(remaining)))
        assert len(parts) < 50
    assert len(parts) > 5
    assert counter.puts == {name: 1 for name in groups}
    assert sum(len(p.changed) for p in parts) == len(groups)
    # 3 pages, and at most one more read per continuation: a part reads its page again to decide on fresh data
    assert 3 < counter.sends["DescribeLogGroups"] <= 3 + len(parts) - 1


def _first_part_checkpoint(service: RetentionService, continuer: RecordingContinuer, after: int) -> Continuation:
    """Run part 1 of a sweep that runs out of time after ``after`` deadline checks; its continuation event."""
    checks = {"n": 0}

    def remaining() -> int:
        checks["n"] += 1
        return 900_000 if checks["n"] <= after else 1_000

    first = service.handle(ScheduledRun(id="run-s", rule="r"), Deadline(remaining))
    assert first.checkpoint is not None and continuer.calls
    call = continuer.calls.pop()
    return Continuation(id="c", function="log_retention", run_id="run-s", part=2, checkpoint=call["checkpoint"])


def test_a_late_continuation_decides_on_what_is_there_now(aws: str, counter: CallCounter) -> None:
    """A part retried, delayed or redriven from the dead-letter queue must not put a value from an old reading
    over one an operator set in between."""
    groups: dict[str, int | None] = {f"/app/svc-{i:02}": None for i in range(10)}
    seed(groups)
    service, continuer = make_service(counter=counter)
    continuation = _first_part_checkpoint(service, continuer, after=5)
    done = set(counter.puts)
    assert 0 < len(done) < len(groups)
    left = sorted(set(groups) - done)
    operator = boto3.client("logs")  # not the counted client: an operator, meanwhile
    operator.put_retention_policy(logGroupName=left[0], retentionInDays=3653)

    second = service.handle(continuation, FOREVER)
    assert retention(left[0]) == 3653  # mode "missing": the operator's value stands
    assert {c["group"] for c in second.changed} == set(left[1:])
    assert counter.puts == {name: 1 for name in groups if name != left[0]}

    again = service.handle(continuation, FOREVER)  # the same part delivered twice (a Lambda retry)
    assert again.changed == [] and again.errors == []
    assert counter.puts == {name: 1 for name in groups if name != left[0]}


def test_a_chain_started_under_dry_run_stays_dry_run(aws: str) -> None:
    seed({f"/app/svc-{i:02}": None for i in range(6)})
    dry, continuer = make_service(dry_run=True)
    continuation = _first_part_checkpoint(dry, continuer, after=3)
    assert continuation.checkpoint["dry_run"] is True
    live, _ = make_service(dry_run=False)  # e.g. the deployed stack picks up a chain `eksops invoke` started
    summary = live.handle(continuation, FOREVER)
    assert summary.dry_run and summary.changed
    assert all(retention(f"/app/svc-{i:02}") is None for i in range(6))


def test_a_refused_page_token_starts_the_sweep_over(fault_proxy: FaultProxy) -> None:
    seed({f"/app/svc-{i:03}": None for i in range(60)})
    service, _ = make_service()
    continuation = Continuation(
        id="c",
        function="log_retention",
        run_id="old",
        part=7,
        checkpoint={"page_token": "expired-token", "handled": ["/app/svc-000"], "errors": 0, "dry_run": False},
    )
    fault_proxy.fail("DescribeLogGroups", times=1, code="InvalidParameterException", body_contains="expired-token")
    summary = service.handle(continuation, FOREVER)
    assert len(summary.changed) == 60  # from the first page, none skipped by the old page's names
    assert all(retention(f"/app/svc-{i:03}") == 365 for i in range(60))


@pytest.mark.parametrize(
    ("checkpoint", "field"),
    [
        ({"page_token": 7}, "detail.checkpoint.page_token"),
        ({"handled": "a"}, "detail.checkpoint.handled"),
        ({"errors": -1}, "detail.checkpoint.errors"),
        ({"dry_run": "yes"}, "detail.checkpoint.dry_run"),
        ({"report": []}, "detail.checkpoint.report"),
        ({"report": {"changed_count": "3"}}, "detail.checkpoint.report.changed_count"),
        ({"report": {"changed": [{"group": "/app/x", "from": None, "to": "365"}]}}, "detail.checkpoint.report.changed"),
        # a change without "from" or "to" (found by the fuzz test: the report then failed after the part's changes)
        ({"report": {"changed": [{"group": "/app/x", "to": 30}]}}, "detail.checkpoint.report.changed"),
        ({"report": {"changed": [{"group": "/app/x", "from": 30}]}}, "detail.checkpoint.report.changed"),
        ({"report": {"errors": [{"group": "/app/x"}]}}, "detail.checkpoint.report.errors"),
        ({"report": {"gone": [7]}}, "detail.checkpoint.report.gone"),
        (
            {"report": {"changed": [{"group": "/app/x", "from": None, "to": 365}], "changed_count": 0}},
            "detail.checkpoint.report.changed_count",
        ),
        ({"report": {"changed_count": 1, "applied": 2}}, "detail.checkpoint.report.changed_count"),
        (
            {"errors": 0, "report": {"errors": [{"group": "/app/x", "code": "AccessDenied", "message": "m"}]}},
            "detail.checkpoint.errors",
        ),
    ],
)
def test_a_malformed_checkpoint_is_refused_before_any_change(
    aws: str, counter: CallCounter, checkpoint: dict[str, Any], field: str
) -> None:
    seed({"/app/a": None})
    service, _ = make_service(counter=counter)
    event = Continuation(id="c", function="log_retention", run_id="r", part=2, checkpoint=checkpoint)
    with pytest.raises(InvalidEvent) as raised:
        service.handle(event, FOREVER)
    assert raised.value.field == field
    assert counter.puts == {} and retention("/app/a") is None


def test_throttling_is_retried_with_backoff(fault_proxy: FaultProxy) -> None:
    seed({"/app/a": None})
    fault_proxy.fail("PutRetentionPolicy", times=2)
    service, _ = make_service()
    summary = service.handle(created("/app/a"), FOREVER)
    assert summary.changed and retention("/app/a") == 365
    assert fault_proxy.seen.count("Logs_20140328.PutRetentionPolicy") == 3


def test_one_failing_group_does_not_stop_the_sweep(fault_proxy: FaultProxy) -> None:
    seed({"/app/a": None, "/app/b": None, "/app/c": None})
    fault_proxy.fail("PutRetentionPolicy", times=1, code="AccessDeniedException", body_contains="/app/b")
    service, _ = make_service()
    summary = service.handle(ScheduledRun(id="run", rule="r"), FOREVER)
    assert {c["group"] for c in summary.changed} == {"/app/a", "/app/c"}
    assert summary.errors[0]["group"] == "/app/b" and summary.errors[0]["code"] == "AccessDeniedException"
    with pytest.raises(PartialFailure) as info:
        summary.raise_for_errors()
    assert info.value.errors == summary.errors
    again = service.handle(ScheduledRun(id="run2", rule="r"), FOREVER)  # the retry converges
    assert [c["group"] for c in again.changed] == ["/app/b"]


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d.update(requestParameters={}), InvalidEvent),
        (lambda d: d.update(requestParameters={"logGroupName": "bad name with spaces"}), InvalidEvent),
        (lambda d: d.update(requestParameters={"logGroupName": 42}), InvalidEvent),
        (lambda d: d.update(eventName="PutMetricFilter"), UnsupportedEvent),
    ],
)
def test_bad_events_change_nothing(
    aws: str, counter: CallCounter, mutate: Callable[[dict[str, Any]], None], error: type[Exception]
) -> None:
    seed({"/app/a": None})
    event = cloudtrail_event("logs", "CreateLogGroup", {"logGroupName": "/app/a"})
    mutate(event["detail"])
    service, _ = make_service(counter=counter)
    with pytest.raises(error):
        service.handle(parse_eventbridge(event), FOREVER)
    assert counter.puts == {} and retention("/app/a") is None


def test_failed_api_call_event_is_a_no_op(aws: str, counter: CallCounter) -> None:
    seed({"/app/a": None})
    event = parse_eventbridge(
        cloudtrail_event(
            "logs", "CreateLogGroup", {"logGroupName": "/app/a"}, error_code="ResourceAlreadyExistsException"
        )
    )
    service, _ = make_service(counter=counter)
    assert service.handle(event, FOREVER).changed == []
    assert counter.puts == {}


def test_a_failure_in_an_early_part_fails_the_last_part_not_the_chain(fault_proxy: FaultProxy) -> None:
    seed({f"/app/svc-{i:02}": None for i in range(60)})
    fault_proxy.fail("PutRetentionPolicy", times=1, code="AccessDeniedException", body_contains="/app/svc-03")
    service, continuer = make_service()
    looks = {"n": 0}

    def remaining() -> int:
        looks["n"] += 1
        return 900_000 if looks["n"] % 20 else 1_000

    first = service.handle(ScheduledRun(id="run", rule="r"), Deadline(remaining))
    assert first.errors and first.continued
    first.raise_for_errors()  # a part that continued never fails: its retry would start a second chain
    last = first
    while continuer.calls:
        call = continuer.calls.pop()
        last = service.handle(
            Continuation(
                id="c", function="log_retention", run_id="run", part=call["part"], checkpoint=call["checkpoint"]
            ),
            Deadline(remaining),
        )
        if last.continued:
            last.raise_for_errors()
    assert last.earlier_errors == 1 and not last.continued
    with pytest.raises(PartialFailure):
        last.raise_for_errors()


def test_reports_stay_under_the_sns_size_limit(aws: str, inbox: tuple[str, str]) -> None:
    seed({f"/aws/lambda/a-very-long-function-name-for-size-{i:04}": None for i in range(400)})
    service, _ = make_service(reports=inbox[0])
    summary = service.handle(ScheduledRun(id="run", rule="r"), FOREVER)
    assert len(summary.changed) == 400
    [report] = received(inbox[1])
    details = json.loads(report["Message"])["details"]
    assert details["changed_count"] == 400 and len(details["changed"]) == 100


def test_a_part_that_started_over_never_checkpoints_the_refused_token(fault_proxy: FaultProxy) -> None:
    seed({f"/app/svc-{i:03}": None for i in range(60)})
    service, continuer = make_service()
    looks = {"n": 0}

    def remaining() -> int:  # low after a few groups of the first page
        looks["n"] += 1
        return 900_000 if looks["n"] < 6 else 1_000

    old = {"page_token": "expired-token", "handled": [], "errors": 0, "dry_run": False}
    event = Continuation(id="c", function="log_retention", run_id="old", part=7, checkpoint=old)
    fault_proxy.fail("DescribeLogGroups", times=1, code="InvalidParameterException", body_contains="expired-token")
    summary = service.handle(event, Deadline(remaining))
    assert summary.changed and summary.continued
    (call,) = continuer.calls
    assert call["checkpoint"]["page_token"] is None  # the first page, read again by the next part
    assert call["checkpoint"]["handled"] == sorted(c["group"] for c in summary.changed)


def _run_chain(service: RetentionService, continuer: RecordingContinuer, every: int) -> list[Any]:
    """A whole sweep whose time runs low every ``every`` deadline checks; the summary of each part."""
    looks = {"n": 0}

    def remaining() -> int:
        looks["n"] += 1
        return 900_000 if looks["n"] % every else 1_000

    parts = [service.handle(ScheduledRun(id="run-digest", rule="r"), Deadline(remaining))]
    while continuer.calls:
        call = continuer.calls.pop()
        event = Continuation(
            id="c", function="log_retention", run_id=call["run_id"], part=call["part"], checkpoint=call["checkpoint"]
        )
        parts.append(service.handle(event, Deadline(remaining)))
        assert len(parts) < 50
    return parts


def test_a_sweep_in_many_parts_is_reported_once_by_its_last_part(
    fault_proxy: FaultProxy, inbox: tuple[str, str]
) -> None:
    """Issue 13: change reports batched per sweep. The parts of a sweep may run minutes apart (more than the
    reports queue's window), so each part carries the tally in its checkpoint and only the last part reports."""
    groups: dict[str, int | None] = {f"/app/svc-{i:03}": (None if i % 4 else 30) for i in range(120)}
    groups["/app/excluded"] = None
    seed(groups)
    fault_proxy.fail("PutRetentionPolicy", times=1, code="AccessDeniedException", body_contains="/app/svc-005")
    service, continuer = make_service(
        {"RETENTION_DEFAULT_DAYS": "365", "RETENTION_EXCLUDE": '["/app/excluded"]'}, reports=inbox[0]
    )
    parts = _run_chain(service, continuer, every=17)
    assert len(parts) > 3 and all(p.continued for p in parts[:-1]) and not parts[-1].continued

    [report] = received(inbox[1])  # one message for the whole sweep, none for the parts that continued
    envelope = json.loads(report["Message"])
    details = envelope["details"]
    changed = sum(len(p.changed) for p in parts)
    assert changed == 89  # 90 never-expire groups under the rule, one of them refused
    assert details["parts"] == len(parts) and details["run_id"] == "run-digest"
    assert details["changed_count"] == changed and len(details["changed"]) == min(changed, 100)
    assert details["unchanged"] == 30 and details["excluded"] == 1 and details["excluded_sample"] == ["/app/excluded"]
    assert details["errors_count"] == 1 and details["errors"][0]["group"] == "/app/svc-005"
    assert envelope["title"] == f"Log retention: changed {changed} log group(s) (sweep run-dige, {len(parts)} parts)"
    assert envelope["severity"] == "warning"
    assert "ERROR /app/svc-005: AccessDeniedException" in envelope["lines"]
    with pytest.raises(PartialFailure):
        parts[-1].raise_for_errors()


def test_a_sweep_with_nothing_to_change_reports_nothing(aws: str, inbox: tuple[str, str]) -> None:
    seed({f"/app/svc-{i:03}": 30 for i in range(60)})
    service, continuer = make_service(reports=inbox[0])
    parts = _run_chain(service, continuer, every=11)
    assert len(parts) > 2
    assert received(inbox[1]) == []


def test_a_checkpoint_with_the_largest_tally_fits_an_event(aws: str) -> None:
    """50 handled names, 100 changes and 20 errors, every name 512 characters and every message long: the
    continuation still fits EventBridge's entry (the Continuer refuses a detail over MAX_DETAIL_BYTES)."""
    from eksops.logs.retention import Summary, Tally
    from eksops.sweeps import MAX_DETAIL_BYTES, Continuer

    name = "/" + "n" * 511
    part = Summary(mode="missing", dry_run=False, run_id="r" * 64, part=3)
    part.changed = [{"group": name, "from": None, "to": 365}] * 300
    part.gone = [name] * 300
    part.errors = [{"group": name, "code": "AccessDeniedException", "message": "m" * 5000}] * 300
    part.excluded_sample = [name] * 300
    part.earlier = Tally().add(part)
    service, _ = make_service()
    service._checkpoint(part, "t" * 2048, {name + str(i) for i in range(50)})
    assert part.checkpoint is not None
    sent: list[dict[str, Any]] = []

    class Events:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            sent.extend(Entries)
            return {"FailedEntryCount": 0}

    Continuer(Events(), function="log_retention").continue_sweep(run_id="r" * 64, part=4, checkpoint=part.checkpoint)
    assert len(sent[0]["Detail"].encode()) < MAX_DETAIL_BYTES * 0.8
    tally = Tally.parse(json.loads(sent[0]["Detail"])["checkpoint"]["report"])
    assert tally.changed_count == 600 and len(tally.changed) == 100 and tally.parts == 2


def test_a_dry_run_chain_that_starts_over_counts_each_group_once(
    fault_proxy: FaultProxy, inbox: tuple[str, str]
) -> None:
    """Review of issue 13: a dry run changed nothing, so the groups its earlier parts would have changed are read
    and counted again after the refused token; the tally must not count them twice."""
    seed({f"/app/svc-{i:03}": None for i in range(60)})
    service, _ = make_service(reports=inbox[0], dry_run=True)
    earlier = {"parts": 2, "changed": [{"group": "/app/svc-000", "from": None, "to": 365}], "changed_count": 6}
    checkpoint = {"page_token": "expired-token", "handled": [], "errors": 0, "dry_run": True, "report": earlier}
    event = Continuation(id="c", function="log_retention", run_id="run-c", part=3, checkpoint=checkpoint)
    fault_proxy.fail("DescribeLogGroups", times=1, code="InvalidParameterException", body_contains="expired-token")
    service.handle(event, FOREVER)
    [report] = received(inbox[1])
    envelope = json.loads(report["Message"])
    assert envelope["title"] == "Log retention: would change 60 log group(s) (sweep run-c, 3 parts)"
    assert envelope["details"]["changed_count"] == 60 and envelope["details"]["applied"] == 0


def test_a_live_chain_finished_by_a_dry_run_deployment_says_what_it_really_changed(
    aws: str, inbox: tuple[str, str]
) -> None:
    seed({f"/app/svc-{i:02}": None for i in range(6)})
    live, continuer = make_service()
    continuation = _first_part_checkpoint(live, continuer, after=3)
    applied = continuation.checkpoint["report"]["applied"]
    assert applied > 0 and continuation.checkpoint["dry_run"] is False
    dry, _ = make_service(reports=inbox[0], dry_run=True)  # the stack redeployed with DryRun=true meanwhile
    summary = dry.handle(continuation, FOREVER)
    assert summary.dry_run and summary.changed
    [report] = received(inbox[1])
    title = json.loads(report["Message"])["title"]
    assert (
        title == f"Log retention: changed {applied} and would change {6 - applied} log group(s) (sweep run-s, 2 parts)"
    )
