"""Shared field types and the base model of every contract payload.

Common rules of the contract, enforced here once:
- timestamps are RFC 3339 and timezone-aware (a naive time is invalid); they are normalised to
  UTC and written back as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``;
- floats must be finite (NaN and infinities are rejected);
- strings are non-empty and at most 256 characters unless a field says otherwise;
- maps and lists hold at most 256 entries;
- input payloads ignore unknown fields, so that a producer on a newer minor version of the
  contract (which may only add optional fields) is still understood.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)

MAX_STR = 256
MAX_ENTRIES = 256
MAX_EVENT_ID = 128
MAX_NESTING = 64
"""How deep arrays and objects may nest in an input value. orjson reads 1,024 levels but
writes about 254, so a deeper value could be accepted and then fail to re-encode (in a dead
letter, a checkpoint or an output); such a record is a dead letter (``too_deep``) instead."""


def clip_text(text: str, limit: int, empty: str = "") -> str:
    """``text`` cut to at most ``limit`` characters (with a trailing ``...`` when cut), or
    ``empty`` when it is empty: what the dead-letter path puts into length-limited fields,
    so that building the dead letter cannot fail."""
    if not text:
        return empty
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..." if limit > 3 else text[:limit]


def nesting_depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed JSON value (a scalar is 0, ``{}`` 1)."""
    depth = 0
    level = [value] if isinstance(value, dict | list) else []
    while level:
        depth += 1
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below.extend(child for child in children if isinstance(child, dict | list))
        level = below
    return depth


_ZERO = timedelta(0)


def _to_utc(value: datetime) -> datetime:
    # pydantic gives "Z" times a zero-offset tzinfo already; converting those is wasted work
    return value if value.utcoffset() == _ZERO else value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix; the only time format policyloop writes."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
"""A timezone-aware time, normalised to UTC; a naive time fails validation."""

EventId = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_ID)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_STR)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]
FloatMap = Annotated[dict[Name, float], Field(max_length=MAX_ENTRIES)]
JsonObject = Annotated[dict[Name, Any], Field(max_length=MAX_ENTRIES)]


class ContractModel(BaseModel):
    """Base of every payload: frozen, finite floats, bounded non-empty strings."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,
        str_min_length=1,
        str_max_length=MAX_STR,
        use_enum_values=False,
        validate_default=False,
    )


class OutputModel(ContractModel):
    """Base of the payloads policyloop writes: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def utc_from_ms(timestamp_ms: int) -> datetime:
    """The UTC time of a Kafka-style millisecond timestamp."""
    return datetime.fromtimestamp(timestamp_ms / 1000.0, tz=UTC)


def to_ms(value: datetime) -> int:
    """Milliseconds since the epoch of an aware time (floor; exact for millisecond times)."""
    offset = value.utcoffset()
    if offset is None:  # naive: the same TypeError as aware arithmetic with a naive time
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    # From the fields: arithmetic between datetimes with different tzinfo objects calls
    # both tzinfos (pydantic gives every parsed time its own) and costs ~3x as much.
    seconds = (value.toordinal() - _EPOCH_ORDINAL) * 86_400
    seconds += (value.hour * 60 + value.minute) * 60 + value.second
    if not offset:
        return seconds * 1000 + value.microsecond // 1000
    micros = seconds * 1_000_000 + value.microsecond
    micros -= (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds
    return micros // 1000


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = EPOCH.toordinal()
