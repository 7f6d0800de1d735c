from __future__ import annotations

import random

import pytest

from eksops.scaling import HoltParameters, Sample, forecast
from eksops.scaling.forecasting import BURN_IN, MIN_ERRORS

LEAD = 210.0


def _linear(n: int = 60, start: float = 20_000, per_minute: float = 600, step: float = 60) -> list[Sample]:
    return [Sample(i * step, start + per_minute * i * step / 60) for i in range(n)]


def _noisy(sd: float, n: int = 60, seed: int = 5) -> list[Sample]:
    rng = random.Random(seed)
    return [Sample(i * 60.0, 50_000 + 300 * i + rng.gauss(0, sd)) for i in range(n)]


def test_follows_a_linear_trend_with_small_error() -> None:
    history = _linear()
    truth = 20_000 + 600 * (history[-1].at + LEAD) / 60
    fc = forecast(history, LEAD)
    assert fc.at == history[-1].at + LEAD
    naive = history[-1].millicores  # what a reactive scaler plans for
    assert abs(fc.millicores - truth) < 0.02 * truth
    assert abs(fc.millicores - truth) < 0.5 * abs(naive - truth)
    # The damped trend (Gardner) stays a little short of a straight line by design; the headroom, learnt from
    # exactly those misses, covers the rest.
    assert truth <= fc.millicores + fc.headroom < truth + 0.02 * truth
    assert 0.75 * 10 < fc.trend <= 10  # 600 m per minute is 10 m per second


def test_undamped_holt_converges_on_the_line() -> None:
    history = _linear(n=120)
    truth = 20_000 + 600 * (history[-1].at + LEAD) / 60
    fc = forecast(history, LEAD, params=HoltParameters(alpha=0.5, beta=0.3, phi=1.0))
    assert fc.millicores == pytest.approx(truth, rel=1e-4)
    assert fc.trend == pytest.approx(10, rel=1e-3)


def test_a_steady_demand_needs_no_headroom() -> None:
    fc = forecast([Sample(i * 60.0, 30_000) for i in range(30)], LEAD)
    assert fc.millicores == pytest.approx(30_000)
    assert fc.headroom == 0 and fc.basis == "errors"
    assert fc.errors == 26 - BURN_IN  # samples whose time + lead lies inside the history, once warm


def test_headroom_grows_with_the_forecast_s_own_error() -> None:
    headrooms = [forecast(_noisy(sd), LEAD).headroom for sd in (0.0, 200.0, 800.0, 3200.0)]
    assert headrooms == sorted(headrooms)
    assert headrooms[0] < headrooms[1] < headrooms[2] < headrooms[3]
    assert headrooms[-1] > 4 * headrooms[1]


def test_a_lower_quantile_gives_less_headroom() -> None:
    history = _noisy(1000.0)
    assert forecast(history, LEAD, quantile=0.5).headroom < forecast(history, LEAD, quantile=1.0).headroom


def test_over_forecasts_do_not_count_as_errors() -> None:
    """A sudden drop makes the trend overshoot downwards, not upwards: the scaler never plans below the demand it
    sees, so those misses cost nothing and must not inflate the headroom."""
    history = [Sample(i * 60.0, 80_000 if i < 40 else 40_000) for i in range(60)]
    fc = forecast(history, LEAD)
    assert fc.headroom == 0
    rise = [Sample(i * 60.0, 40_000 if i < 40 else 80_000) for i in range(60)]
    assert forecast(rise, LEAD).headroom >= 40_000  # the same step upwards was missed, and is remembered


def test_a_young_history_falls_back_to_its_spread() -> None:
    history = [Sample(0, 10_000), Sample(60, 12_000), Sample(120, 11_000)]
    fc = forecast(history, LEAD)
    assert fc.errors < MIN_ERRORS and fc.basis == "spread"
    assert fc.headroom == 2_000
    single = forecast([Sample(0, 5_000)], LEAD)
    assert (single.millicores, single.headroom, single.trend) == (5_000, 0, 0)


def test_irregular_unsorted_and_repeated_samples() -> None:
    history = _linear(n=40)
    shuffled = [*reversed(history), Sample(history[10].at, history[10].millicores)]
    assert forecast(shuffled, LEAD) == forecast(history, LEAD)
    # Samples at uneven spacing (a missed schedule, an alarm-triggered run) still follow the line.
    uneven = [s for i, s in enumerate(_linear(n=90, step=20)) if i % 3 != 1]
    truth = 20_000 + 600 * (uneven[-1].at + LEAD) / 60
    assert abs(forecast(uneven, LEAD).millicores - truth) < 0.02 * truth


def test_the_forecast_is_never_negative() -> None:
    falling = [Sample(i * 60.0, max(0.0, 10_000 - 1_000 * i)) for i in range(12)]
    assert forecast(falling, 600).millicores >= 0


@pytest.mark.parametrize(
    ("history", "lead", "quantile"),
    [([], LEAD, 0.9), ([Sample(0, 1)], 0, 0.9), ([Sample(0, 1)], LEAD, 0.0), ([Sample(0, 1)], LEAD, 1.5)],
)
def test_invalid_arguments(history: list[Sample], lead: float, quantile: float) -> None:
    with pytest.raises(ValueError, match=r"sample|lead|quantile"):
        forecast(history, lead, quantile=quantile)


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="Holt parameters"):
        HoltParameters(alpha=0, beta=0.3, phi=0.9)
