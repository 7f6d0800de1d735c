"""Log groups: retention enforcement (and, later, error metric filters and alarms)."""

from eksops.logs.error_alarms import ErrorAlarmsService, LogsQueryDefinitions, QueryDefinition
from eksops.logs.error_alarms_config import ErrorAlarmsConfig
from eksops.logs.retention import RetentionService, Summary
from eksops.logs.retention_config import Mode, RetentionConfig, RetentionRule, Scope, decide

__all__ = [
    "ErrorAlarmsConfig",
    "ErrorAlarmsService",
    "LogsQueryDefinitions",
    "Mode",
    "QueryDefinition",
    "RetentionConfig",
    "RetentionRule",
    "RetentionService",
    "Scope",
    "Summary",
    "decide",
]
