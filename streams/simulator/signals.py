"""What each strategy sees and says on every bar: features, p_hat, vol_hat and raw weight.

The edge is made real by drawing the strategy's signal direction D from the realised label.
Each decision has its own sharpness ``u ~ Uniform(1 - spread, 1 + spread)`` (mean exactly 1);
``P(sign of forward return agrees with D) = 0.5 + edge * u`` and the strategy states
``p_hat = 0.5 + D * claimed * u``. So D is always the observable direction
``sign(p_hat - 0.5)``, the agreement rate of a combination is exactly 0.5 + edge in
expectation, and where claimed == edge p_hat is calibrated decision by decision. (Decisions
beyond the dead zone are the sharper ones, so their win rate is above 0.5 + edge for a good
combination.) Claims are at least 0.005, so p_hat is never exactly 0.5.

Features are stationary (per classification) except the injected covariate drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.simulator.config import FEATURES, SimulationConfig, rng_for
from streams.simulator.edges import EdgeModel, pair_tables
from streams.simulator.market import Market

FloatArray = npt.NDArray[np.float64]

SPREAD_BPS_MEDIAN: dict[str, float] = {
    "penny_stock": 40.0,
    "small_cap": 15.0,
    "mid_cap": 6.0,
    "large_cap": 2.5,
    "etf": 1.2,
}
# (mean, sd) of every feature but spread_bps, whose log is N(log median, 0.3).
FEATURE_MOMENTS: dict[str, tuple[float, float]] = {
    "momentum": (0.0, 1.0),
    "volume_z": (0.0, 1.0),
    "rsi": (50.0, 12.0),
    "vol_ratio": (1.0, 0.25),
}


@dataclass(frozen=True)
class Pair:
    """A (strategy, symbol) the simulated trading system runs."""

    strategy: int
    symbol: int


@dataclass(frozen=True)
class CovariateDrift:
    strategy: int
    feature: str
    bar: int
    shift: float
    shift_sd: float
    baseline_sd: float


@dataclass
class PairSignals:
    """Per-bar python lists of one pair (lists, not arrays: read one scalar at a time)."""

    p_hat: list[float]
    vol_hat: list[float]
    confidence: list[float]
    raw_weight: list[float]
    features: list[list[float]]


def assign_pairs(config: SimulationConfig) -> list[Pair]:
    """Pairs in a fixed order: by strategy, then symbol."""
    n = config.symbols
    pairs: list[Pair] = []
    for s in range(len(config.strategies)):
        if config.symbols_per_strategy is None:
            chosen = list(range(n))
        else:
            k = min(n, max(1, config.symbols_per_strategy))
            chosen = sorted({(s * k + j) % n for j in range(k)})
        pairs.extend(Pair(s, i) for i in chosen)
    return pairs


def covariate_drift_of(config: SimulationConfig) -> CovariateDrift | None:
    """The injected covariate drift: last strategy, configured feature, shift in sd units."""
    if config.covariate_drift_at is None:
        return None
    feature = config.covariate_drift_feature
    sd = 0.3 if feature == "spread_bps" else FEATURE_MOMENTS[feature][1]
    shift_sd = config.covariate_drift_shift_sd
    return CovariateDrift(
        strategy=len(config.strategies) - 1,
        feature=feature,
        bar=int(config.covariate_drift_at * config.n_bars),
        shift=shift_sd * sd,
        shift_sd=shift_sd,
        baseline_sd=sd,
    )


def build_signals(
    config: SimulationConfig, market: Market, edges: EdgeModel, pairs: list[Pair]
) -> list[PairSignals]:
    """Signals of every pair over the run's bars (not the extra horizon bars)."""
    n = config.n_bars
    drift = covariate_drift_of(config)
    out: list[PairSignals] = []
    for index, pair in enumerate(pairs):
        rng = rng_for(config.seed, 1000 + index)
        sym = pair.symbol
        regimes = market.regimes[sym, :n]
        edge, claimed = pair_tables(edges, pair.strategy, int(market.class_index[sym]), regimes)
        spread = config.sharpness_spread
        sharpness = rng.uniform(1.0 - spread, 1.0 + spread, n)
        agrees = rng.random(n) < 0.5 + edge * sharpness
        label_sign = np.where(market.labels[sym, :n] == 1, 1.0, -1.0)
        direction = np.where(agrees, label_sign, -label_sign)
        # The clip only binds for extreme configs (e.g. a huge calibration_drift_size).
        p_hat = np.round(np.clip(0.5 + direction * claimed * sharpness, 0.01, 0.99), 4)
        true_vol = market.bar_vol[sym, :n]
        vol_hat = np.round(true_vol * np.exp(rng.normal(0.0, 0.1, n)), 6)
        tilt = p_hat - 0.5
        raw = np.where(np.abs(tilt) > config.dead_zone, tilt * config.vol_target / vol_hat, 0.0)
        feats = _features(rng, market.classifications[sym], n)
        if drift is not None and drift.strategy == pair.strategy:
            column = FEATURES.index(drift.feature)
            if drift.feature == "spread_bps":
                feats[drift.bar :, column] *= np.exp(drift.shift)
            else:
                feats[drift.bar :, column] += drift.shift
        out.append(
            PairSignals(
                p_hat=p_hat.tolist(),
                vol_hat=vol_hat.tolist(),
                confidence=np.round(np.abs(tilt) * 2.0, 4).tolist(),
                raw_weight=np.round(raw, 6).tolist(),
                features=np.round(feats, 4).tolist(),
            )
        )
    return out


def _features(rng: np.random.Generator, classification: str, n: int) -> FloatArray:
    columns: list[FloatArray] = []
    for name in FEATURES:
        if name == "spread_bps":
            median = SPREAD_BPS_MEDIAN[classification]
            columns.append(np.exp(rng.normal(np.log(median), 0.3, n)))
        else:
            mean, sd = FEATURE_MOMENTS[name]
            columns.append(rng.normal(mean, sd, n))
    return np.stack(columns, axis=1)


def drift_truth(drift: CovariateDrift | None, config: SimulationConfig, ts: list[str]) -> Any:
    """Ground-truth description of the covariate drift (empty list when disabled)."""
    if drift is None:
        return []
    # spread_bps is log-normal around a median that depends on the classification.
    mean = None if drift.feature == "spread_bps" else FEATURE_MOMENTS[drift.feature][0]
    return [
        {
            "strategy_id": config.strategies[drift.strategy],
            "feature": drift.feature,
            "ts": ts[drift.bar],
            "bar_index": drift.bar,
            "shift": drift.shift,
            "shift_sd": drift.shift_sd,
            "baseline_mean": mean,
            "baseline_sd": drift.baseline_sd,
            "scale": "log" if drift.feature == "spread_bps" else "linear",
        }
    ]
