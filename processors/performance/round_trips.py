"""The position book: round trips from fills, exactly as CONTRACT.md (`fills`) defines them.

Contract:
- Per (strategy_id, symbol), fills (kind ``fill``) build a position first-in first-out. A round
  trip runs from leaving zero to returning to zero. Partial fills just add to (or reduce) the
  position; shorts are symmetric (a sell from flat opens a short).
- A fill that crosses zero closes the trip with the part that brings the position to zero and
  opens the next trip with the rest; its fee is split pro rata by quantity.
- Of a closed trip: ``pnl`` = signed cash flow - all fees of its fills (or parts of fills),
  opening and closing; ``pnl_pct`` = pnl / entry notional, where entry notional is the sum of
  |qty * price| of the fills (parts) on the opening side; ``qty`` is the quantity opened;
  ``entry_ts_ms`` is the first opening fill's ts, ``exit_ts_ms`` the closing fill's;
  ``exit_reason`` and ``close_event_id`` come from the closing fill; ``classification`` and
  ``decision_id`` from the first opening fill.
- A trip's regime is resolved when it opens, from its first opening fill: the fill's
  ``regime``, else the regime of the decision whose event_id is the fill's ``decision_id`` (if
  still remembered), else the latest regime (by event time) of the decisions of (strategy,
  symbol), else ``unknown``.
- The position is flat when |position| < ``zero_tolerance`` * max(1, fill qty).
- Cancels never move a position (they are counted by the performance tables).

Why aggregates and no lot queue: a trip spans flat to flat, so every lot opened in it is closed
in it, and first-in first-out lot matching gives the same trip pnl, fees and notionals as the
sums of its cash flows. Each open position is therefore a fixed set of running sums.

State (bounded by keys and event time): one record per open (strategy, symbol) position; the
latest regime per (strategy, symbol); and the decisions of the last ``decision_memory_ms`` of
event time (decision_id -> ts, regime, confidence), evicted oldest first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from models.common import to_ms
from models.inputs import DecisionRecord, ExecutionEvent
from models.taxonomy import FillKind, Side
from processors.core.base import DAY_MS, check_state_version
from processors.core.config_checks import NON_NEGATIVE, check_bounds
from processors.performance.trades import RoundTrip

UNKNOWN_REGIME = "unknown"
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class RoundTripBookConfig:
    """``decision_memory_ms``: how long (event time, behind the latest decision) a decision's
    regime and confidence are remembered for fills that name it (default 1 day).
    ``zero_tolerance``: relative tolerance of a flat position (default 1e-9)."""

    decision_memory_ms: int = DAY_MS
    zero_tolerance: float = 1e-9

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {"decision_memory_ms": NON_NEGATIVE, "zero_tolerance": NON_NEGATIVE},
        )


def decision_confidence(decision: DecisionRecord) -> float:
    """A decision's confidence: ``confidence`` when given, else |2 * p_hat - 1|."""
    if decision.confidence is not None:
        return decision.confidence
    return abs(2.0 * decision.p_hat - 1.0)


class _Position:
    """The running sums of one open trip."""

    __slots__ = (
        "cash",
        "classification",
        "decision_id",
        "direction",
        "entry_notional",
        "entry_ts_ms",
        "exit_notional",
        "fees",
        "opened_qty",
        "position",
        "regime",
    )

    def __init__(
        self,
        classification: str,
        regime: str,
        decision_id: str | None,
        direction: int,
        qty: float,
        price: float,
        fee: float,
        ts_ms: int,
    ) -> None:
        self.classification = classification
        self.regime = regime
        self.decision_id = decision_id
        self.direction = direction
        self.position = direction * qty
        self.opened_qty = qty
        self.cash = -direction * qty * price
        self.fees = fee
        self.entry_notional = qty * price
        self.exit_notional = 0.0
        self.entry_ts_ms = ts_ms

    def to_json(self) -> list[Any]:
        return [
            self.classification,
            self.regime,
            self.decision_id,
            self.direction,
            self.position,
            self.opened_qty,
            self.cash,
            self.fees,
            self.entry_notional,
            self.exit_notional,
            self.entry_ts_ms,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> _Position:
        pos = cls(str(data[0]), str(data[1]), data[2], int(data[3]), 0.0, 0.0, 0.0, 0)
        pos.position = float(data[4])
        pos.opened_qty = float(data[5])
        pos.cash = float(data[6])
        pos.fees = float(data[7])
        pos.entry_notional = float(data[8])
        pos.exit_notional = float(data[9])
        pos.entry_ts_ms = int(data[10])
        return pos


class RoundTripBook:
    """Open positions per (strategy, symbol); ``on_fill`` returns the trip a fill closes."""

    def __init__(self, config: RoundTripBookConfig | None = None) -> None:
        self.config = config or RoundTripBookConfig()
        self._positions: dict[tuple[str, str], _Position] = {}
        self._latest_regime: dict[tuple[str, str], tuple[int, str]] = {}
        self._decisions: OrderedDict[str, tuple[int, str, float]] = OrderedDict()
        self._latest_decision_ms: int | None = None
        self._first_ms = 0  # ts of the first remembered decision (arrival order)
        self._memory_ms = self.config.decision_memory_ms

    # -- inputs ----------------------------------------------------------------------------

    def on_decision(self, decision: DecisionRecord, ts_ms: int | None = None) -> None:
        """Remember the decision's regime and confidence for the fills that follow.

        ``ts_ms`` is the decision's bar_ts in milliseconds, when the caller has it already."""
        if ts_ms is None:
            ts_ms = to_ms(decision.bar_ts)
        key = (decision.strategy_id, decision.symbol)
        latest = self._latest_regime.get(key)
        if latest is None or ts_ms >= latest[0]:
            self._latest_regime[key] = (ts_ms, decision.regime)
        newest = self._latest_decision_ms
        if newest is None or ts_ms > newest:
            newest = self._latest_decision_ms = ts_ms
        horizon = newest - self._memory_ms
        if ts_ms < horizon:
            return
        confidence = decision.confidence  # decision_confidence(), inlined: hot path
        if confidence is None:
            confidence = abs(2.0 * decision.p_hat - 1.0)
        memo = self._decisions
        if not memo:
            self._first_ms = ts_ms
        memo[decision.event_id] = (ts_ms, decision.regime, confidence)
        if self._first_ms < horizon:
            self._forget_before(horizon)

    def on_fill(self, fill: ExecutionEvent, ts_ms: int | None = None) -> list[RoundTrip]:
        """Apply a fill; return the trip it closed (at most one), else []. Cancels do nothing.

        ``ts_ms`` is the fill's ts in milliseconds, when the caller has it already."""
        price = fill.price
        if fill.kind is not FillKind.FILL or price is None:
            return []
        if ts_ms is None:
            ts_ms = to_ms(fill.ts)
        key = (fill.strategy_id, fill.symbol)
        qty = fill.qty
        direction = 1 if fill.side is Side.BUY else -1
        pos = self._positions.get(key)
        if pos is None:
            self._positions[key] = self._open(fill, direction, qty, price, fill.fee, ts_ms)
            return []
        if direction == pos.direction:
            pos.position += direction * qty
            pos.opened_qty += qty
            pos.entry_notional += qty * price
            pos.cash -= direction * qty * price
            pos.fees += fill.fee
            return []
        held = abs(pos.position)
        tolerance = self.config.zero_tolerance * max(1.0, qty)
        if qty < held - tolerance:
            pos.position += direction * qty
            pos.exit_notional += qty * price
            pos.cash -= direction * qty * price
            pos.fees += fill.fee
            return []
        rest = qty - held
        crosses = rest > tolerance
        close_qty = held if crosses else qty
        close_fee = fill.fee * (held / qty) if crosses else fill.fee
        pos.exit_notional += close_qty * price
        pos.cash -= direction * close_qty * price
        pos.fees += close_fee
        trip = self._trip(key, pos, fill, ts_ms)
        if crosses:
            self._positions[key] = self._open(
                fill, direction, rest, price, fill.fee - close_fee, ts_ms
            )
        else:
            del self._positions[key]
        return [trip]

    # -- reads -----------------------------------------------------------------------------

    def position(self, strategy_id: str, symbol: str) -> float:
        """The signed open quantity of (strategy, symbol); 0.0 when flat."""
        pos = self._positions.get((strategy_id, symbol))
        return 0.0 if pos is None else pos.position

    def open_labels(self, strategy_id: str, symbol: str) -> tuple[str, str] | None:
        """(classification, regime) of the open trip of (strategy, symbol), None when flat."""
        pos = self._positions.get((strategy_id, symbol))
        return None if pos is None else (pos.classification, pos.regime)

    def decision_confidence(self, decision_id: str | None) -> float | None:
        """The confidence of a remembered decision, None when unknown or forgotten."""
        if decision_id is None:
            return None
        entry = self._decisions.get(decision_id)
        return None if entry is None else entry[2]

    def resolve_regime(self, fill: ExecutionEvent) -> str:
        """The regime of a fill or cancel, in the order of the module docstring."""
        if fill.regime is not None:
            return fill.regime
        if fill.decision_id is not None:
            entry = self._decisions.get(fill.decision_id)
            if entry is not None:
                return entry[1]
        latest = self._latest_regime.get((fill.strategy_id, fill.symbol))
        return UNKNOWN_REGIME if latest is None else latest[1]

    @property
    def open_positions(self) -> int:
        return len(self._positions)

    @property
    def remembered_decisions(self) -> int:
        return len(self._decisions)

    # -- internals -------------------------------------------------------------------------

    def _forget_before(self, horizon: int) -> None:
        # Oldest first by arrival; the pipeline releases decisions in event-time order.
        memo = self._decisions
        while memo:
            first_id, first = memo.popitem(last=False)
            if first[0] >= horizon:  # keep it: put it back in front, as it was
                memo[first_id] = first
                memo.move_to_end(first_id, last=False)
                self._first_ms = first[0]
                return

    def _open(
        self,
        fill: ExecutionEvent,
        direction: int,
        qty: float,
        price: float,
        fee: float,
        ts_ms: int,
    ) -> _Position:
        return _Position(
            fill.classification,
            self.resolve_regime(fill),
            fill.decision_id,
            direction,
            qty,
            price,
            fee,
            ts_ms,
        )

    @staticmethod
    def _trip(key: tuple[str, str], pos: _Position, fill: ExecutionEvent, ts_ms: int) -> RoundTrip:
        pnl = pos.cash - pos.fees
        return RoundTrip(
            strategy_id=key[0],
            symbol=key[1],
            classification=pos.classification,
            regime=pos.regime,
            direction=pos.direction,
            qty=pos.opened_qty,
            entry_ts_ms=pos.entry_ts_ms,
            exit_ts_ms=ts_ms,
            entry_notional=pos.entry_notional,
            exit_notional=pos.exit_notional,
            fees=pos.fees,
            pnl=pnl,
            pnl_pct=pnl / pos.entry_notional if pos.entry_notional > 0.0 else 0.0,
            close_event_id=fill.event_id,
            exit_reason=None if fill.exit_reason is None else fill.exit_reason.value,
            decision_id=pos.decision_id,
        )

    # -- state -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state, JSON-serialisable (lists in a deterministic order)."""
        return {
            "version": STATE_VERSION,
            "positions": [[s, y, *p.to_json()] for (s, y), p in sorted(self._positions.items())],
            "latest_regime": [
                [s, y, ts, regime] for (s, y), (ts, regime) in sorted(self._latest_regime.items())
            ],
            "decisions": [[d, ts, r, c] for d, (ts, r, c) in self._decisions.items()],
            "latest_decision_ms": self._latest_decision_ms,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with one taken by ``snapshot``."""
        check_state_version(state, STATE_VERSION, "RoundTripBook")
        self._positions = {
            (str(row[0]), str(row[1])): _Position.from_json(row[2:]) for row in state["positions"]
        }
        self._latest_regime = {
            (str(s), str(y)): (int(ts), str(r)) for s, y, ts, r in state["latest_regime"]
        }
        self._decisions = OrderedDict(
            (str(d), (int(ts), str(r), float(c))) for d, ts, r, c in state["decisions"]
        )
        latest = state["latest_decision_ms"]
        self._latest_decision_ms = None if latest is None else int(latest)
        self._first_ms = next(iter(self._decisions.values()))[0] if self._decisions else 0
