"""RoundTrip: a closed position, the unit of every trade statistic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A position in (strategy_id, symbol) from leaving zero to returning to zero.

    ``direction`` is +1 for long, -1 for short. ``pnl`` = signed cash flow - fees of the fills
    (or parts of fills) that made the trip; ``pnl_pct`` = pnl / entry notional; a win is
    pnl > 0. Times are event-time milliseconds. ``close_event_id`` is the fill that closed it
    (a derived id for outputs); ``decision_id`` is that of the opening fill, when given.
    """

    strategy_id: str
    symbol: str
    classification: str
    regime: str
    direction: int
    qty: float
    entry_ts_ms: int
    exit_ts_ms: int
    entry_notional: float
    exit_notional: float
    fees: float
    pnl: float
    pnl_pct: float
    close_event_id: str
    exit_reason: str | None = None
    decision_id: str | None = None

    @property
    def hold_seconds(self) -> float:
        return (self.exit_ts_ms - self.entry_ts_ms) / 1000.0

    @property
    def is_win(self) -> bool:
        return self.pnl > 0.0
