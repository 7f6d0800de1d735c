"""Benchmark of the log retention sweep: API calls against moto, and pace for 100,000 groups on a virtual clock.

Part A runs ``RetentionService.sweep`` against a moto server over HTTP and counts every HTTP request the boto3
clients send (botocore's ``before-send`` event, so SDK retries would show up). The fewest calls a sweep can make
is one DescribeLogGroups page per 50 groups plus one PutRetentionPolicy per non-compliant group, counted here
independently (list every group, ask ``eksops.logs.decide``). Part A also runs the sweep a second time (it
must change nothing) and runs one sweep chained over several invocations through checkpoints (every group must
be put exactly once). The rate limits are lifted for Part A: the call counts do not depend on the rate.

Part B simulates 100,000 log groups with in-memory fake clients and a virtual clock. eksops' own RateLimiter
holds PutRetentionPolicy to 5/s and DescribeLogGroups to 10/s, each invocation gets Lambda's 15 minutes, the
sweep checkpoints 60 s before the end (the default ``Deadline`` margin) and continues through a recorded
EventBridge event. It prints how many invocations and how many hours a sweep needs, for all, 10 % and none of
the groups non-compliant.

The script prints figures and exits 1 when a bound is broken: more than 2 % over the minimum number of calls,
a second sweep that changes anything, or a group put other than exactly once (Part B also: an invocation past
15 minutes, or more puts in a second than the quota).

Run it with ``make bench`` (``.venv/bin/python benchmarks/retention_sweep.py``); ``--help`` lists the sizes.
The defaults take a little over three minutes on two cores (185-195 s measured); over half of that is seeding
12,000 groups into moto over HTTP at about 100 groups/s: the server runs in this process, so client and server
share one GIL and more seeding threads barely help. ``--groups 5000`` brings it to about 105 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from eksops.aws import RateLimiter
from eksops.config import CommonConfig
from eksops.events import SCHEDULED_DETAIL_TYPE, Continuation, ScheduledRun, parse_eventbridge
from eksops.logs import RetentionConfig, RetentionService, decide
from eksops.logs.retention import DESCRIBE_RATE, PAGE_SIZE
from eksops.logs.retention_config import SKIP_TAG_KEY, SKIP_TAG_VALUE, VALID_DAYS
from eksops.notify import Publisher
from eksops.sweeps import Continuer, Deadline

# the /app/svc-* groups get the default: every group of the region (RetentionScope=region)
RETENTION_ENV = {"RETENTION_DEFAULT_DAYS": "365", "RETENTION_SCOPE": "region"}
BOUND = 1.02  # a sweep may make at most 2 % more calls than the minimum
REGION = "us-east-1"
FUNCTION = "log_retention"
REPORTS_TOPIC = f"arn:aws:sns:{REGION}:123456789012:eksops-reports"
SNS_MESSAGE_LIMIT = 262_144  # bytes, Subject, Message and attributes together
SEED_THREADS = 8
UNLIMITED = 1e6  # requests per second: the limiter never waits
OTHER_DAYS = 3653  # retention some seeded groups already have: compliant in mode "missing"

# Part B: Lambda's limit and the latency each fake call adds to the virtual clock.
LAMBDA_TIMEOUT_MS = 900_000
PUT_LATENCY_S = 0.020
DESCRIBE_LATENCY_S = 0.060
TAGGING_LATENCY_S = 0.100
INVOKE_GAP_S = 1.0  # from PutEvents to the next invocation starting
WINDOW_TOLERANCE_S = 1e-6  # float rounding when counting calls in a one-second window

_CI_KINDS = ("application", "performance", "host", "dataplane")

# State of each seeded group in Part A and its weight.
SEED_MIX = {"never-expire": 0.58, "right-already": 0.25, "other-value": 0.15, "skip-tagged": 0.02}


# -- shared ---------------------------------------------------------------------------------------------------


def group_name(i: int) -> str:
    """Names like the ones Container Insights and EKS create, plus application groups that get the default."""
    kind, cluster = i % 6, f"c{i // 6:05d}"
    if kind < len(_CI_KINDS):
        return f"/aws/containerinsights/{cluster}/{_CI_KINDS[kind]}"
    if kind == len(_CI_KINDS):
        return f"/aws/eks/{cluster}/cluster"
    return f"/app/svc-{i:06d}"


def noncompliant(cfg: RetentionConfig, items: Iterable[Mapping[str, Any]], skip: set[str]) -> set[str]:
    """Names of the groups (DescribeLogGroups items) a sweep has to change, decided without the service."""
    return {
        item["logGroupName"]
        for item in items
        if decide(
            cfg,
            item["logGroupName"],
            item.get("retentionInDays"),
            tagged_skip=item["logGroupName"] in skip,
            group_class=item.get("logGroupClass"),
        ).change
    }


def minimum_pages(groups: int) -> int:
    return max(1, math.ceil(groups / PAGE_SIZE))


def pct(value: float, base: float) -> str:
    return f"{100.0 * value / base:.2f} %" if base else "n/a"


def check(failures: list[str], ok: bool, what: str) -> str:
    if not ok:
        failures.append(what)
    return "OK" if ok else "FAILED"


class RecordingEvents:
    """Stands in for EventBridge under the real Continuer: keeps the continuation events it is given."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.delivered = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"e{len(self.entries)}"} for _ in Entries]}

    def take(self) -> dict[str, Any] | None:
        """The oldest continuation as EventBridge would deliver it to the function (None when there is none)."""
        if not self.entries:
            return None
        entry = self.entries.pop(0)
        self.delivered += 1
        return {
            "id": f"continuation-{self.delivered}",
            "source": entry["Source"],
            "detail-type": entry["DetailType"],
            "detail": json.loads(entry["Detail"]),
            "resources": [],
        }


def scheduled_event() -> dict[str, Any]:
    return {
        "id": "bench-schedule",
        "source": "aws.events",
        "detail-type": SCHEDULED_DETAIL_TYPE,
        "detail": {},
        "resources": [f"arn:aws:events:{REGION}:123456789012:rule/eksops-retention-sweep"],
    }


# -- Part A: moto over HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedGroup:
    name: str
    retention: int | None  # None: never expire
    skip: bool  # tagged eksops:retention=skip


def plan_groups(count: int, cfg: RetentionConfig, seed: int) -> tuple[list[SeedGroup], Counter[str]]:
    rng = random.Random(seed)
    states = rng.choices(list(SEED_MIX), weights=list(SEED_MIX.values()), k=count)
    groups = []
    for i, state in enumerate(states):
        name = group_name(i)
        retention = {"right-already": cfg.target(name), "other-value": OTHER_DAYS}.get(state)
        groups.append(SeedGroup(name, retention, skip=state == "skip-tagged"))
    return groups, Counter(states)


def seed(logs: Any, groups: list[SeedGroup]) -> float:
    def create(group: SeedGroup) -> None:
        tags = {SKIP_TAG_KEY: SKIP_TAG_VALUE} if group.skip else {}
        logs.create_log_group(logGroupName=group.name, tags=tags)
        if group.retention is not None:
            logs.put_retention_policy(logGroupName=group.name, retentionInDays=group.retention)

    started = time.perf_counter()
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(create, groups))
    return time.perf_counter() - started


def list_groups(logs: Any) -> list[dict[str, Any]]:
    return [item for page in logs.get_paginator("describe_log_groups").paginate() for item in page["logGroups"]]


class CallCounter:
    """Counts the HTTP requests boto3 clients send, by operation, and PutRetentionPolicy calls by group."""

    def __init__(self, *clients: Any) -> None:
        self.sends: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()
        for client in clients:
            client.meta.events.register("before-send", self._on_send)
            client.meta.events.register("before-parameter-build.cloudwatch-logs.PutRetentionPolicy", self._on_put)

    def _on_send(self, event_name: str, **_: Any) -> None:
        self.sends[event_name.rsplit(".", 1)[-1]] += 1  # before-send.<service>.<Operation>

    def _on_put(self, params: Mapping[str, Any], **_: Any) -> None:
        self.puts[str(params["logGroupName"])] += 1

    def reset(self) -> None:
        self.sends.clear()
        self.puts.clear()


class Moto:
    """A moto server on a free port, with the environment pointing boto3 at it."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
        )
        self.config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=SEED_THREADS * 2)

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(service, config=self.config)  # type: ignore[call-overload]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).close()

    def stop(self) -> None:
        self.server.stop()


@dataclass
class MotoRig:
    """The service under test with counted clients, and an uncounted client for seeding and checking."""

    moto: Moto
    cfg: RetentionConfig
    service: RetentionService
    counter: CallCounter
    events: RecordingEvents
    admin: Any

    @classmethod
    def build(cls, moto: Moto, cfg: RetentionConfig) -> MotoRig:
        logs, tagging, sns = moto.client("logs"), moto.client("resourcegroupstaggingapi"), moto.client("sns")
        events = RecordingEvents()
        service = RetentionService(
            cfg,
            CommonConfig.from_env({}),
            logs=logs,
            tagging=tagging,
            publisher=Publisher(sns, alerts_topic_arn=None, reports_topic_arn=None),
            continuer=Continuer(events, function=FUNCTION),
            put_limiter=RateLimiter(UNLIMITED),
            describe_limiter=RateLimiter(UNLIMITED),
        )
        return cls(moto, cfg, service, CallCounter(logs, tagging, sns), events, moto.client("logs"))

    def seed_and_count(self, count: int, seed_value: int) -> tuple[set[str], set[str]]:
        """Seed ``count`` groups, list them, decide independently: (non-compliant names, skip-tagged names)."""
        plan, states = plan_groups(count, self.cfg, seed_value)
        seconds = seed(self.admin, plan)
        mix = ", ".join(f"{state} {states[state]:,}" for state in SEED_MIX)
        print(
            f"  seeded {count:,} log groups in {seconds:.1f} s ({SEED_THREADS} threads, "
            f"{count / seconds:,.0f} groups/s): {mix}"
        )
        started = time.perf_counter()
        listed = list_groups(self.admin)
        skip = {g.name for g in plan if g.skip}
        expected = noncompliant(self.cfg, listed, skip)
        print(
            f"  independent count (list every group, eksops.logs.decide): {len(listed):,} groups, "
            f"{len(expected):,} non-compliant ({time.perf_counter() - started:.1f} s)"
        )
        return expected, skip


def unlimited_deadline() -> Deadline:
    return Deadline(lambda: 10**9)


def countdown_deadline(checks: int) -> Deadline:
    """A deadline that goes low at its ``checks``-th look: the sweep looks once per group and once per page."""
    left = [checks]

    def remaining_ms() -> int:
        left[0] -= 1
        return 10**9 if left[0] > 0 else 0

    return Deadline(remaining_ms)


def print_calls(sends: Counter[str], pages: int, puts: int, failures: list[str], *, bound: bool) -> None:
    """The table of calls against the minimum; with ``bound``, more than 2 % over the minimum is a failure."""
    minimum = pages + puts
    total = sum(sends.values())
    print(f"    {'operation':<28}{'calls':>9}{'minimum':>10}")
    print(f"    {'DescribeLogGroups':<28}{sends['DescribeLogGroups']:>9,}{pages:>10,}")
    print(f"    {'PutRetentionPolicy':<28}{sends['PutRetentionPolicy']:>9,}{puts:>10,}")
    print(f"    {'GetResources (extra)':<28}{sends['GetResources']:>9,}{'-':>10}")
    for operation, calls in sorted(sends.items()):
        if operation not in {"DescribeLogGroups", "PutRetentionPolicy", "GetResources"}:
            print(f"    {operation + ' (unexpected)':<28}{calls:>9,}{'-':>10}")
    verdict = (
        check(failures, total <= BOUND * minimum, f"sweep made {total} calls, over {BOUND} x {minimum}")
        if bound
        else "(not bounded)"
    )
    print(
        f"    {'total':<28}{total:>9,}{minimum:>10,}   overhead {pct(total - minimum, minimum)} "
        f"(bound {pct(BOUND - 1, 1)})  {verdict}"
    )


def check_puts(counter: CallCounter, expected: set[str], failures: list[str], label: str) -> None:
    twice = sorted(name for name, calls in counter.puts.items() if calls > 1)
    missed = expected - set(counter.puts)
    extra = set(counter.puts) - expected
    ok = not (twice or missed or extra)
    verdict = check(failures, ok, f"{label}: put twice {len(twice)}, missed {len(missed)}, not due {len(extra)}")
    print(
        f"    every non-compliant group put exactly once and no other group put: {verdict}"
        + ("" if ok else f" (twice {len(twice)}, missed {len(missed)}, not due {len(extra)})")
    )


def part_a(args: argparse.Namespace, failures: list[str]) -> None:
    cfg = RetentionConfig.from_env(RETENTION_ENV)
    moto = Moto()
    try:
        print(f"Part A: RetentionService.sweep against moto {version('moto')} over HTTP ({moto.endpoint})")
        print(
            f"  rate limits lifted (RateLimiter({UNLIMITED:,.0f}/s) for puts and describes): the call counts do not "
            "depend on the rate; boto3 retries: standard, 10 attempts; config RETENTION_DEFAULT_DAYS=365, "
            f"RETENTION_SCOPE={cfg.scope}, mode {cfg.mode}"
        )
        rig = MotoRig.build(moto, cfg)
        single_sweeps(rig, args.groups, args.seed, failures)
        print()
        moto.reset()
        chained_sweep(rig, args.chain_groups, args.checks_per_part, args.seed + 1, failures)
    finally:
        moto.stop()


def single_sweeps(rig: MotoRig, groups: int, seed_value: int, failures: list[str]) -> None:
    expected, _ = rig.seed_and_count(groups, seed_value)
    for run in (1, 2):
        rig.counter.reset()
        started = time.perf_counter()
        summary = rig.service.sweep(run_id=f"bench-{run}", part=1, checkpoint=None, deadline=unlimited_deadline())
        seconds = time.perf_counter() - started
        counts = ", ".join(f"{k} {v:,}" for k, v in summary.counts().items())
        if run == 1:
            print(
                f"  sweep 1, one invocation: {seconds:.1f} s, {sum(rig.counter.sends.values()) / seconds:,.0f} "
                f"calls/s; {counts}"
            )
            print_calls(rig.counter.sends, minimum_pages(groups), len(expected), failures, bound=True)
            check_puts(rig.counter, expected, failures, "sweep 1")
        else:
            sends = rig.counter.sends
            puts = sends["PutRetentionPolicy"]
            verdict = check(failures, puts == 0 and not summary.changed, f"second sweep made {puts} puts")
            print(
                f"  sweep 2, idempotence: {seconds:.1f} s; DescribeLogGroups {sends['DescribeLogGroups']:,}, "
                f"GetResources {sends['GetResources']:,}, PutRetentionPolicy {puts:,}  {verdict}"
            )
        check(failures, not summary.continued and not rig.events.entries, f"sweep {run} continued without pressure")
        check(failures, not summary.errors, f"sweep {run} had errors: {summary.errors[:3]}")


def chained_sweep(rig: MotoRig, groups: int, checks: int, seed_value: int, failures: list[str]) -> None:
    print(
        f"  chained sweep: moto reset, fresh groups; the deadline goes low at its {checks}th look "
        "(one look per group and per page)"
    )
    expected, skip = rig.seed_and_count(groups, seed_value)
    rig.counter.reset()
    print(f"    {'part':>4}{'Describe':>10}{'Put':>7}{'GetRes':>8}{'changed':>9}{'handled':>9}{'checkpoint':>12}")
    part, checkpoint, parts = 1, None, 0
    started = time.perf_counter()
    while True:
        before = Counter(rig.counter.sends)
        incoming: ScheduledRun | Continuation = (
            ScheduledRun(id="bench-chain", rule="bench")
            if checkpoint is None
            else Continuation(id=f"c{part}", function=FUNCTION, run_id="bench-chain", part=part, checkpoint=checkpoint)
        )
        summary = rig.service.handle(incoming, countdown_deadline(checks))
        calls = rig.counter.sends - before
        parts += 1
        event = rig.events.take()
        handled = len(event["detail"]["checkpoint"]["handled"]) if event else 0  # of the page the next part rereads
        size = f"{len(json.dumps(event['detail'])):,} B" if event else "-"
        print(
            f"    {part:>4}{calls['DescribeLogGroups']:>10,}{calls['PutRetentionPolicy']:>7,}"
            f"{calls['GetResources']:>8,}{len(summary.changed):>9,}{handled:>9,}{size:>12}"
        )
        check(failures, not summary.errors, f"chained part {part} had errors: {summary.errors[:3]}")
        if not summary.continued or event is None:
            check(failures, not summary.continued, f"part {part} continued but put no event")
            break
        continuation = parse_eventbridge(event)
        assert isinstance(continuation, Continuation)
        part, checkpoint = continuation.part, continuation.checkpoint
    print(
        f"    {parts} invocations, {time.perf_counter() - started:.1f} s; "
        "GetResources runs once per invocation and each continuation rereads its page, hence the extra calls"
    )
    print_calls(rig.counter.sends, minimum_pages(groups), len(expected), failures, bound=False)
    check_puts(rig.counter, expected, failures, "chained sweep")
    left = noncompliant(rig.cfg, list_groups(rig.admin), skip)
    verdict = check(failures, not left, f"{len(left)} groups still non-compliant after the chained sweep")
    print(f"    groups still non-compliant after the chain (listed again): {len(left):,}  {verdict}")


# -- Part B: 100,000 groups on a virtual clock ----------------------------------------------------------------


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class FakeLogs:
    """In-memory CloudWatch Logs: DescribeLogGroups pages 50 at a time in name order; PutRetentionPolicy sets."""

    def __init__(self, retention: Mapping[str, int | None], clock: VirtualClock) -> None:
        self.names = sorted(retention)
        self.retention = dict(retention)
        self.clock = clock
        self.meta = SimpleNamespace(region_name=REGION, partition="aws")
        self.puts: Counter[str] = Counter()
        self.put_times: list[float] = []
        self.describe_times: list[float] = []

    def item(self, name: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            "logGroupName": name,
            "logGroupClass": "STANDARD",
            "logGroupArn": f"arn:aws:logs:{REGION}:123456789012:log-group:{name}",
        }
        if self.retention[name] is not None:
            item["retentionInDays"] = self.retention[name]
        return item

    def describe_log_groups(self, limit: int = PAGE_SIZE, nextToken: str | None = None) -> dict[str, Any]:
        if not 1 <= limit <= PAGE_SIZE:
            raise ValueError(f"limit {limit} is outside 1..{PAGE_SIZE}")
        self.describe_times.append(self.clock.now)
        self.clock.sleep(DESCRIBE_LATENCY_S)
        start = int(nextToken) if nextToken else 0
        page: dict[str, Any] = {"logGroups": [self.item(n) for n in self.names[start : start + limit]]}
        if start + limit < len(self.names):
            page["nextToken"] = str(start + limit)
        return page

    def put_retention_policy(self, logGroupName: str, retentionInDays: int) -> dict[str, Any]:
        if retentionInDays not in VALID_DAYS:
            raise ValueError(f"{retentionInDays} is not a valid retention")
        self.put_times.append(self.clock.now)
        self.clock.sleep(PUT_LATENCY_S)
        self.puts[logGroupName] += 1
        self.retention[logGroupName] = retentionInDays
        return {}

    def list_tags_for_resource(self, resourceArn: str) -> dict[str, Any]:
        return {"tags": {}}


class EmptyPaginator:
    def __init__(self, owner: FakeTagging) -> None:
        self.owner = owner

    def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
        self.owner.calls += 1
        self.owner.clock.sleep(TAGGING_LATENCY_S)
        yield {"ResourceTagMappingList": []}


class FakeTagging:
    """The tagging API with nothing tagged: GetResources answers one empty page."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.calls = 0

    def get_paginator(self, operation: str) -> EmptyPaginator:
        if operation != "get_resources":
            raise ValueError(operation)
        return EmptyPaginator(self)


class FakeSns:
    """Records the size of each message the reports topic would get."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        attributes = sum(
            len(k) + len(v["DataType"]) + len(v["StringValue"]) for k, v in kwargs.get("MessageAttributes", {}).items()
        )
        self.sizes.append(len(kwargs["Message"].encode()) + len(kwargs.get("Subject", "").encode()) + attributes)
        return {"MessageId": f"m{len(self.sizes)}"}


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most calls that started within any ``window`` seconds."""
    best, low = 0, 0
    for high, now in enumerate(times):
        while times[low] <= now - window + WINDOW_TOLERANCE_S:
            low += 1
        best = max(best, high - low + 1)
    return best


def lambda_deadline(clock: VirtualClock, start: float) -> Deadline:
    return Deadline(lambda: int(LAMBDA_TIMEOUT_MS - (clock.now - start) * 1000))


@dataclass
class VirtualRun:
    label: str
    due: int
    invocations: int = 0
    seconds: float = 0.0
    longest: float = 0.0
    puts: int = 0
    describes: int = 0
    tagging: int = 0
    max_puts: int = 0
    max_describes: int = 0
    largest_report: int = 0
    problems: list[str] = field(default_factory=list)


def virtual_sweep(label: str, groups: int, percent_due: int) -> VirtualRun:
    """Sweep ``groups`` groups of which ``percent_due`` % never expire, invocation after invocation."""
    cfg = RetentionConfig.from_env(RETENTION_ENV)
    clock = VirtualClock()
    initial: dict[str, int | None] = {}
    for i in range(groups):
        name = group_name(i)
        due = (i + 1) * percent_due // 100 > i * percent_due // 100
        initial[name] = None if due else cfg.target(name)
    expected = {name for name, days in initial.items() if days is None}
    logs, tagging, sns, events = FakeLogs(initial, clock), FakeTagging(clock), FakeSns(), RecordingEvents()
    service = RetentionService(
        cfg,
        CommonConfig.from_env({}),
        logs=logs,
        tagging=tagging,
        publisher=Publisher(sns, alerts_topic_arn=None, reports_topic_arn=REPORTS_TOPIC),
        continuer=Continuer(events, function=FUNCTION),
        put_limiter=RateLimiter(cfg.put_rate, clock=clock.time, sleep=clock.sleep),
        describe_limiter=RateLimiter(DESCRIBE_RATE, clock=clock.time, sleep=clock.sleep),
    )
    run = VirtualRun(label, len(expected))
    event: dict[str, Any] | None = scheduled_event()
    errors = 0
    while event is not None:
        run.invocations += 1
        start = clock.now
        summary = service.handle(parse_eventbridge(event), lambda_deadline(clock, start))
        run.longest = max(run.longest, clock.now - start)
        errors += len(summary.errors)
        event = events.take()
        if event is not None:
            clock.sleep(INVOKE_GAP_S)
    run.seconds = clock.now
    run.puts, run.describes, run.tagging = len(logs.put_times), len(logs.describe_times), tagging.calls
    run.max_puts, run.max_describes = max_in_window(logs.put_times), max_in_window(logs.describe_times)
    run.largest_report = max(sns.sizes, default=0)
    problems = {
        "a group was put more than once": any(calls > 1 for calls in logs.puts.values()),
        "a non-compliant group was not put, or a compliant one was": set(logs.puts) != expected,
        "groups still non-compliant afterwards": bool(noncompliant(cfg, [logs.item(n) for n in logs.names], set())),
        f"{errors} PutRetentionPolicy errors": errors > 0,
        f"an invocation ran {run.longest:.1f} s, past Lambda's 900 s": run.longest * 1000 > LAMBDA_TIMEOUT_MS,
        f"{run.max_puts} puts within one second": run.max_puts > cfg.put_rate,
        f"{run.max_describes} describes within one second": run.max_describes > DESCRIBE_RATE,
    }
    run.problems = [problem for problem, happened in problems.items() if happened]
    return run


def part_b(args: argparse.Namespace, failures: list[str]) -> None:
    groups = args.virtual_groups
    put_rate = RetentionConfig.from_env(RETENTION_ENV).put_rate  # RETENTION_PUT_RATE, default 5
    margin_s = Deadline(lambda: 0).margin_ms / 1000
    work_s = LAMBDA_TIMEOUT_MS / 1000 - margin_s
    print(
        f"Part B: {groups:,} log groups on a virtual clock; eksops RateLimiter at {put_rate} puts/s "
        f"(RETENTION_PUT_RATE) and {DESCRIBE_RATE:g} describes/s"
    )
    print(
        f"  fake latency: describe {DESCRIBE_LATENCY_S * 1000:.0f} ms, put {PUT_LATENCY_S * 1000:.0f} ms, "
        f"GetResources {TAGGING_LATENCY_S * 1000:.0f} ms; {INVOKE_GAP_S:g} s from one invocation to the next; "
        f"each invocation {LAMBDA_TIMEOUT_MS / 1000:.0f} s, checkpoint {margin_s:.0f} s before the end"
    )
    need_s = groups / put_rate
    print(
        f"  arithmetic: {groups:,} puts / {put_rate} per s = {need_s:,.0f} s = {need_s / work_s:.2f} "
        f"invocations of ({LAMBDA_TIMEOUT_MS / 1000:.0f} - {margin_s:.0f}) s = {work_s:.0f} s, so at least "
        f"{math.ceil(need_s / work_s)} invocations when every group is non-compliant"
    )
    print(
        f"    {'scenario':<20}{'due':>9}{'invocations':>13}{'hours':>7}{'puts':>9}{'describes':>11}"
        f"{'GetRes':>8}{'over min':>10}{'max put/s':>11}{'max desc/s':>12}{'longest':>9}{'largest report':>16}"
    )
    for label, percent in (("all non-compliant", 100), ("10 % non-compliant", 10), ("0 % non-compliant", 0)):
        started = time.perf_counter()
        run = virtual_sweep(label, groups, percent)
        report = f"{run.largest_report / 1024:,.0f} KiB" if run.largest_report else "none"
        minimum = minimum_pages(groups) + run.due
        over = pct(run.puts + run.describes + run.tagging - minimum, minimum)
        print(
            f"    {label:<20}{run.due:>9,}{run.invocations:>13}{run.seconds / 3600:>7.2f}{run.puts:>9,}"
            f"{run.describes:>11,}{run.tagging:>8}{over:>10}{run.max_puts:>11}{run.max_describes:>12}"
            f"{run.longest:>8.1f}s{report:>16}   ({time.perf_counter() - started:.1f} s real)"
        )
        verdict = check(failures, not run.problems, f"{label}: {'; '.join(run.problems)}")
        print(
            f"      each group put at most once, every non-compliant group exactly once, all compliant after, "
            f"no invocation past 900 s, within the quotas: {verdict}"
            + (f" ({'; '.join(run.problems)})" if run.problems else "")
        )
        if run.largest_report > SNS_MESSAGE_LIMIT:
            print(
                f"      NOTE: the largest per-invocation report is {run.largest_report:,} bytes, over SNS's "
                f"{SNS_MESSAGE_LIMIT:,}-byte limit: Publish would fail (not counted as a benchmark failure)"
            )


# -- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, default=10_000, help="log groups for Part A's single sweeps")
    parser.add_argument("--chain-groups", type=int, default=2_000, help="log groups for Part A's chained sweep")
    parser.add_argument(
        "--checks-per-part",
        type=int,
        default=450,
        help="deadline looks per invocation before it goes low, in the chained sweep",
    )
    parser.add_argument("--virtual-groups", type=int, default=100_000, help="log groups for Part B")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the mix of seeded groups")
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    args = parser.parse_args(argv)
    failures: list[str] = []
    started = time.perf_counter()
    if args.part in {"a", "both"}:
        part_a(args, failures)
        print()
    if args.part in {"b", "both"}:
        part_b(args, failures)
        print()
    print(f"total runtime {time.perf_counter() - started:.1f} s")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("all bounds held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
