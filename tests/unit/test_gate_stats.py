"""Gate statistics: paired differences, mSPRT, the Newey-West test, Brier and ECE."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from processors.policy.gate_stats import (
    MsprtConfig,
    brier,
    ece,
    max_drawdown,
    msprt,
    newey_west_lags,
    newey_west_test,
    paired_differences,
    sharpe_ratio,
)

ALPHA = 0.05


def test_paired_differences() -> None:
    diff = paired_differences([1.0, 2.0, math.nan, 4.0], np.array([1.5, 1.0, 3.0, 4.0]))
    assert diff.tolist() == [0.5, -1.0, 0.0]
    with pytest.raises(ValueError, match="length"):
        paired_differences([1.0, 2.0], [1.0])


# --- mSPRT -----------------------------------------------------------------------------


def reference_msprt_path(x: list[float], mixture_sd: float, burn_in: int) -> list[float]:
    """The one-sided mSPRT p-value path, straight from the formula, one n at a time."""
    path, running = [], 1.0
    for n in range(1, len(x) + 1):
        if n >= max(2, burn_in):
            s = statistics.stdev(x[:n])
            z = sum(x[:n]) / (s * math.sqrt(n))
            nr = n * mixture_sd**2
            shrink = z * math.sqrt(nr / (1 + nr))
            log_lambda = -0.5 * math.log(1 + nr) + z * z * nr / (2 * (1 + nr))
            log_lambda += math.log(2 * 0.5 * math.erfc(-shrink / math.sqrt(2)))
            running = min(running, 1.0, math.exp(-log_lambda))
        path.append(running)
    return path


def test_msprt_golden_values() -> None:
    x = [0.5, 1.5, -0.2, 0.9, 1.1]
    result = msprt(x, MsprtConfig(burn_in=2, mixture_sd=1.0))
    expected = reference_msprt_path(x, 1.0, 2)
    assert result.p_values.tolist() == pytest.approx(expected, rel=1e-12)
    # Lambda_5 = 14.4084176125 (checked against numerical integration of the half-normal mixture)
    assert result.e_value == pytest.approx(14.408417612495, rel=1e-9)
    assert result.p_value == pytest.approx(0.069403873964117, rel=1e-9)
    assert result.p_values[1] == pytest.approx(0.2406095, rel=1e-6)
    assert (result.n, result.mean, result.rejected, result.first_rejection) == (
        5,
        0.76,
        False,
        None,
    )
    assert result.cs_lower == pytest.approx(-0.12363625622697882, rel=1e-9)
    assert result.cs_upper == pytest.approx(1.6436362562269788, rel=1e-9)


def test_msprt_p_value_is_a_running_minimum_in_unit_interval() -> None:
    for seed in range(5):
        x = np.random.default_rng(seed).normal(0.05, 1.0, 800)
        result = msprt(x)
        path = result.p_values
        assert path.shape == (800,)
        assert np.all((path >= 0.0) & (path <= 1.0))
        assert np.all(np.diff(path) <= 0.0)
        assert result.p_value == path[-1] == path.min()
        assert np.all(path[:29] == 1.0)  # burn-in: no look


def test_msprt_rejects_a_clear_positive_shift() -> None:
    result = msprt(np.random.default_rng(1).normal(0.5, 1.0, 500))
    assert result.rejected and result.p_value < 1e-10
    assert result.first_rejection is not None and result.first_rejection < 100
    assert result.cs_lower is not None and 0.0 < result.cs_lower < 0.5
    assert result.cs_upper is not None and result.cs_upper > 0.5


def test_msprt_is_one_sided_by_default() -> None:
    worse = np.random.default_rng(1).normal(-0.5, 1.0, 500)
    assert msprt(worse).p_value == 1.0
    assert msprt(worse, MsprtConfig(one_sided=False)).rejected


def test_msprt_false_rejection_rate_on_zero_mean_noise() -> None:
    trials = 200
    rejections = sum(
        msprt(np.random.default_rng(10_000 + seed).normal(0.0, 1.0, 500)).rejected
        for seed in range(trials)
    )
    # always valid: P(ever p <= alpha) <= alpha (asymptotically, with the plug-in variance)
    assert rejections / trials <= ALPHA + 0.02
    assert rejections == 6  # deterministic: seeded


def test_msprt_degenerate_inputs() -> None:
    assert msprt([]).p_value == 1.0 and msprt([]).n == 0
    zeros = msprt(np.zeros(100))  # identical policies: no evidence
    assert zeros.p_value == 1.0 and not zeros.rejected and zeros.cs_lower is None
    short = msprt([1.0, 2.0, 3.0])  # before the burn-in
    assert short.p_value == 1.0 and short.cs_lower is None
    noisy = msprt([math.nan, *np.random.default_rng(0).normal(0.0, 1.0, 50).tolist()])
    assert noisy.n == 50


def test_msprt_is_deterministic() -> None:
    x = np.random.default_rng(9).normal(0.1, 1.0, 300)
    first, second = msprt(x), msprt(x.copy())
    assert first.p_value == second.p_value
    assert np.array_equal(first.p_values, second.p_values)


# --- fixed horizon -----------------------------------------------------------------------

NW_SAMPLE = [1.0, -0.5, 2.0, 0.5, 1.5, -1.0, 0.8, 0.2]


def test_newey_west_golden_values() -> None:
    result = newey_west_test(NW_SAMPLE, lags=2)
    # LRV = g0 + 2 (2/3 g1 + 1/3 g2), g_l = sum e_t e_{t-l} / n
    e = [v - 0.5625 for v in NW_SAMPLE]
    gamma = [sum(e[t] * e[t - lag] for t in range(lag, 8)) / 8 for lag in range(3)]
    lrv = gamma[0] + 2 * (2 / 3 * gamma[1] + 1 / 3 * gamma[2])
    assert result.std_error == pytest.approx(math.sqrt(lrv / 8), rel=1e-12)
    assert result.std_error == pytest.approx(0.231671912410633, rel=1e-12)
    assert result.statistic == pytest.approx(2.428002575482616, rel=1e-12)
    assert result.p_value == pytest.approx(0.0075911177307102, rel=1e-10)
    assert (result.method, result.n, result.mean, result.bandwidth) == ("newey_west", 8, 0.5625, 2)


def test_newey_west_without_lags_is_the_plain_z_test() -> None:
    result = newey_west_test(NW_SAMPLE, lags=0)
    plain = statistics.fmean(NW_SAMPLE) / (statistics.pstdev(NW_SAMPLE) / math.sqrt(8))
    assert result.statistic == pytest.approx(plain, rel=1e-12)
    assert result.p_value == pytest.approx(0.043330895376950423, rel=1e-10)


def test_newey_west_lag_rule_and_degenerate_inputs() -> None:
    assert [newey_west_lags(n) for n in (1, 8, 100, 1000, 2900)] == [0, 2, 4, 6, 8]
    assert newey_west_test(np.arange(1000.0) % 7 - 2.9).bandwidth == 6
    assert newey_west_test([1.0]).p_value == 1.0
    assert newey_west_test([0.0] * 10).p_value == 1.0


def test_newey_west_widens_the_error_under_autocorrelation() -> None:
    rng = np.random.default_rng(4)
    noise = rng.normal(0.0, 1.0, 2000)
    ar = np.empty_like(noise)
    ar[0] = noise[0]
    for t in range(1, 2000):
        ar[t] = 0.6 * ar[t - 1] + noise[t]
    iid, hac = newey_west_test(ar, lags=0), newey_west_test(ar)
    assert hac.std_error is not None and iid.std_error is not None
    assert hac.std_error > 1.5 * iid.std_error


# --- guardrail figures ---------------------------------------------------------------------


def test_sharpe_and_drawdown() -> None:
    assert sharpe_ratio(np.array([1.0, 3.0])) == pytest.approx(2.0 / math.sqrt(2.0))
    assert sharpe_ratio(np.array([1.0])) is None
    assert sharpe_ratio(np.array([2.0, 2.0])) is None
    assert max_drawdown(np.array([5.0, -3.0, 4.0, -10.0, 1.0])) == 10.0  # peak 6 -> -4
    assert max_drawdown(np.array([-2.0, 1.0])) == 2.0  # the peak starts at 0
    assert max_drawdown(np.array([1.0, 2.0])) == 0.0
    assert max_drawdown(np.array([])) == 0.0


# --- calibration -----------------------------------------------------------------------------


def test_brier_golden() -> None:
    assert brier([0.9, 0.2, 0.6, 0.5], [1, 0, 0, 1]) == pytest.approx(0.165, rel=1e-12)
    assert brier([1.0, 0.0], [1, 0]) == 0.0
    assert brier([1.2, math.nan], [1, 0]) == 0.0  # clipped, and the NaN pair dropped
    assert math.isnan(brier([], []))
    with pytest.raises(ValueError, match="length"):
        brier([0.5], [1, 0])


def test_ece_golden() -> None:
    # one value per bin: gaps 0.05, 0.15, 0.05, 0.15, 0.45
    assert ece([0.05, 0.15, 0.95, 0.85, 0.55], [0, 0, 1, 1, 1]) == pytest.approx(0.17)
    # bin [0, 0.2): mean p 0.11, mean y 0.5; p = 1 falls in the last bin
    assert ece([0.1, 0.12, 1.0], [1, 0, 1], bins=5) == pytest.approx(0.26)
    assert ece([0.3, 0.3, 0.7, 0.7], [0, 1, 1, 0]) == pytest.approx(0.2)
    assert math.isnan(ece([], []))


def test_msprt_config_rejects_a_mixture_sd_of_zero() -> None:
    with pytest.raises(ValueError, match=r"MsprtConfig\.mixture_sd must be > 0, got 0\.0"):
        MsprtConfig(mixture_sd=0.0)
