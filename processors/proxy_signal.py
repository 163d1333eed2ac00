"""The Phase-1 proxy p_hat: ``p_hat = 0.5 * (tanh(k * zscore(momentum)) + 1)``.

A rule-based p_hat for strategies without a model of their own (and the baseline any model
must beat): ``MomentumZScore`` keeps, per key (e.g. ``strategy_id|symbol``), the last
``window`` momentum values and returns the z-score of each new value, and ``proxy_p_hat``
maps a z-score to a probability. p_hat is 0.5 at z = 0, tends to 1 (0) for large positive
(negative) z, and ``k`` (``EngineParams.k``) sets how fast.

z-score of a new value x against the window *including* x (the pandas ``rolling`` convention):
``z = (x - mean) / sd`` with the sample standard deviation (ddof = 1). Until a key has
``min_periods`` values, or when the window has (numerically) no spread, z is 0 (p_hat 0.5:
no signal). A non-finite momentum is not added and gives z = 0.

The window's mean and sum of squared deviations are kept by a sliding Welford update
(O(1) per value); they are recomputed exactly from the buffer every ``window`` replacements
so that rounding never accumulates. Memory: ``window`` floats per key.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from processors.core.base import MetricSample

STATE_VERSION = 1


def proxy_p_hat(z: float, k: float) -> float:
    """``0.5 * (tanh(k * z) + 1)``; 0.5 for a non-finite z."""
    if not math.isfinite(z):
        return 0.5
    return 0.5 * (math.tanh(k * z) + 1.0)


@dataclass(frozen=True, slots=True)
class MomentumZScoreConfig:
    """``window``: momentum values kept per key (default 96: one day of 15-minute bars);
    ``min_periods``: values needed before a z-score is given (default 20, at least 2)."""

    window: int = 96
    min_periods: int = 20


class _Window:
    """The last values of one key with their running mean and sum of squared deviations."""

    __slots__ = ("m2", "mean", "since_refresh", "values")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.mean = 0.0
        self.m2 = 0.0
        self.since_refresh = 0

    def push(self, x: float) -> None:
        values = self.values
        if len(values) < (values.maxlen or 0):
            values.append(x)
            n = len(values)
            delta = x - self.mean
            self.mean += delta / n
            self.m2 += delta * (x - self.mean)
            return
        oldest = values[0]
        values.append(x)
        old_mean = self.mean
        self.mean = old_mean + (x - oldest) / len(values)
        self.m2 += (x - oldest) * (x - self.mean + oldest - old_mean)
        self.since_refresh += 1
        if self.since_refresh >= len(values):
            self.refresh()

    def refresh(self) -> None:
        n = len(self.values)
        self.since_refresh = 0
        if n == 0:
            self.mean = self.m2 = 0.0
            return
        mean = math.fsum(self.values) / n
        self.mean = mean
        self.m2 = math.fsum((v - mean) * (v - mean) for v in self.values)


class MomentumZScore:
    """Rolling z-score of momentum per key; see the module docstring."""

    def __init__(self, config: MomentumZScoreConfig | None = None) -> None:
        self.config = config or MomentumZScoreConfig()
        self._window_size = max(2, self.config.window)
        self._min_periods = max(2, self.config.min_periods)
        self._windows: dict[str, _Window] = {}

    def update(self, key: str, momentum: float) -> float:
        """Add ``momentum`` to the key's window and return its z-score (0 while warming up)."""
        if not math.isfinite(momentum):
            return 0.0
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(self._window_size)
        window.push(momentum)
        n = len(window.values)
        if n < self._min_periods:
            return 0.0
        variance = window.m2 / (n - 1)
        if variance <= 0.0:
            return 0.0
        sd = math.sqrt(variance)
        if sd <= 1e-12 * max(1.0, abs(window.mean)):
            return 0.0
        return (momentum - window.mean) / sd

    def p_hat(self, key: str, momentum: float, k: float) -> float:
        """``proxy_p_hat(update(key, momentum), k)``."""
        return proxy_p_hat(self.update(key, momentum), k)

    def __len__(self) -> int:
        """Keys with a window."""
        return len(self._windows)

    def metrics(self) -> list[MetricSample]:
        return []

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "windows": {
                key: {
                    "values": list(w.values),
                    "mean": w.mean,
                    "m2": w.m2,
                    "since_refresh": w.since_refresh,
                }
                for key, w in sorted(self._windows.items())
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._windows = {}
        for key, saved in dict(state.get("windows", {})).items():
            window = _Window(self._window_size)
            window.values.extend(float(v) for v in saved.get("values", []))
            window.mean = float(saved.get("mean", 0.0))
            window.m2 = float(saved.get("m2", 0.0))
            window.since_refresh = int(saved.get("since_refresh", 0))
            if len(window.values) < len(saved.get("values", [])):
                window.refresh()  # saved with a larger window: recompute for the kept values
            self._windows[str(key)] = window
