"""Fuzz every function's handler with many bad events and print the counts by outcome.

The same targets, strategies and contract as tests/integration/test_fuzz.py (eksops_dev.fuzz), at a larger count
(10,000 events per function by default) against a sandbox on its own moto server. Violations do not stop the
run: each distinct one is printed once with the first event that caused it, and the script exits 1 if any.

    .venv/bin/python benchmarks/fuzz.py [--examples N] [--function NAME ...] [--seed S]

Outcomes: "ok" (accepted, nothing to change), "ok+changed" (accepted and acted; undone before the next event),
"InvalidEvent" / "UnsupportedEvent" (rejected, nothing changed), anything else is the error a handler raised.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings

from eksops_dev.fuzz.harness import Harness, harness
from eksops_dev.fuzz.targets import TARGETS, Target

ROOT = Path(__file__).resolve().parents[1]


Counts = collections.Counter[str]


def fuzz(h: Harness, target: Target, examples: int, rng_seed: int | None) -> tuple[Counts, dict[str, Any]]:
    """Run ``examples`` events at ``target``: the counts by outcome, and each distinct violation's first event."""
    counts: collections.Counter[str] = collections.Counter()
    violations: dict[str, Any] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(event=target.events())
    def run(event: Any) -> None:
        outcome = h.run(target, event)
        counts[outcome.label] += 1
        if outcome.violation:
            counts["violations"] += 1
            violations.setdefault(outcome.violation[:200], event)

    if rng_seed is not None:
        run = seed(rng_seed)(run)
    run()
    return counts, violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="events per function (default 10,000)")
    parser.add_argument("--function", action="append", choices=[t.function for t in TARGETS], help="only these")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed, to repeat a run")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    chosen = [t for t in TARGETS if not args.function or t.function in args.function]
    labels = ("ok", "ok+changed", "InvalidEvent", "UnsupportedEvent")
    failed = False
    with tempfile.TemporaryDirectory(prefix="eksops-fuzz-") as workdir, harness(ROOT, Path(workdir)) as h:
        print(f"{'function':<18}{'events':>8}" + "".join(f"{label:>18}" for label in labels) + "  other, time")
        for target in chosen:
            started = time.perf_counter()
            counts, violations = fuzz(h, target, args.examples, args.seed)
            seconds = time.perf_counter() - started
            total = sum(n for label, n in counts.items() if label != "violations")
            other = {label: n for label, n in counts.items() if label not in (*labels, "violations")}
            print(
                f"{target.function:<18}{total:>8}"
                + "".join(f"{counts[label]:>18}" for label in labels)
                + f"  {json.dumps(other) if other else '-'}, {seconds:.0f} s ({total / seconds:.1f} events/s)"
            )
            for violation, event in violations.items():
                failed = True
                print(f"  VIOLATION: {violation}")
                print(f"    first event: {json.dumps(event)[:500]}")
            if violations:
                print(f"  {counts['violations']} event(s) broke the contract")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
