"""Every payload round-trips through the canonical codec, and encoding is canonical."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from pydantic import BaseModel
from strategies import (
    decision_records,
    execution_events,
    outcomes,
    plan_events,
    policy_configs,
    stand_down_events,
)

from models.codec import decode_json, encode
from models.inputs import DecisionRecord, ExecutionEvent, Outcome, PlanEvent, StandDownEvent
from models.outputs import PolicyUpdate
from models.policy import PolicyConfig


def _roundtrip(model: type[BaseModel], value: dict[str, Any]) -> None:
    first = model.model_validate(value)
    encoded = encode(first)
    again = decode_json(model, encoded)
    assert isinstance(again, model), again
    assert again == first
    assert encode(again) == encoded
    # canonical: keys sorted at every level, no whitespace
    assert encoded == orjson.dumps(orjson.loads(encoded), option=orjson.OPT_SORT_KEYS)


@settings(max_examples=60)
@given(decision_records())
def test_decision_record_roundtrip(value: dict[str, Any]) -> None:
    _roundtrip(DecisionRecord, value)


@settings(max_examples=60)
@given(execution_events())
def test_execution_event_roundtrip(value: dict[str, Any]) -> None:
    _roundtrip(ExecutionEvent, value)


@settings(max_examples=60)
@given(stand_down_events())
def test_stand_down_event_roundtrip(value: dict[str, Any]) -> None:
    _roundtrip(StandDownEvent, value)


@settings(max_examples=60)
@given(plan_events())
def test_plan_event_roundtrip(value: dict[str, Any]) -> None:
    _roundtrip(PlanEvent, value)


@settings(max_examples=60)
@given(outcomes())
def test_outcome_roundtrip(value: dict[str, Any]) -> None:
    _roundtrip(Outcome, value)


@settings(max_examples=60)
@given(policy_configs())
def test_policy_config_and_update_roundtrip(value: dict[str, Any]) -> None:
    _roundtrip(PolicyConfig, value)
    update = {
        "version": value["version"],
        "previous_version": None,
        "promoted_at": value["created_at"],
        "policy": value,
    }
    _roundtrip(PolicyUpdate, update)


@given(decision_records())
def test_times_are_normalised_to_utc(value: dict[str, Any]) -> None:
    record = DecisionRecord.model_validate(value)
    assert record.bar_ts.utcoffset() is not None
    assert record.bar_ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert orjson.loads(encode(record))["bar_ts"].endswith("Z")
