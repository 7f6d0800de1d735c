"""node_scaler settings from the environment, validated at start-up."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from eksops import config
from eksops.errors import ConfigError
from eksops.scaling.forecasting import DEFAULT_QUANTILE

__all__ = ["Actuator", "ScalerConfig", "kill_switch_engaged"]

SCALER_CLUSTERS = "SCALER_CLUSTERS"
SCALER_TARGET_PERCENT = "SCALER_TARGET_PERCENT"
SCALER_LEAD_SECONDS = "SCALER_LEAD_SECONDS"
SCALER_MAX_STEP = "SCALER_MAX_STEP"
SCALER_ACTUATOR = "SCALER_ACTUATOR"
SCALER_SCALE_OUT_COOLDOWN = "SCALER_SCALE_OUT_COOLDOWN"
SCALER_SCALE_IN_WINDOW = "SCALER_SCALE_IN_WINDOW"
SCALER_KILL_SWITCH_PARAMETER = "SCALER_KILL_SWITCH_PARAMETER"
SCALER_HEADROOM_POD_MILLICORES = "SCALER_HEADROOM_POD_MILLICORES"

# Real pods do not pack a node's allocatable CPU to 100 % (requests come in pod-sized pieces, DaemonSets and
# spread constraints take their share): 90 % leaves that slack. The headroom for forecast error comes on top.
DEFAULT_TARGET_PERCENT = 90
# A node's ready time (EC2 boot + kubelet join, about 2.5 minutes) plus the 1-minute evaluation interval.
DEFAULT_LEAD_SECONDS = 210
DEFAULT_MAX_STEP = 10
# Just under one evaluation interval: at most one scale-out per scheduled run, also when an alarm adds a run in
# between. Not 60: a schedule that fires a few seconds early (EventBridge's timing is not to the second, and the
# tag keeps whole seconds) would find 58 s since the last scale-out and hold a follow-up step for a whole minute.
DEFAULT_SCALE_OUT_COOLDOWN = 50
# The HPA's default scale-down stabilisation: demand must have stayed low this long before nodes go.
DEFAULT_SCALE_IN_WINDOW = 300
DEFAULT_KILL_SWITCH_PARAMETER = "/eksops/scaling/kill-switch"
DEFAULT_HEADROOM_POD_MILLICORES = 1000
HISTORY_SECONDS = 3600  # demand history the forecast and its error measurement look at
HEADROOM_QUANTILE = DEFAULT_QUANTILE  # of the forecast's one-sided errors at the lead: the worst miss of the hour

_SSM_NAME = re.compile(r"^/?[A-Za-z0-9_.\-/]{1,1011}$")
# Values of the kill switch parameter that leave the scaler running; anything else stops it (fail safe).
_KILL_SWITCH_OFF = frozenset({"", "off", "false", "0", "no", "disabled"})


class Actuator(StrEnum):
    ASG = "asg"  # set the Auto Scaling group's desired capacity
    HEADROOM = "headroom"  # size a Deployment of low-priority pause pods; CA or Karpenter provisions for them


@dataclass(frozen=True)
class ScalerConfig:
    """Settings of the node scaler. ``actuators`` maps cluster globs to an actuator, first match wins."""

    clusters: tuple[str, ...] = ()  # globs of enrolled clusters, besides groups tagged eksops:scaling=enabled
    target_percent: int = DEFAULT_TARGET_PERCENT
    lead_seconds: int = DEFAULT_LEAD_SECONDS
    max_step: int = DEFAULT_MAX_STEP
    actuators: tuple[tuple[str, Actuator], ...] = (("*", Actuator.ASG),)
    scale_out_cooldown: int = DEFAULT_SCALE_OUT_COOLDOWN
    scale_in_window: int = DEFAULT_SCALE_IN_WINDOW
    kill_switch_parameter: str = DEFAULT_KILL_SWITCH_PARAMETER
    headroom_pod_millicores: int = DEFAULT_HEADROOM_POD_MILLICORES
    history_seconds: int = field(default=HISTORY_SECONDS)
    headroom_quantile: float = field(default=HEADROOM_QUANTILE)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ScalerConfig:
        def number(name: str, default: int, minimum: int, maximum: int) -> int:
            return config.parse_int(name, config.read(name, environ) or str(default), minimum=minimum, maximum=maximum)

        parameter = config.read(SCALER_KILL_SWITCH_PARAMETER, environ) or DEFAULT_KILL_SWITCH_PARAMETER
        if not _SSM_NAME.match(parameter) or parameter.lower().startswith(("aws", "ssm", "/aws", "/ssm")):
            raise ConfigError(SCALER_KILL_SWITCH_PARAMETER, f"{parameter!r} is not an SSM parameter name")
        return cls(
            clusters=_clusters(config.read(SCALER_CLUSTERS, environ)),
            target_percent=number(SCALER_TARGET_PERCENT, DEFAULT_TARGET_PERCENT, 10, 100),
            lead_seconds=number(SCALER_LEAD_SECONDS, DEFAULT_LEAD_SECONDS, 30, 3600),
            max_step=number(SCALER_MAX_STEP, DEFAULT_MAX_STEP, 1, 1000),
            actuators=_actuators(config.read(SCALER_ACTUATOR, environ)),
            scale_out_cooldown=number(SCALER_SCALE_OUT_COOLDOWN, DEFAULT_SCALE_OUT_COOLDOWN, 0, 3600),
            scale_in_window=number(SCALER_SCALE_IN_WINDOW, DEFAULT_SCALE_IN_WINDOW, 60, 86400),
            kill_switch_parameter=parameter,
            headroom_pod_millicores=number(SCALER_HEADROOM_POD_MILLICORES, DEFAULT_HEADROOM_POD_MILLICORES, 10, 64000),
        )

    def enrolled(self, cluster: str) -> bool:
        """Whether SCALER_CLUSTERS lists ``cluster`` (groups tagged eksops:scaling=enabled are enrolled anyway)."""
        return any(fnmatch.fnmatchcase(cluster, glob) for glob in self.clusters)

    def actuator_for(self, cluster: str) -> Actuator:
        for glob, actuator in self.actuators:
            if fnmatch.fnmatchcase(cluster, glob):
                return actuator
        return Actuator.ASG


def kill_switch_engaged(value: str | None) -> bool:
    """Whether the kill switch parameter's value stops the scaler: a missing parameter, empty, ``off``, ``false``,
    ``0``, ``no`` or ``disabled`` leave it running; any other value (``on``, ``stop``, a typo) stops it."""
    return value is not None and value.strip().lower() not in _KILL_SWITCH_OFF


def _clusters(raw: str) -> tuple[str, ...]:
    value: Any = config.parse_json(SCALER_CLUSTERS, raw or "[]")
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        raise ConfigError(SCALER_CLUSTERS, 'must be a JSON list of cluster name globs, e.g. ["prod-*"]')
    return tuple(value)


def _actuators(raw: str) -> tuple[tuple[str, Actuator], ...]:
    """``asg``, ``headroom``, or a JSON object of cluster glob to either, first match wins (others get asg)."""
    allowed = [a.value for a in Actuator]
    if not raw.startswith("{"):
        return (("*", Actuator(config.parse_choice(SCALER_ACTUATOR, raw or Actuator.ASG.value, allowed))),)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(SCALER_ACTUATOR, f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict) or not value:
        raise ConfigError(SCALER_ACTUATOR, 'must be asg, headroom, or a JSON object like {"prod-*": "headroom"}')
    pairs = []
    for glob, name in value.items():
        if not glob or not isinstance(name, str):
            raise ConfigError(SCALER_ACTUATOR, f"entry {glob!r}: {name!r} must be one of: {', '.join(allowed)}")
        pairs.append((glob, Actuator(config.parse_choice(f"{SCALER_ACTUATOR}[{glob}]", name, allowed))))
    return tuple(pairs)
