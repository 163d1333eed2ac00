"""Decision-time order for late labels: what concept drift feeds its series from.

Labels arrive in label order (an outcome's label_ts, a price label's due time); concept and
calibration drift are indexed by decision time (CONTRACT: "Concept drift is indexed by
decision time (bar_ts)"). ``DecisionTimeOrder`` holds labels until the watermark has passed
their bar_ts by ``delay_ms`` and releases them in (bar_ts, decision_id) order.
"""

from __future__ import annotations

import heapq
from typing import Any

from processors.drift.truth import Label


class DecisionTimeOrder:
    """Releases labels in decision-time order: (bar_ts, decision_id) once the watermark has
    passed bar_ts + ``delay_ms``. A label whose bar_ts was already released comes out at
    once (counted in ``late``). Holds the labels of the last ``delay_ms`` of decisions."""

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms
        self._heap: list[tuple[int, str, Label]] = []
        self._released_ms = -(2**62)
        self.late = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, labels: list[Label], watermark_ms: int) -> list[Label]:
        """Take new labels; return those ready, in order."""
        out: list[Label] = []
        heap = self._heap
        for label in labels:
            if label.bar_ms <= self._released_ms:
                self.late += 1
                out.append(label)
            else:
                heapq.heappush(heap, (label.bar_ms, label.decision_id, label))
        cutoff = watermark_ms - self.delay_ms
        if cutoff > self._released_ms:
            self._released_ms = cutoff
            if heap and heap[0][0] <= cutoff:
                pop = heapq.heappop
                while heap and heap[0][0] <= cutoff:
                    out.append(pop(heap)[2])
        return out

    def idle(self, watermark_ms: int) -> bool:
        """True when ``push([], watermark_ms)`` would release nothing; the watermark is then
        taken as push would take it."""
        cutoff = watermark_ms - self.delay_ms
        if cutoff > self._released_ms:
            heap = self._heap
            if heap and heap[0][0] <= cutoff:
                return False
            self._released_ms = cutoff
        return True

    def flush(self) -> list[Label]:
        heap = self._heap
        return [heapq.heappop(heap)[2] for _ in range(len(heap))]

    def snapshot(self) -> dict[str, Any]:
        return {
            "labels": [list(item[2]) for item in self._heap],
            "released": self._released_ms,
            "late": self.late,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._heap = []
        for row in state["labels"]:
            label = Label(
                str(row[0]),
                str(row[1]),
                str(row[2]),
                float(row[3]),
                int(row[4]),
                int(row[5]),
                int(row[6]),
                str(row[7]),
                str(row[8]),
                str(row[9]),
                int(row[10]),
                int(row[11]),
            )
            self._heap.append((label.bar_ms, label.decision_id, label))
        self._released_ms = int(state["released"])
        self.late = int(state["late"])
