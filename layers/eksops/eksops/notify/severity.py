"""The severities a Slack message can have, in order, and the thresholds (minimum severities) built on them.

Lowest to highest: info < ok = unknown < warning < critical. ``ok`` (an alarm back to normal) and ``unknown`` (a
message of no known kind, an alarm without data) rank together above info, so a threshold of ``ok`` keeps
recoveries and unknown messages while leaving out info reports; ``warning`` and ``critical`` leave out recoveries too.
"""

from __future__ import annotations

SEVERITIES = ("info", "ok", "unknown", "warning", "critical")
RANK = {"info": 0, "ok": 1, "unknown": 1, "warning": 2, "critical": 3}


def rank(severity: str) -> int:
    """The order of ``severity``; a value that is none of SEVERITIES ranks as unknown."""
    return RANK.get(severity, RANK["unknown"])


def at_least(severity: str, minimum: str) -> bool:
    """Whether a message of ``severity`` passes the threshold ``minimum``."""
    return rank(severity) >= rank(minimum)
