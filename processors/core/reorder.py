"""The event-time reorder buffer: what makes the output independent of arrival interleaving.

Inputs are held until the watermark passes their event time, then released in a total order
that both drivers agree on: (event time, topic, key, sequence of the record within its topic
and key). The sequence within (topic, key) is the same in a replay file and on Kafka (one key
lives in one partition, which keeps the producer's order), so replay and the worker release
the same records in the same order whatever the interleaving of topics and partitions.

An input whose event time is already behind the released watermark is *late*: it is not
buffered but handed back to be processed at once, and counted.
"""

from __future__ import annotations

import heapq
from typing import Any

from models.topics import INPUT_TOPICS, TOPIC_RANK
from processors.core.base import Envelope

# (event ms, topic rank, key, sequence, envelope): flat, so a push allocates one tuple. The
# first four are unique per record (the sequence is per topic and key), so the envelope is
# never compared.
HeldItem = tuple[int, int, str, int, Envelope]


class ReorderBuffer:
    """A heap of envelopes keyed by their release order."""

    def __init__(self) -> None:
        self._heap: list[HeldItem] = []
        self._sequence: dict[tuple[str, str], int] = {}

    def next_sequence(self, topic: str, key: str | None) -> int:
        """The position of a record within its (topic, key); call once per decoded record."""
        slot = (topic, key or "")
        seq = self._sequence.get(slot, 0)
        self._sequence[slot] = seq + 1
        return seq

    def push(self, event_ms: int, seq: int, envelope: Envelope) -> None:
        heapq.heappush(
            self._heap,
            (event_ms, TOPIC_RANK[envelope.topic], envelope.key or "", seq, envelope),
        )

    def pop(self) -> tuple[int, Envelope]:
        item = heapq.heappop(self._heap)
        return item[0], item[4]

    @property
    def heap(self) -> list[HeldItem]:
        """The heap itself, for a caller that pops in a tight loop (``heapq`` order: the
        release order). Read it or ``heapq.heappop`` from it; push through ``push``."""
        return self._heap

    def __len__(self) -> int:
        return len(self._heap)

    def snapshot(self) -> dict[str, Any]:
        return {
            "sequence": [[topic, key, seq] for (topic, key), seq in sorted(self._sequence.items())],
            "held": [
                [
                    [event_ms, rank, key, seq],
                    env.topic,
                    env.key,
                    env.source,
                    env.timestamp_ms,
                    env.value.model_dump(mode="json"),
                ]
                for event_ms, rank, key, seq, env in sorted(self._heap, key=lambda item: item[:4])
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._sequence = {(str(t), str(k)): int(s) for t, k, s in state["sequence"]}
        self._heap = []
        for sort_key, topic, key, source, timestamp_ms, value in state["held"]:
            model = INPUT_TOPICS[topic].model.model_validate(value)
            envelope = Envelope(topic, key, model, source, timestamp_ms)  # type: ignore[arg-type]
            self._heap.append(
                (int(sort_key[0]), int(sort_key[1]), str(sort_key[2]), int(sort_key[3]), envelope)
            )
        heapq.heapify(self._heap)
