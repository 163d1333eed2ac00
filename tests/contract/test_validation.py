"""Each kind of invalid input is rejected with the failing field named."""

from __future__ import annotations

from typing import Any

import pytest

from models.codec import DecodeError, decode_json, decode_obj
from models.inputs import DecisionRecord, ExecutionEvent, Outcome, PlanEvent, StandDownEvent


def decision(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": "d-1",
        "run_id": "r",
        "mode": "live",
        "strategy_id": "momo",
        "symbol": "AAA",
        "classification": "small_cap",
        "regime": "trend",
        "timeframe": "15m",
        "bar_ts": "2026-01-05T00:15:00Z",
        "price": 10.0,
        "p_hat": 0.6,
        "vol_hat": 0.01,
        "features": {"momentum": 0.5},
        "current_weight": 0.0,
        "equity": 1e5,
        "target_weight_raw": 0.1,
        "target_weight_final": 0.1,
        "reasons": ["signal_entry"],
        "block_events": [],
        "policy_version": "v0",
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not ...}


def test_valid_decision_decodes() -> None:
    assert isinstance(decode_obj(DecisionRecord, decision()), DecisionRecord)


@pytest.mark.parametrize(
    ("changes", "field", "error_type"),
    [
        ({"symbol": ...}, "symbol", "missing"),
        ({"bar_ts": "2026-01-05T00:15:00"}, "bar_ts", "timezone_aware"),
        ({"bar_ts": "yesterday"}, "bar_ts", "datetime_from_date_parsing"),
        ({"p_hat": 1.5}, "p_hat", "less_than_equal"),
        ({"p_hat": -0.1}, "p_hat", "greater_than_equal"),
        ({"price": -1.0}, "price", "greater_than"),
        ({"price": 0.0}, "price", "greater_than"),
        ({"equity": 0}, "equity", "greater_than"),
        ({"vol_hat": -0.5}, "vol_hat", "greater_than_equal"),
        ({"symbol": "x" * 257}, "symbol", "string_too_long"),
        ({"symbol": ""}, "symbol", "string_too_short"),
        ({"event_id": "e" * 129}, "event_id", "string_too_long"),
        ({"mode": "dreaming"}, "mode", "enum"),
        ({"reasons": ["because"]}, "reasons.0", "enum"),
        ({"block_events": ["nope"]}, "block_events.0", "enum"),
        ({"features": {f"f{i}": 1.0 for i in range(257)}}, "features", "too_long"),
        ({"features": {"momentum": "high"}}, "features.momentum", "float_parsing"),
        ({"confidence": 2.0}, "confidence", "less_than_equal"),
        ({"horizon_bars": 0}, "horizon_bars", "greater_than_equal"),
        (
            {"cooldown_recommendation_bars": -1},
            "cooldown_recommendation_bars",
            "greater_than_equal",
        ),
        (
            {"stand_down": {"until_ts": "2026-01-05T01:00:00Z", "reason": "x", "source": "boss"}},
            "stand_down.source",
            "enum",
        ),
    ],
)
def test_invalid_decision_names_field(changes: dict[str, Any], field: str, error_type: str) -> None:
    result = decode_obj(DecisionRecord, decision(**changes))
    assert isinstance(result, DecodeError)
    assert result.field == field
    assert result.type == error_type
    assert result.message


def test_non_finite_floats_are_rejected() -> None:
    for bad in ("NaN", "Infinity", "-Infinity"):
        result = decode_obj(
            DecisionRecord, decision(current_weight=float(bad.lower().replace("infinity", "inf")))
        )
        assert isinstance(result, DecodeError)
        assert result.field == "current_weight"
        assert result.type == "finite_number"
    result = decode_obj(DecisionRecord, decision(features={"momentum": float("nan")}))
    assert isinstance(result, DecodeError) and result.field == "features.momentum"


def test_not_json_and_not_an_object() -> None:
    not_json = decode_json(DecisionRecord, b"{nope")
    assert isinstance(not_json, DecodeError) and not_json.type == "json_invalid"
    array = decode_json(DecisionRecord, b"[1, 2]")
    assert isinstance(array, DecodeError) and array.type == "not_an_object"
    assert isinstance(decode_obj(DecisionRecord, [1]), DecodeError)


def fill(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": "f-1",
        "kind": "fill",
        "order_id": "o-1",
        "strategy_id": "momo",
        "symbol": "AAA",
        "classification": "small_cap",
        "side": "buy",
        "qty": 10.0,
        "ts": "2026-01-05T00:15:05Z",
        "price": 10.0,
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not ...}


def test_fill_rules() -> None:
    assert isinstance(decode_obj(ExecutionEvent, fill()), ExecutionEvent)
    assert isinstance(decode_obj(ExecutionEvent, fill(kind="cancel", price=...)), ExecutionEvent)
    no_price = decode_obj(ExecutionEvent, fill(price=...))
    assert isinstance(no_price, DecodeError) and "price is required" in no_price.message
    negative_fee = decode_obj(ExecutionEvent, fill(fee=-1.0))
    assert isinstance(negative_fee, DecodeError) and negative_fee.field == "fee"
    zero_qty = decode_obj(ExecutionEvent, fill(qty=0))
    assert isinstance(zero_qty, DecodeError) and zero_qty.field == "qty"
    bad_side = decode_obj(ExecutionEvent, fill(side="hold"))
    assert isinstance(bad_side, DecodeError) and bad_side.field == "side"


def test_stand_down_rules() -> None:
    base = {
        "event_id": "s-1",
        "ts": "2026-01-05T00:00:00Z",
        "action": "start",
        "scope": {},
        "reason": "news",
        "source": "ops",
    }
    missing_until = decode_obj(StandDownEvent, base)
    assert (
        isinstance(missing_until, DecodeError) and "until_ts is required" in missing_until.message
    )
    backwards = decode_obj(StandDownEvent, {**base, "until_ts": "2026-01-04T00:00:00Z"})
    assert isinstance(backwards, DecodeError) and "after ts" in backwards.message
    clear = decode_obj(StandDownEvent, {**base, "action": "clear"})
    assert isinstance(clear, StandDownEvent)
    bad_source = decode_obj(StandDownEvent, {**base, "action": "clear", "source": "intern"})
    assert isinstance(bad_source, DecodeError) and bad_source.field == "source"


def test_plan_narration_limit_and_outcome_label() -> None:
    plan = {
        "event_id": "p-1",
        "plan_id": "p",
        "strategy_id": "momo",
        "ts": "2026-01-05T00:00:00Z",
        "triggers": [],
        "risk_limits": {},
        "policy_version": "v0",
        "narration": "n" * (8 * 1024 + 1),
        "metadata": {},
    }
    long_narration = decode_obj(PlanEvent, plan)
    assert isinstance(long_narration, DecodeError) and long_narration.field == "narration"
    assert isinstance(decode_obj(PlanEvent, {**plan, "narration": "ok"}), PlanEvent)
    outcome = {
        "event_id": "o-1",
        "decision_id": "d-1",
        "strategy_id": "momo",
        "symbol": "AAA",
        "bar_ts": "2026-01-05T00:00:00Z",
        "horizon_bars": 4,
        "label": 2,
        "realized_return": 0.01,
        "label_ts": "2026-01-05T01:00:00Z",
        "label_definition": "fwd",
    }
    bad_label = decode_obj(Outcome, outcome)
    assert isinstance(bad_label, DecodeError) and bad_label.field == "label"
