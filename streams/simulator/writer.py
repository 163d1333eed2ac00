"""The replay file writer: arrival order, envelopes, and the injected faults with line numbers.

Records are written in arrival order: ``push`` queues a record by (arrival_ms, rank, seq) and
``flush_before`` writes every queued record that arrives before a point; ``write`` writes one
at once (the caller guarantees order). Ranks break ties at one millisecond: stand-downs, then
plans, then decisions, then fills, then outcomes.

Faults are placed by the ordinal of good records (known in advance up to ``expected_good``):
malformed lines go just before a decision (built from it), exact duplicates right after their
original or some lines later, conflicting duplicates (same event_id, other content) some lines
later. Line numbers are 1-based.
"""

from __future__ import annotations

import heapq
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import orjson

from models.topics import TOPIC_RANK
from streams.simulator.config import UniformStream, rng_for
from streams.simulator.faults import MALFORMED_KINDS, conflicting_copy, malformed_line

DUPLICATE_KINDS = ("exact_now", "exact_later", "conflicting")
WRITE_BUFFER = 1 << 20
SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE

_Queued = tuple[int, int, int, str, str | None, int, dict[str, Any], bool]
_Later = tuple[int, int, bytes, str, str, str, int]


class ReplayWriter:
    """Writes ``path``; ``truth()`` describes malformed lines, duplicates and counts."""

    def __init__(
        self,
        path: Path,
        seed: int,
        expected_good: int,
        malformed_per_kind: int,
        duplicate_rate: float,
    ) -> None:
        # Lines go straight to a buffered file: keeping many fresh bytes objects alive costs
        # far more (allocation of new memory) than the encoding itself.
        self._file: BinaryIO = path.open("wb", buffering=WRITE_BUFFER)
        self._queue: list[_Queued] = []
        self._later: list[_Later] = []
        self._seq = 0
        self.line = 0
        self._good = 0
        self._counts: Counter[str] = Counter()
        self._malformed: list[dict[str, Any]] = []
        self._duplicates: list[dict[str, Any]] = []
        self._pending_conflicts = 0
        draw = UniformStream(rng_for(seed, 5), chunk=4096)
        self._draw = draw
        span = max(1, expected_good)
        warm = min(span - 1, span // 50)
        kinds = [k for k in MALFORMED_KINDS for _ in range(malformed_per_kind)]
        self._malformed_at = sorted((draw.integer(warm, span), k) for k in kinds)
        self._malformed_next = 0
        per_kind = max(2, round(duplicate_rate * span / len(DUPLICATE_KINDS)))
        self._duplicate_at: dict[int, str] = {}
        for kind in DUPLICATE_KINDS:
            for _ in range(per_kind):
                self._duplicate_at.setdefault(draw.integer(warm, span), kind)

    def __enter__(self) -> ReplayWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def push(
        self,
        arrival_ms: int,
        topic: str,
        key: str | None,
        event_ms: int,
        value: dict[str, Any],
        sort_keys: bool = True,
    ) -> None:
        """Queue a record that arrives at ``arrival_ms``."""
        self._seq += 1
        item = (arrival_ms, TOPIC_RANK[topic], self._seq, topic, key, event_ms, value, sort_keys)
        heapq.heappush(self._queue, item)

    def flush_before(self, arrival_ms: int, topic: str) -> None:
        """Write queued records arriving before (arrival_ms, rank of topic)."""
        point = (arrival_ms, TOPIC_RANK[topic])
        queue = self._queue
        while queue and (queue[0][0], queue[0][1]) < point:
            _, _, _, topic_, key, event_ms, value, sort_keys = heapq.heappop(queue)
            self.write(topic_, key, event_ms, value, sort_keys)

    def write(
        self,
        topic: str,
        key: str | None,
        event_ms: int,
        value: dict[str, Any],
        sort_keys: bool = True,
    ) -> None:
        """Write a good record now, with any faults scheduled at its ordinal."""
        ordinal = self._good
        if topic == "bar_decisions":
            at = self._malformed_at
            while self._malformed_next < len(at) and at[self._malformed_next][0] <= ordinal:
                kind = at[self._malformed_next][1]
                self._malformed_next += 1
                self._emit(malformed_line(kind, value, event_ms, self._malformed_next) + b"\n")
                self._malformed.append({"line": self.line, "kind": kind})
        envelope = {"topic": topic, "key": key, "timestamp_ms": event_ms, "value": value}
        raw = orjson.dumps(envelope, option=SORTED if sort_keys else orjson.OPT_APPEND_NEWLINE)
        self._emit(raw)
        first_line = self.line
        self._good += 1
        self._counts[topic] += 1
        event_id = value["event_id"]
        kind_ = self._duplicate_at.get(ordinal)
        if kind_ == "exact_now":
            self._emit(raw)
            self._note_duplicate("exact_now", topic, event_id, first_line)
        elif kind_ == "exact_later":
            self._schedule(raw, "exact_later", topic, event_id, first_line)
        elif kind_ == "conflicting":
            self._pending_conflicts += 1
        if self._pending_conflicts:
            copy = conflicting_copy(topic, value)
            if copy is not None:
                self._pending_conflicts -= 1
                envelope["value"] = copy
                conflict = orjson.dumps(envelope, option=SORTED)
                self._schedule(conflict, "conflicting", topic, event_id, first_line)
        while self._later and self._later[0][0] <= self.line:
            self._emit_later(heapq.heappop(self._later))

    def _schedule(self, raw: bytes, kind: str, topic: str, event_id: str, first: int) -> None:
        self._seq += 1
        due = self.line + self._draw.integer(20, 500)
        heapq.heappush(self._later, (due, self._seq, raw, kind, topic, event_id, first))

    def _emit_later(self, item: _Later) -> None:
        _, _, raw, kind, topic, event_id, first = item
        self._emit(raw)
        self._note_duplicate(kind, topic, event_id, first)

    def _note_duplicate(self, kind: str, topic: str, event_id: str, first_line: int) -> None:
        self._duplicates.append(
            {
                "line": self.line,
                "kind": kind,
                "topic": topic,
                "event_id": event_id,
                "first_line": first_line,
            }
        )

    def _emit(self, line: bytes) -> None:
        """Write one line (ending in a newline)."""
        self.line += 1
        self._file.write(line)

    def close(self) -> None:
        """Write everything still queued, then the late duplicates, and close the file."""
        if self._file.closed:
            return
        while self._queue:
            _, _, _, topic, key, event_ms, value, sort_keys = heapq.heappop(self._queue)
            self.write(topic, key, event_ms, value, sort_keys)
        while self._later:
            self._emit_later(heapq.heappop(self._later))
        self._file.close()

    def truth(self) -> dict[str, Any]:
        """Malformed lines, duplicate lines and counts of good unique records per topic."""
        return {
            "malformed": list(self._malformed),
            "duplicates": list(self._duplicates),
            "counts": {topic: self._counts[topic] for topic in sorted(self._counts)},
            "lines": self.line,
        }
