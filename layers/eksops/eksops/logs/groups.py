"""Log group look-ups shared by the log capabilities."""

from __future__ import annotations

from typing import Any


def describe_log_group(logs: Any, name: str) -> dict[str, Any] | None:
    """The DescribeLogGroups entry of exactly ``name``, or None when it does not exist (one call)."""
    # Names sort before any longer name they prefix, so the exact match is the first result if it exists.
    groups = logs.describe_log_groups(logGroupNamePrefix=name, limit=1).get("logGroups", [])
    return dict(groups[0]) if groups and groups[0]["logGroupName"] == name else None
