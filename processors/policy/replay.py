"""Replay of a window's decisions under a policy: PnL, Sharpe, drawdown, turnover, trades.

The evaluation gate replays one window under the champion and a candidate and compares them,
so the replay is pure, deterministic and fast (~290k decisions well under 0.5 s on one core).

**Tape.** ``DecisionTape``: the window's decisions column-wise (numpy), sorted by (strategy,
symbol, bar_ts), categories as indices into sorted name tuples; built once per window, replayed
under any number of policies. A row's forward return is ``price[next] / price[row] - 1`` with
``next`` the next decision of the same (strategy, symbol) (whatever the gap); 0 for the last.

**Semantics** those of ``policy_engine.decide`` (steps 1-2 vectorised, no external
``weight_cap``; step 3 in one loop over Python lists): per (strategy, symbol) the position
starts flat and never-traded at the tape's first row.

**Metrics.** Weights are fractions of a constant ``equity`` (constant so that two policies
are compared on the same footing, without compounding).

- row PnL = ``w_final * forward_return * equity - cost_bps * 1e-4 * |delta w| * equity``,
  booked at the row's bar_ts (the bar where the position was set);
- ``bar_pnl``: row PnL summed per bar_ts, aligned with ``tape.bar_times`` (sorted unique bar
  times), so that champion and candidate series pair element by element;
- ``sharpe``: mean / std (ddof=1) of ``bar_pnl``, per bar, not annualised (None under 2 bars
  or without spread); ``max_drawdown``: largest fall of cumulative ``bar_pnl`` from its
  running peak (which starts at 0), >= 0, in currency;
- ``turnover``: traded notional / equity = sum of |delta w|; ``trade_count``: rows where the
  weight changes (a flip is one trade);
- ``round_trips``: closed positions (back to 0, or a flip, which closes one and opens the
  next, as in the contract); one still open at the end is not counted. ``avg_hold_bars``
  (rows of the key from open to close) and ``avg_hold_seconds`` over them (None without any);
- ``by_combo``: per ``strategy|classification`` (of the row): PnL, trades, round trips
  (closes) and decisions, for the proposer's evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from models.common import to_ms
from models.inputs import DecisionRecord
from models.policy import PolicyConfig, combo_key
from models.taxonomy import BlockEvent, ReasonCode
from processors.policy.engine import MAX_RAW_WEIGHT, VOL_FLOOR
from processors.policy.execute import execute_many, execute_rows, round_trip_rows
from processors.policy.gate_stats import max_drawdown, sharpe_ratio
from processors.policy.tape_index import key_order, unique_times

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_EQUITY = 100_000.0
DEFAULT_COST_BPS = 2.0
SUMMARY_FIELDS = (
    "policy_version",
    "pnl_total",
    "costs",
    "sharpe",
    "max_drawdown",
    "turnover",
    "trade_count",
    "round_trips",
    "avg_hold_bars",
    "avg_hold_seconds",
    "equity",
    "cost_bps",
)


class TapeRow(NamedTuple):
    """One decision as the replay needs it (an alternative to a DecisionRecord)."""

    strategy_id: str
    symbol: str
    classification: str
    regime: str
    bar_ts_ms: int
    price: float
    p_hat: float
    vol_hat: float
    stand_down: bool = False
    emergency: bool = False


def row_of(record: DecisionRecord) -> TapeRow:
    """The tape row of a decision record. ``stand_down``: the record carries a stand-down or
    ``STAND_DOWN_ACTIVE``; ``emergency``: its exit intent is an emergency not vetoed on the bar
    (``EMERGENCY_EXIT_VETO_SAME_BAR``)."""
    intent = record.exit_intent
    return TapeRow(
        record.strategy_id,
        record.symbol,
        record.classification,
        record.regime,
        to_ms(record.bar_ts),
        record.price,
        record.p_hat,
        record.vol_hat,
        record.stand_down is not None or ReasonCode.STAND_DOWN_ACTIVE in record.reasons,
        intent is not None
        and intent.emergency
        and BlockEvent.EMERGENCY_EXIT_VETO_SAME_BAR not in record.block_events,
    )


def _indexed(names: list[str]) -> tuple[tuple[str, ...], IntArray]:
    categories = tuple(sorted(set(names)))
    index = {name: i for i, name in enumerate(categories)}
    return categories, np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))


@dataclass(frozen=True, eq=False)
class DecisionTape:
    """A window's decisions, column-wise, sorted by (strategy, symbol, bar_ts); read-only.

    Category columns index the sorted name tuples. ``group_start`` marks each
    (strategy, symbol)'s first row; ``bar_times`` are the sorted unique bar times (ms) and
    ``bar_index`` each row's position in them. Build with ``from_decisions``/``from_columns``.
    """

    strategies: tuple[str, ...]
    symbols: tuple[str, ...]
    classifications: tuple[str, ...]
    regimes: tuple[str, ...]
    strategy: IntArray
    symbol: IntArray
    classification: IntArray
    regime: IntArray
    bar_ts_ms: IntArray
    price: FloatArray
    p_hat: FloatArray
    vol_hat: FloatArray
    stand_down: BoolArray
    emergency: BoolArray
    forward_return: FloatArray
    group_start: BoolArray
    bar_times: IntArray
    bar_index: IntArray

    def __len__(self) -> int:
        return int(self.strategy.shape[0])

    @property
    def combo(self) -> IntArray:
        """Each row's (strategy, classification) index: strategy * len(classifications) + c."""
        return self.strategy * len(self.classifications) + self.classification

    @classmethod
    def from_decisions(cls, items: Iterable[DecisionRecord | TapeRow]) -> DecisionTape:
        """The tape of DecisionRecords and/or TapeRows (plain tuples in TapeRow order work)."""
        rows = [row_of(i) if isinstance(i, DecisionRecord) else TapeRow(*i) for i in items]
        columns = list(zip(*rows, strict=True)) or [()] * len(TapeRow._fields)
        (n0, c0), (n1, c1), (n2, c2), (n3, c3) = (_indexed(list(columns[i])) for i in range(4))
        price, p_hat, vol_hat = (np.array(columns[i], dtype=np.float64) for i in (5, 6, 7))
        return cls.from_columns(
            (n0, n1, n2, n3),
            (c0, c1, c2, c3),
            np.array(columns[4], dtype=np.int64),
            price,
            p_hat,
            vol_hat,
            np.array(columns[8], dtype=np.bool_),
            np.array(columns[9], dtype=np.bool_),
        )

    @classmethod
    def from_columns(
        cls,
        names: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]],
        codes: tuple[IntArray, IntArray, IntArray, IntArray],
        bar_ts_ms: IntArray,
        price: FloatArray,
        p_hat: FloatArray,
        vol_hat: FloatArray,
        stand_down: BoolArray,
        emergency: BoolArray,
        bar_times: IntArray | None = None,
    ) -> DecisionTape:
        """The tape of unsorted columns: ``names`` = (strategies, symbols, classifications,
        regimes), ``codes`` their per-row indices. Rows are sorted by (strategy, symbol,
        bar_ts); of rows with the same key the last given wins. Values are sanitised the way
        ``decide`` reads them: p_hat clamped to [0, 1] (non-finite: 0.5), a non-finite or
        negative vol_hat is 0, a non-positive or non-finite price gives forward return 0.
        ``bar_times``: ``np.unique(bar_ts_ms)`` when the caller has it already.
        The inputs are not modified."""
        strategy, symbol, classification, regime = (np.asarray(c, np.int64) for c in codes)
        ts = np.asarray(bar_ts_ms, np.int64)
        order = key_order(strategy, symbol, ts)
        strategy, symbol, ts = strategy[order], symbol[order], ts[order]
        keep = np.ones(order.shape[0], dtype=np.bool_)  # the last row of each key
        keep[:-1] = (strategy[:-1] != strategy[1:]) | (symbol[:-1] != symbol[1:])
        keep[:-1] |= ts[:-1] != ts[1:]
        order, strategy, symbol, ts = order[keep], strategy[keep], symbol[keep], ts[keep]
        n = order.shape[0]
        group_start = np.ones(n, dtype=np.bool_)
        group_start[1:] = (strategy[1:] != strategy[:-1]) | (symbol[1:] != symbol[:-1])

        px = np.asarray(price, np.float64)[order]
        valid = np.isfinite(px) & (px > 0.0)
        forward = np.zeros(n, dtype=np.float64)
        if n > 1:
            pairs = ~group_start[1:] & valid[1:] & valid[:-1]
            safe_now = np.where(valid, px, 1.0)
            forward[:-1] = np.where(pairs, safe_now[1:] / safe_now[:-1] - 1.0, 0.0)
        p = np.asarray(p_hat, np.float64)[order]
        p = np.clip(np.where(np.isfinite(p), p, 0.5), 0.0, 1.0)
        vol = np.asarray(vol_hat, np.float64)[order]
        vol = np.where(np.isfinite(vol) & (vol > 0.0), vol, 0.0)
        if bar_times is None:
            bar_times = unique_times(ts)
        # what np.unique(ts, return_inverse=True) gives, faster
        bar_index = np.searchsorted(bar_times, ts)
        return cls(
            strategies=tuple(names[0]),
            symbols=tuple(names[1]),
            classifications=tuple(names[2]),
            regimes=tuple(names[3]),
            strategy=strategy,
            symbol=symbol,
            classification=np.asarray(classification, np.int64)[order],
            regime=np.asarray(regime, np.int64)[order],
            bar_ts_ms=ts,
            price=px,
            p_hat=p,
            vol_hat=vol,
            stand_down=np.asarray(stand_down, np.bool_)[order],
            emergency=np.asarray(emergency, np.bool_)[order],
            forward_return=forward,
            group_start=group_start,
            bar_times=bar_times.astype(np.int64),
            bar_index=bar_index.astype(np.int64).reshape(-1),
        )


@dataclass(frozen=True, slots=True)
class ComboReplayStats:
    """Replay figures of one ``strategy|classification``."""

    pnl: float
    trade_count: int
    round_trips: int
    decisions: int


@dataclass(frozen=True, eq=False)
class PolicyReplayResult:
    """What one policy did over a tape (see the module docstring for every definition).
    Arrays: ``bar_pnl`` aligned with ``bar_times``; ``target_weight_raw`` and
    ``target_weight_final`` per tape row (tape order)."""

    policy_version: str
    equity: float
    cost_bps: float
    pnl_total: float
    costs: float
    bar_times: IntArray
    bar_pnl: FloatArray
    sharpe: float | None
    max_drawdown: float
    turnover: float
    trade_count: int
    round_trips: int
    avg_hold_bars: float | None
    avg_hold_seconds: float | None
    by_combo: dict[str, ComboReplayStats]
    target_weight_raw: FloatArray
    target_weight_final: FloatArray

    def summary(self) -> dict[str, Any]:
        """The scalar figures as a JSON-ready dict (for gate evidence)."""
        figures: dict[str, Any] = {name: getattr(self, name) for name in SUMMARY_FIELDS}
        figures["bars"] = int(self.bar_pnl.shape[0])
        return figures


def policy_targets(
    tape: DecisionTape, policy: PolicyConfig
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """``(raw, target, forced)`` per row: the engine's steps 1-2, vectorised with the same
    floating-point operation order as ``policy_engine.raw_weight`` (bit-identical)."""
    engine = policy.engine
    tau = engine.tau
    edge = 2.0 * tape.p_hat - 1.0
    magnitude = np.abs(edge)
    vol = tape.vol_hat
    vol_factor = np.where(vol > 0.0, engine.vol_target / np.maximum(vol, VOL_FLOOR), 1.0)
    base = np.array([policy.base_weight(s) for s in tape.strategies] or [1.0])
    regime = np.array([policy.regime_multiplier(r) for r in tape.regimes] or [1.0])
    combos = [(s, c) for s in tape.strategies for c in tape.classifications]
    trust = np.array([policy.trust_of(s, c) for s, c in combos] or [1.0])
    disabled = np.array([policy.is_disabled(s, c) for s, c in combos] or [False])
    combo = tape.combo
    raw = (magnitude - tau) / (1.0 - tau) * vol_factor * base[tape.strategy] * trust[combo]
    raw = raw * regime[tape.regime]
    raw = np.where(edge < 0.0, -raw, raw)
    raw = np.clip(np.where(magnitude <= tau, 0.0, raw), -MAX_RAW_WEIGHT, MAX_RAW_WEIGHT)
    cap = engine.max_abs_weight
    forced = disabled[combo] | tape.stand_down | tape.emergency
    target = np.where(forced, 0.0, np.clip(raw, -cap, cap))
    return raw, target, forced


def execute(
    tape: DecisionTape, policy: PolicyConfig, target: FloatArray, forced: BoolArray, equity: float
) -> FloatArray:
    """The engine's step 3 along each (strategy, symbol): final weights per row
    (``policy_execute.execute_rows``)."""
    engine = policy.engine
    params = (engine.epsilon_w, engine.min_trade_notional, engine.cooldown_bars)
    return execute_rows(tape.group_start, target, forced, *params, equity)


def replay_policy(
    tape: DecisionTape,
    policy: PolicyConfig,
    equity: float = DEFAULT_EQUITY,
    cost_bps: float = DEFAULT_COST_BPS,
) -> PolicyReplayResult:
    """Replay ``tape`` under ``policy`` at constant ``equity`` with ``cost_bps`` per unit of
    traded notional; see the module docstring for the metrics. Pure and deterministic."""
    return replay_policies([(tape, policy)], equity, cost_bps)[0]


def replay_policies(
    jobs: Sequence[tuple[DecisionTape, PolicyConfig]],
    equity: float = DEFAULT_EQUITY,
    cost_bps: float = DEFAULT_COST_BPS,
) -> list[PolicyReplayResult]:
    """``replay_policy`` of each (tape, policy): the same results, with the engine's step 3
    of all of them evaluated together (``policy_execute.execute_many``: fewer numpy steps)."""
    targets = [policy_targets(tape, policy) for tape, policy in jobs]
    finals = execute_many(
        [
            (
                tape.group_start,
                target,
                forced,
                policy.engine.epsilon_w,
                policy.engine.min_trade_notional,
                policy.engine.cooldown_bars,
            )
            for (tape, policy), (_, target, forced) in zip(jobs, targets, strict=True)
        ],
        equity,
    )
    return [
        _result(tape, policy, raw, final, equity, cost_bps)
        for (tape, policy), (raw, _, _), final in zip(jobs, targets, finals, strict=True)
    ]


def _result(
    tape: DecisionTape,
    policy: PolicyConfig,
    raw: FloatArray,
    final: FloatArray,
    equity: float,
    cost_bps: float,
) -> PolicyReplayResult:
    prev = np.where(tape.group_start, 0.0, np.roll(final, 1))  # weight before each row
    delta = final - prev
    abs_delta = np.abs(delta)
    traded = delta != 0.0
    row_costs = abs_delta * (cost_bps * 1e-4 * equity)
    row_pnl = final * tape.forward_return * equity - row_costs
    bars = tape.bar_times.shape[0]
    bar_pnl = np.bincount(tape.bar_index, weights=row_pnl, minlength=bars).astype(np.float64)

    open_rows, close_rows = round_trip_rows(tape.group_start, final, prev)
    hold_bars = close_rows - open_rows
    hold_ms = tape.bar_ts_ms[close_rows] - tape.bar_ts_ms[open_rows]
    trips = int(close_rows.shape[0])

    combo = tape.combo
    size = max(1, len(tape.strategies) * len(tape.classifications))
    combo_pnl = np.bincount(combo, weights=row_pnl, minlength=size)
    combo_trades = np.bincount(combo[traded], minlength=size)
    combo_trips = np.bincount(combo[close_rows], minlength=size)
    combo_rows = np.bincount(combo, minlength=size)
    by_combo: dict[str, ComboReplayStats] = {}
    n_class = len(tape.classifications)
    for index in np.flatnonzero(combo_rows).tolist():
        key = combo_key(tape.strategies[index // n_class], tape.classifications[index % n_class])
        counts = int(combo_trades[index]), int(combo_trips[index]), int(combo_rows[index])
        by_combo[key] = ComboReplayStats(float(combo_pnl[index]), *counts)

    return PolicyReplayResult(
        policy_version=policy.version,
        equity=equity,
        cost_bps=cost_bps,
        pnl_total=float(bar_pnl.sum()),
        costs=float(row_costs.sum()),
        bar_times=tape.bar_times,
        bar_pnl=bar_pnl,
        sharpe=sharpe_ratio(bar_pnl),
        max_drawdown=max_drawdown(bar_pnl),
        turnover=float(abs_delta.sum()),
        trade_count=int(traded.sum()),
        round_trips=trips,
        avg_hold_bars=float(hold_bars.mean()) if trips else None,
        avg_hold_seconds=float(hold_ms.mean()) / 1000.0 if trips else None,
        by_combo=by_combo,
        target_weight_raw=raw,
        target_weight_final=final,
    )
