"""Predictive node scaling: demand forecast, headroom from its own errors, and the guardrailed decision.

The node_scaler function and the simulator (`eksops simulate`) run this same code.
"""

from eksops.scaling.config import Actuator, ScalerConfig, kill_switch_engaged
from eksops.scaling.decision import Action, Autoscaler, Decision, GroupState, autoscaler_from_tags, decide
from eksops.scaling.forecasting import Forecast, HoltParameters, Sample, forecast

__all__ = [
    "Action",
    "Actuator",
    "Autoscaler",
    "Decision",
    "Forecast",
    "GroupState",
    "HoltParameters",
    "Sample",
    "ScalerConfig",
    "autoscaler_from_tags",
    "decide",
    "forecast",
    "kill_switch_engaged",
]
