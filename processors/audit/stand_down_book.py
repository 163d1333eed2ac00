"""The stand-down book: stand-downs per scope as event-time timelines, and the decision audit.

Semantics (CONTRACT.md ``stand_down``; event time decides, not arrival order):
- A scope is (strategy_id, symbol), a missing field meaning all: all (None, None), strategy
  (s, None), strategy + symbol (s, y) and symbol-only (None, y). A decision (s, y) is covered
  by the four scopes that match it.
- Each scope keeps the stand-down events it received as a timeline sorted by
  (ts, action start < extend < clear, event_id). The state at bar_ts is the fold of the events
  with ts <= bar_ts:
  ``start`` replaces whatever the scope had (since = ts, until_ts, reason, source);
  ``extend`` moves until_ts (later or earlier) and takes the extend's reason and source when a
  stand-down is in force at its ts; an extend when none is in force (never started, expired
  or cleared) starts one at the extend's ts (ops who extend a stand-down that just ran out
  mean "stand down until until_ts"; the gap between the expiry and the extend is not covered);
  ``clear`` at c ends it. The fold result covers bar_ts when bar_ts < until_ts, so a
  stand-down covers ts <= bar_ts < until_ts and a clear at c ends it for bar_ts >= c.
- When several scopes are in force for one decision, the one that ends last is reported
  (ties: the most specific: strategy + symbol, strategy, symbol, all).
- Times are compared at millisecond precision.

Audit (``on_decision`` buffers a small tuple, ``on_tick(watermark_ms)`` audits every buffered
decision with bar_ts <= watermark - allowed_lateness_ms, in (bar_ts, event_id) order, so a
stand-down event that arrives up to allowed_lateness_ms late still counts; ``flush`` audits
everything left, at the end of a replay). Per decision, both may apply:
- in force and ``target_weight_final`` not 0 (|w| > zero_weight_tolerance):
  ``stand_down_violation`` (high);
- in force and the decision's ``stand_down`` is None: ``data_quality`` (medium), "decision
  omits the active stand-down";
- not in force and the decision carries ``stand_down``: ``data_quality`` (low), "decision
  reports a stand-down the book does not know". A decision that reports a different until_ts,
  reason or source than the book's is not flagged.

Bounded state: after each tick, every timeline's events with ts <= watermark -
allowed_lateness_ms - history_ms are folded into at most one synthetic ``start`` (only when
still in force); empty scopes are dropped. So the book holds, per scope, the stand-down in
force plus the events of the last ``history_ms + allowed_lateness_ms`` of event time, and
the decision buffer holds the decisions of the last ``allowed_lateness_ms``. A decision
older than that horizon is audited against the compacted timeline (exact as long as it is
within ``history_ms`` of the horizon); a stand-down event later than that is inserted into
the compacted timeline as it is.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from models.common import format_utc, to_ms
from models.inputs import DecisionRecord, StandDownEvent
from models.outputs import AlertScope
from models.taxonomy import AlertKind, Severity
from processors.audit.stand_down_timeline import (
    ACTION_RANK,
    START,
    InForce,
    Pending,
    ScopeKey,
    TimelineEvent,
    fold,
    in_force_at,
    in_force_evidence,
    scope_sort,
    time_text,
)
from processors.core import metric_names as mn
from processors.core.base import (
    DAY_MS,
    EMPTY,
    AlertSignal,
    Emitted,
    MetricSample,
    check_state_version,
)
from processors.core.config_checks import NON_NEGATIVE, check_bounds

STATE_VERSION = 1
NEVER = 2**62
MISSING_TEXT = "decision omits the active stand-down"
UNKNOWN_TEXT = "decision reports a stand-down the book does not know"
# a decision queued without a heap entry: (bar_ms, seq, decision); see on_decision
Quiet = tuple[int, int, DecisionRecord]


@dataclass(frozen=True, slots=True)
class StandDownConfig:
    """``allowed_lateness_ms``: how long a decision waits before its audit, so that late
    stand-down events still count (default 15 min). ``history_ms``: event time kept in the
    timelines before the audit horizon, for decisions that arrive late (default 1 day).
    ``zero_weight_tolerance``: |target_weight_final| at most this is "0" (default exactly 0).
    Severities: the suggested severity of each signal."""

    allowed_lateness_ms: int = 15 * 60 * 1000
    history_ms: int = DAY_MS
    zero_weight_tolerance: float = 0.0
    violation_severity: Severity = Severity.HIGH
    missing_severity: Severity = Severity.MEDIUM
    unknown_severity: Severity = Severity.LOW

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {
                "allowed_lateness_ms": NON_NEGATIVE,
                "history_ms": NON_NEGATIVE,
                "zero_weight_tolerance": NON_NEGATIVE,
            },
        )


class StandDownBook:
    """Stand-downs per scope, and the delayed audit of every decision against them."""

    takes: ClassVar[Mapping[type, str]] = {
        StandDownEvent: "on_stand_down",
        DecisionRecord: "on_decision",
    }
    timers: ClassVar[bool] = True

    def __init__(self, config: StandDownConfig | None = None) -> None:
        self.config = config or StandDownConfig()
        self._scopes: dict[ScopeKey, list[TimelineEvent]] = {}
        self._pending: list[Pending] = []
        self._quiet: deque[Quiet] = deque()
        self._seq = 0
        self._watermark_ms: int | None = None
        self._compact_due_ms = NEVER  # derived from _scopes (see _next_compaction)

    # -- inputs ------------------------------------------------------------------------------

    def on_stand_down(self, event: StandDownEvent, ts_ms: int | None = None) -> Emitted:
        """Insert the event into its scope's timeline (a repeat of the same event is ignored).
        ``ts_ms``: the event's ts in ms, when the caller has it already."""
        until = 0 if event.until_ts is None else to_ms(event.until_ts)
        item: TimelineEvent = (
            to_ms(event.ts) if ts_ms is None else ts_ms,
            ACTION_RANK[event.action],
            event.event_id,
            until,
            event.reason,
            event.source.value,
        )
        key = (event.scope.strategy_id, event.scope.symbol)
        events = self._scopes.get(key)
        if events is None:
            self._scopes[key] = [item]
        else:
            at = bisect_left(events, item)
            if at == len(events) or events[at] != item:
                events.insert(at, item)
        self._compact_due_ms = self._next_compaction()
        if self._quiet:
            self._requeue_quiet()
        return EMPTY

    def on_decision(self, decision: DecisionRecord, bar_ms: int | None = None) -> Emitted:
        """Buffer what the audit of ``decision`` needs; the audit runs in ``on_tick``.
        ``bar_ms``: the decision's bar_ts in ms, when the caller has it already.

        The usual decision reports no stand-down and none is in force for it: its audit
        finds nothing unless a stand-down event arrives first (compaction keeps what is in
        force after its prune time, which stays behind a waiting decision's bar). Such a
        decision waits in a plain queue (in bar_ts order) instead of the audit heap; a
        stand-down event moves the queue into the heap, and a tick drops what is due."""
        if bar_ms is None:
            bar_ms = to_ms(decision.bar_ts)
        self._seq += 1
        if decision.stand_down is None and (
            not self._scopes or self.in_force(decision.strategy_id, decision.symbol, bar_ms) is None
        ):
            quiet = self._quiet
            if not quiet or quiet[-1][0] <= bar_ms:
                quiet.append((bar_ms, self._seq, decision))
                return EMPTY
        heapq.heappush(self._pending, _pending(decision, bar_ms, self._seq))
        return EMPTY

    def _requeue_quiet(self) -> None:
        """Move the quiet queue into the audit heap (a stand-down event arrived)."""
        for bar_ms, seq, decision in self._quiet:
            heapq.heappush(self._pending, _pending(decision, bar_ms, seq))
        self._quiet.clear()

    def on_tick(self, watermark_ms: int) -> Emitted:
        """Audit the decisions with bar_ts <= watermark_ms - allowed_lateness_ms; compact."""
        if self._watermark_ms is None or watermark_ms > self._watermark_ms:
            self._watermark_ms = watermark_ms
        horizon = watermark_ms - self.config.allowed_lateness_ms
        quiet = self._quiet
        while quiet and quiet[0][0] <= horizon:
            quiet.popleft()  # its audit would find nothing (see on_decision)
        pending = self._pending
        emitted = EMPTY
        if pending and pending[0][0] <= horizon:
            emitted = Emitted()
            while pending and pending[0][0] <= horizon:
                self._audit(heapq.heappop(pending), emitted)
        prune_ms = horizon - self.config.history_ms
        if prune_ms >= self._compact_due_ms:  # else _compact would change nothing
            self._compact(prune_ms)
        return emitted

    def flush(self) -> Emitted:
        """Audit every buffered decision (end of a finite input)."""
        emitted = Emitted()
        self._quiet.clear()
        pending = self._pending
        while pending:
            self._audit(heapq.heappop(pending), emitted)
        return emitted

    # -- audit -------------------------------------------------------------------------------

    def in_force(
        self, strategy_id: str, symbol: str, bar_ms: int
    ) -> tuple[ScopeKey, InForce] | None:
        """The stand-down covering (strategy_id, symbol) at bar_ms, with its scope, if any."""
        if not self._scopes:
            return None
        best: tuple[ScopeKey, InForce] | None = None
        for key in ((strategy_id, symbol), (strategy_id, None), (None, symbol), (None, None)):
            events = self._scopes.get(key)
            if events is None:
                continue
            state = in_force_at(events, bar_ms)
            if state is not None and (best is None or state[1] > best[1][1]):
                best = (key, state)
        return best

    def _audit(self, item: Pending, emitted: Emitted) -> None:
        bar_ms, event_id, _, bar_ts, strategy_id, symbol, weight, reported = item
        found = self.in_force(strategy_id, symbol, bar_ms)
        if found is None and reported is None:
            return  # the common case: nothing in force, nothing reported
        cfg = self.config

        def signal(kind: AlertKind, severity: Severity, label: str, **extra: Any) -> AlertSignal:
            evidence = {
                **extra,
                "decision_event_id": event_id,
                "strategy_id": strategy_id,
                "symbol": symbol,
                "bar_ts": format_utc(bar_ts),
                "target_weight_final": weight,
            }
            if found is not None:
                evidence["stand_down"] = in_force_evidence(*found)
            return AlertSignal(
                kind=kind,
                severity=severity,
                scope=AlertScope(strategy_id=strategy_id, symbol=symbol),
                event_time=bar_ts,
                evidence=evidence,
                dedup_key=f"{label}|{strategy_id}|{symbol}",
                source_id=event_id,
            )

        signals = emitted.signals
        if found is None:
            if reported is not None:
                until, reason, source = reported
                shown = {"until_ts": time_text(until), "reason": reason, "source": source}
                signals.append(
                    signal(
                        AlertKind.DATA_QUALITY,
                        cfg.unknown_severity,
                        "data_quality|stand_down_unknown",
                        problem=UNKNOWN_TEXT,
                        reported_stand_down=shown,
                    )
                )
            return
        if abs(weight) > cfg.zero_weight_tolerance:
            signals.append(
                signal(
                    AlertKind.STAND_DOWN_VIOLATION, cfg.violation_severity, "stand_down_violation"
                )
            )
        if reported is None:
            signals.append(
                signal(
                    AlertKind.DATA_QUALITY,
                    cfg.missing_severity,
                    "data_quality|stand_down_missing",
                    problem=MISSING_TEXT,
                )
            )

    def _next_compaction(self) -> int:
        """The smallest prune time at which ``_compact`` would change a timeline: a scope
        whose first event is a ``start`` with nothing else at or before the prune time folds
        into that same ``start`` until it expires or the next event is reached; any other
        scope changes once the prune time reaches its first event."""
        due = NEVER
        for events in self._scopes.values():
            first = events[0]
            if first[1] == START:
                at = first[3] if len(events) == 1 else min(first[3], events[1][0])
            else:
                at = first[0]
            if at < due:
                due = at
        return due

    def _compact(self, prune_ms: int) -> None:
        self._compact_scopes(prune_ms)
        self._compact_due_ms = self._next_compaction()

    def _compact_scopes(self, prune_ms: int) -> None:
        for key in [k for k, events in self._scopes.items() if events[0][0] <= prune_ms]:
            events = self._scopes[key]
            cut = bisect_right(events, prune_ms, key=lambda event: event[0])
            state = fold(events, prune_ms)
            rest = events[cut:]
            if state is not None and state[1] > prune_ms:
                since, until, reason, source, event_id = state
                rest.insert(0, (since, START, event_id, until, reason, source))
            if rest:
                self._scopes[key] = rest
            else:
                del self._scopes[key]

    # -- reads -------------------------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return len(self._pending) + len(self._quiet)

    def active_scope_count(self) -> int:
        """Scopes with a stand-down in force at the watermark (0 before the first tick)."""
        return len(self.active_scopes())

    def active_scopes(self) -> set[ScopeKey]:
        """The scopes with a stand-down in force at the watermark (none before the first
        tick)."""
        if self._watermark_ms is None:
            return set()
        at = self._watermark_ms
        return {key for key, events in self._scopes.items() if in_force_at(events, at) is not None}

    def metrics(self) -> list[MetricSample]:
        return [MetricSample(mn.STAND_DOWNS_ACTIVE, (), float(self.active_scope_count()))]

    # -- state -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "watermark_ms": self._watermark_ms,
            "seq": self._seq,
            "scopes": [
                [key[0], key[1], [list(event) for event in self._scopes[key]]]
                for key in sorted(self._scopes, key=scope_sort)
            ],
            "pending": [
                [
                    bar_ms,
                    event_id,
                    seq,
                    format_utc(bar_ts),
                    strategy_id,
                    symbol,
                    weight,
                    None if reported is None else list(reported),
                ]
                for bar_ms, event_id, seq, bar_ts, strategy_id, symbol, weight, reported in sorted(
                    self._pending + [_pending(d, b, q) for b, q, d in self._quiet]
                )
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_state_version(state, STATE_VERSION, "StandDownBook")
        watermark = state.get("watermark_ms")
        self._watermark_ms = None if watermark is None else int(watermark)
        self._seq = int(state.get("seq", 0))
        self._scopes = {
            (strategy_id, symbol): [
                (int(ts), int(rank), str(eid), int(until), str(reason), str(source))
                for ts, rank, eid, until, reason, source in events
            ]
            for strategy_id, symbol, events in state.get("scopes", [])
        }
        pending: list[Pending] = [
            (
                int(bar_ms),
                str(event_id),
                int(seq),
                datetime.fromisoformat(bar_ts),
                str(strategy_id),
                str(symbol),
                float(weight),
                None
                if reported is None
                else (int(reported[0]), str(reported[1]), str(reported[2])),
            )
            for bar_ms, event_id, seq, bar_ts, strategy_id, symbol, weight, reported in state.get(
                "pending", []
            )
        ]
        heapq.heapify(pending)
        self._pending = pending
        self._quiet = deque()
        self._compact_due_ms = self._next_compaction()


def _pending(decision: DecisionRecord, bar_ms: int, seq: int) -> Pending:
    info = decision.stand_down
    reported = None if info is None else (to_ms(info.until_ts), info.reason, info.source.value)
    return (
        bar_ms,
        decision.event_id,
        seq,
        decision.bar_ts,
        decision.strategy_id,
        decision.symbol,
        decision.target_weight_final,
        reported,
    )
