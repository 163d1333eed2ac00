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
