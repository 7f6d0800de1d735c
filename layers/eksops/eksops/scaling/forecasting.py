"""Demand forecast for node scaling: damped-trend Holt smoothing, with headroom sized from its own recent errors.

Demand is CPU requested by pods (running + pending), in millicores, sampled at irregular times. The forecaster
follows trends (Holt's double exponential smoothing with Gardner's damped trend, so that a trend seen for a few
minutes is not extrapolated without limit) and replays itself over the history to learn how far it undershot at
the lead horizon. The headroom is a quantile of those one-sided misses (by default the worst one in the history,
an hour in the node scaler): a steady demand gets none, a noisy or accelerating one gets as much as it has
recently needed, with no fixed margin. Over-forecasts cost node hours, not pending pods, and do not count.
Stdlib only: it runs in the Lambda layer.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Forecast", "HoltParameters", "Sample", "forecast"]

MIN_ERRORS = 5  # fewer measured errors than this: the headroom falls back to the history's spread
DEFAULT_QUANTILE = 1.0  # of the one-sided errors: the worst miss inside the history
DAMPING_SECONDS = 60.0  # phi applies per minute of horizon, whatever the sampling interval
# The forecaster is replayed from the start of the history at every decision: its first forecasts, before the
# trend has settled, are not the errors it makes when warm, and are left out of the headroom.
BURN_IN = 5


@dataclass(frozen=True)
class Sample:
    """CPU requested (running + pending pods, millicores) at a time (epoch seconds)."""

    at: float
    millicores: float


@dataclass(frozen=True)
class HoltParameters:
    """Smoothing of the level (alpha) and of the trend (beta) per sample, and trend damping per minute (phi)."""

    alpha: float = 0.5
    beta: float = 0.3
    phi: float = 0.9

    def __post_init__(self) -> None:
        if not (0 < self.alpha <= 1 and 0 < self.beta <= 1 and 0 < self.phi <= 1):
            raise ValueError(f"Holt parameters out of range: {self}")


@dataclass(frozen=True)
class Forecast:
    """Demand expected at ``at`` (now + lead), and the headroom the forecast's own recent errors call for."""

    at: float
    millicores: float  # forecast demand at ``at``, never negative
    headroom: float  # millicores to add on top of the forecast
    level: float  # smoothed demand now
    trend: float  # smoothed change, millicores per second
    errors: int  # how many past forecasts (at the same lead) the headroom was measured on
    basis: str  # "errors" (quantile of measured under-forecasts) or "spread" (too little history yet)


def _clean(history: Sequence[Sample]) -> list[Sample]:
    """Samples sorted by time; of samples at the same time the last one read wins."""
    by_time: dict[float, Sample] = {}
    for sample in history:
        by_time[sample.at] = sample
    return [by_time[at] for at in sorted(by_time)]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _Holt:
    """Damped-trend Holt on irregular samples. The trend is per second; damping is per DAMPING_SECONDS."""

    def __init__(self, params: HoltParameters, start: Sequence[Sample]) -> None:
        """Start at the first sample, with the least-squares slope of ``start`` (the first few) as the trend."""
        self.params = params
        self.step = DAMPING_SECONDS
        self.level = start[0].millicores
        self.at = start[0].at
        mean_t = sum(s.at for s in start) / len(start)
        mean_v = sum(s.millicores for s in start) / len(start)
        spread = sum((s.at - mean_t) ** 2 for s in start)
        self.trend = sum((s.at - mean_t) * (s.millicores - mean_v) for s in start) / spread if spread else 0.0

    def _damped(self, seconds: float) -> float:
        """Seconds of trend that a horizon of ``seconds`` adds: sum of phi^i over the steps it spans."""
        phi = self.params.phi
        if phi >= 1:
            return seconds
        steps = seconds / self.step
        return self.step * phi * (1 - float(phi**steps)) / (1 - phi)

    def predict(self, at: float) -> float:
        return self.level + self.trend * self._damped(at - self.at)

    def update(self, sample: Sample) -> None:
        alpha, beta, phi = self.params.alpha, self.params.beta, self.params.phi
        elapsed = sample.at - self.at
        predicted = self.predict(sample.at)
        level = alpha * sample.millicores + (1 - alpha) * predicted
        slope = (level - self.level) / elapsed
        self.trend = beta * slope + (1 - beta) * self.trend * phi ** (elapsed / self.step)
        self.level = level
        self.at = sample.at


def _interpolate(times: list[float], samples: list[Sample], at: float) -> float:
    """Demand at ``at`` (inside the history), linear between the samples around it."""
    index = bisect.bisect_left(times, at)
    if times[index] == at or index == 0:
        return samples[index].millicores
    before, after = samples[index - 1], samples[index]
    weight = (at - before.at) / (after.at - before.at)
    return before.millicores + weight * (after.millicores - before.millicores)


def forecast(
    history: Sequence[Sample],
    lead_seconds: float,
    *,
    quantile: float = DEFAULT_QUANTILE,
    params: HoltParameters | None = None,
) -> Forecast:
    """Forecast demand ``lead_seconds`` after the last sample, with headroom from past errors at that lead.

    Every past sample gives a forecast for its own time + lead; where the history already holds that time, the
    one-sided error max(actual - forecast, 0) is measured. The headroom is the ``quantile`` of those errors, so a
    steady series gets little headroom and a noisy or accelerating one gets more, with no fixed margin. With
    fewer than MIN_ERRORS measured errors (a young history) the headroom is the spread (max - min) of the history.
    """
    if lead_seconds <= 0:
        raise ValueError("lead_seconds must be positive")
    if not 0 < quantile <= 1:
        raise ValueError("quantile must be in (0, 1]")
    samples = _clean(history)
    if not samples:
        raise ValueError("forecast needs at least one sample")
    holt = _Holt(params or HoltParameters(), samples[:BURN_IN])
    # The scaler never plans below the demand it sees, so the error that matters is that of the forecast floored
    # at the demand of its time: a trend overshooting after a drop is not an under-forecast of what was planned.
    predictions = []
    for index, sample in enumerate(samples):
        if index:
            holt.update(sample)
        predictions.append((sample.at + lead_seconds, max(sample.millicores, holt.predict(sample.at + lead_seconds))))

    last = samples[-1]
    times = [s.at for s in samples]
    errors = [
        max(_interpolate(times, samples, at) - predicted, 0.0)
        for at, predicted in predictions[BURN_IN:]
        if at <= last.at
    ]
    if len(errors) >= MIN_ERRORS:
        headroom, basis = _quantile(errors, quantile), "errors"
    else:
        values = [s.millicores for s in samples]
        headroom, basis = max(values) - min(values), "spread"
    at = last.at + lead_seconds
    return Forecast(
        at=at,
        millicores=max(holt.predict(at), 0.0),
        headroom=headroom,
        level=holt.level,
        trend=holt.trend,
        errors=len(errors),
        basis=basis,
    )
