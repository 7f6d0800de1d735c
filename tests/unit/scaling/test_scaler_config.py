from __future__ import annotations

import pytest

from eksops import config
from eksops.errors import ConfigError
from eksops.scaling import Actuator, ScalerConfig, kill_switch_engaged
from eksops.scaling.config import (
    SCALER_ACTUATOR,
    SCALER_CLUSTERS,
    SCALER_HEADROOM_POD_MILLICORES,
    SCALER_KILL_SWITCH_PARAMETER,
    SCALER_LEAD_SECONDS,
    SCALER_MAX_STEP,
    SCALER_SCALE_IN_WINDOW,
    SCALER_SCALE_OUT_COOLDOWN,
    SCALER_TARGET_PERCENT,
)

ALL = {
    SCALER_CLUSTERS,
    SCALER_TARGET_PERCENT,
    SCALER_LEAD_SECONDS,
    SCALER_MAX_STEP,
    SCALER_ACTUATOR,
    SCALER_SCALE_OUT_COOLDOWN,
    SCALER_SCALE_IN_WINDOW,
    SCALER_KILL_SWITCH_PARAMETER,
    SCALER_HEADROOM_POD_MILLICORES,
}


def test_defaults() -> None:
    cfg = ScalerConfig.from_env({})
    assert cfg == ScalerConfig()
    assert (cfg.target_percent, cfg.lead_seconds, cfg.max_step) == (90, 210, 10)
    assert (cfg.scale_out_cooldown, cfg.scale_in_window) == (50, 300)
    assert cfg.kill_switch_parameter == "/eksops/scaling/kill-switch"
    assert cfg.clusters == () and not cfg.enrolled("prod")
    assert cfg.actuator_for("anything") is Actuator.ASG


def test_every_variable_is_read_through_the_config_module() -> None:
    config.READ_VARIABLES.clear()
    ScalerConfig.from_env({})
    assert config.READ_VARIABLES >= ALL


def test_values_are_parsed() -> None:
    cfg = ScalerConfig.from_env(
        {
            SCALER_CLUSTERS: '["prod-*", "staging"]',
            SCALER_TARGET_PERCENT: "75",
            SCALER_LEAD_SECONDS: " 240 ",
            SCALER_MAX_STEP: "3",
            SCALER_ACTUATOR: "headroom",
            SCALER_SCALE_OUT_COOLDOWN: "0",
            SCALER_SCALE_IN_WINDOW: "900",
            SCALER_KILL_SWITCH_PARAMETER: "/ops/scaler/stop",
            SCALER_HEADROOM_POD_MILLICORES: "500",
        }
    )
    assert cfg.clusters == ("prod-*", "staging")
    assert cfg.enrolled("prod-eu") and cfg.enrolled("staging") and not cfg.enrolled("staging-2")
    assert (cfg.target_percent, cfg.lead_seconds, cfg.max_step) == (75, 240, 3)
    assert (cfg.scale_out_cooldown, cfg.scale_in_window) == (0, 900)
    assert cfg.kill_switch_parameter == "/ops/scaler/stop"
    assert cfg.headroom_pod_millicores == 500
    assert cfg.actuator_for("prod") is Actuator.HEADROOM


def test_actuator_per_cluster_first_match_wins_and_the_rest_get_asg() -> None:
    cfg = ScalerConfig.from_env({SCALER_ACTUATOR: '{"prod-ca-*": "headroom", "prod-*": "asg", "karp": "headroom"}'})
    assert cfg.actuator_for("prod-ca-1") is Actuator.HEADROOM
    assert cfg.actuator_for("prod-eu") is Actuator.ASG
    assert cfg.actuator_for("karp") is Actuator.HEADROOM
    assert cfg.actuator_for("dev") is Actuator.ASG


@pytest.mark.parametrize(
    ("env", "variable", "fragment"),
    [
        ({SCALER_CLUSTERS: "prod"}, SCALER_CLUSTERS, "not valid JSON"),
        ({SCALER_CLUSTERS: '{"prod": 1}'}, SCALER_CLUSTERS, "JSON list of cluster name globs"),
        ({SCALER_CLUSTERS: '["prod", ""]'}, SCALER_CLUSTERS, "JSON list of cluster name globs"),
        ({SCALER_TARGET_PERCENT: "95.5"}, SCALER_TARGET_PERCENT, "not a whole number"),
        ({SCALER_TARGET_PERCENT: "101"}, SCALER_TARGET_PERCENT, "outside 10..100"),
        ({SCALER_TARGET_PERCENT: "5"}, SCALER_TARGET_PERCENT, "outside 10..100"),
        ({SCALER_LEAD_SECONDS: "10"}, SCALER_LEAD_SECONDS, "outside 30..3600"),
        ({SCALER_MAX_STEP: "0"}, SCALER_MAX_STEP, "outside 1..1000"),
        ({SCALER_ACTUATOR: "karpenter"}, SCALER_ACTUATOR, "use one of: asg, headroom"),
        ({SCALER_ACTUATOR: "{not json"}, SCALER_ACTUATOR, "not valid JSON"),
        ({SCALER_ACTUATOR: "{}"}, SCALER_ACTUATOR, "JSON object"),
        ({SCALER_ACTUATOR: '{"prod-*": "nodes"}'}, f"{SCALER_ACTUATOR}[prod-*]", "use one of: asg, headroom"),
        ({SCALER_ACTUATOR: '{"prod-*": 1}'}, SCALER_ACTUATOR, "must be one of"),
        ({SCALER_SCALE_OUT_COOLDOWN: "-1"}, SCALER_SCALE_OUT_COOLDOWN, "outside 0..3600"),
        ({SCALER_SCALE_IN_WINDOW: "30"}, SCALER_SCALE_IN_WINDOW, "outside 60..86400"),
        ({SCALER_KILL_SWITCH_PARAMETER: "has space"}, SCALER_KILL_SWITCH_PARAMETER, "not an SSM parameter name"),
        ({SCALER_KILL_SWITCH_PARAMETER: "/aws/reserved"}, SCALER_KILL_SWITCH_PARAMETER, "not an SSM parameter name"),
        ({SCALER_HEADROOM_POD_MILLICORES: "5"}, SCALER_HEADROOM_POD_MILLICORES, "outside 10..64000"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        ScalerConfig.from_env(env)
    assert info.value.variable == variable
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("value", "engaged"),
    [
        (None, False),
        ("", False),
        ("off", False),
        (" OFF ", False),
        ("false", False),
        ("0", False),
        ("disabled", False),
        ("on", True),
        ("true", True),
        ("stop", True),
        ("of", True),  # a typo stops the scaler: the switch fails safe
    ],
)
def test_kill_switch_values(value: str | None, engaged: bool) -> None:
    assert kill_switch_engaged(value) is engaged
