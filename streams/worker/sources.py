"""What the runner knows of each input partition: the offsets it has taken in (so a record
appended twice to the sequenced log is skipped) and how far its event time has got (so the
watermark never passes a partition that still has records to deliver)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NO_TIME = -(2**62)


@dataclass(slots=True)
class SourceProgress:
    next_offset: int = 0
    max_event_ms: int = NO_TIME
    caught_up: bool = False


class Sources:
    """Progress per (topic, partition) of the input topics."""

    def __init__(self, partitions: dict[str, list[int]] | None = None) -> None:
        self.progress: dict[tuple[str, int], SourceProgress] = {}
        for topic, ids in (partitions or {}).items():
            for partition in ids:
                self.progress[(topic, partition)] = SourceProgress()
        # event_time_frontier(), cached: every record would otherwise scan all partitions.
        # None = recompute; a change that may move it clears it.
        self._frontier: int | None = None

    def add_known(self, known: Sources) -> None:
        """Take over the progress of ``known`` (a restored checkpoint's) for its partitions."""
        self.progress.update(known.progress)
        self._frontier = None

    def take(self, topic: str, partition: int, offset: int) -> bool:
        """True if this record is new (not a re-append); records it as taken."""
        slot = self.progress.get((topic, partition))
        if slot is None:
            slot = self.progress[(topic, partition)] = SourceProgress()
            self._frontier = None
        if offset < slot.next_offset:
            return False
        slot.next_offset = offset + 1
        if slot.caught_up:
            slot.caught_up = False
            self._frontier = None
        return True

    def saw_event(self, topic: str, partition: int, event_ms: int) -> None:
        slot = self.progress[(topic, partition)]
        previous = slot.max_event_ms
        if event_ms > previous:
            slot.max_event_ms = event_ms
            cached = self._frontier
            # raising a partition above the minimum leaves the minimum where it was
            if cached is not None and (previous <= cached or slot.caught_up):
                self._frontier = None

    def marker(self, topic: str, partition: int, position: int, end: int) -> None:
        slot = self.progress.get((topic, partition))
        if slot is None:
            slot = self.progress[(topic, partition)] = SourceProgress()
            self._frontier = None
        # a marker from before the records already taken says nothing new
        if position >= slot.next_offset and slot.caught_up != (position >= end):
            slot.caught_up = position >= end
            self._frontier = None

    def all_caught_up(self) -> bool:
        return all(slot.caught_up for slot in self.progress.values())

    def event_time_frontier(self) -> int:
        """The largest event time up to which every partition has delivered: the minimum of
        the partitions that may still deliver, or the maximum of all when none may."""
        if self._frontier is not None:
            return self._frontier
        pending = [s.max_event_ms for s in self.progress.values() if not s.caught_up]
        if pending:
            frontier = min(pending)
        else:
            seen = [s.max_event_ms for s in self.progress.values()]
            frontier = max(seen) if seen else NO_TIME
        self._frontier = frontier
        return frontier

    def snapshot(self) -> list[list[Any]]:
        return [
            [topic, partition, s.next_offset, s.max_event_ms, s.caught_up]
            for (topic, partition), s in sorted(self.progress.items())
        ]

    def restore(self, state: list[list[Any]]) -> None:
        self.progress = {
            (str(t), int(p)): SourceProgress(int(o), int(m), bool(c)) for t, p, o, m, c in state
        }
        self._frontier = None
