"""The market: symbols, their classifications, regime segments and price paths.

Prices follow a driftless geometric random walk whose per-bar volatility depends on the
classification and the regime (``high_vol`` doubles it, ``range`` damps it). Regimes switch per
symbol in segments of 2 hours to 3 days; they differ by volatility and by the strategies'
edges, not by drift: without drift a label is positive with probability 1/2 in every regime,
which keeps calibrated p_hat exactly calibrated. Prices run ``horizon_bars`` past the last
bar so that every decision has a forward return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.simulator.config import CLASSIFICATIONS, REGIMES, SimulationConfig, rng_for

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Per-bar volatility of a 15m bar by classification (scaled by sqrt of the bar size).
BAR_VOL_15M: dict[str, float] = {
    "penny_stock": 0.006,
    "small_cap": 0.004,
    "mid_cap": 0.0025,
    "large_cap": 0.0018,
    "etf": 0.0012,
}
START_PRICE_RANGE: dict[str, tuple[float, float]] = {
    "penny_stock": (1.0, 4.0),
    "small_cap": (5.0, 30.0),
    "mid_cap": (20.0, 120.0),
    "large_cap": (50.0, 400.0),
    "etf": (80.0, 450.0),
}
REGIME_VOL_MULT: tuple[float, ...] = (1.0, 0.8, 2.0)  # trend, range, high_vol
MIN_SEGMENT_BARS_S = 2 * 3600
MAX_SEGMENT_BARS_S = 3 * 86_400


@dataclass(frozen=True)
class Market:
    """Symbols and their paths; arrays are indexed [symbol, bar] over n_bars + horizon bars.

    ``regimes`` holds indices into REGIMES; ``segments[i]`` lists (start_bar, regime index) of
    symbol i; ``labels`` is 1 where the forward return over horizon_bars is > 0 (prices as
    written, so a consumer labelling from decision prices gets the same label).
    """

    symbols: tuple[str, ...]
    classifications: tuple[str, ...]
    class_index: IntArray
    regimes: IntArray
    segments: tuple[tuple[tuple[int, int], ...], ...]
    prices: FloatArray
    bar_vol: FloatArray
    fwd_returns: FloatArray
    labels: IntArray


def build_market(config: SimulationConfig) -> Market:
    """Generate the market of ``config`` (deterministic in config.seed)."""
    rng = rng_for(config.seed, 1)
    n_sym = config.symbols
    total = config.n_bars + config.horizon_bars
    offset = int(rng.integers(len(CLASSIFICATIONS)))
    class_index = (np.arange(n_sym, dtype=np.int64) + offset) % len(CLASSIFICATIONS)
    classifications = tuple(CLASSIFICATIONS[int(c)] for c in class_index)
    symbols = tuple(f"SYM{i:03d}" for i in range(n_sym))
    vol_scale = float(np.sqrt(config.bar_s / 900.0))
    class_vol = np.array([BAR_VOL_15M[c] for c in classifications]) * vol_scale

    regimes = np.empty((n_sym, total), dtype=np.int64)
    segments: list[tuple[tuple[int, int], ...]] = []
    min_len = max(1, MIN_SEGMENT_BARS_S // config.bar_s)
    max_len = max(min_len + 1, MAX_SEGMENT_BARS_S // config.bar_s)
    for i in range(n_sym):
        segs: list[tuple[int, int]] = []
        bar = 0
        regime = int(rng.integers(len(REGIMES)))
        while bar < total:
            length = int(np.exp(rng.uniform(np.log(min_len), np.log(max_len))))
            end = min(total, bar + length)
            regimes[i, bar:end] = regime
            segs.append((bar, regime))
            bar = end
            regime = (regime + 1 + int(rng.integers(len(REGIMES) - 1))) % len(REGIMES)
        segments.append(tuple(segs))

    bar_vol = class_vol[:, None] * np.asarray(REGIME_VOL_MULT)[regimes]
    shocks = rng.standard_normal((n_sym, total))
    log_returns = bar_vol * shocks
    log_returns[:, 0] = 0.0
    starts = np.array(
        [rng.uniform(*START_PRICE_RANGE[c]) for c in classifications], dtype=np.float64
    )
    raw = starts[:, None] * np.exp(np.cumsum(log_returns, axis=1))
    prices = np.maximum(np.where(raw >= 1.0, np.round(raw, 4), np.round(raw, 6)), 1e-6)

    h = config.horizon_bars
    fwd = np.zeros_like(prices)
    fwd[:, : total - h] = prices[:, h:] / prices[:, : total - h] - 1.0
    labels = (prices[:, h:] > prices[:, : total - h]).astype(np.int64)
    labels = np.concatenate([labels, np.zeros((n_sym, h), dtype=np.int64)], axis=1)
    return Market(
        symbols=symbols,
        classifications=classifications,
        class_index=class_index,
        regimes=regimes,
        segments=tuple(segments),
        prices=prices,
        bar_vol=bar_vol,
        fwd_returns=fwd,
        labels=labels,
    )
