"""Range checks for the processors' configurations.

A configuration dataclass calls ``check_bounds(self, {...})`` in ``__post_init__``; a value
outside its bound (or NaN, or not a number) raises ``ValueError`` naming the class, the
field, the allowed range and the value, e.g. ``DedupConfig.ttl_ms must be > 0, got -1``.
Fields that are None (optional) are not checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bound:
    """An interval: ``low`` / ``high`` (None: unbounded), each closed unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts) if parts else "a number"


def at_least(low: float) -> Bound:
    return Bound(low=low)


def above(low: float) -> Bound:
    return Bound(low=low, low_open=True)


def between(low: float, high: float) -> Bound:
    return Bound(low=low, high=high)


POSITIVE = above(0)
NON_NEGATIVE = at_least(0)
OPEN_UNIT = Bound(0, 1, low_open=True, high_open=True)
"""A probability strictly between 0 and 1 (a level, a fraction held out)."""
UNIT = between(0, 1)


def check_bounds(config: object, bounds: Mapping[str, Bound]) -> None:
    """Raise ``ValueError`` for the first field of ``config`` outside its bound."""
    owner = type(config).__name__
    for name, bound in bounds.items():
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{owner}.{name} must be a number, got {value!r}")
        if not bound.holds(float(value)):
            raise ValueError(f"{owner}.{name} must be {bound.describe()}, got {value!r}")
