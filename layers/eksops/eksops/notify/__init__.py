"""Notifications: the message envelope every function publishes, the SNS publisher, and Slack delivery.

The names below are loaded on first use (PEP 562): the notifier imports Slack delivery from its own modules and never
loads the publisher at its cold start; every other function gets ``Publisher`` from here as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksops.notify.publish import Message, Publisher, Severity

_MODULE_OF = {"Message": "publish", "Publisher": "publish", "Severity": "publish"}

__all__ = ["Message", "Publisher", "Severity"]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])
