"""The stand-down book's timelines: event tuples, the fold, and the evidence text.

Pure functions and types shared by ``stand_down_book`` (see its docstring for the
semantics): a scope's timeline is a sorted list of ``TimelineEvent`` and its state at a
time is the ``fold`` of the events up to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from models.common import EPOCH, format_utc
from models.taxonomy import StandDownAction

START, EXTEND, CLEAR = 0, 1, 2
ACTION_RANK = {
    StandDownAction.START: START,
    StandDownAction.EXTEND: EXTEND,
    StandDownAction.CLEAR: CLEAR,
}

ScopeKey = tuple[str | None, str | None]
# (ts_ms, action rank, event_id, until_ms (0 for clear), reason, source)
TimelineEvent = tuple[int, int, str, int, str, str]
# (since_ms, until_ms, reason, source, event_id)
InForce = tuple[int, int, str, str, str]
# (until_ms, reason, source) of what a decision reports
Reported = tuple[int, str, str]
# (bar_ms, event_id, seq, bar_ts, strategy_id, symbol, target_weight_final, reported)
Pending = tuple[int, str, int, datetime, str, str, float, Reported | None]


def fold(events: list[TimelineEvent], upto_ms: int) -> InForce | None:
    """The stand-down left by the events with ts <= upto_ms (it may have expired since)."""
    state: InForce | None = None
    for ts, rank, event_id, until, reason, source in events:
        if ts > upto_ms:
            break
        if rank == CLEAR:
            state = None
        elif rank == EXTEND and state is not None and state[1] > ts:
            state = (state[0], until, reason, source, event_id)
        else:  # a start, or an extend with nothing in force: starts one
            state = (ts, until, reason, source, event_id)
    return state


def in_force_at(events: list[TimelineEvent], bar_ms: int) -> InForce | None:
    """The stand-down of one scope covering bar_ms, if any."""
    state = fold(events, bar_ms)
    return state if state is not None and bar_ms < state[1] else None


def time_text(value_ms: int) -> str:
    return format_utc(EPOCH + timedelta(milliseconds=value_ms))


def in_force_evidence(scope: ScopeKey, state: InForce) -> dict[str, Any]:
    since, until, reason, source, event_id = state
    return {
        "scope": {"strategy_id": scope[0], "symbol": scope[1]},
        "since_ts": time_text(since),
        "until_ts": time_text(until),
        "reason": reason,
        "source": source,
        "event_id": event_id,
    }


def scope_sort(key: ScopeKey) -> tuple[bool, str, bool, str]:
    return (key[0] is not None, key[0] or "", key[1] is not None, key[1] or "")
