"""Event-id dedup with an event-time horizon, and the release order of the reorder buffer."""

from __future__ import annotations

import orjson

from models.inputs import StandDownEvent
from processors.core.base import DAY_MS, Envelope
from processors.core.dedup import DedupConfig, EventIdDedup
from processors.core.reorder import ReorderBuffer


def test_first_one_wins_per_topic() -> None:
    dedup = EventIdDedup()
    assert dedup.first_time("fills", "e1", 1000)
    assert not dedup.first_time("fills", "e1", 5000)
    assert dedup.first_time("bar_decisions", "e1", 1000)  # ids are unique per topic only


def test_ids_are_forgotten_after_the_horizon_only() -> None:
    dedup = EventIdDedup(DedupConfig(ttl_ms=DAY_MS))
    assert dedup.first_time("fills", "old", 0)
    dedup.advance(DAY_MS - 1)
    assert not dedup.first_time("fills", "old", 0)
    dedup.advance(DAY_MS + 1)
    assert len(dedup) == 0
    assert dedup.first_time("fills", "old", 0)


def test_dedup_snapshot_restore() -> None:
    dedup = EventIdDedup()
    for i in range(10):
        dedup.first_time("fills", f"e{i}", i * 1000)
    state = orjson.loads(orjson.dumps(dedup.snapshot()))
    fresh = EventIdDedup()
    fresh.restore(state)
    assert not fresh.first_time("fills", "e3", 0)
    assert fresh.first_time("fills", "e99", 0)


def _envelope(event_id: str, topic: str = "stand_down", key: str = "*") -> Envelope:
    value = StandDownEvent.model_validate(
        {
            "event_id": event_id,
            "ts": "2026-01-05T00:00:00Z",
            "action": "clear",
            "scope": {},
            "reason": "r",
            "source": "ops",
        }
    )
    return Envelope(topic, key, value, f"src:{event_id}")


def test_release_order_is_time_topic_key_sequence() -> None:
    buffer = ReorderBuffer()
    arrivals = [
        (30, "fills", "B"),
        (10, "fills", "A"),
        (10, "stand_down", "Z"),
        (10, "fills", "A"),
        (20, "bar_decisions", "A"),
    ]
    for i, (t, topic, key) in enumerate(arrivals):
        seq = buffer.next_sequence(topic, key)
        buffer.push(t, seq, _envelope(f"e{i}", topic, key))
    released = [buffer.pop()[1].source for _ in range(len(buffer))]
    assert released == ["src:e2", "src:e1", "src:e3", "src:e4", "src:e0"]


def test_reorder_snapshot_restore_keeps_order_and_sequences() -> None:
    buffer = ReorderBuffer()
    for i, t in enumerate([5, 3, 9]):
        buffer.push(t, buffer.next_sequence("stand_down", "*"), _envelope(f"e{i}"))
    fresh = ReorderBuffer()
    fresh.restore(orjson.loads(orjson.dumps(buffer.snapshot())))
    assert fresh.next_sequence("stand_down", "*") == 3
    assert [fresh.pop()[0] for _ in range(3)] == [3, 5, 9]
