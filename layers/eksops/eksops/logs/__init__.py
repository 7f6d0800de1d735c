"""Log groups: retention enforcement (and, later, error metric filters and alarms)."""

from eksops.logs.retention import RetentionService, Summary
from eksops.logs.retention_config import Mode, RetentionConfig, RetentionRule, decide

__all__ = ["Mode", "RetentionConfig", "RetentionRule", "RetentionService", "Summary", "decide"]
