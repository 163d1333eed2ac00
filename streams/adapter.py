"""Turning raw records into envelopes: the one decode path of both drivers.

A replay line is ``{"topic": str, "key": str|null, "timestamp_ms": int|null, "value": object}``;
a Kafka record is (topic, key bytes, value bytes). Either becomes an ``Envelope`` or a
``Rejected`` (a DecodeError plus what a dead letter needs). Nothing here raises on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from models.codec import DecodeError, decode_json, decode_obj
from models.common import MAX_NESTING, nesting_depth
from models.topics import INPUT_TOPICS
from processors.core.base import Envelope

UNKNOWN_TOPIC = "unknown"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot become an envelope, with everything its dead letter needs."""

    source_topic: str
    key: str | None
    raw: bytes | str
    error: DecodeError
    source: str


_VALIDATORS = {name: spec.model.__pydantic_validator__ for name, spec in INPUT_TOPICS.items()}
"""What ``Model.model_validate(value)`` calls, without its Python frame (the hot path)."""


def too_deep(raw: bytes, parsed: Any = None) -> DecodeError | None:
    """A ``too_deep`` error when the JSON value of ``raw`` (``parsed``, or parsed here when
    not given) nests deeper than ``MAX_NESTING``; None also when ``raw`` is not JSON (the
    decoder names that). Counting brackets in the bytes first keeps the usual record cheap:
    a value cannot nest deeper than it has brackets."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_NESTING:
        return None
    if parsed is None:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    depth = nesting_depth(parsed)
    if depth <= MAX_NESTING:
        return None
    return DecodeError("too_deep", f"value nests {depth} levels deep, at most {MAX_NESTING}")


def decode_line(line: bytes, source: str) -> Envelope | Rejected:
    """Decode one replay-file line (without its newline)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Rejected(UNKNOWN_TOPIC, None, line, DecodeError("json_invalid", str(exc)), source)
    deep = too_deep(line, record)
    if deep is not None:
        topic = record.get("topic") if isinstance(record, dict) else None
        return Rejected(
            topic if isinstance(topic, str) else UNKNOWN_TOPIC, None, line, deep, source
        )
    # The usual line, checked with exact types (orjson gives exact dict, str and int; bool is
    # not an int here); anything else, or a value that fails validation, takes the checks
    # below, which name the problem.
    if type(record) is dict:
        topic = record.get("topic")
        key = record.get("key")
        timestamp_ms = record.get("timestamp_ms")
        value = record.get("value")
        if (
            type(topic) is str
            and type(value) is dict
            and (key is None or type(key) is str)
            and (timestamp_ms is None or type(timestamp_ms) is int)
        ):
            validator = _VALIDATORS.get(topic)
            if validator is not None:
                try:
                    model = validator.validate_python(value)
                except ValidationError:
                    pass
                else:
                    return Envelope(topic, key, model, source, timestamp_ms, line)
    return _decode_record(line, record, source)


def _decode_record(line: bytes, record: Any, source: str) -> Envelope | Rejected:
    """The checks of a parsed line, in order, each with its own error."""
    if not isinstance(record, dict):
        return Rejected(
            UNKNOWN_TOPIC,
            None,
            line,
            DecodeError("envelope_invalid", "a replay line must be a JSON object"),
            source,
        )
    topic = record.get("topic")
    key = record.get("key")
    timestamp_ms = record.get("timestamp_ms")
    if not isinstance(topic, str) or not topic:
        return Rejected(
            UNKNOWN_TOPIC,
            None,
            line,
            DecodeError("envelope_invalid", "'topic' must be a non-empty string", "topic"),
            source,
        )
    if key is not None and not isinstance(key, str):
        return Rejected(
            topic,
            None,
            line,
            DecodeError("envelope_invalid", "'key' must be a string or null", "key"),
            source,
        )
    if timestamp_ms is not None and (
        not isinstance(timestamp_ms, int) or isinstance(timestamp_ms, bool)
    ):
        return Rejected(
            topic,
            key,
            line,
            DecodeError(
                "envelope_invalid", "'timestamp_ms' must be an integer or null", "timestamp_ms"
            ),
            source,
        )
    if "value" not in record:
        return Rejected(
            topic,
            key,
            line,
            DecodeError("envelope_invalid", "'value' is missing", "value"),
            source,
        )
    spec = INPUT_TOPICS.get(topic)
    value = record["value"]
    if spec is None:
        return Rejected(
            topic,
            key,
            _value_text(value, line),
            DecodeError("unknown_topic", f"unknown input topic {topic[:64]!r}"),
            source,
        )
    decoded = decode_obj(spec.model, value)
    if isinstance(decoded, DecodeError):
        return Rejected(topic, key, _value_text(value, line), decoded, source)
    return Envelope(topic, key, decoded, source, timestamp_ms, line)  # type: ignore[arg-type]


def decode_record(
    topic: str, key: bytes | None, value: bytes, source: str, timestamp_ms: int | None = None
) -> Envelope | Rejected:
    """Decode one Kafka record of an input topic (``topic`` without the deployment prefix)."""
    key_text = key.decode("utf-8", errors="replace") if key is not None else None
    spec = INPUT_TOPICS.get(topic)
    if spec is None:
        return Rejected(
            topic,
            key_text,
            value,
            DecodeError("unknown_topic", f"unknown input topic {topic!r}"),
            source,
        )
    deep = too_deep(value)
    if deep is not None:
        return Rejected(topic, key_text, value, deep, source)
    decoded = decode_json(spec.model, value)
    if isinstance(decoded, DecodeError):
        return Rejected(topic, key_text, value, decoded, source)
    return Envelope(topic, key_text, decoded, source, timestamp_ms)  # type: ignore[arg-type]


def record_value_bytes(value: object) -> bytes:
    """The bytes a replay line's value is sent as on Kafka (``policyloop produce``)."""
    return orjson.dumps(value)


def _value_text(value: object, line: bytes) -> bytes:
    """The value as it would be sent, or the whole line when it cannot be re-encoded."""
    try:
        return record_value_bytes(value)
    except orjson.JSONEncodeError:
        return line
