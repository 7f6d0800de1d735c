"""ComplianceConfig.from_env checks COMPLIANCE_ACCEPT at start-up (this file's name differs from
tests/unit/test_config.py: the test modules share one namespace)."""

from __future__ import annotations

import pytest

from eksops.compliance.accept import parse_entries
from eksops.compliance.config import ComplianceConfig
from eksops.errors import ConfigError


def test_no_acceptances_by_default() -> None:
    cfg = ComplianceConfig.from_env({})
    assert cfg.accept_raw == ""
    assert parse_entries(cfg.accept_raw, ()) == ()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('{"rule": "x"}', "must be a JSON list"),
        ('[{"rule": "no-such-rule", "resource": "cluster/*", "reason": "r"}]', 'entry 0: "rule": unknown rule id'),
        ('[{"resource": "cluster/*", "reason": "r"}]', 'entry 0: "rule" is missing'),
    ],
)
def test_a_bad_compliance_accept_fails_at_start_up(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ComplianceConfig.from_env({"COMPLIANCE_ACCEPT": raw})
    assert caught.value.variable == "COMPLIANCE_ACCEPT"
    assert fragment in caught.value.problem


def test_the_raw_value_is_kept_for_the_service() -> None:
    assert ComplianceConfig.from_env({"COMPLIANCE_ACCEPT": "  []  "}).accept_raw == "[]"
