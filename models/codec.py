"""The canonical codec: orjson with sorted keys out, a model or a typed error in.

``encode`` is canonical: the same model always gives the same bytes (sorted keys, UTC times
with a ``Z``, no whitespace). ``decode`` never raises on bad input: it returns a
``DecodeError`` that names the failing field, ready for a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from models.common import MAX_STR, clip_text
from models.outputs import MESSAGE_MAX

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a record could not become a model.

    ``type`` is one of ``json_invalid`` (not JSON), ``not_an_object`` (JSON but not an
    object), ``unknown_topic``, ``envelope_invalid`` (a replay line of the wrong shape),
    ``too_large``, or a pydantic error type (``missing``, ``greater_than``,
    ``timezone_aware``, ``finite_number``, ...). ``field`` is the dotted path of the
    failing field, when there is one.
    """

    type: str
    message: str
    field: str | None = None


def encode(model: BaseModel) -> bytes:
    """Canonical JSON bytes of a model (sorted keys)."""
    return orjson.dumps(model.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def encode_obj(obj: Any) -> bytes:
    """Canonical JSON bytes of plain data (sorted keys)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def error_from_validation(exc: ValidationError) -> DecodeError:
    """The first error of a pydantic ValidationError, with its field path."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    field = clip_text(".".join(str(part) for part in first["loc"]), MAX_STR) or None
    message = str(first["msg"])
    if len(errors) > 1:
        message = f"{message} (and {len(errors) - 1} more errors)"
    if first["type"] == "json_invalid":
        return DecodeError("json_invalid", message[:MESSAGE_MAX], None)
    if first["type"] == "model_type":
        return DecodeError("not_an_object", "payload is not a JSON object", None)
    return DecodeError(first["type"], message[:MESSAGE_MAX], field)


def decode_json(model: type[ModelT], raw: bytes | str) -> ModelT | DecodeError:
    """Validate raw JSON text as ``model``; a DecodeError instead of an exception."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        return error_from_validation(exc)


def decode_obj(model: type[ModelT], value: Any) -> ModelT | DecodeError:
    """Validate an already parsed JSON value as ``model``."""
    if not isinstance(value, dict):
        return DecodeError("not_an_object", "payload is not a JSON object", None)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        return error_from_validation(exc)
