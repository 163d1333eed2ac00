"""Event-id deduplication per input topic, with an event-time horizon.

The contract: a repeated ``event_id`` on the same topic is a duplicate; it changes nothing
(the first one wins) and is counted. To keep memory proportional to the event rate over a
horizon rather than to the whole history, an id is remembered for ``ttl_ms`` of event time
after the event it belonged to (quix-streams style). A duplicate arriving later than that
behind the watermark is not recognised; the default horizon (7 days) is far beyond any
redelivery seen in practice, and the pipeline's per-source offsets catch Kafka redelivery.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from processors.core.base import DAY_MS
from processors.core.config_checks import POSITIVE, check_bounds


@dataclass(frozen=True)
class DedupConfig:
    ttl_ms: int = 7 * DAY_MS

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {"ttl_ms": POSITIVE},
        )


class EventIdDedup:
    """Remembers (topic, event_id) pairs for ``ttl_ms`` of event time."""

    def __init__(self, config: DedupConfig | None = None) -> None:
        self.config = config or DedupConfig()
        self._seen: dict[str, dict[str, int]] = {}
        self._expiry: deque[tuple[int, str, str]] = deque()
        self._horizon_ms = 0

    def first_time(self, topic: str, event_id: str, event_ms: int) -> bool:
        """True the first time (topic, event_id) is seen; remembers it."""
        seen = self._seen.get(topic)
        if seen is None:
            seen = self._seen[topic] = {}
        if event_id in seen:
            return False
        # An id is kept until the watermark is ttl past the later of its event time and the
        # horizon when it arrived, so a late event is not forgotten at once.
        keep_from = event_ms if event_ms > self._horizon_ms else self._horizon_ms
        seen[event_id] = keep_from
        self._expiry.append((keep_from, topic, event_id))
        return True

    def advance(self, watermark_ms: int) -> None:
        """Forget ids whose horizon passed. Expiry entries are in non-decreasing order
        except for late events, which only delay the eviction of the entries behind them."""
        horizon = watermark_ms - self.config.ttl_ms
        if horizon <= self._horizon_ms:
            return
        self._horizon_ms = horizon
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:
            _, topic, event_id = expiry.popleft()
            self._seen[topic].pop(event_id, None)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._seen.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            "horizon_ms": self._horizon_ms,
            "expiry": [list(entry) for entry in self._expiry],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._horizon_ms = int(state["horizon_ms"])
        self._expiry = deque((int(t), str(topic), str(eid)) for t, topic, eid in state["expiry"])
        self._seen = {}
        for keep_from, topic, event_id in self._expiry:
            self._seen.setdefault(topic, {})[event_id] = keep_from
