"""Every function's handler fuzzed with bad events against the sandbox (moto over HTTP, the Slack receiver).

The contract (docs: design.md, "Function contract"): a malformed event raises InvalidEvent, a well-formed event
of another source UnsupportedEvent, and either changes nothing; an SNS record whose message is anything is
delivered. The functions, their worlds and allowed outcomes come from one list, eksops_dev.fuzz.targets.TARGETS;
benchmarks/fuzz.py runs the same targets with 10,000 events each and prints the counts by outcome.

``EKSOPS_FUZZ_EXAMPLES`` sets the events per function (default 200).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eksops_dev.fuzz.harness import Harness, harness
from eksops_dev.fuzz.strategies import mutate
from eksops_dev.fuzz.targets import TARGETS, Target

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("EKSOPS_FUZZ_EXAMPLES", "200"))
# Large events (up to 240 KB) are the point; each example runs the handler and reads the world over HTTP.
SLOW_IS_FINE = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]


@pytest.fixture(scope="module")
def fuzz(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One sandbox for the module (emptied first): every function loaded once, every target's world armed."""
    with harness(ROOT, tmp_path_factory.mktemp("fuzz"), endpoint=moto_endpoint) as h:
        yield h


def by_name(target: Target) -> str:
    return target.function


def test_every_function_has_a_fuzz_target_with_samples() -> None:
    functions = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").is_file())
    missing = sorted(set(functions) - {t.function for t in TARGETS})
    assert not missing, f"add a Target for {missing} to TARGETS in dev/eksops_dev/fuzz/targets.py"
    assert sorted(t.function for t in TARGETS) == functions
    for target in TARGETS:
        assert target.samples(unmatched=False), f"events/{target.function}/ has no sample"


@pytest.mark.parametrize("target", TARGETS, ids=by_name)
def test_samples_act_and_unmatched_samples_change_nothing(fuzz: Harness, target: Target) -> None:
    """The world is armed (each routed sample acts on it), so the fuzz's "changed nothing" means something;
    samples the rules keep from the function (unmatched/) change nothing even if delivered."""
    for case, event in target.samples().items():
        outcome = fuzz.run(target, event)
        assert outcome.violation is None, (case, outcome)
        if case.startswith("unmatched/"):
            assert outcome.label in {"ok", "UnsupportedEvent"}, (case, outcome)
        else:
            assert outcome.label == ("ok" if case in target.inert_samples else "ok+changed"), (case, outcome)


@pytest.mark.parametrize("target", TARGETS, ids=by_name)
def test_bad_events_are_rejected_and_change_nothing(fuzz: Harness, target: Target) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=SLOW_IS_FINE, print_blob=True)
    @given(event=target.events())
    def check(event: Any) -> None:
        outcome = fuzz.run(target, event)
        assert outcome.violation is None, outcome.violation

    check()


def test_a_continuation_carrying_earlier_errors_ends_the_sweep_failed(fuzz: Harness) -> None:
    """Found by the fuzz: a well-formed continuation whose checkpoint counts errors of earlier parts ends in
    PartialFailure (the failure path for the whole sweep), which the contract allows; it is not a crash."""
    import copy

    target = next(t for t in TARGETS if t.function == "log_retention")
    event = copy.deepcopy(target.samples()["sweep_continuation"])
    event["detail"]["checkpoint"]["errors"] = 5
    outcome = fuzz.run(target, event)
    assert outcome.label == "PartialFailure" and outcome.violation is None, outcome


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_generator_mutates_a_message_nested_deeper_than_the_json_parser_goes(data: st.DataObject) -> None:
    """A clean clone's run failed in the generator, not in eksops: an SNS message nested 5,000 deep (defect 1's
    shape) raised RecursionError from json.loads while being mutated."""
    deep = "[" * 5000 + "]" * 5000
    sample = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": deep, "Subject": "s", "MessageId": "m"}}]}
    mutated = mutate(data.draw, sample)
    assert isinstance(mutated, dict | list | str | int | float | bool) or mutated is None
