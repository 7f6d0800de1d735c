"""Notifications: the message envelope every function publishes, the SNS publisher, and Slack delivery.

The names below are loaded on first use (PEP 562): the notifier imports Slack delivery from its own modules and never
loads the publisher at its cold start; every other function gets ``Publisher`` from here as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eksops.lazy import lazy_exports

if TYPE_CHECKING:
    from eksops.notify.publish import Message, Publisher, Severity

_MODULE_OF = {"Message": "publish", "Publisher": "publish", "Severity": "publish"}

__all__ = ["Message", "Publisher", "Severity"]


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, globals())
