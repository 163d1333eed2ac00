"""Configuration and shared vocabulary of the synthetic market generator.

Everything the generator injects (drifts, faults, stand-downs, replan churn) is placed by this
frozen config, so the same config always gives the same replay file, byte for byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

CLASSIFICATIONS: tuple[str, ...] = ("penny_stock", "small_cap", "mid_cap", "large_cap", "etf")
REGIMES: tuple[str, ...] = ("trend", "range", "high_vol")
FEATURES: tuple[str, ...] = ("momentum", "volume_z", "spread_bps", "rsi", "vol_ratio")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SimulationConfig:
    """What to generate. Fractions ``*_at`` are positions in the run (0 = start, 1 = end).

    Market:
      seed: seeds every random stream (numpy Generators derived from it per component).
      days, timeframe: run length and bar size (``<n>m`` or ``<n>h``); bars run 24/7.
      symbols: number of symbols; their classifications cycle through CLASSIFICATIONS.
      strategies: strategy ids.
      symbols_per_strategy: None: every strategy trades every symbol; k: strategy i trades the
        k symbols starting at i*k (wrapping), so symbols=100, k=34 with three strategies gives
        about one strategy per symbol.
      start: time of the first bar (aware, UTC).
      horizon_bars: forward-return horizon of p_hat and of the outcome labels.
      run_id: the decisions' run_id.
    Strategies and sizing (the trading system being simulated, policy version ``v0``):
      initial_equity: equity of each strategy at the start; it follows the strategy's PnL.
      dead_zone: |p_hat - 0.5| at or below which there is no signal.
      vol_target, max_abs_weight, rebalance_band: raw weight = (p_hat - 0.5) * vol_target /
        vol_hat; final weight capped at max_abs_weight; changes under the band are not traded.
      min_hold_bars: after a trade, the position is held this many bars (bar of the trade
        included) before the sizing rule may trade it again.
      fee_rate_taker, fee_rate_maker: fees as a fraction of fill notional.
      sharpness_spread: a decision's own sharpness u ~ Uniform(1 - spread, 1 + spread)
        multiplies both its edge and its claimed edge (see signals.py); must be in [0, 1).
    Injections:
      concept_drift_at: the first strategy's good classification flips its edge sign (p_hat
        unchanged, so it becomes overconfident); None disables.
      calibration_drift_at, calibration_drift_size: the second strategy's first mediocre
        classification claims ``size`` more edge than it has from then on (p_hat moves away
        from 0.5, the edge stays); None disables (skipped too if there is no mediocre one).
      covariate_drift_at, covariate_drift_feature, covariate_drift_shift_sd: the last
        strategy's feature mean shifts by shift_sd standard deviations for the rest of the run
        (spread_bps, log-normal, shifts its log); None disables.
      outcome_fraction: share of decisions that get a late label; outcome_delay_mean_s: mean
        extra delay after the horizon (exponential, capped at 6 hours).
      plan_interval_hours, material_replan_prob: regular replans and the share that are
        material; churn_burst_size: material replans of one strategy in one day (0: none).
      stand_downs_per_day: stand-down episodes (at least 4); late_stand_down_every: every
        n-th episode's start arrives out of order (8 minutes late).
      emergency_exits_per_day: emergency exit intents (at least 12).
      duplicate_rate: share of good records repeated (exact now, exact later or a conflicting
        copy with the same event_id), at least 2 of each kind.
      malformed_per_kind: malformed lines of every kind of faults.MALFORMED_KINDS.
    """

    seed: int = 7
    days: int = 30
    symbols: int = 24
    strategies: tuple[str, ...] = ("momo", "meanrev", "breakout")
    symbols_per_strategy: int | None = None
    timeframe: str = "15m"
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    run_id: str = "sim"
    horizon_bars: int = 4
    initial_equity: float = 100_000.0
    dead_zone: float = 0.03
    vol_target: float = 0.0025
    max_abs_weight: float = 0.1
    rebalance_band: float = 0.02
    min_hold_bars: int = 2
    fee_rate_taker: float = 0.0005
    fee_rate_maker: float = 0.0001
    sharpness_spread: float = 0.8
    concept_drift_at: float | None = 0.4
    calibration_drift_at: float | None = 0.7
    calibration_drift_size: float = 0.12
    covariate_drift_at: float | None = 0.5
    covariate_drift_feature: str = "volume_z"
    covariate_drift_shift_sd: float = 1.5
    outcome_fraction: float = 0.6
    outcome_delay_mean_s: float = 1800.0
    plan_interval_hours: float = 4.0
    material_replan_prob: float = 0.25
    churn_burst_size: int = 15
    stand_downs_per_day: float = 1.5
    late_stand_down_every: int = 3
    emergency_exits_per_day: float = 2.0
    duplicate_rate: float = 0.001
    malformed_per_kind: int = 2

    def __post_init__(self) -> None:
        if self.days < 1 or self.symbols < 1 or not self.strategies:
            raise ValueError("days, symbols and strategies must be positive")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategy ids must be unique")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0.0 <= self.sharpness_spread < 1.0:
            raise ValueError("sharpness_spread must be in [0, 1)")
        if self.covariate_drift_feature not in FEATURES:
            raise ValueError(f"covariate_drift_feature must be one of {FEATURES}")
        bar_seconds(self.timeframe)

    @property
    def bar_s(self) -> int:
        return bar_seconds(self.timeframe)

    @property
    def n_bars(self) -> int:
        return self.days * 86_400 // self.bar_s

    @property
    def start_ms(self) -> int:
        return ms_of(self.start)

    def to_json(self) -> dict[str, Any]:
        """The config as JSON values (times as RFC 3339 strings)."""
        data = asdict(self)
        data["start"] = fmt_ms(self.start_ms)
        data["strategies"] = list(self.strategies)
        return data


def bar_seconds(timeframe: str) -> int:
    """Seconds of a bar for ``<n>m`` or ``<n>h`` (e.g. ``15m``)."""
    unit = timeframe[-1:]
    number = timeframe[:-1]
    if unit not in ("m", "h") or not number.isdigit() or int(number) < 1:
        raise ValueError(f"timeframe must look like 15m or 1h, not {timeframe!r}")
    return int(number) * (60 if unit == "m" else 3600)


def ms_of(value: datetime) -> int:
    """Milliseconds since the epoch of an aware time."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def fmt_ms(ms: int) -> str:
    """RFC 3339 UTC with ``Z`` for a millisecond time (whole seconds written without fraction).

    Hot (fills and labels): the date part is cached per day, the rest is integer arithmetic.
    """
    day, rest = divmod(ms, 86_400_000)
    prefix = _DATE_PREFIX.get(day)
    if prefix is None:
        prefix = (EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        _DATE_PREFIX[day] = prefix
    seconds, millis = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if millis:
        return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}Z"


_DATE_PREFIX: dict[int, str] = {}


def rng_for(seed: int, component: int) -> np.random.Generator:
    """An independent seeded generator per component, so that changing one injection does not
    reshuffle the random numbers of the others."""
    return np.random.default_rng(np.random.SeedSequence([seed, component]))


class UniformStream:
    """Uniform draws in [0, 1) served one at a time from pre-drawn chunks (fast in loops)."""

    def __init__(self, rng: np.random.Generator, chunk: int = 65_536) -> None:
        self._rng = rng
        self._chunk = chunk
        self._buffer: list[float] = []
        self._index = 0

    def next(self) -> float:
        if self._index >= len(self._buffer):
            self._buffer = self._rng.random(self._chunk).tolist()
            self._index = 0
        value = self._buffer[self._index]
        self._index += 1
        return value

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.next()

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return low + min(int(self.next() * (high - low)), high - low - 1)
