"""Small builders of valid input models for golden tests (one strategy s1, symbol AAA)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from models.inputs import DecisionRecord, ExecutionEvent
from models.taxonomy import Mode

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MS = 1_704_067_200_000


def at(offset_ms: int) -> datetime:
    return T0 + timedelta(milliseconds=offset_ms)


def fill(
    event_id: str, side: str, qty: float, price: float | None, t_ms: int, **extra: Any
) -> ExecutionEvent:
    data: dict[str, Any] = {
        "event_id": event_id,
        "kind": "fill",
        "order_id": f"o-{event_id}",
        "strategy_id": "s1",
        "symbol": "AAA",
        "classification": "large_cap",
        "side": side,
        "qty": qty,
        "ts": at(t_ms),
        "price": price,
    }
    data.update(extra)
    return ExecutionEvent.model_validate(data)


def cancel(event_id: str, t_ms: int, **extra: Any) -> ExecutionEvent:
    return fill(event_id, "buy", 1.0, None, t_ms, kind="cancel", **extra)


def decision(event_id: str, t_ms: int, regime: str = "trend", **extra: Any) -> DecisionRecord:
    data: dict[str, Any] = {
        "event_id": event_id,
        "run_id": "r1",
        "mode": "paper",
        "strategy_id": "s1",
        "symbol": "AAA",
        "classification": "large_cap",
        "regime": regime,
        "timeframe": "15m",
        "bar_ts": at(t_ms),
        "price": 100.0,
        "p_hat": 0.6,
        "vol_hat": 0.02,
        "features": {"x": 1.0},
        "current_weight": 0.0,
        "equity": 1000.0,
        "target_weight_raw": 0.1,
        "target_weight_final": 0.1,
        "reasons": ["signal_entry"],
        "block_events": [],
        "policy_version": "v1",
    }
    data.update(extra)
    return DecisionRecord.model_validate(data)


FLAT_DECISION: dict[str, Any] = {
    "run_id": "run",
    "mode": Mode.PAPER,
    "strategy_id": "momo",
    "symbol": "AAA",
    "classification": "small_cap",
    "regime": "trend",
    "timeframe": "15m",
    "price": 100.0,
    "p_hat": 0.5,
    "vol_hat": 0.1,
    "features": {},
    "horizon_bars": None,
    "current_weight": 0.0,
    "equity": 1e5,
    "target_weight_raw": 0.0,
    "target_weight_final": 0.0,
    "reasons": [],
    "block_events": [],
    "policy_version": "v1",
}
"""A decision that holds no position and trades nothing: what detector tests feed."""


BACKTEST: dict[str, Any] = {
    "run_id": "t",
    "mode": Mode.BACKTEST,
    "strategy_id": "s",
    "vol_hat": 0.002,
    "policy_version": "v0",
}
"""The fields of the policy tests' backtest decisions that differ from ``FLAT_DECISION``."""


def flat_decision(
    event_id: str, bar_ts: datetime, validate: bool = True, **fields: Any
) -> DecisionRecord:
    """A ``FLAT_DECISION`` with its id, bar time and ``fields`` changed; ``validate=False``
    builds it without validation (fast, for long synthetic streams of valid values)."""
    data = {**FLAT_DECISION, "event_id": event_id, "bar_ts": bar_ts, **fields}
    if validate:
        return DecisionRecord.model_validate(data)
    return DecisionRecord.model_construct(**data)


def signal_paths(
    rng: Any, classes: dict[str, tuple[float, int]], bars: int
) -> Iterator[tuple[str, int, int, float, float]]:
    """Synthetic bars for the loop's golden tests: ``classes`` maps classification ->
    (edge, symbols). Yields (classification, symbol index, bar, price, direction) where the
    signal direction agrees with the next bar's return with probability 0.5 + edge. Draws
    from ``rng`` lazily, so a caller may draw more from it between bars."""
    import numpy as np

    for cls, (edge, count) in classes.items():
        for k in range(count):
            returns = rng.normal(0.0, 0.002, bars)
            price = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
            agree = rng.random(bars) < 0.5 + edge
            direction = np.where(agree, np.sign(returns), -np.sign(returns))
            for t in range(bars):
                yield cls, k, t, float(price[t]), float(direction[t])
