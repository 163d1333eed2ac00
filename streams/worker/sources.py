"""What the runner knows of each input partition: the offsets it has taken in (so a record
appended twice to the sequenced log is skipped), how far its event time has got, and whether
it is idle.

The watermark rule, as Flink's source idleness: a partition holds the event-time frontier at
its own latest event time until the sequencer declares it idle (caught up, nothing new for
the idle timeout: an idleness marker in the log). An idle partition does not hold it; one that
delivers again stops being idle. Being caught up at some instant is not enough: a partition
whose producer is merely slower than the others (a bulk load, a topic loaded after another,
a backfill) keeps holding, so nothing it delivers later is late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NO_TIME = -(2**62)


@dataclass(slots=True)
class SourceProgress:
    next_offset: int = 0
    max_event_ms: int = NO_TIME
    caught_up: bool = False
    idle: bool = False


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
        slot.caught_up = False
        if slot.idle:
            slot.idle = False
            self._frontier = None
        return True

    def saw_event(self, topic: str, partition: int, event_ms: int) -> None:
        slot = self.progress[(topic, partition)]
        previous = slot.max_event_ms
        if event_ms > previous:
            slot.max_event_ms = event_ms
            cached = self._frontier
            # raising a partition above the minimum leaves the minimum where it was
            if cached is not None and (previous <= cached or slot.idle):
                self._frontier = None

    def marker(self, topic: str, partition: int, position: int, end: int) -> None:
        slot = self.progress.get((topic, partition))
        if slot is None:
            slot = self.progress[(topic, partition)] = SourceProgress()
            self._frontier = None
        # a marker from before the records already taken says nothing new
        if position >= slot.next_offset:
            slot.caught_up = position >= end

    def mark_idle(self, topic: str, partition: int, position: int) -> None:
        """The sequencer found the partition idle at ``position``: it stops holding the
        frontier, unless a record at or after that position was taken already (the marker
        is then stale: the partition delivered again)."""
        slot = self.progress.get((topic, partition))
        if slot is None:
            slot = self.progress[(topic, partition)] = SourceProgress()
        if position >= slot.next_offset and not slot.idle:
            slot.idle = True
            slot.caught_up = True
            self._frontier = None

    def all_caught_up(self) -> bool:
        return all(slot.caught_up for slot in self.progress.values())

    def all_idle(self) -> bool:
        return all(slot.idle for slot in self.progress.values())

    def idle_count(self) -> int:
        return sum(1 for slot in self.progress.values() if slot.idle)

    def event_time_frontier(self) -> int:
        """The largest event time up to which every partition has delivered: the minimum of
        the partitions that are not idle, or the maximum of all when all are idle."""
        if self._frontier is not None:
            return self._frontier
        pending = [s.max_event_ms for s in self.progress.values() if not s.idle]
        if pending:
            frontier = min(pending)
        else:
            seen = [s.max_event_ms for s in self.progress.values()]
            frontier = max(seen) if seen else NO_TIME
        self._frontier = frontier
        return frontier

    def snapshot(self) -> list[list[Any]]:
        return [
            [topic, partition, s.next_offset, s.max_event_ms, s.caught_up, s.idle]
            for (topic, partition), s in sorted(self.progress.items())
        ]

    def restore(self, state: list[list[Any]]) -> None:
        # a checkpoint from before idleness markers has five fields: nothing idle yet
        self.progress = {
            (str(row[0]), int(row[1])): SourceProgress(
                int(row[2]), int(row[3]), bool(row[4]), bool(row[5]) if len(row) > 5 else False
            )
            for row in state
        }
        self._frontier = None
