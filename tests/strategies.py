"""Hypothesis strategies that build valid contract payloads (as JSON-ready dicts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from models import taxonomy as tx

names = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=("Cs",)),
    min_size=1,
    max_size=20,
)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
positive = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
nonneg = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
prob = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)


@st.composite
def aware_times(draw: st.DrawFn) -> str:
    base = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)))
    return base.replace(tzinfo=UTC).astimezone(draw(offsets)).isoformat()


float_maps = st.dictionaries(names, finite, max_size=6)


def enum_values(enum: type[Any]) -> st.SearchStrategy[str]:
    return st.sampled_from([member.value for member in enum])


@st.composite
def decision_records(draw: st.DrawFn) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": draw(ids),
        "run_id": draw(names),
        "mode": draw(enum_values(tx.Mode)),
        "strategy_id": draw(names),
        "symbol": draw(names),
        "classification": draw(names),
        "regime": draw(names),
        "timeframe": draw(names),
        "bar_ts": draw(aware_times()),
        "price": draw(positive),
        "p_hat": draw(prob),
        "vol_hat": draw(nonneg),
        "features": draw(float_maps),
        "current_weight": draw(finite),
        "equity": draw(positive),
        "target_weight_raw": draw(finite),
        "target_weight_final": draw(finite),
        "reasons": draw(st.lists(enum_values(tx.ReasonCode), max_size=4)),
        "block_events": draw(st.lists(enum_values(tx.BlockEvent), max_size=3)),
        "policy_version": draw(names),
    }
    if draw(st.booleans()):
        value["confidence"] = draw(prob)
        value["horizon_bars"] = draw(st.integers(1, 1000))
        value["cooldown_recommendation_bars"] = draw(st.integers(0, 100))
    if draw(st.booleans()):
        value["stand_down"] = {
            "until_ts": draw(aware_times()),
            "reason": draw(names),
            "source": draw(enum_values(tx.StandDownSource)),
        }
    if draw(st.booleans()):
        value["exit_intent"] = {"emergency": draw(st.booleans()), "reason": draw(names)}
    return value


@st.composite
def execution_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(enum_values(tx.FillKind))
    value: dict[str, Any] = {
        "event_id": draw(ids),
        "kind": kind,
        "order_id": draw(names),
        "strategy_id": draw(names),
        "symbol": draw(names),
        "classification": draw(names),
        "side": draw(enum_values(tx.Side)),
        "qty": draw(positive),
        "ts": draw(aware_times()),
        "fee": draw(nonneg),
    }
    if kind == "fill" or draw(st.booleans()):
        value["price"] = draw(positive)
    if draw(st.booleans()):
        value["decision_id"] = draw(ids)
        value["liquidity"] = draw(enum_values(tx.Liquidity))
        value["exit_reason"] = draw(enum_values(tx.ExitReason))
    return value


@st.composite
def stand_down_events(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(enum_values(tx.StandDownAction))
    start = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1)))
    start = start.replace(tzinfo=UTC)
    scope: dict[str, str] = {}
    if draw(st.booleans()):
        scope["strategy_id"] = draw(names)
        if draw(st.booleans()):
            scope["symbol"] = draw(names)
    value: dict[str, Any] = {
        "event_id": draw(ids),
        "ts": start.isoformat(),
        "action": action,
        "scope": scope,
        "reason": draw(names),
        "source": draw(enum_values(tx.StandDownSource)),
    }
    if action != "clear":
        value["until_ts"] = (start + timedelta(minutes=draw(st.integers(1, 10_000)))).isoformat()
    return value


scalars = st.one_of(
    st.booleans(), st.integers(-(10**6), 10**6), finite, st.text(max_size=10), st.none()
)


@st.composite
def plan_events(draw: st.DrawFn) -> dict[str, Any]:
    triggers = [
        {"trigger_id": tid, "params": draw(st.dictionaries(names, scalars, max_size=4))}
        for tid in draw(st.lists(names, max_size=5, unique=True))
    ]
    return {
        "event_id": draw(ids),
        "plan_id": draw(names),
        "strategy_id": draw(names),
        "ts": draw(aware_times()),
        "triggers": triggers,
        "risk_limits": draw(float_maps),
        "policy_version": draw(names),
        "narration": draw(st.text(max_size=50)),
        "metadata": draw(
            st.dictionaries(names, st.one_of(finite, names, st.booleans()), max_size=3)
        ),
    }


@st.composite
def outcomes(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(ids),
        "decision_id": draw(ids),
        "strategy_id": draw(names),
        "symbol": draw(names),
        "bar_ts": draw(aware_times()),
        "horizon_bars": draw(st.integers(1, 500)),
        "label": draw(st.sampled_from([0, 1])),
        "realized_return": draw(finite),
        "label_ts": draw(aware_times()),
        "label_definition": draw(names),
    }


@st.composite
def policy_configs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "version": draw(names),
        "created_at": draw(aware_times()),
        "engine": {
            "k": draw(st.floats(0.01, 10)),
            "tau": draw(st.floats(0, 0.9)),
            "vol_target": draw(st.floats(0.001, 1)),
            "max_abs_weight": draw(st.floats(0.01, 10)),
            "epsilon_w": draw(st.floats(0, 1)),
            "min_trade_notional": draw(nonneg),
            "cooldown_bars": draw(st.integers(0, 10)),
        },
        "base_weights": draw(float_maps),
        "trust": draw(float_maps),
        "regime_multipliers": draw(float_maps),
        "disabled": draw(st.lists(names, max_size=4)),
    }
