"""Log groups: retention enforcement (``retention``) and error metric filters and alarms (``error_alarms``).

The names below are loaded on first use (PEP 562), so a function imports only its own capability's modules:
log_retention does not load error_alarms (and its Logs Insights and dashboard code) at cold start, nor the reverse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eksops.lazy import lazy_exports

if TYPE_CHECKING:
    from eksops.logs.error_alarms import ErrorAlarmsService, LogsQueryDefinitions, QueryDefinition
    from eksops.logs.error_alarms_config import ErrorAlarmsConfig
    from eksops.logs.retention import RetentionService, Summary
    from eksops.logs.retention_config import Mode, RetentionConfig, RetentionRule, Scope, decide

_MODULE_OF = {
    "ErrorAlarmsService": "error_alarms",
    "LogsQueryDefinitions": "error_alarms",
    "QueryDefinition": "error_alarms",
    "ErrorAlarmsConfig": "error_alarms_config",
    "RetentionService": "retention",
    "Summary": "retention",
    "Mode": "retention_config",
    "RetentionConfig": "retention_config",
    "RetentionRule": "retention_config",
    "Scope": "retention_config",
    "decide": "retention_config",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, globals())
