"""The alert router: turns AlertSignals of every detector and audit into Alert outputs.

Severity policy (the detector's suggestion is clamped to the kind's [floor, ceiling], then
raised by the rules):
- stand_down_violation, emergency_exit_violation: high; critical when the same dedup_key
  occurred ``repeat_count`` times within ``repeat_window_ms`` (event time);
- covariate / concept / calibration / performance drift: medium; high when the signal's
  (family-adjusted) p_value < ``high_p_value`` or its evidence shows a large effect
  (``large_effect``: kind, evidence key, level);
- replan_churn: medium; high when repeated as above;
- data_quality: the suggestion within [low, medium]; medium when repeated.

Dedup and rate limit, by event time, per dedup_key: the first signal is emitted at once
(count 1) and opens a window of ``rate_limit_ms``; further signals of the key in the window
are folded (counted, the latest evidence kept, the highest severity kept). When the window
closes (``on_tick`` with a watermark >= its end, or the key's next signal after its end), one
alert carrying ``count`` = folded occurrences is emitted if any were folded; its id, scope
and event time are those of the first folded occurrence, its evidence that of the last, plus
``folded_first_event_time`` / ``folded_last_event_time``. ``flush`` emits every pending
fold (end of a replay).

Fleet budget: at most ``max_alerts_per_hour`` alerts per event-time hour (floor of
event_time to the hour; a signal older than the current budget hour is charged to it). A
signal over budget is folded into its key's window (opening one if needed); a fold that
cannot be emitted at window close for lack of budget waits another ``rate_limit_ms``.
``flush`` ignores the budget. Nothing is dropped: every occurrence ends up in some alert's
count.

alert_id = first 32 hex of sha256(dedup_key | event-time ms of the occurrence | source_id).
Bounded state: one window per key with pending folds, repeat times of the last
``repeat_window_ms`` per key.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import ValidationError

from models.common import MAX_ENTRIES, MAX_STR, format_utc, to_ms
from models.outputs import Alert, AlertScope
from models.taxonomy import DRIFT_KINDS, AlertKind, Severity
from models.topics import ALERTS
from processors.core import metric_names as mn
from processors.core.base import (
    DAY_MS,
    HOUR_MS,
    AlertSignal,
    MetricSample,
    Output,
    check_state_version,
)
from processors.core.config_checks import NON_NEGATIVE, OPEN_UNIT, POSITIVE, at_least, check_bounds

STATE_VERSION = 1
K = AlertKind
S = Severity
SEVERITY_BOUNDS: dict[AlertKind, tuple[Severity, Severity]] = {
    K.STAND_DOWN_VIOLATION: (S.HIGH, S.CRITICAL),
    K.EMERGENCY_EXIT_VIOLATION: (S.HIGH, S.CRITICAL),
    K.REPLAN_CHURN: (S.MEDIUM, S.HIGH),
    K.DATA_QUALITY: (S.LOW, S.MEDIUM),
    **dict.fromkeys(DRIFT_KINDS, (S.MEDIUM, S.HIGH)),
}
REPEAT_SEVERITY: dict[AlertKind, Severity] = {
    K.STAND_DOWN_VIOLATION: S.CRITICAL,
    K.EMERGENCY_EXIT_VIOLATION: S.CRITICAL,
    K.REPLAN_CHURN: S.HIGH,
    K.DATA_QUALITY: S.MEDIUM,
}
RECOMMENDED_ACTIONS: dict[AlertKind, tuple[str, ...]] = {
    K.COVARIATE_DRIFT: (
        "check the feature pipeline and data source for the feature (units, missing values)",
        "compare the feature's recent distribution with the training data of the strategy",
        "reduce trust for the strategy|classification until the model is revalidated",
    ),
    K.CONCEPT_DRIFT: (
        "review the strategy's recent errors against the regime and market conditions",
        "reduce trust for the strategy|classification until retrained or revalidated",
        "retrain or refit the model on recent labelled decisions",
    ),
    K.CALIBRATION_DRIFT: (
        "recalibrate p_hat (isotonic/Platt) on the last window",
        "reduce trust for the strategy|classification until recalibrated",
        "check the label definition and horizon used for the outcomes",
    ),
    K.PERFORMANCE_DRIFT: (
        "review the strategy's recent round trips, fees and slippage",
        "reduce the strategy's base weight or trust until performance recovers",
        "consider disabling the strategy|classification if the drop persists",
    ),
    K.REPLAN_CHURN: (
        "inspect the strategy's recent plans for oscillating triggers or limits",
        "raise the replan hysteresis or minimum interval between replans",
    ),
    K.STAND_DOWN_VIOLATION: (
        "flatten the position opened during the stand-down",
        "check that the trigger engine reads the active stand-down before sizing",
        "escalate to risk if the violation repeats",
    ),
    K.EMERGENCY_EXIT_VIOLATION: (
        "verify the position is flat or the same-bar veto is recorded",
        "check that the execution path sets cooldown_recommendation_bars and block_events",
        "escalate to risk if the violation repeats",
    ),
    K.DATA_QUALITY: (
        "check the producer of the record for missing or inconsistent fields",
        "compare the record with the policyloop state it contradicts",
    ),
}


@dataclass(frozen=True)
class AlertRouterConfig:
    """Router policy (module docstring). Defaults: 1 hour rate limit per key, 100 alerts per
    event-time hour for the fleet, critical after 3 repeats within a day, drift high below an
    adjusted p of 1e-6 or at a large effect."""

    rate_limit_ms: int = HOUR_MS
    max_alerts_per_hour: int = 100
    repeat_count: int = 3
    repeat_window_ms: int = DAY_MS
    high_p_value: float = 1e-6
    large_effect: tuple[tuple[str, str, float], ...] = (
        ("covariate_drift", "psi", 0.25),
        ("concept_drift", "error_rate_increase", 0.15),
        ("calibration_drift", "ece", 0.10),
        ("performance_drift", "effect_size", 1.0),
    )

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {
                "rate_limit_ms": NON_NEGATIVE,
                "max_alerts_per_hour": at_least(1),
                "repeat_count": at_least(1),
                "repeat_window_ms": POSITIVE,
                "high_p_value": OPEN_UNIT,
            },
        )


class _Window:
    __slots__ = ("close_ms", "first", "folded", "last", "severity")

    def __init__(self, close_ms: int) -> None:
        self.close_ms = close_ms
        self.folded = 0
        self.first: AlertSignal | None = None
        self.last: AlertSignal | None = None
        self.severity = S.INFO

    def fold(self, signal: AlertSignal, severity: Severity) -> None:
        self.folded += 1
        if self.first is None:
            self.first = signal
        self.last = signal
        if severity.rank > self.severity.rank:
            self.severity = severity


def alert_id(dedup_key: str, event_ms: int, source_id: str) -> str:
    text = f"{dedup_key}\x1f{event_ms}\x1f{source_id}".encode()
    return hashlib.sha256(text).hexdigest()[:32]


def _clean(value: Any) -> Any:
    """JSON-valid evidence: plain numbers (numpy scalars unwrapped, non-finite floats None),
    bounded string keys, lists for tuples, text for anything else."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k)[:MAX_STR] or "_": _clean(v) for k, v in list(value.items())[:MAX_ENTRIES]}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        return _clean(value.item())
    return str(value)


def _bounded_key(key: str) -> str:
    if 0 < len(key) <= MAX_STR:
        return key
    return f"{key[:200]}#{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class AlertRouter:
    """Severity, dedup, event-time rate limit, folding and the fleet budget."""

    takes: ClassVar[Mapping[type, str]] = {}
    timers: ClassVar[bool] = True

    def __init__(self, config: AlertRouterConfig | None = None) -> None:
        self.config = config or AlertRouterConfig()
        self._effects = {kind: (key, level) for kind, key, level in self.config.large_effect}
        self._windows: dict[str, _Window] = {}
        self._closes: list[tuple[int, str]] = []
        self._repeats: dict[str, deque[int]] = {}
        self._budget_hour = -(2**62)
        self._budget_used = 0
        self._next_sweep_ms = -(2**62)
        self._emitted: dict[tuple[str, str], int] = {}
        self.folded_total = 0
        self.budget_folded = 0

    def route(self, signals: list[AlertSignal]) -> list[Output]:
        out: list[Output] = []
        for signal in signals:
            self._route_one(signal, out)
        return out

    def on_tick(self, watermark_ms: int) -> list[Output]:
        out: list[Output] = []
        closes = self._closes
        if (not closes or closes[0][0] > watermark_ms) and watermark_ms < self._next_sweep_ms:
            return out  # nothing due: the usual case
        while closes and closes[0][0] <= watermark_ms:
            close_ms, key = heapq.heappop(closes)
            window = self._windows.get(key)
            if window is not None and window.close_ms == close_ms:
                self._close(key, window, False, out)
        if watermark_ms >= self._next_sweep_ms:
            self._next_sweep_ms = watermark_ms + HOUR_MS
            horizon = watermark_ms - self.config.repeat_window_ms
            stale = [key for key, times in self._repeats.items() if times[-1] < horizon]
            for key in stale:
                del self._repeats[key]
        return out

    def flush(self) -> list[Output]:
        """Emit every pending fold, budget or not (end of a finite input)."""
        out: list[Output] = []
        for close_ms, key in sorted(self._closes):
            window = self._windows.get(key)
            if window is not None and window.close_ms == close_ms:
                self._close(key, window, True, out)
        self._closes = []
        return out

    def _route_one(self, signal: AlertSignal, out: list[Output]) -> None:
        t = to_ms(signal.event_time)
        key = _bounded_key(signal.dedup_key)
        severity = self._severity(signal, key, t)
        window = self._windows.get(key)
        if window is not None and t >= window.close_ms:
            self._close(key, window, False, out)
            window = self._windows.get(key)
        if window is not None:
            window.fold(signal, severity)
            self.folded_total += 1
            return
        window = self._windows[key] = _Window(t + self.config.rate_limit_ms)
        heapq.heappush(self._closes, (window.close_ms, key))
        if self._spend(t):
            out.append(self._alert(key, signal, signal, severity, 1, False))
        else:
            window.fold(signal, severity)
            self.folded_total += 1
            self.budget_folded += 1

    def _close(self, key: str, window: _Window, force: bool, out: list[Output]) -> None:
        if window.folded == 0 or window.first is None or window.last is None:
            del self._windows[key]
            return
        if force or self._spend(window.close_ms):
            del self._windows[key]
            out.append(
                self._alert(key, window.first, window.last, window.severity, window.folded, True)
            )
            return
        window.close_ms += self.config.rate_limit_ms
        heapq.heappush(self._closes, (window.close_ms, key))

    def _spend(self, t: int) -> bool:
        hour = t // HOUR_MS
        if hour > self._budget_hour:
            self._budget_hour = hour
            self._budget_used = 0
        if self._budget_used >= self.config.max_alerts_per_hour:
            return False
        self._budget_used += 1
        return True

    def _severity(self, signal: AlertSignal, key: str, t: int) -> Severity:
        cfg = self.config
        floor, ceiling = SEVERITY_BOUNDS.get(signal.kind, (S.LOW, S.HIGH))
        rank = min(max(signal.severity.rank, floor.rank), ceiling.rank)
        history = self._repeats.get(key)
        if history is None:
            history = self._repeats[key] = deque(maxlen=cfg.repeat_count)
        history.append(t)
        repeated = len(history) >= cfg.repeat_count and t - history[0] < cfg.repeat_window_ms
        if repeated and signal.kind in REPEAT_SEVERITY:
            rank = max(rank, REPEAT_SEVERITY[signal.kind].rank)
        if signal.kind in DRIFT_KINDS:
            large = False
            effect = self._effects.get(signal.kind.value)
            if effect is not None:
                value = signal.evidence.get(effect[0])
                large = isinstance(value, int | float) and abs(value) >= effect[1]
            if large or (signal.p_value is not None and signal.p_value < cfg.high_p_value):
                rank = max(rank, S.HIGH.rank)
        rank = min(rank, ceiling.rank)
        return next(s for s in Severity if s.rank == rank)

    def _alert(
        self,
        key: str,
        first: AlertSignal,
        last: AlertSignal,
        severity: Severity,
        count: int,
        folded: bool,
    ) -> Output:
        evidence = _clean(dict(last.evidence))
        if last.p_value is not None and "p_value" not in evidence:
            evidence["p_value"] = _clean(last.p_value)
        if folded:
            evidence["folded_first_event_time"] = format_utc(first.event_time)
            evidence["folded_last_event_time"] = format_utc(last.event_time)
        fields: dict[str, Any] = {
            "alert_id": alert_id(key, to_ms(first.event_time), first.source_id),
            "kind": first.kind,
            "severity": severity,
            "scope": first.scope,
            "event_time": first.event_time,
            "evidence": evidence,
            "recommended_actions": list(RECOMMENDED_ACTIONS.get(first.kind, ())),
            "dedup_key": key,
            "count": count,
        }
        try:
            alert = Alert(**fields)
        except ValidationError as exc:
            fields["evidence"] = {"invalid_evidence": str(exc)[:MAX_STR]}
            alert = Alert(**fields)
        slot = (first.kind.value, severity.value)
        self._emitted[slot] = self._emitted.get(slot, 0) + 1
        return Output(ALERTS, key, alert)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: alerts emitted by kind and severity, folded occurrences, open windows."""
        return {
            "emitted": {f"{k}|{s}": n for (k, s), n in sorted(self._emitted.items())},
            "folded": self.folded_total,
            "budget_folded": self.budget_folded,
            "open_windows": len(self._windows),
        }

    def metrics(self) -> list[MetricSample]:
        return [
            MetricSample(mn.ALERTS_TOTAL, (("kind", k), ("severity", s)), float(n))
            for (k, s), n in sorted(self._emitted.items())
        ]

    def snapshot(self) -> dict[str, Any]:
        windows = [
            [key, w.close_ms, w.folded, w.severity.value, dump_signal(w.first), dump_signal(w.last)]
            for key, w in self._windows.items()
        ]
        return {
            "version": STATE_VERSION,
            "windows": windows,
            "closes": [list(item) for item in self._closes],
            "repeats": [[key, list(times)] for key, times in self._repeats.items()],
            "budget": [self._budget_hour, self._budget_used, self._next_sweep_ms],
            "emitted": [[k, s, n] for (k, s), n in sorted(self._emitted.items())],
            "folded": [self.folded_total, self.budget_folded],
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_state_version(state, STATE_VERSION, "AlertRouter")
        self._windows = {}
        for key, close_ms, folded, severity, first, last in state["windows"]:
            window = _Window(int(close_ms))
            window.folded = int(folded)
            window.severity = Severity(severity)
            window.first, window.last = load_signal(first), load_signal(last)
            self._windows[str(key)] = window
        self._closes = [(int(t), str(k)) for t, k in state["closes"]]
        heapq.heapify(self._closes)
        self._repeats = {
            str(key): deque((int(t) for t in times), maxlen=self.config.repeat_count)
            for key, times in state["repeats"]
        }
        self._budget_hour, self._budget_used, self._next_sweep_ms = (
            int(v) for v in state["budget"]
        )
        self._emitted = {(str(k), str(s)): int(n) for k, s, n in state["emitted"]}
        self.folded_total, self.budget_folded = (int(v) for v in state["folded"])


def dump_signal(s: AlertSignal | None) -> list[Any] | None:
    if s is None:
        return None
    scope = s.scope.model_dump(exclude_none=True)
    return [
        s.kind.value,
        s.severity.value,
        scope,
        format_utc(s.event_time),
        _clean(dict(s.evidence)),
        s.dedup_key,
        s.source_id,
        _clean(s.p_value),
    ]


def load_signal(data: list[Any] | None) -> AlertSignal | None:
    if data is None:
        return None
    kind, severity, scope, event_time, evidence, dedup_key, source_id, p_value = data
    return AlertSignal(
        AlertKind(kind),
        Severity(severity),
        AlertScope(**scope),
        datetime.fromisoformat(event_time),
        dict(evidence),
        str(dedup_key),
        str(source_id),
        None if p_value is None else float(p_value),
    )
