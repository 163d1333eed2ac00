"""Malformed replay lines, one builder per kind, each made from a real decision as template.

Every kind fails somewhere between JSON parsing and model validation:
- not JSON at all: ``not_json`` (a truncated line), ``non_finite`` (a raw ``NaN`` token);
- JSON, but not a replay record: ``not_an_object``, ``missing_topic``, ``missing_value``,
  ``unknown_topic``, ``value_not_object``;
- a record whose value fails its model: ``missing_field``, ``naive_timestamp``,
  ``p_hat_out_of_range``, ``negative_price``, ``string_too_long``, ``wrong_enum``,
  ``fill_without_price``, ``until_missing`` (a stand-down start without until_ts),
  ``label_out_of_range`` (an outcome labelled 2).
Malformed values carry event ids ``bad-<n>`` that no good record uses.
"""

from __future__ import annotations

from typing import Any

import orjson

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "non_finite",
    "not_an_object",
    "missing_topic",
    "missing_value",
    "unknown_topic",
    "value_not_object",
    "missing_field",
    "naive_timestamp",
    "p_hat_out_of_range",
    "negative_price",
    "string_too_long",
    "wrong_enum",
    "fill_without_price",
    "until_missing",
    "label_out_of_range",
)
ENVELOPE_KINDS = frozenset(
    {
        "not_json",
        "non_finite",
        "not_an_object",
        "missing_topic",
        "missing_value",
        "unknown_topic",
        "value_not_object",
    }
)
_NAN_SENTINEL = "__nan__"


def malformed_line(kind: str, decision: dict[str, Any], timestamp_ms: int, n: int) -> bytes:
    """One malformed line of ``kind`` built from a decision value (not mutated)."""
    value: dict[str, Any] = {**decision, "event_id": f"bad-{n:05d}"}
    topic = "bar_decisions"
    key = decision["symbol"]
    if kind == "missing_field":
        del value["p_hat"]
    elif kind == "naive_timestamp":
        value["bar_ts"] = value["bar_ts"].rstrip("Z")
    elif kind == "p_hat_out_of_range":
        value["p_hat"] = 1.25
    elif kind == "negative_price":
        value["price"] = -abs(value["price"])
    elif kind == "string_too_long":
        value["run_id"] = "r" * 300
    elif kind == "wrong_enum":
        value["mode"] = "production"
    elif kind == "non_finite":
        value["p_hat"] = _NAN_SENTINEL
    elif kind == "fill_without_price":
        topic, value = "fills", _fill_without_price(decision, n)
    elif kind == "until_missing":
        topic, key, value = "stand_down", "*", _start_without_until(decision, n)
    elif kind == "label_out_of_range":
        topic, value = "outcomes", _outcome(decision, n, label=2)
    envelope: dict[str, Any] = {
        "topic": topic,
        "key": key,
        "timestamp_ms": timestamp_ms,
        "value": value,
    }
    if kind == "missing_topic":
        del envelope["topic"]
    elif kind == "missing_value":
        del envelope["value"]
    elif kind == "unknown_topic":
        envelope["topic"] = "bar_decision"
    elif kind == "value_not_object":
        envelope["value"] = f"p_hat={decision['p_hat']}"
    elif kind == "not_an_object":
        return orjson.dumps([topic, key, timestamp_ms])
    line = orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)
    if kind == "non_finite":
        return line.replace(f'"{_NAN_SENTINEL}"'.encode(), b"NaN")
    if kind == "not_json":
        return line[: len(line) * 2 // 3]
    return line


def _fill_without_price(decision: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "event_id": f"bad-{n:05d}",
        "kind": "fill",
        "order_id": f"bad-order-{n:05d}",
        "strategy_id": decision["strategy_id"],
        "symbol": decision["symbol"],
        "classification": decision["classification"],
        "side": "buy",
        "qty": 10.0,
        "ts": decision["bar_ts"],
    }


def _start_without_until(decision: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "event_id": f"bad-{n:05d}",
        "ts": decision["bar_ts"],
        "action": "start",
        "scope": {},
        "reason": "ops_maintenance",
        "source": "ops",
    }


def _outcome(decision: dict[str, Any], n: int, label: int) -> dict[str, Any]:
    return {
        "event_id": f"bad-{n:05d}",
        "decision_id": decision["event_id"],
        "strategy_id": decision["strategy_id"],
        "symbol": decision["symbol"],
        "bar_ts": decision["bar_ts"],
        "horizon_bars": 4,
        "label": label,
        "realized_return": 0.01,
        "label_ts": decision["bar_ts"],
        "label_definition": "fwd_return_4bars_gt_0",
    }


def conflicting_copy(topic: str, value: dict[str, Any]) -> dict[str, Any] | None:
    """A valid record with the same event_id and different content, or None if the topic has
    no conflicting variant (only decisions and outcomes get one)."""
    if topic == "bar_decisions":
        p_hat = round(1.0 - float(value["p_hat"]), 4)
        return {**value, "p_hat": p_hat, "policy_version": "v0-conflict"}
    if topic == "outcomes":
        return {
            **value,
            "label": 1 - int(value["label"]),
            "realized_return": -float(value["realized_return"]),
        }
    return None
