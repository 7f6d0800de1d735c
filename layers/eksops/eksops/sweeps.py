"""Sweeps that outlive one invocation: a deadline to watch, and continuation through EventBridge.

When the time left runs low, a sweep stops at a clean point and puts a continuation event on the bus; the
function's own rule (in template.yaml) routes it back, so the chain is visible, retried and dead-lettered
like any other event, and the sandbox routes it with the same pattern.

The margin is sized from the AWS call budget (eksops.aws.budget): a call under way when the margin is reached runs
past it by at most one attempt, then the part makes its CLOSING_CALLS (report, continuation), each within the call
budget, and the handler still has STOP_MS before the Lambda timeout (tests/unit/test_clients.py checks the sum).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from eksops.aws import budget
from eksops.errors import TemporaryError
from eksops.events import CONTINUATION_DETAIL_TYPE, CONTINUATION_SOURCE

MAX_PARTS = 500  # a runaway chain stops here: 500 x 15 minutes is more than five days
MAX_DETAIL_BYTES = 200_000  # PutEvents allows 256 KB per entry, envelope included
MARGIN_MS = 60_000  # time kept to checkpoint: see the module docstring
CLOSING_CALLS = 2  # AWS calls a part makes once its margin is reached: the report, then the continuation
STOP_MS = 3_000  # left to the handler after its last AWS call (metrics and logs are flushed)


@dataclass
class Deadline:
    """Time left in this invocation, and whether it is time to checkpoint."""

    remaining_ms: Callable[[], int]
    margin_ms: int = MARGIN_MS
    _window: budget.Window | None = field(default=None, init=False, repr=False)

    def low(self) -> bool:
        """Time to checkpoint: the margin is reached, or a call had to give up retrying to leave it intact."""
        return (self._window is not None and self._window.cut) or self.remaining_ms() < self.margin_ms

    def bounding_calls(self) -> AbstractContextManager[budget.Window]:
        """AWS calls made in the block that begin before the margin end by it (their retries are cut short)."""
        self._window = budget.Window(lambda: (self.remaining_ms() - self.margin_ms) / 1000)
        return budget.within(self._window)


class Continuer:
    """Puts continuation events for ``function`` on the event bus."""

    def __init__(self, events: Any, *, function: str, bus_name: str = "default") -> None:
        self._events = events
        self._function = function
        self._bus = bus_name

    def continue_sweep(self, *, run_id: str, part: int, checkpoint: Mapping[str, Any]) -> None:
        if part > MAX_PARTS:
            raise TemporaryError(f"sweep {run_id} of {self._function} reached {MAX_PARTS} parts; stopping the chain")
        detail = json.dumps({"function": self._function, "run_id": run_id, "part": part, "checkpoint": checkpoint})
        if len(detail.encode()) > MAX_DETAIL_BYTES:
            raise TemporaryError(f"checkpoint of sweep {run_id} is {len(detail)} bytes, over the event size limit")
        response = self._events.put_events(
            Entries=[
                {
                    "Source": CONTINUATION_SOURCE,
                    "DetailType": CONTINUATION_DETAIL_TYPE,
                    "Detail": detail,
                    "EventBusName": self._bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise TemporaryError(
                f"could not continue sweep {run_id}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )
