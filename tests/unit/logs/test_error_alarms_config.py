from __future__ import annotations

import pytest

from eksops import config
from eksops.errors import ConfigError
from eksops.logs import ErrorAlarmsConfig
from eksops.logs.error_alarms_config import (
    DEFAULT_FILTER_PATTERN,
    DEFAULT_INSIGHTS_FILTER,
    ERROR_ALARM_PERIOD,
    ERROR_ALARM_THRESHOLD,
    ERROR_FILTER_PATTERN,
    ERROR_METRIC_BY_NAMESPACE,
    FALLBACK_INSIGHTS_FILTER,
    MAX_PATTERN_LENGTH,
)
from eksops_dev.filter_pattern import parse


def test_defaults_match_the_design() -> None:
    cfg = ErrorAlarmsConfig.from_env({})
    assert cfg.filter_pattern == DEFAULT_FILTER_PATTERN
    assert (cfg.threshold, cfg.period, cfg.by_namespace) == (1, 300, False)
    assert not cfg.custom_pattern and cfg.insights_filter == DEFAULT_INSIGHTS_FILTER


def test_every_variable_is_read_through_the_config_module() -> None:
    config.READ_VARIABLES.clear()
    ErrorAlarmsConfig.from_env({})
    assert {ERROR_FILTER_PATTERN, ERROR_ALARM_THRESHOLD, ERROR_ALARM_PERIOD, ERROR_METRIC_BY_NAMESPACE} <= (
        config.READ_VARIABLES
    )


def test_the_default_pattern_fits_and_parses() -> None:
    assert len(DEFAULT_FILTER_PATTERN) <= MAX_PATTERN_LENGTH
    parse(DEFAULT_FILTER_PATTERN)  # the emulation accepts every construct it uses


def test_values_are_parsed() -> None:
    cfg = ErrorAlarmsConfig.from_env(
        {
            ERROR_FILTER_PATTERN: '  { $.log = "*panic*" }  ',
            ERROR_ALARM_THRESHOLD: "5",
            ERROR_ALARM_PERIOD: "900",
            ERROR_METRIC_BY_NAMESPACE: "true",
        }
    )
    assert cfg.filter_pattern == '{ $.log = "*panic*" }'
    assert (cfg.threshold, cfg.period, cfg.by_namespace) == (5, 900, True)
    assert cfg.custom_pattern and cfg.insights_filter == FALLBACK_INSIGHTS_FILTER


def test_a_term_pattern_is_allowed_without_namespaces() -> None:
    assert ErrorAlarmsConfig.from_env({ERROR_FILTER_PATTERN: "?ERROR ?FATAL"}).filter_pattern == "?ERROR ?FATAL"


@pytest.mark.parametrize(
    ("env", "variable", "fragment"),
    [
        ({ERROR_ALARM_THRESHOLD: "0"}, ERROR_ALARM_THRESHOLD, "outside 1..1000000"),
        ({ERROR_ALARM_THRESHOLD: "1.5"}, ERROR_ALARM_THRESHOLD, "is not a whole number"),
        ({ERROR_ALARM_PERIOD: "30"}, ERROR_ALARM_PERIOD, "outside 60..86400"),
        ({ERROR_ALARM_PERIOD: "90"}, ERROR_ALARM_PERIOD, "not a multiple of 60"),
        ({ERROR_ALARM_PERIOD: "five minutes"}, ERROR_ALARM_PERIOD, "is not a whole number"),
        ({ERROR_METRIC_BY_NAMESPACE: "sometimes"}, ERROR_METRIC_BY_NAMESPACE, "use true or false"),
        ({ERROR_FILTER_PATTERN: "{ " + "x" * MAX_PATTERN_LENGTH + " }"}, ERROR_FILTER_PATTERN, "allows 1024"),
        ({ERROR_FILTER_PATTERN: '{ $.log = "*ERROR*"'}, ERROR_FILTER_PATTERN, "enclosed in { }"),
        ({ERROR_FILTER_PATTERN: '{ $.log = "*ERROR* }'}, ERROR_FILTER_PATTERN, "unbalanced double quote"),
        (
            {ERROR_FILTER_PATTERN: "ERROR", ERROR_METRIC_BY_NAMESPACE: "true"},
            ERROR_METRIC_BY_NAMESPACE,
            "needs a JSON ERROR_FILTER_PATTERN",
        ),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        ErrorAlarmsConfig.from_env(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert fragment in str(info.value)


def test_escaped_quotes_are_not_unbalanced() -> None:
    pattern = r'{ $.log = "*said \"no\"*" }'
    assert ErrorAlarmsConfig.from_env({ERROR_FILTER_PATTERN: pattern}).filter_pattern == pattern
