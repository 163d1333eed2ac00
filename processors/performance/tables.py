"""Rolling performance tables: PerformanceRows per strategy x classification and x regime.

Contract:
- ``on_decision(d)``: remembers the decision's regime and confidence for the fills that name it
  (processors/performance/round_trips.py) and its equity for turnover. Returns ``EMPTY``.
- ``on_fill(f)``: a ``fill`` updates the position book; the round trip it closed (at most
  one) is in the result's ``derived``, which the pipeline routes to the stages that take a
  ``RoundTrip`` (the performance-drift detector); a ``cancel``
  moves no position and is counted. A fill's notional and fee are credited to the group of
  the trip it belongs to (a fill that crosses zero: pro rata by quantity to the trip it closes
  and the one it opens); a cancel to its own classification and resolved regime.
- ``on_tick(watermark_ms)``: when the watermark passes a multiple of ``snapshot_interval_ms``,
  emits (topic ``performance``, key ``strategy_id|group|window``) every row whose values
  changed since its last emission, as of that multiple (the first call only sets the clock).
- ``rows(as_of_ms)``: every row, sorted by (strategy_id, group_by, group, window 1d, 7d, 30d,
  all). Rows exist for each group that has seen a fill or a cancel.
- A row's window as of T holds the trips with exit_ts in (T - window, T] and the fills and
  cancels with ts in that range; turnover = the group's fill notional / the mean equity of the
  strategy's decisions in the same window (0 without equity). ``all`` covers everything.
- ``report(as_of_ms)``: JSON-ready: per strategy, actual versus expected win rate and average
  return (window all) with differences and z-scores; win rate by confidence bucket of the
  decision named by each trip's opening fill; turnover, avg hold time, trade and cancel count.
- ``metrics()``: trade_count per strategy and group (``all``, ``classification:<v>``,
  ``regime:<v>``), turnover, avg hold time, cancel count and win rate per strategy (window all).

``as_of`` must not decrease between calls of ``on_tick`` and ``rows``. State is bounded by keys
and event time: per (strategy, symbol) one open position and its latest regime (~0.5 KiB); per
(strategy, group) one small tuple per trip and per fill of the last 30 days plus O(1) running
aggregates; per strategy one entry per distinct bar_ts of the last 30 days; the book's
decision memory (1 day of decisions). Per-event work is O(1) amortised; rows are computed only
at the cadence, in O(1) amortised per row.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

from models.common import format_utc, to_ms, utc_from_ms
from models.inputs import DecisionRecord, ExecutionEvent
from models.outputs import PerformanceRow
from models.taxonomy import FillKind, GroupBy, PerfWindow
from models.topics import PERFORMANCE
from processors.core import metric_names as mn
from processors.core.base import EMPTY, HOUR_MS, Emitted, MetricSample, Output, check_state_version
from processors.performance.report import ExpectedPerformance, ratio, versus_expected, win_slope
from processors.performance.round_trips import RoundTripBook, RoundTripBookConfig
from processors.performance.trades import RoundTrip
from processors.performance.window import GroupWindows, StrategyWindows

STATE_VERSION = 1
WINDOWS: tuple[tuple[PerfWindow, int | None], ...] = (
    (PerfWindow.D1, 0),
    (PerfWindow.D7, 1),
    (PerfWindow.D30, 2),
    (PerfWindow.ALL, None),
)
ROW_FIELDS = (
    "trade_count",
    "win_count",
    "win_rate",
    "avg_return",
    "total_return",
    "sharpe",
    "max_drawdown",
    "avg_hold_seconds",
    "turnover",
    "fees",
    "cancel_count",
)
GroupKey = tuple[str, str, str]
_CANCEL = FillKind.CANCEL
_BY_CLASSIFICATION, _BY_REGIME = GroupBy.CLASSIFICATION, GroupBy.REGIME


@dataclass(frozen=True)
class PerformanceConfig:
    """``snapshot_interval_ms``: event-time cadence of the ``performance`` rows (1 hour).
    ``confidence_edges``: bucket edges of the win rate by confidence (0, .2, .4, .6, .8, 1;
    a bucket holds [lower, upper), the last also its upper edge). ``expected``: baseline per
    strategy_id, else ``default_expected`` (win rate 0.5, avg return 0). ``book``: the position
    book (decision memory 1 day, zero tolerance 1e-9)."""

    snapshot_interval_ms: int = HOUR_MS
    confidence_edges: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    expected: dict[str, ExpectedPerformance] = field(default_factory=dict)
    default_expected: ExpectedPerformance = field(default_factory=ExpectedPerformance)
    book: RoundTripBookConfig = field(default_factory=RoundTripBookConfig)

    def __post_init__(self) -> None:
        if self.snapshot_interval_ms <= 0:
            raise ValueError("snapshot_interval_ms must be positive")
        edges = self.confidence_edges
        if any(b <= a for a, b in pairwise(edges)):
            raise ValueError("confidence_edges must be strictly increasing")


class PerformanceTables:
    """Round trips, rolling PerformanceRows, the baseline report and trade metrics."""

    takes: ClassVar[Mapping[type, str]] = {DecisionRecord: "on_decision", ExecutionEvent: "on_fill"}
    timers: ClassVar[bool] = True

    def __init__(self, config: PerformanceConfig | None = None) -> None:
        self.config = config or PerformanceConfig()
        self._edges = tuple(self.config.confidence_edges)
        self._book = RoundTripBook(self.config.book)
        self._strategies: dict[str, StrategyWindows] = {}
        self._groups: dict[GroupKey, GroupWindows] = {}
        self._open_buckets: dict[tuple[str, str], int] = {}
        self._emitted: dict[tuple[str, str, str, str], tuple[Any, ...]] = {}
        self._tick_index: int | None = None
        self._next_tick_ms = -(2**62)  # the first watermark of the next interval

    def _set_tick_index(self, index: int | None) -> None:
        self._tick_index = index
        interval = self.config.snapshot_interval_ms
        self._next_tick_ms = -(2**62) if index is None else (index + 1) * interval

    # -- inputs ----------------------------------------------------------------------------

    def on_decision(self, decision: DecisionRecord, ts_ms: int | None = None) -> Emitted:
        """Track the decision's regime, confidence and equity (``ts_ms``: its bar_ts in ms,
        when the caller has it already)."""
        if ts_ms is None:
            ts_ms = to_ms(decision.bar_ts)
        self._book.on_decision(decision, ts_ms)
        sid = decision.strategy_id
        strategy = self._strategies.get(sid) or self._strategy(sid)
        if ts_ms == strategy.bar_ms and strategy.bar_count:
            strategy.bar_sum += decision.equity
            strategy.bar_count += 1
        else:
            strategy.add_equity(ts_ms, decision.equity)
        return EMPTY

    def on_fill(self, fill: ExecutionEvent, ts_ms: int | None = None) -> Emitted:
        """Apply a fill or cancel; the round trip a fill closed (at most one) is in the
        result's ``derived``. ``ts_ms``: the fill's ts in ms, when the caller has it already."""
        sid, symbol = fill.strategy_id, fill.symbol
        strategy = self._strategies.get(sid) or self._strategy(sid)
        if ts_ms is None:
            ts_ms = to_ms(fill.ts)
        if fill.kind is _CANCEL:
            strategy.cancels += 1
            regime = self._book.resolve_regime(fill)
            self._group(sid, GroupBy.CLASSIFICATION, fill.classification).add_fill(
                ts_ms, 0.0, 0.0, 1.0
            )
            self._group(sid, GroupBy.REGIME, regime).add_fill(ts_ms, 0.0, 0.0, 1.0)
            return EMPTY
        if fill.price is None:
            return EMPTY
        held = abs(self._book.position(sid, symbol))
        trips = self._book.on_fill(fill, ts_ms)
        after = self._book.open_labels(sid, symbol)
        notional = fill.qty * fill.price
        strategy.notional += notional
        closing_share = 0.0
        if trips:
            closing_share = 1.0 if after is None else min(1.0, held / fill.qty)
            trip = trips[0]
            self._add_fill(
                sid,
                trip.classification,
                trip.regime,
                ts_ms,
                notional * closing_share,
                fill.fee * closing_share,
            )
        if after is not None:
            self._add_fill(
                sid,
                after[0],
                after[1],
                ts_ms,
                notional * (1.0 - closing_share),
                fill.fee - fill.fee * closing_share,
            )
        key = (sid, symbol)
        for trip in trips:
            self._record_trip(strategy, trip, self._open_buckets.pop(key, -1))
        if after is not None and (held == 0.0 or trips):
            bucket = self._bucket(self._book.decision_confidence(fill.decision_id))
            if bucket >= 0:
                self._open_buckets[key] = bucket
        return Emitted(derived=trips) if trips else EMPTY

    def on_tick(self, watermark_ms: int) -> Emitted:
        """Emit the changed rows when the watermark passes a multiple of the interval."""
        if watermark_ms < self._next_tick_ms:
            return EMPTY  # still inside the current interval: the usual case
        index = watermark_ms // self.config.snapshot_interval_ms
        first = self._tick_index is None
        self._set_tick_index(index)
        if first:
            return EMPTY
        return self._emit(index * self.config.snapshot_interval_ms, changed_only=True)

    def flush(self, as_of_ms: int) -> Emitted:
        """End of input: every row as of ``as_of_ms`` (changed or not), so the last record
        per key on the compacted topic is exactly the final table that ``rows`` gives."""
        return self._emit(as_of_ms, changed_only=False)

    def _emit(self, as_of_ms: int, changed_only: bool) -> Emitted:
        outputs = []
        for key, values in self._computed(as_of_ms):
            if changed_only and self._emitted.get(key) == values:
                continue
            self._emitted[key] = values
            row = self._row(key, values, as_of_ms)
            outputs.append(Output(PERFORMANCE, f"{key[0]}|{key[2]}|{key[3]}", row))
        return Emitted(outputs=outputs)

    # -- reads -----------------------------------------------------------------------------

    def rows(self, as_of_ms: int) -> list[PerformanceRow]:
        """Every current row as of ``as_of_ms``, in the documented order."""
        return [self._row(key, values, as_of_ms) for key, values in self._computed(as_of_ms)]

    def report(self, as_of_ms: int) -> dict[str, Any]:
        """Baseline comparison, win rate by confidence and decision-side metrics (window all)."""
        strategies: dict[str, Any] = {}
        for sid, st in sorted(self._strategies.items()):
            expected = self.config.expected.get(sid, self.config.default_expected)
            strategies[sid] = {
                "actual_vs_expected": versus_expected(st, expected),
                "confidence_buckets": self._confidence_report(st),
                "decision_metrics": {
                    "turnover": ratio(st.notional, st.mean_equity(None, 0)),
                    "avg_hold_time_seconds": ratio(st.hold, st.trades),
                    "trade_count": st.trades,
                    "cancel_count": st.cancels,
                },
            }
        return report_of(as_of_ms, strategies)

    def metrics(self) -> list[MetricSample]:
        """Trade metrics of window all; no symbol labels."""
        samples: list[MetricSample] = []
        for sid, st in sorted(self._strategies.items()):
            label = (("strategy_id", sid),)
            samples.append(
                MetricSample(mn.TRADE_COUNT, (*label, ("group", "all")), float(st.trades))
            )
            samples.append(
                MetricSample(mn.TURNOVER, label, ratio(st.notional, st.mean_equity(None, 0)))
            )
            samples.append(MetricSample(mn.AVG_HOLD_TIME_SECONDS, label, ratio(st.hold, st.trades)))
            samples.append(MetricSample(mn.CANCEL_COUNT, label, float(st.cancels)))
            samples.append(MetricSample(mn.WIN_RATE, label, ratio(st.wins, st.trades)))
        for (sid, group_by, group), windows in sorted(self._groups.items()):
            labels = (("strategy_id", sid), ("group", f"{group_by}:{group}"))
            samples.append(MetricSample(mn.TRADE_COUNT, labels, windows.trips.totals[0]))
        return samples

    @property
    def book(self) -> RoundTripBook:
        """The position book (read it; do not feed it directly)."""
        return self._book

    # -- internals -------------------------------------------------------------------------

    def _strategy(self, sid: str) -> StrategyWindows:
        strategy = self._strategies.get(sid)
        if strategy is None:
            strategy = self._strategies[sid] = StrategyWindows(max(0, len(self._edges) - 1))
        return strategy

    def _group(self, sid: str, group_by: str, group: str) -> GroupWindows:
        key = (sid, group_by, group)
        windows = self._groups.get(key)
        if windows is None:
            windows = self._groups[key] = GroupWindows()
        return windows

    def _add_fill(
        self, sid: str, classification: str, regime: str, ts_ms: int, notional: float, fee: float
    ) -> None:
        values = (notional, fee, 0.0)
        self._group(sid, _BY_CLASSIFICATION, classification).fills.append(ts_ms, values)
        self._group(sid, _BY_REGIME, regime).fills.append(ts_ms, values)

    def _record_trip(self, st: StrategyWindows, trip: RoundTrip, bucket: int) -> None:
        hold = max(0.0, trip.hold_seconds)
        win = trip.is_win
        for group_by, group in (
            (_BY_CLASSIFICATION, trip.classification),
            (_BY_REGIME, trip.regime),
        ):
            self._group(trip.strategy_id, group_by, group).add_trip(
                trip.exit_ts_ms, win, trip.pnl_pct, hold, trip.pnl
            )
        st.trades += 1
        st.wins += win
        delta = trip.pnl_pct - st.mean
        st.mean += delta / st.trades
        st.sum_sq += delta * (trip.pnl_pct - st.mean)
        st.hold += hold
        if bucket >= 0:
            st.bucket_trades[bucket] += 1
            st.bucket_wins[bucket] += win
        else:
            st.unmatched_trades += 1
            st.unmatched_wins += win

    def _bucket(self, confidence: float | None) -> int:
        buckets = len(self._edges) - 1
        if confidence is None or buckets < 1 or confidence < self._edges[0]:
            return -1
        if confidence > self._edges[-1]:
            return -1
        return min(bisect_right(self._edges, confidence) - 1, buckets - 1)

    def _computed(self, as_of_ms: int) -> list[tuple[tuple[str, str, str, str], tuple[Any, ...]]]:
        """(sid, group_by, group, window) and row values of every row, in row order."""
        for strategy in self._strategies.values():
            strategy.equity.advance(as_of_ms)
        computed = []
        for (sid, group_by, group), windows in sorted(self._groups.items()):
            windows.advance(as_of_ms)
            strategy = self._strategies[sid]
            for name, index in WINDOWS:
                values = windows.values(index, strategy.mean_equity(index, as_of_ms))
                computed.append(((sid, group_by, group, name.value), values))
        return computed

    @staticmethod
    def _row(
        key: tuple[str, str, str, str], values: tuple[Any, ...], as_of_ms: int
    ) -> PerformanceRow:
        return PerformanceRow(
            strategy_id=key[0],
            group_by=GroupBy(key[1]),
            group=key[2],
            window=PerfWindow(key[3]),
            as_of=utc_from_ms(as_of_ms),
            **dict(zip(ROW_FIELDS, values, strict=True)),
        )

    def _confidence_report(self, st: StrategyWindows) -> dict[str, Any]:
        edges = self._edges
        buckets = []
        for i, (trades, wins) in enumerate(zip(st.bucket_trades, st.bucket_wins, strict=True)):
            rate = wins / trades if trades else None
            buckets.append(
                {
                    "lower": edges[i],
                    "upper": edges[i + 1],
                    "trade_count": trades,
                    "win_count": wins,
                    "win_rate": rate,
                }
            )
        rates = [b["win_rate"] for b in buckets if b["win_rate"] is not None]
        return {
            "buckets": buckets,
            "unmatched_trade_count": st.unmatched_trades,
            "unmatched_win_rate": ratio(st.unmatched_wins, st.unmatched_trades)
            if st.unmatched_trades
            else None,
            "monotonic": all(a <= b for a, b in pairwise(rates)) if len(rates) >= 2 else None,
            "slope": win_slope(edges, st.bucket_trades, st.bucket_wins),
        }

    # -- state -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state, JSON-serialisable."""
        return {
            "version": STATE_VERSION,
            "book": self._book.snapshot(),
            "strategies": [[sid, st.to_json()] for sid, st in sorted(self._strategies.items())],
            "groups": [[*key, w.snapshot()] for key, w in sorted(self._groups.items())],
            "open_buckets": [[s, y, b] for (s, y), b in sorted(self._open_buckets.items())],
            "emitted": [[*key, list(v)] for key, v in sorted(self._emitted.items())],
            "tick_index": self._tick_index,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with one taken by ``snapshot``."""
        check_state_version(state, STATE_VERSION, "PerformanceTables")
        self._book.restore(state["book"])
        self._strategies = {}
        for sid, data in state["strategies"]:
            self._strategy(str(sid)).load(data)
        self._groups = {}
        for sid, group_by, group, data in state["groups"]:
            self._group(str(sid), str(group_by), str(group)).restore(data)
        self._open_buckets = {(str(s), str(y)): int(b) for s, y, b in state["open_buckets"]}
        self._emitted = {
            (str(s), str(gb), str(g), str(w)): tuple(v) for s, gb, g, w, v in state["emitted"]
        }
        tick = state["tick_index"]
        self._set_tick_index(None if tick is None else int(tick))


def report_of(as_of_ms: int, strategies: dict[str, Any]) -> dict[str, Any]:
    """A performance report as of ``as_of_ms`` (0 at the earliest) of ``strategies`` (the
    per-strategy part of ``PerformanceTables.report``, of one table or merged from many)."""
    return {"as_of": format_utc(utc_from_ms(max(as_of_ms, 0))), "strategies": strategies}
