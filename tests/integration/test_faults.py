"""Sweeps under fault injection: every AWS call through proxies in front of moto that throttle and fail a share.

* Issue 9, defect 6: a part whose calls are throttled every time still ends before its Lambda timeout.
* Every sweep of ``eksops_dev.faultruns.SWEEPS`` converges within two runs at 30 % throttled / 5 % failed, with
  nothing half-applied, and leaves nothing half-applied when one operation fails every time. A function with a
  scheduled sweep joins both tests (and benchmarks/faults.py) with a ``SweepTarget`` and an entry in that list.

botocore's sleeps, its adaptive limiter, eksops' call budget and rate limiters and each invocation's deadline run
on one virtual clock (eksops_dev.faults.virtual_time): the retries of hundreds of throttled calls take
milliseconds, and the faults and their timing are the same on every run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops.aws import RateLimiter, client
from eksops.config import CommonConfig
from eksops.errors import PartialFailure
from eksops.events import ScheduledRun
from eksops.logs import RetentionConfig, RetentionService
from eksops.notify import Publisher
from eksops.sweeps import Continuer, Deadline
from eksops_dev.faultruns import SWEEPS, SweepTarget, converge, seeded
from eksops_dev.faults import FaultPlan, VirtualClock, proxied, virtual_time
from eksops_dev.template import Template

THROTTLE, FAIL = 0.30, 0.05  # the shares of all AWS requests the proxies throttle and fail


class RecordingContinuer(Continuer):
    """The real Continuer (PutEvents through the proxy); keeps each continuation it managed to put."""

    def __init__(self, function: str) -> None:
        super().__init__(client("events"), function=function)
        self.calls: list[dict[str, Any]] = []

    def continue_sweep(self, *, run_id: str, part: int, checkpoint: Any) -> None:
        super().continue_sweep(run_id=run_id, part=part, checkpoint=checkpoint)
        self.calls.append({"run_id": run_id, "part": part, "checkpoint": json.loads(json.dumps(checkpoint))})


@pytest.fixture
def clock() -> Iterator[VirtualClock]:
    state = random.getstate()
    random.seed(9)  # botocore draws its backoff jitter from the module-level generator
    with virtual_time(VirtualClock()) as virtual:
        yield virtual
    random.setstate(state)


def retention_service(clock: VirtualClock, topic: str) -> tuple[RetentionService, RecordingContinuer]:
    continuer = RecordingContinuer("log_retention")
    service = RetentionService(
        # /app/svc-* groups get the default: every group of the region (RetentionScope=region)
        RetentionConfig.from_env({"RETENTION_DEFAULT_DAYS": "365", "RETENTION_SCOPE": "region"}),
        CommonConfig.from_env({"DRY_RUN": "false", "REPORTS_TOPIC_ARN": topic}),
        logs=client("logs"),
        tagging=client("resourcegroupstaggingapi"),
        publisher=Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=topic),
        continuer=continuer,
        # at the account quotas, on the virtual clock
        put_limiter=RateLimiter(5.0, clock=clock, sleep=clock.sleep),
        describe_limiter=RateLimiter(10.0, clock=clock, sleep=clock.sleep),
    )
    return service, continuer


def test_a_part_whose_calls_are_all_throttled_still_checkpoints_before_the_lambda_timeout(
    aws: str, clock: VirtualClock
) -> None:
    """Issue 9, defect 6: one retried call (ten attempts, backoff up to 20 s) could outlast the checkpoint margin.

    Every PutRetentionPolicy is throttled, and the part starts one second before its margin: the put cannot be
    retried in time, so the part must checkpoint (that group included) and continue before the timeout.
    """
    groups = [f"/app/svc-{i}" for i in range(5)]
    for name in groups:
        client("logs").create_log_group(logGroupName=name)
    topic = client("sns").create_topic(Name="reports")["TopicArn"]
    plan = FaultPlan(throttle=1.0, only=lambda r: r.operation == "PutRetentionPolicy")
    with proxied(plan, {"AWS_ENDPOINT_URL": aws}):
        service, continuer = retention_service(clock, topic)
        timeout_s = Deadline(lambda: 0).margin_ms / 1000 + 1.0
        deadline = Deadline(lambda: int((timeout_s - clock()) * 1000))
        summary = service.handle(ScheduledRun(id="run", rule="r"), deadline)
    assert clock() < timeout_s, f"the part ended {clock() - timeout_s:.1f} s after the Lambda timeout"
    assert plan.throttled["logs:PutRetentionPolicy"] >= 1
    assert summary.continued and summary.changed == [] and summary.errors == []
    [call] = continuer.calls
    # nothing was handled: the next part tries every group again, with its full time to retry
    assert call["part"] == 2 and call["checkpoint"]["handled"] == [] and call["checkpoint"]["errors"] == 0


def test_a_part_whose_every_call_fails_ends_before_the_lambda_timeout(aws: str, clock: VirtualClock) -> None:
    """Worse still: the report and the continuation are throttled too. The part cannot continue, and says so
    (Lambda retries it), but it ends in time rather than being killed mid-call."""
    for i in range(3):
        client("logs").create_log_group(logGroupName=f"/app/svc-{i}")
    topic = client("sns").create_topic(Name="reports")["TopicArn"]
    writes = {"PutRetentionPolicy", "Publish", "PutEvents"}
    plan = FaultPlan(throttle=1.0, only=lambda r: r.operation in writes)
    with proxied(plan, {"AWS_ENDPOINT_URL": aws}):
        service, continuer = retention_service(clock, topic)
        timeout_s = Deadline(lambda: 0).margin_ms / 1000 + 1.0
        deadline = Deadline(lambda: int((timeout_s - clock()) * 1000))
        with pytest.raises(Exception) as raised:
            service.handle(ScheduledRun(id="run", rule="r"), deadline)
    assert not isinstance(raised.value, PartialFailure)  # the report failed: the part is retried whole
    assert clock() < timeout_s, f"the part ended {clock() - timeout_s:.1f} s after the Lambda timeout"
    assert continuer.calls == []


def test_every_function_with_a_schedule_is_a_fault_sweep(template: Template) -> None:
    """A scheduled function sweeps, so it must join SWEEPS (one entry in dev/eksops_dev/faultruns.py)."""
    scheduled = sorted(fn.name for fn in template.functions.values() if any(e.kind == "schedule" for e in fn.events))
    assert scheduled, "template.yaml has no scheduled function: the check below would prove nothing"
    missing = sorted(set(scheduled) - {t.function for t in SWEEPS})
    assert not missing, f"add a SweepTarget for {missing} to SWEEPS in dev/eksops_dev/faultruns.py"


@pytest.mark.parametrize("target_type", SWEEPS, ids=lambda t: t.function)
def test_each_sweep_converges_within_two_runs_under_faults_with_nothing_half_applied(
    aws: str, template: Template, tmp_path: Path, clock: VirtualClock, target_type: type[SweepTarget]
) -> None:
    """30 % of all AWS requests throttled and 5 % failed (HTTP 500/503), at random but seeded: each sweep converges
    by the end of its second run, every invocation ends before its Lambda timeout, and after each run nothing is
    half-applied (what that means is each target's: see eksops_dev.faultruns)."""
    plan = FaultPlan(throttle=THROTTLE, fail=FAIL, seed=1)
    with seeded(target_type, aws, tmp_path, template, clock=clock, sleep=clock.sleep) as target:
        target.timeout_s = target.suite_timeout_s or target.timeout_s
        outcome = converge(target, plan, runs=2)
    assert outcome.converged, f"not converged after {len(outcome.runs)} runs: {outcome.not_converged[:10]}"
    assert outcome.half_applied == [[]] * len(outcome.runs)
    late = [i for i in outcome.invocations if not i.in_time]
    assert not late, [(i.event, i.ended - i.started) for i in late]
    # the faults were there, in every protocol the sweep speaks
    assert plan.total(plan.throttled) >= 0.2 * plan.total(plan.seen) and plan.total(plan.failed) > 0
    if target_type.continues:
        assert len(outcome.runs[0]) > 1, "the sweep never continued: make the world larger or the time shorter"


@pytest.mark.parametrize("target_type", SWEEPS, ids=lambda t: t.function)
def test_a_call_that_always_fails_leaves_nothing_half_applied(
    aws: str, template: Template, tmp_path: Path, clock: VirtualClock, target_type: type[SweepTarget]
) -> None:
    """Random faults seldom outlast botocore's retries; here one operation fails every time (HTTP 500/503), so
    the sweep must fail, in time, having reported only what it did and left nothing half-done."""
    operation = target_type.persistent_fault
    plan = FaultPlan(fail=1.0, seed=2, only=lambda r: r.operation == operation)
    with seeded(target_type, aws, tmp_path, template, clock=clock, sleep=clock.sleep) as target:
        target.timeout_s = target.suite_timeout_s or target.timeout_s
        outcome = converge(target, plan, runs=1)
    assert plan.total(plan.failed) > 0, f"{operation} was never called"
    assert not outcome.converged and not outcome.invocations[-1].ok
    assert outcome.half_applied == [[]]
    assert all(i.in_time for i in outcome.invocations)
