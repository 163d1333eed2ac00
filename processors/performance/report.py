"""The report side of the performance tables: actual versus expected performance, and the
win-rate slope over confidence buckets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from processors.performance.window import StrategyWindows


@dataclass(frozen=True, slots=True)
class ExpectedPerformance:
    """A strategy's baseline per round trip: win rate and mean pnl_pct."""

    win_rate: float = 0.5
    avg_return: float = 0.0


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def versus_expected(st: StrategyWindows, expected: ExpectedPerformance) -> dict[str, Any]:
    """Actual minus expected; z = difference / standard error (None where not computable)."""
    n = st.trades
    win_rate = ratio(st.wins, n)
    p = expected.win_rate
    z_win = (win_rate - p) / math.sqrt(p * (1 - p) / n) if n and 0.0 < p < 1.0 else None
    std = math.sqrt(st.sum_sq / (n - 1)) if n >= 2 and st.sum_sq > 0.0 else 0.0
    z_return = (st.mean - expected.avg_return) / (std / math.sqrt(n)) if std > 0 else None
    actual = {"win_rate": win_rate, "avg_return": st.mean if n else 0.0}
    wanted = {"win_rate": p, "avg_return": expected.avg_return}
    return {
        "trade_count": n,
        "actual": actual,
        "expected": wanted,
        "difference": {k: actual[k] - wanted[k] for k in actual},
        "z_score": {"win_rate": z_win, "avg_return": z_return},
    }


def win_slope(edges: tuple[float, ...], trades: list[int], wins: list[int]) -> float | None:
    """Least-squares slope of win (0/1) on the bucket's mid confidence, over all trades."""
    mids = [(edges[i] + edges[i + 1]) / 2.0 for i in range(len(trades))]
    n = sum(trades)
    sx = sum(t * x for t, x in zip(trades, mids, strict=True))
    sy = float(sum(wins))
    sxx = sum(t * x * x for t, x in zip(trades, mids, strict=True))
    sxy = sum(w * x for w, x in zip(wins, mids, strict=True))
    denominator = n * sxx - sx * sx
    if n < 2 or denominator <= 1e-12 * max(1.0, n * sxx):
        return None
    return (n * sxy - sx * sy) / denominator
