"""Sweeps that outlive one invocation: a deadline to watch, and continuation through EventBridge.

When the time left runs low, a sweep stops at a clean point and puts a continuation event on the bus; the
function's own rule (in template.yaml) routes it back, so the chain is visible, retried and dead-lettered
like any other event, and the sandbox routes it with the same pattern.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eksops.errors import TemporaryError
from eksops.events import CONTINUATION_DETAIL_TYPE, CONTINUATION_SOURCE

MAX_PARTS = 500  # a runaway chain stops here: 500 x 15 minutes is more than five days
MAX_DETAIL_BYTES = 200_000  # PutEvents allows 256 KB per entry, envelope included


@dataclass
class Deadline:
    """Time left in this invocation, and whether it is time to checkpoint."""

    remaining_ms: Callable[[], int]
    margin_ms: int = 30_000

    def low(self) -> bool:
        return self.remaining_ms() < self.margin_ms


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
