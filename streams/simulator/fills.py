"""Execution of one order: one fill, two partial fills, a partial fill and a cancel of the rest,
or a cancel of the whole order. Quantities are whole shares (exact float sums, so positions
return exactly to zero). Fills come a few seconds after the bar; buys pay up to half the
classification's spread, sells receive up to half less; fees are a rate of the notional.
``exit_reason`` is set on every fill that reduces the position (including one crossing zero).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from streams.simulator.config import SimulationConfig, UniformStream, fmt_ms
from streams.simulator.signals import SPREAD_BPS_MEDIAN


class OrderContext(NamedTuple):
    """Who orders what, and why."""

    strategy_id: str
    symbol: str
    classification: str
    regime: str
    decision_id: str
    order_id: str
    bar_ms: int
    price: float
    exit_reason: str


class OrderResult(NamedTuple):
    """Records (ts_ms, value) and the effect on the position and cash."""

    records: list[tuple[int, dict[str, Any]]]
    filled_qty: float
    cash_flow: float
    shape: str
    crossing_fill_ids: list[str]


def execute_order(
    ctx: OrderContext,
    delta_qty: float,
    position: float,
    config: SimulationConfig,
    draw: UniformStream,
) -> OrderResult:
    """Execute an order for ``delta_qty`` (signed whole shares) against ``position``."""
    size = abs(delta_qty)
    sign = 1.0 if delta_qty > 0 else -1.0
    u = draw.next()
    if u >= 0.95:
        shape, parts = "cancel", []
    elif u >= 0.88 and size >= 2:
        shape, parts = "partial_cancel", [_split(size, draw)]
    elif u >= 0.74 and size >= 2:
        first = _split(size, draw)
        shape, parts = "partial", [first, size - first]
    else:
        shape, parts = "single", [size]
    records: list[tuple[int, dict[str, Any]]] = []
    crossing: list[str] = []
    filled = cash_flow = 0.0
    ts = ctx.bar_ms + draw.integer(1, 20) * 1000
    half_spread = SPREAD_BPS_MEDIAN[ctx.classification] / 2e4
    side = "buy" if sign > 0 else "sell"
    for n, qty in enumerate(parts):
        if n:
            ts += draw.integer(5, 60) * 1000
        maker = draw.next() < 0.4
        price = max(1e-6, round(ctx.price * (1.0 + sign * half_spread * draw.next()), 6))
        rate = config.fee_rate_maker if maker else config.fee_rate_taker
        fee = round(qty * price * rate, 6)
        event_id = f"f-{ctx.order_id[2:]}-{n}"
        value: dict[str, Any] = {
            "event_id": event_id,
            "kind": "fill",
            "order_id": ctx.order_id,
            "strategy_id": ctx.strategy_id,
            "symbol": ctx.symbol,
            "classification": ctx.classification,
            "side": side,
            "qty": qty,
            "ts": fmt_ms(ts),
            "price": price,
            "decision_id": ctx.decision_id,
            "fee": fee,
            "liquidity": "maker" if maker else "taker",
            "regime": ctx.regime,
        }
        before = position + filled
        after = before + sign * qty
        if before != 0.0 and (before > 0) != (sign > 0):
            value["exit_reason"] = ctx.exit_reason
        if before * after < 0:
            crossing.append(event_id)
        records.append((ts, value))
        filled += sign * qty
        cash_flow -= sign * qty * price + fee
    remaining = size - abs(filled)
    if remaining > 0:
        ts += draw.integer(30, 120) * 1000
        cancel = {
            "event_id": f"x-{ctx.order_id[2:]}",
            "kind": "cancel",
            "order_id": ctx.order_id,
            "strategy_id": ctx.strategy_id,
            "symbol": ctx.symbol,
            "classification": ctx.classification,
            "side": side,
            "qty": remaining,
            "ts": fmt_ms(ts),
            "decision_id": ctx.decision_id,
            "regime": ctx.regime,
        }
        records.append((ts, cancel))
    return OrderResult(records, filled, cash_flow, shape, crossing)


def _split(size: float, draw: UniformStream) -> float:
    """A first partial of 30% to 70% of the order, at least one share and less than all."""
    return float(min(size - 1.0, max(1.0, float(int(size * draw.uniform(0.3, 0.7))))))
