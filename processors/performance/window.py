"""Event-time windows of the performance tables (1d / 7d / 30d, and the running ``all``).

A window as of time T holds the records whose event time is in (T - window, T].

- ``CumulativeSeries`` keeps, per record, the cumulative sums after it, and one start cursor
  per window. A window's totals are the difference of two cumulative values, so they depend
  only on the records and their order, never on when or how often windows are advanced, and
  advancing is amortised O(1). Records are expected in event-time order (the pipeline releases
  them so); one that arrives out of order leaves its windows when the records before it do.
  ``as_of`` must not go backwards: cursors never move back.
- ``DrawdownQueue`` is a two-stack sliding-window aggregate of (max, min, largest drop) over
  the cumulative pnl, which gives a window's max drawdown in O(1) amortised. Its result is the
  largest of the pairwise differences, whatever the grouping, so rebuilding it from the
  records (``restore``) gives the same numbers to the last bit.
- ``GroupWindows`` is one (strategy, group_by, group): its trips and fills in those windows,
  plus O(1) running aggregates for ``all`` (counts, sums, Welford, running peak and drawdown).
- ``StrategyWindows`` is one strategy: the equity of its decisions in every window (merged per
  bar time, so one record per distinct bar_ts), its window-all trade stats and confidence
  buckets.

Memory: the records of the longest window (30 days of event time, as of the last advance).
"""

from __future__ import annotations

import math
from operator import add, sub
from typing import Any

from processors.core.base import DAY_MS

WINDOW_MS = (DAY_MS, 7 * DAY_MS, 30 * DAY_MS)
"""Lengths of the windows 1d, 7d and 30d, in that order (the last is the longest)."""

TRIP_FIELDS = 6
"""A trip record: count (1), win (0/1), pnl_pct, pnl_pct**2, hold seconds, pnl."""
PNL = 5
FILL_FIELDS = 3
"""A fill record: notional, fee, cancels (0/1)."""
RELATIVE_VARIANCE_FLOOR = 1e-10
"""Below this fraction of the mean square, a variance is rounding noise: std counts as 0."""
_COMPACT_AT = 256


def sharpe(count: float, mean: float, variance: float, mean_square: float) -> float | None:
    """mean / std (ddof=1 variance given); None under 2 trades or when std is 0."""
    if count < 2 or variance <= RELATIVE_VARIANCE_FLOOR * mean_square or variance <= 0.0:
        return None
    return mean / math.sqrt(variance)


def _finite(value: float) -> float:
    """``value``, or 0.0 when float overflow made it infinite or NaN (a row must validate)."""
    return value if math.isfinite(value) else 0.0


class CumulativeSeries:
    """Records (event time, values) as cumulative sums, with a start cursor per window."""

    __slots__ = ("_base", "_cum", "_cursors", "_head", "_totals", "_ts")

    def __init__(self, width: int) -> None:
        self._ts: list[int] = []
        self._cum: list[tuple[float, ...]] = []
        self._head = 0
        self._cursors = [0] * len(WINDOW_MS)
        self._base: tuple[float, ...] = (0.0,) * width
        self._totals: tuple[float, ...] = self._base

    @property
    def totals(self) -> tuple[float, ...]:
        """Sums over every record ever appended (the ``all`` window)."""
        return self._totals

    def append(self, ts_ms: int, values: tuple[float, ...], merge: bool = False) -> None:
        """Add a record; with ``merge``, one at the same time as the last is folded into it."""
        old = self._totals
        if len(old) == 3 and len(values) == 3:  # a fill record: the sums, unrolled
            totals: tuple[float, ...] = (old[0] + values[0], old[1] + values[1], old[2] + values[2])
        else:
            totals = tuple(map(add, old, values))
        self._totals = totals
        ts = self._ts
        if merge and len(ts) > self._head and ts[-1] == ts_ms:
            self._cum[-1] = totals
        else:
            ts.append(ts_ms)
            self._cum.append(totals)

    def advance(self, as_of_ms: int) -> list[int]:
        """Move each window to end at ``as_of_ms``; return how many records each one dropped.

        Records behind the longest window are forgotten."""
        ts = self._ts
        end = len(ts)
        moved = []
        for i, length in enumerate(WINDOW_MS):
            bound = as_of_ms - length
            start = cursor = self._cursors[i]
            while cursor < end and ts[cursor] <= bound:
                cursor += 1
            self._cursors[i] = cursor
            moved.append(cursor - start)
        head = self._cursors[-1]
        if head > self._head:
            self._base = self._cum[head - 1]
            self._head = head
            if head >= _COMPACT_AT and 2 * head >= end:
                del ts[:head]
                del self._cum[:head]
                self._cursors = [c - head for c in self._cursors]
                self._head = 0
        return moved

    def start(self, window: int) -> tuple[float, ...]:
        """The cumulative sums just before the window's first record."""
        cursor = self._cursors[window]
        return self._cum[cursor - 1] if cursor > self._head else self._base

    def window(self, window: int) -> tuple[float, ...]:
        """The sums over the window's records."""
        start = self.start(window)
        return tuple(map(sub, self._totals, start))

    def column(self, window: int, field: int) -> list[float]:
        """One cumulative field of the window's records, oldest first."""
        return [row[field] for row in self._cum[self._cursors[window] :]]

    def __len__(self) -> int:
        return len(self._ts) - self._head

    def snapshot(self) -> dict[str, Any]:
        head = self._head
        return {
            "ts": self._ts[head:],
            "cum": [list(row) for row in self._cum[head:]],
            "cursors": [c - head for c in self._cursors],
            "base": list(self._base),
            "totals": list(self._totals),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._ts = [int(t) for t in state["ts"]]
        self._cum = [tuple(float(v) for v in row) for row in state["cum"]]
        self._cursors = [int(c) for c in state["cursors"]]
        self._head = 0
        self._base = tuple(float(v) for v in state["base"])
        self._totals = tuple(float(v) for v in state["totals"])


class DrawdownQueue:
    """FIFO of cumulative-pnl values with the window's (max, min, largest drop) in O(1)."""

    __slots__ = ("_back", "_back_drop", "_back_max", "_back_min", "_front")

    def __init__(self) -> None:
        self._front: list[tuple[float, float, float]] = []  # suffix aggregates, oldest last
        self._back: list[float] = []
        self._back_max = self._back_min = self._back_drop = 0.0

    def push(self, value: float) -> None:
        if self._back:
            if self._back_max - value > self._back_drop:
                self._back_drop = self._back_max - value
            if value > self._back_max:
                self._back_max = value
            if value < self._back_min:
                self._back_min = value
        else:
            self._back_max = self._back_min = value
            self._back_drop = 0.0
        self._back.append(value)

    def pop(self) -> None:
        if not self._front:
            front = self._front
            back = self._back
            if back:
                # suffix aggregates, newest first: max/min/largest drop, as max() and min()
                # would give them (a later value replaces only when strictly better)
                high = low = back[-1]
                drop = 0.0
                front.append((high, low, drop))
                for value in reversed(back[:-1]):
                    if value - low > drop:
                        drop = value - low
                    if value > high:
                        high = value
                    if value < low:
                        low = value
                    front.append((high, low, drop))
            back.clear()
        if self._front:
            self._front.pop()

    def drawdown(self, base: float) -> float:
        """Largest fall from any earlier value (``base`` = the value before the window)."""
        if self._front:
            high, low, drop = self._front[-1]
            if self._back:
                drop = max(drop, self._back_drop, high - self._back_min)
                low = min(low, self._back_min)
        elif self._back:
            low, drop = self._back_min, self._back_drop
        else:
            return 0.0
        return max(drop, base - low)


class GroupWindows:
    """The trips and fills of one (strategy, group_by, group) in every window."""

    __slots__ = ("drawdowns", "fills", "mean", "peak", "run_drawdown", "sum_sq", "trips")

    def __init__(self) -> None:
        self.trips = CumulativeSeries(TRIP_FIELDS)
        self.fills = CumulativeSeries(FILL_FIELDS)
        self.drawdowns = [DrawdownQueue() for _ in WINDOW_MS]
        self.mean = 0.0  # Welford over pnl_pct, window all
        self.sum_sq = 0.0
        self.peak = 0.0
        self.run_drawdown = 0.0

    def add_trip(self, exit_ts_ms: int, win: bool, pnl_pct: float, hold: float, pnl: float) -> None:
        trips = self.trips
        trips.append(exit_ts_ms, (1.0, 1.0 if win else 0.0, pnl_pct, pnl_pct * pnl_pct, hold, pnl))
        cumulative = trips.totals[PNL]
        for queue in self.drawdowns:
            queue.push(cumulative)
        count = trips.totals[0]
        delta = pnl_pct - self.mean
        self.mean += delta / count
        self.sum_sq += delta * (pnl_pct - self.mean)
        if cumulative > self.peak:
            self.peak = cumulative
        if self.peak - cumulative > self.run_drawdown:
            self.run_drawdown = self.peak - cumulative

    def add_fill(self, ts_ms: int, notional: float, fee: float, cancels: float) -> None:
        self.fills.append(ts_ms, (notional, fee, cancels))

    def advance(self, as_of_ms: int) -> None:
        for queue, moved in zip(self.drawdowns, self.trips.advance(as_of_ms), strict=True):
            for _ in range(moved):
                queue.pop()
        self.fills.advance(as_of_ms)

    def values(self, window: int | None, mean_equity: float) -> tuple[Any, ...]:
        """Row values (trade_count .. cancel_count) of a window index, or of ``all`` (None)."""
        if window is None:
            count, wins, total, squares, hold, _ = self.trips.totals
            notional, fees, cancels = self.fills.totals
            variance = self.sum_sq / (count - 1) if count >= 2 else 0.0
            mean = self.mean
            drawdown = self.run_drawdown
        else:
            count, wins, total, squares, hold, _ = self.trips.window(window)
            notional, fees, cancels = self.fills.window(window)
            mean = total / count if count > 0 else 0.0
            variance = (squares - total * mean) / (count - 1) if count >= 2 else 0.0
            base = self.trips.start(window)[PNL]
            drawdown = self.drawdowns[window].drawdown(base)
        trades = round(count)
        ratio = sharpe(trades, mean, variance, squares / count) if trades else None
        return (
            trades,
            round(wins),
            wins / count if trades else 0.0,
            _finite(mean) if trades else 0.0,
            _finite(total) if trades else 0.0,
            ratio if ratio is None or math.isfinite(ratio) else None,
            _finite(max(0.0, drawdown)),
            _finite(max(0.0, hold / count)) if trades else 0.0,
            _finite(max(0.0, notional / mean_equity)) if mean_equity > 0.0 else 0.0,
            _finite(max(0.0, fees)),
            round(cancels),
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "trips": self.trips.snapshot(),
            "fills": self.fills.snapshot(),
            "all": [self.mean, self.sum_sq, self.peak, self.run_drawdown],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.trips.restore(state["trips"])
        self.fills.restore(state["fills"])
        self.mean, self.sum_sq, self.peak, self.run_drawdown = (float(v) for v in state["all"])
        self.drawdowns = []
        for window in range(len(WINDOW_MS)):
            queue = DrawdownQueue()
            for value in self.trips.column(window, PNL):
                queue.push(value)
            self.drawdowns.append(queue)


class StrategyWindows:
    """One strategy: equity of its decisions (for turnover), its window-all trade stats
    (Welford over pnl_pct), and trades and wins per confidence bucket."""

    __slots__ = (
        "bar_count",
        "bar_ms",
        "bar_sum",
        "bucket_trades",
        "bucket_wins",
        "cancels",
        "equity",
        "hold",
        "mean",
        "notional",
        "sum_sq",
        "trades",
        "unmatched_trades",
        "unmatched_wins",
        "wins",
    )

    def __init__(self, buckets: int) -> None:
        self.equity = CumulativeSeries(2)  # (equity sum, decisions) per bar time
        # The bar being filled (decisions of one bar_ts arrive together): kept out of the
        # series until the next bar starts, so that a decision costs two additions.
        self.bar_ms = 0
        self.bar_sum = 0.0
        self.bar_count = 0
        self.trades = self.wins = self.cancels = 0
        self.mean = self.sum_sq = self.hold = self.notional = 0.0
        self.bucket_trades = [0] * buckets
        self.bucket_wins = [0] * buckets
        self.unmatched_trades = self.unmatched_wins = 0

    def add_equity(self, ts_ms: int, equity: float) -> None:
        if ts_ms == self.bar_ms and self.bar_count:
            self.bar_sum += equity
            self.bar_count += 1
            return
        if self.bar_count:
            self.equity.append(self.bar_ms, (self.bar_sum, float(self.bar_count)), merge=True)
        self.bar_ms = ts_ms
        self.bar_sum = equity
        self.bar_count = 1

    def mean_equity(self, window: int | None, as_of_ms: int) -> float:
        """Mean equity of the decisions in a window index (None: all) as of ``as_of_ms``."""
        total, count = self.equity.totals if window is None else self.equity.window(window)
        if self.bar_count and (window is None or self.bar_ms > as_of_ms - WINDOW_MS[window]):
            total += self.bar_sum
            count += self.bar_count
        return total / count if count > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "equity": self.equity.snapshot(),
            "ints": [
                self.trades,
                self.wins,
                self.cancels,
                self.unmatched_trades,
                self.unmatched_wins,
            ],
            "floats": [self.mean, self.sum_sq, self.hold, self.notional],
            "bar": [self.bar_ms, self.bar_sum, self.bar_count],
            "buckets": [self.bucket_trades, self.bucket_wins],
        }

    def load(self, state: dict[str, Any]) -> None:
        self.equity.restore(state["equity"])
        ints = [int(v) for v in state["ints"]]
        self.trades, self.wins, self.cancels, self.unmatched_trades, self.unmatched_wins = ints
        self.mean, self.sum_sq, self.hold, self.notional = (float(v) for v in state["floats"])
        self.bar_ms, self.bar_sum, self.bar_count = (
            int(state["bar"][0]),
            float(state["bar"][1]),
            int(state["bar"][2]),
        )
        self.bucket_trades = [int(v) for v in state["buckets"][0]]
        self.bucket_wins = [int(v) for v in state["buckets"][1]]
