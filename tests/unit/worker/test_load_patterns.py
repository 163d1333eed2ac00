"""Live equals replay under uneven load (issue 10), on the in-memory broker with the default
lateness and idle timeout (5 s): the same market loaded all at once, in chunks, one topic
after another, one input partition after another, and with a worker down during the load (a
backfill) gives replay's output with no late record, because a partition that is caught up
but not idle holds the watermark.

Where it cannot hold, the tests pin what happens: a partition that has delivered nothing,
or nothing new, for longer than the idle timeout is idle, so a topic whose producer pauses
longer than that, or a partition loaded more than the idle timeout after the others started,
delivers late records (processed at once; outputs may then differ from replay's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from conftest import (
    SETTINGS,
    FakeClock,
    KafkaRecord,
    Market,
    Worker,
    assert_replay_outputs,
    late_by_topic,
    late_events,
    new_broker,
    publish,
)

from models.topics import DEAD_LETTERS, INPUT_TOPICS
from streams.kafka_topics import contract_topics

PARTITIONS = {spec.name: spec.partitions for spec in contract_topics(SETTINGS)}


def _partition(record: KafkaRecord) -> int:
    topic, _, _, _, part_key = record
    hashed = murmur2(part_key) if part_key is not None else 0
    return (hashed & 0x7FFFFFFF) % PARTITIONS[SETTINGS.topic(topic)]


def all_at_once(records: list[KafkaRecord]) -> list[list[KafkaRecord]]:
    return [records]


def in_chunks(records: list[KafkaRecord]) -> list[list[KafkaRecord]]:
    return [records[start : start + 500] for start in range(0, len(records), 500)]


def topic_by_topic(records: list[KafkaRecord]) -> list[list[KafkaRecord]]:
    order = [*INPUT_TOPICS, DEAD_LETTERS]
    return [[r for r in records if r[0] == topic] for topic in reversed(order)]


def partition_by_partition(records: list[KafkaRecord]) -> list[list[KafkaRecord]]:
    slots = sorted({(r[0], _partition(r)) for r in records}, reverse=True)
    return [[r for r in records if (r[0], _partition(r)) == slot] for slot in slots]


PATTERNS: dict[str, Callable[[list[KafkaRecord]], list[list[KafkaRecord]]]] = {
    "all_at_once": all_at_once,
    "in_chunks": in_chunks,
    "topic_by_topic": topic_by_topic,
    "partition_by_partition": partition_by_partition,
}


@pytest.mark.parametrize("pattern", PATTERNS)
async def test_a_load_pattern_gives_replay_output_with_nothing_late(
    market: Market, pattern: str
) -> None:
    broker = new_broker()
    clock = FakeClock()
    worker = Worker(broker, clock)
    await worker.start()
    parts = PATTERNS[pattern](market.records)
    for part in parts:
        await publish(broker, part)
        await worker.settle()
        clock.advance(4.0 / len(parts))  # the whole load takes 4 s, within the idle timeout
    await worker.idle_flush()
    assert late_events(worker.runner) == 0
    assert_replay_outputs(broker, market)


async def test_a_worker_down_during_the_load_catches_up_as_a_backfill(market: Market) -> None:
    broker = new_broker()
    clock = FakeClock()
    first = Worker(broker, clock)
    await first.start()
    parts = in_chunks(market.records)
    for part in parts[:3]:
        await publish(broker, part)
        await first.settle()
    await first.stop()
    for part in parts[3:]:  # loaded while no worker runs, for much longer than the timeouts
        await publish(broker, part)
        clock.advance(60.0)
    second = Worker(broker, clock)
    await second.start()
    await second.settle()
    await second.idle_flush()
    assert late_events(second.runner) == 0
    assert_replay_outputs(broker, market)


async def test_a_pause_longer_than_the_idle_timeout_makes_the_next_topic_late(
    market: Market,
) -> None:
    """The trade-off the README states: a topic whose producer is silent for longer than the
    idle timeout stops holding the watermark; what it then delivers behind the watermark is
    late, processed at once, and the outputs may differ from replay's."""
    broker = new_broker()
    clock = FakeClock()
    worker = Worker(broker, clock)
    await worker.start()
    parts = topic_by_topic(market.records)
    late_topic = next(r[0] for r in parts[-1])
    for part in parts:
        await publish(broker, part)
        await worker.settle()
        await worker.go_idle()  # a silence longer than the idle timeout after each topic
    late: dict[str, Any] = late_by_topic(worker.runner)
    assert late.get(late_topic, 0) > 0, late


async def test_partitions_loaded_after_the_idle_timeout_are_late(market: Market) -> None:
    """One partition after another at one a second: the partitions still empty 5 s into the
    load went idle, so those loaded after that deliver late records; the first ones not."""
    broker = new_broker()
    clock = FakeClock()
    worker = Worker(broker, clock)
    await worker.start()
    parts = partition_by_partition(market.records)
    inputs = [part for part in parts if part[0][0] != DEAD_LETTERS]
    early = {part[0][0] for part in inputs[:4]}
    for part in parts:
        await publish(broker, part)
        await worker.settle()
        clock.advance(1.0)
    late: dict[str, Any] = late_by_topic(worker.runner)
    assert sum(late.values()) > 0
    assert not any(late.get(topic) for topic in early - {p[0][0] for p in inputs[4:]})
