"""The proposer: a candidate PolicyConfig from a window's decisions, with the evidence of
every change.

**Evidence.** Two kinds, both from the window (``WindowView``):

- the *edge slope* of a set of decisions: the least-squares slope of the label on the
  signal, ``sum s (y - 1/2) / sum s^2`` with ``s = p_hat - 1/2`` over labelled rows with a
  signal (``|2 p_hat - 1| > tau``). Weights scale with ``s`` (policy_engine), and the
  expected return of a decision scales with ``slope * s``, so the weight that is right for a
  set of decisions is proportional to its slope: 1 where p_hat is as sharp as it should be,
  below 1 where it is overconfident, negative where it points the wrong way;
- *round trips* of a neutral *probe* replay (the champion's engine, every combination enabled,
  every factor 1), so that a disabled combination still has trades to judge it by: per
  combination, trips (opening row to the next flat or flip; one still open at the end counts
  with its PnL so far) and wins (trip PnL > 0, with its costs).

**Proposal** (each factor shrunk toward ``prior`` by its trade count n,
``prior + n / (n + shrink_trades) * (estimate - prior)``, then clamped):

- ``disabled``: an enabled combination with at least ``min_trades_to_disable`` trips and a
  win rate below ``disable_win_rate`` is disabled; a disabled one is enabled again when it
  has at least ``min_trades_to_reenable`` trips with a win rate of at least
  ``reenable_win_rate`` (hysteresis against flapping);
- ``base_weights``: the strategy's slope over its enabled combinations whose own slope is
  positive (where its signal works; the others are trust's business), over the *pooled*
  slope of all such combinations ([base_min, base_max]; n = trips of those combinations);
- ``trust``: combination slope / pooled slope / the strategy's (new) base weight
  ([trust_min, trust_max]), so that base * trust ~ combination slope / pooled slope;
- ``regime_multipliers``: regime slope / pooled slope (both over the combinations with a
  positive slope), n = probe trades in the regime
  ([regime_min, regime_max]).

A new value within ``min_change`` of the champion's is not a change (the champion's is
kept). Without a positive pooled slope no factor changes (no edge to allocate). Each change is
listed as ``{field, key, old, new, n, estimate}`` (``estimate`` before shrinkage and clamps;
for ``disabled``, old/new are 0/1 and the estimate is the win rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from models.common import MAX_ENTRIES, MAX_STR
from models.policy import PolicyConfig, combo_key
from processors.core.config_checks import NON_NEGATIVE, POSITIVE, UNIT, at_least, check_bounds
from processors.policy.loop_window import WindowView
from processors.policy.replay import DEFAULT_COST_BPS, DEFAULT_EQUITY, replay_policy

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ProposerConfig:
    """See the module docstring. Defaults: prior 1, shrink_trades 50, trust in
    [0.25, 2], base weights in [0.25, 2], regime multipliers in [0.5, 1.5]; disable under a
    40% win rate over at least 30 trips, re-enable at 45% over at least 30; min_change 0.05.
    ``equity`` and ``cost_bps`` price the probe replay (as the gate's replay)."""

    prior: float = 1.0
    shrink_trades: float = 50.0
    trust_min: float = 0.25
    trust_max: float = 2.0
    base_min: float = 0.25
    base_max: float = 2.0
    regime_min: float = 0.5
    regime_max: float = 1.5
    disable_win_rate: float = 0.40
    min_trades_to_disable: int = 30
    reenable_win_rate: float = 0.45
    min_trades_to_reenable: int = 30
    min_change: float = 0.05
    equity: float = DEFAULT_EQUITY
    cost_bps: float = DEFAULT_COST_BPS

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {
                "prior": POSITIVE,
                "shrink_trades": NON_NEGATIVE,
                "trust_min": NON_NEGATIVE,
                "trust_max": POSITIVE,
                "base_min": NON_NEGATIVE,
                "base_max": POSITIVE,
                "regime_min": NON_NEGATIVE,
                "regime_max": POSITIVE,
                "disable_win_rate": UNIT,
                "min_trades_to_disable": at_least(1),
                "reenable_win_rate": UNIT,
                "min_trades_to_reenable": at_least(1),
                "min_change": NON_NEGATIVE,
                "equity": POSITIVE,
                "cost_bps": NON_NEGATIVE,
            },
        )
        for low, high in (
            ("trust_min", "trust_max"),
            ("base_min", "base_max"),
            ("regime_min", "regime_max"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"ProposerConfig.{low} must be <= {high}")


@dataclass(frozen=True)
class Proposal:
    """The candidate policy, its changes (module docstring) and the per-combination
    evidence ``{combo: {trips, wins, win_rate, slope, signals}}``."""

    policy: PolicyConfig
    changes: list[dict[str, Any]]
    combos: dict[str, dict[str, Any]] = field(default_factory=dict)


def _shrink(prior: float, estimate: float, n: float, k: float, low: float, high: float) -> float:
    value = prior + n / (n + k) * (estimate - prior) if n + k > 0 else prior
    return min(high, max(low, value))


class _Slopes:
    """Sums of s (y - 1/2) and s^2 per group code."""

    def __init__(self, view: WindowView, tau: float) -> None:
        s = view.tape.p_hat - 0.5
        rows = view.labelled & (np.abs(2.0 * s) > tau)
        self.rows = rows
        self.cross = s * (view.label.astype(np.float64) - 0.5)
        self.square = s * s

    def by(self, codes: IntArray, size: int, mask: npt.NDArray[np.bool_] | None = None) -> Any:
        rows = self.rows if mask is None else self.rows & mask
        cross = np.bincount(codes[rows], weights=self.cross[rows], minlength=size)
        square = np.bincount(codes[rows], weights=self.square[rows], minlength=size)
        counts = np.bincount(codes[rows], minlength=size)
        return cross, square, counts


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0.0 else None


def probe_trips(
    view: WindowView, champion: PolicyConfig, config: ProposerConfig
) -> tuple[IntArray, IntArray, IntArray]:
    """Per combination code (``tape.combo``): trips, wins, and probe trades per regime code."""
    tape = view.tape
    neutral = champion.model_copy(
        update={"base_weights": {}, "trust": {}, "regime_multipliers": {}, "disabled": []}
    )
    final = replay_policy(tape, neutral, config.equity, config.cost_bps).target_weight_final
    prev = np.where(tape.group_start, 0.0, np.roll(final, 1))
    delta = final - prev
    row_pnl = final * tape.forward_return * config.equity
    row_pnl = row_pnl - np.abs(delta) * (config.cost_bps * 1e-4 * config.equity)
    held = final != 0.0
    opens = held & ((prev == 0.0) | ((final > 0.0) != (prev > 0.0)))
    trip = np.cumsum(opens) - 1
    n_trips = int(np.count_nonzero(opens))
    trip_pnl = np.bincount(trip[held], weights=row_pnl[held], minlength=n_trips)
    size = max(1, len(tape.strategies) * len(tape.classifications))
    combo_of_trip = tape.combo[opens]
    trips = np.bincount(combo_of_trip, minlength=size)
    wins = np.bincount(combo_of_trip[trip_pnl > 0.0], minlength=size)
    regime_trades = np.bincount(tape.regime[delta != 0.0], minlength=max(1, len(tape.regimes)))
    return trips, wins, regime_trades


def propose(
    view: WindowView,
    champion: PolicyConfig,
    version: str,
    created_at: datetime,
    config: ProposerConfig | None = None,
) -> Proposal:
    """The candidate for ``view`` against ``champion`` (see the module docstring)."""
    cfg = config or ProposerConfig()
    tape = view.tape
    if len(tape) == 0:
        same = champion.model_copy(update={"version": version, "created_at": created_at})
        return Proposal(PolicyConfig.model_validate(same.model_dump()), [], {})
    n_class = len(tape.classifications)
    size = max(1, len(tape.strategies) * n_class)
    trips, wins, regime_trades = probe_trips(view, champion, cfg)
    slopes = _Slopes(view, champion.engine.tau)
    c_cross, c_square, c_signals = slopes.by(tape.combo, size)
    changes: list[dict[str, Any]] = []
    combos: dict[str, dict[str, Any]] = {}

    disabled = set(champion.disabled)
    for index in range(size):
        key = combo_key(tape.strategies[index // n_class], tape.classifications[index % n_class])
        count, won = int(trips[index]), int(wins[index])
        rate = won / count if count else None
        combos[key] = {
            "trips": count,
            "wins": won,
            "win_rate": rate,
            "slope": _ratio(float(c_cross[index]), float(c_square[index])),
            "signals": int(c_signals[index]),
        }
        if rate is None or len(key) > MAX_STR:  # a key a PolicyConfig cannot hold
            continue
        if (
            key not in disabled
            and count >= cfg.min_trades_to_disable
            and rate < cfg.disable_win_rate
        ):
            disabled.add(key)
            changes.append(_change("disabled", key, 0.0, 1.0, count, rate))
        elif (
            key in disabled
            and count >= cfg.min_trades_to_reenable
            and rate >= cfg.reenable_win_rate
        ):
            disabled.discard(key)
            changes.append(_change("disabled", key, 1.0, 0.0, count, rate))

    enabled_combo = np.array(
        [combo_key(s, c) not in disabled for s in tape.strategies for c in tape.classifications]
        or [True]
    )
    positive = enabled_combo & (c_cross > 0.0)  # where a strategy's signal works
    pooled = _ratio(float(c_cross[positive].sum()), float(c_square[positive].sum()))
    base = dict(champion.base_weights)
    trust = dict(champion.trust)
    regimes = dict(champion.regime_multipliers)
    if pooled is not None and pooled > 0.0:
        n_strat = max(1, len(tape.strategies))
        s_cross, s_square, _ = slopes.by(tape.strategy, n_strat, positive[tape.combo])
        by_strategy = positive.reshape(n_strat, -1)
        new_base: dict[str, float] = {}
        for s, sid in enumerate(tape.strategies):
            slope = _ratio(float(s_cross[s]), float(s_square[s]))
            new_base[sid] = champion.base_weight(sid)
            if slope is None:
                continue
            estimate = slope / pooled
            n = float(trips.reshape(n_strat, -1)[s][by_strategy[s]].sum())
            new = _shrink(cfg.prior, estimate, n, cfg.shrink_trades, cfg.base_min, cfg.base_max)
            new_base[sid] = _apply(
                base,
                "base_weights",
                sid,
                champion.base_weight(sid),
                new,
                n,
                estimate,
                cfg,
                changes,
            )
        for index in range(size):
            sid = tape.strategies[index // n_class]
            key = combo_key(sid, tape.classifications[index % n_class])
            own = combos[key]["slope"]
            if key in disabled or own is None or len(key) > MAX_STR:
                continue
            estimate = own / pooled / new_base[sid]
            n = float(trips[index])
            new = _shrink(cfg.prior, estimate, n, cfg.shrink_trades, cfg.trust_min, cfg.trust_max)
            old = champion.trust.get(key, 1.0)
            _apply(trust, "trust", key, old, new, n, estimate, cfg, changes)
        n_regimes = max(1, len(tape.regimes))
        r_cross, r_square, _ = slopes.by(tape.regime, n_regimes, positive[tape.combo])
        for r, regime in enumerate(tape.regimes):
            slope = _ratio(float(r_cross[r]), float(r_square[r]))
            if slope is None:
                continue
            estimate = slope / pooled
            n = float(regime_trades[r])
            new = _shrink(cfg.prior, estimate, n, cfg.shrink_trades, cfg.regime_min, cfg.regime_max)
            old = champion.regime_multiplier(regime)
            _apply(regimes, "regime_multipliers", regime, old, new, n, estimate, cfg, changes)

    policy = PolicyConfig(
        version=version,
        created_at=created_at,
        engine=champion.engine,
        base_weights=_bounded(base),
        trust=_bounded(trust),
        regime_multipliers=_bounded(regimes),
        disabled=sorted(disabled)[:MAX_ENTRIES],
    )
    return Proposal(policy, changes, combos)


def _bounded(values: dict[str, float]) -> dict[str, float]:
    """At most MAX_ENTRIES entries (those furthest from 1 kept), sorted by key."""
    kept = sorted(values.items(), key=lambda kv: (-abs(kv[1] - 1.0), kv[0]))[:MAX_ENTRIES]
    return dict(sorted(kept))


def _change(
    name: str, key: str, old: float, new: float, n: float, estimate: float
) -> dict[str, Any]:
    return {"field": name, "key": key, "old": old, "new": new, "n": n, "estimate": estimate}


def _apply(
    target: dict[str, float],
    name: str,
    key: str,
    old: float,
    new: float,
    n: float,
    estimate: float,
    cfg: ProposerConfig,
    changes: list[dict[str, Any]],
) -> float:
    """Set ``target[key] = new`` (rounded to 4 decimals) when it moves by ``min_change``
    (a value of exactly 1, the default, is dropped from the map); return the value in force."""
    new = round(new, 4)
    if abs(new - old) < cfg.min_change:
        return old
    if new == 1.0:
        target.pop(key, None)
    else:
        target[key] = new
    changes.append(_change(name, key, old, new, n, estimate))
    return new
