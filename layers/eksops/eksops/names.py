"""EKS cluster names: the one definition, kept apart from the event parsers so that what only checks a name (the
notifier's formatting, the manifests) does not import them at its cold start."""

from __future__ import annotations

import re
from typing import Any

# 1-100 characters, alphanumerics, hyphens and underscores, starting alphanumeric. error_alarms builds its log group
# patterns from it; names read from events and messages are checked against it.
CLUSTER_NAME_PATTERN = r"[0-9A-Za-z][0-9A-Za-z_-]{0,99}"
_CLUSTER_NAME = re.compile(CLUSTER_NAME_PATTERN)


def is_cluster_name(value: Any) -> bool:
    """Whether ``value`` is a string EKS accepts as a cluster name."""
    return isinstance(value, str) and _CLUSTER_NAME.fullmatch(value) is not None
