"""Benchmark of the sweeps under fault injection: invocations to converge, calls, retries, time and throughput.

Every sweep of ``eksops_dev.faultruns.SWEEPS`` (the list the fault test uses) runs against a moto server over
HTTP, its AWS calls through fault proxies (``eksops_dev.faults``) that throttle and fail a share of all requests
at random (seeded), once without faults and once at 30 % throttled / 5 % failed. Each run is one scheduled
invocation and its continuation parts, each invocation with its Lambda timeout from template.yaml and the
default checkpoint margin; a sweep that has not converged runs again (Lambda's retry, or the next schedule), up to
three runs. For each it prints the runs and invocations needed, the calls eksops made and the retries botocore
made (and how many the call budget refused), the requests the proxies throttled and failed, the time taken and
the throughput (objects per second), the longest single call against the checkpoint margin, and the longest
invocation against its timeout.

Time: by default botocore's backoff sleeps, its adaptive limiter, eksops' rate limiters and the deadlines run on a
virtual clock (as in the test): the "time" column is what the sweep would take if every call answered at once,
and a run takes seconds. ``--real-time`` sleeps for real: the time column is then the wall time against moto
(minutes at 30 %, where backoff dominates). The process's own wall time is printed too.

The script exits 1 when a sweep does not converge within two runs, an invocation runs past its timeout, or a
sweep leaves anything half-applied. Run it with ``.venv/bin/python benchmarks/faults.py`` (``--help``).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from moto.server import ThreadedMotoServer

from eksops.aws.budget import call_bound_s
from eksops.aws.clients import BUDGET, RETRY_CONFIG
from eksops.sweeps import MARGIN_MS
from eksops_dev.faultruns import SWEEPS, ImageUpdaterSweep, LogRetentionSweep, Outcome, converge, seeded
from eksops_dev.faults import FaultPlan, VirtualClock, virtual_time
from eksops_dev.template import Template

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ((0.0, 0.0), (0.30, 0.05))  # (throttled, failed) shares of all requests
MAX_RUNS = 3
CONVERGE_WITHIN = 2


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free port; this process's AWS calls go to it (as in the tests, never to an account)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.stop()


def reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def row(outcome: Outcome, level: tuple[float, float], refused: int, wall_s: float) -> str:
    target, plan, stats = outcome.target, outcome.plan, outcome.stats
    runs = len(outcome.runs) if outcome.converged else f">{len(outcome.runs)}"
    longest = max(outcome.invocations, key=lambda i: i.ended - i.started)
    # virtual time without faults can be 0: nothing slept (no limiter wait, no backoff)
    rate = f"{target.objects / outcome.elapsed_s:>8.2f}" if outcome.elapsed_s > 0.05 else f"{'-':>8}"
    return (
        f"{target.function:<18} {level[0]:>4.0%}/{level[1]:<3.0%} {runs!s:>4} {len(outcome.invocations):>5} "
        f"{target.objects:>6} {stats.calls:>6} {stats.retries:>7} {refused:>7} "
        f"{plan.total(plan.throttled):>5}/{plan.total(plan.failed):<4} {outcome.elapsed_s:>8.1f} {rate} "
        f"{stats.longest_s:>6.1f} {stats.longest:<22} {longest.ended - longest.started:>6.1f}/{longest.timeout_s:<4.0f}"
        f" {wall_s:>6.1f}"
    )


HEADER = (
    f"{'sweep':<18} {'faults':>8} {'runs':>4} {'invoc':>5} {'objects':>6} {'calls':>6} {'retries':>7} {'refused':>7} "
    f"{'thr/fail':>10} {'time s':>8} {'obj/s':>8} {'worst call s':>29} {'invocation s':>11} {'wall s':>6}"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-time", action="store_true", help="sleep for real (minutes) instead of virtual time")
    parser.add_argument("--groups", type=int, default=LogRetentionSweep.groups, help="log groups for log_retention")
    parser.add_argument(
        "--images", type=int, default=ImageUpdaterSweep.entries, help="IMAGE_MAP entries for image_updater"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault draws and botocore's jitter")
    parser.add_argument("--only", help="one sweep (function name)")
    args = parser.parse_args()
    LogRetentionSweep.groups = args.groups
    ImageUpdaterSweep.entries = args.images
    template = Template(ROOT / "template.yaml")
    margin_s = MARGIN_MS / 1000
    print(
        f"faults: a share of all AWS requests throttled / failed (HTTP 500, 503), seed {args.seed}; "
        f"{'real time' if args.real_time else 'virtual time (calls answer at once; backoff and limiters counted)'}"
    )
    print(
        f"checkpoint margin {margin_s:.0f} s; a call begun outside a sweep's working time lasts at most "
        f"{call_bound_s(RETRY_CONFIG):.1f} s; timeouts from template.yaml\n"
    )
    print(HEADER)
    failures: list[str] = []
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as workdir:
        for target_type in SWEEPS:
            if args.only and target_type.function != args.only:
                continue
            for level in LEVELS:
                reset(endpoint)
                random.seed(args.seed)
                clock = None if args.real_time else VirtualClock()
                started, refused = time.perf_counter(), BUDGET.refused
                with (
                    virtual_time(clock) if clock else nullcontext(),
                    seeded(
                        target_type,
                        endpoint,
                        Path(workdir) / f"{target_type.function}-{level[0]}",
                        template,
                        clock=clock or time.monotonic,
                        sleep=clock.sleep if clock else time.sleep,
                    ) as target,
                ):
                    plan = FaultPlan(throttle=level[0], fail=level[1], seed=args.seed)
                    outcome = converge(target, plan, runs=MAX_RUNS)
                print(row(outcome, level, BUDGET.refused - refused, time.perf_counter() - started), flush=True)
                name = f"{target_type.function} at {level[0]:.0%}/{level[1]:.0%}"
                if not outcome.converged or len(outcome.runs) > CONVERGE_WITHIN:
                    failures.append(f"{name}: not converged within {CONVERGE_WITHIN} runs")
                if any(not i.in_time for i in outcome.invocations):
                    failures.append(f"{name}: an invocation ran past its timeout")
                if any(outcome.half_applied):
                    failures.append(f"{name}: half-applied: {next(h for h in outcome.half_applied if h)[:3]}")
    print(
        "\nruns: scheduled runs (each with its continuation parts) until converged; invoc: handler invocations; "
        "calls: AWS calls eksops made; retries: further attempts botocore sent; refused: retries the call budget "
        "refused; thr/fail: requests the proxies throttled / failed; time: from the first invocation to convergence; "
        "worst call: the longest single call (retries included) and its operation; invocation: the longest one "
        "against its timeout."
    )
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
