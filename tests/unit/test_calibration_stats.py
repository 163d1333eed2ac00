"""Brier decomposition, ECE, the rolling window and the bootstrap null: golden values and
determinism."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from scipy import stats

from processors.drift.calibration_stats import (
    GammaNull,
    RollingCalibration,
    bootstrap_null,
    decompose,
    design_effect,
    error_rate_rise,
    stable_seed,
)


def test_brier_decomposition_golden() -> None:
    # bin 2: p 0.2, labels 0 1 (ybar 0.5); bin 8: p 0.8, labels 1 1 (ybar 1); ybar 0.75
    stats = decompose([0.2, 0.2, 0.8, 0.8], [0, 1, 1, 1])
    assert stats.n == 4
    assert stats.brier == pytest.approx(0.19)  # (0.04 + 0.64 + 0.04 + 0.04) / 4
    assert stats.reliability == pytest.approx(0.065)  # (2 * 0.3^2 + 2 * 0.2^2) / 4
    assert stats.resolution == pytest.approx(0.0625)  # (2 * 0.25^2 + 2 * 0.25^2) / 4
    assert stats.uncertainty == pytest.approx(0.1875)  # 0.75 * 0.25
    assert stats.ece == pytest.approx(0.25)  # (2 * 0.3 + 2 * 0.2) / 4
    identity = stats.reliability - stats.resolution + stats.uncertainty
    assert stats.brier == pytest.approx(identity)


def test_ece_golden_with_mixed_bins_and_p_of_one() -> None:
    # bins: {0.1: y 0}, {0.3, 0.35: y 0, 1}, {0.9, 1.0 (last bin): y 1, 1}
    ece = decompose([0.1, 0.3, 0.35, 0.9, 1.0], [0, 0, 1, 1, 1]).ece
    assert ece == pytest.approx((0.1 + 2 * 0.175 + 2 * 0.05) / 5)


def test_empty_input_is_zero() -> None:
    assert decompose([], []).n == 0
    assert bootstrap_null([], 10, 50, 1).ece.quantile(0.99) == 0.0


def test_stable_seed_is_pinned() -> None:
    assert stable_seed("a") == 2340832890917691671
    assert stable_seed(0, "s1|small_cap", 0) == 8799625123103457540


def test_bootstrap_threshold_is_deterministic_for_a_seed() -> None:
    p = np.random.default_rng(5).uniform(0.2, 0.8, 300)
    a = bootstrap_null(p, 10, 200, seed=42)
    b = bootstrap_null(p, 10, 200, seed=42)
    c = bootstrap_null(p, 10, 200, seed=43)
    assert a.ece.quantile(0.999) == b.ece.quantile(0.999)
    assert a.reliability.p_value(0.01) == b.reliability.p_value(0.01)
    assert a.ece.quantile(0.999) != c.ece.quantile(0.999)


def test_gamma_fit_tracks_a_large_bootstrap() -> None:
    p = np.random.default_rng(6).uniform(0.2, 0.8, 500)
    small = bootstrap_null(p, 10, 200, seed=1)
    big = bootstrap_null(p, 10, 5000, seed=2)
    for name in ("ece", "reliability"):
        fitted = getattr(small, name).quantile(0.99)
        empirical = float(np.quantile(getattr(big, name).resamples, 0.99))
        assert fitted == pytest.approx(empirical, rel=0.15)
    null = small.ece
    assert null.p_value(null.quantile(0.995)) == pytest.approx(0.005, rel=1e-6)
    assert null.empirical_p_value(1.0) == pytest.approx(1 / 201)


def test_calibrated_window_is_below_threshold_and_miscalibrated_above() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(0.2, 0.8, 500)
    null = bootstrap_null(p, 10, 200, seed=3)
    calibrated = decompose(p, (rng.random(500) < p).astype(int))
    broken = decompose(p, (rng.random(500) < p - 0.15).astype(int))
    assert calibrated.ece < null.ece.quantile(0.999)
    assert broken.ece > null.ece.quantile(0.999)
    assert broken.reliability > null.reliability.quantile(0.999)


def test_rolling_window_keeps_the_last_pairs_in_order() -> None:
    window = RollingCalibration(window=5, bins=10)
    pairs = [(0.1, 0), (0.2, 1), (0.3, 0), (0.4, 1), (0.5, 1), (0.6, 0), (0.7, 1)]
    for p, y in pairs:
        window.add(p, y)
    p_arr, y_arr = window.arrays()
    assert p_arr.tolist() == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert y_arr.tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]
    assert window.decomposition() == decompose(p_arr, y_arr)
    state = orjson.loads(orjson.dumps(window.snapshot()))
    again = RollingCalibration(window=5, bins=10)
    again.restore(state)
    again.add(0.8, 1)
    window.add(0.8, 1)
    assert again.arrays()[0].tolist() == window.arrays()[0].tolist()
    assert again.decomposition() == window.decomposition()


def test_design_effect_of_independent_and_overlapping_labels() -> None:
    rng = np.random.default_rng(8)
    symbols, bars, horizon = 10, 100, 4
    group = np.repeat(np.arange(symbols), bars).astype(np.int64)
    index = np.tile(np.arange(bars), symbols).astype(np.int64)
    independent = ((rng.random(symbols * bars) < 0.5) - 0.5).astype(np.float64)
    assert design_effect(independent, group, index, horizon) < 1.3
    steps = rng.normal(size=(symbols, bars + horizon))
    forward = np.stack([steps[:, k : k + bars] for k in range(horizon)]).sum(axis=0)
    overlapping = (forward.reshape(-1) > 0) - 0.5  # signs of overlapping 4-bar returns
    assert design_effect(overlapping, group, index, horizon) == pytest.approx(3.0, abs=0.5)
    assert design_effect(overlapping, group, np.full_like(index, -1), horizon) == 1.0
    assert design_effect(overlapping, group, index, 1) == 1.0


def test_error_rate_rise_golden() -> None:
    z, p = error_rate_rise(40, 100, 70, 100, 1.0)
    pooled = 0.55
    assert z == pytest.approx(0.3 / (pooled * 0.45 * 0.02) ** 0.5)
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    z3, _ = error_rate_rise(40, 100, 70, 100, 3.0)
    assert z3 == pytest.approx(z / math.sqrt(3))
    assert error_rate_rise(0, 0, 5, 10, 1.0) == (0.0, 1.0)


def test_inflation_widens_the_null() -> None:
    p = np.random.default_rng(9).uniform(0.3, 0.7, 400)
    plain = bootstrap_null(p, 10, 200, seed=4)
    wide = bootstrap_null(p, 10, 200, seed=4, inflation=4.0)
    assert wide.reliability.mean == pytest.approx(4.0 * plain.reliability.mean)
    assert wide.ece.mean == pytest.approx(2.0 * plain.ece.mean)


def test_gamma_null_is_the_moment_matched_gamma() -> None:
    null = GammaNull(mean=0.04, var=0.0002, resamples=np.zeros(0))
    fitted = stats.gamma(a=0.04**2 / 0.0002, scale=0.0002 / 0.04)
    for q in (0.5, 0.99, 1.0 - 1e-6):
        assert null.quantile(q) == pytest.approx(fitted.ppf(q), rel=1e-9)
    for x in (0.0, 0.03, 0.1):
        assert null.p_value(x) == pytest.approx(fitted.sf(x), rel=1e-9)
    assert GammaNull(0.04, 0.0, np.zeros(0)).quantile(0.99) == 0.04
    assert GammaNull(0.04, 0.0, np.zeros(0)).p_value(0.05) == 0.0
