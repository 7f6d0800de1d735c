"""Predictive node scaling: demand forecast, headroom from its own errors, and the guardrailed decision.

The node_scaler function and the simulator (`eksops simulate`) run this same code. The function's service
(:class:`NodeScalerService`) adds what the Lambda needs around the decision: triggers, node groups, demand,
actuators and the reserved-CPU alarm.
"""

from eksops.scaling.alarms import AlarmSettings
from eksops.scaling.config import Actuator, ScalerConfig, kill_switch_engaged
from eksops.scaling.decision import Action, Autoscaler, Decision, GroupState, autoscaler_from_tags, decide
from eksops.scaling.forecasting import Forecast, HoltParameters, Sample, forecast
from eksops.scaling.headroom import HeadroomActuator
from eksops.scaling.service import NodeScalerService, Summary
from eksops.scaling.triggers import AlarmTrigger, parse_trigger

__all__ = [
    "Action",
    "Actuator",
    "AlarmSettings",
    "AlarmTrigger",
    "Autoscaler",
    "Decision",
    "Forecast",
    "GroupState",
    "HeadroomActuator",
    "HoltParameters",
    "NodeScalerService",
    "Sample",
    "ScalerConfig",
    "Summary",
    "autoscaler_from_tags",
    "decide",
    "forecast",
    "kill_switch_engaged",
    "parse_trigger",
]
