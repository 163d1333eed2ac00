"""Lanes spread over worker processes (issue 10), on the in-memory broker: the sequenced
log has several partitions, Kafka's group assignment spreads them over the workers' lane
runners, one worker at a time holds the global runner, and whatever the spread, the output
topics hold replay's output with no late record; a worker that dies hands its partitions
over and nothing is doubled or lost."""

from __future__ import annotations

import pytest
from conftest import (
    SETTINGS,
    FakeClock,
    Market,
    Worker,
    assert_replay_outputs,
    late_events,
    new_broker,
    publish,
)

from processors.core.base import Envelope
from streams.adapter import decode_line
from streams.worker.app import InternalTopicsError, check_internal_partitions, internal_topic_specs
from streams.worker.sequencer import lane_partition_of

LANES = SETTINGS.model_copy(update={"lane_partitions": 3})


def _lane_partitions_used(market: Market) -> set[int]:
    used = set()
    for topic, _, value, _, _ in market.records:
        decoded = decode_line(
            b'{"topic":"%s","key":null,"value":%s}' % (topic.encode(), value), "x"
        )
        if isinstance(decoded, Envelope):
            strategy = getattr(decoded.value, "strategy_id", None)
            if strategy is not None:
                used.add(lane_partition_of(strategy, LANES.lane_partitions))
    return used


async def test_lanes_in_several_partitions_of_one_worker_give_replay_output(
    market: Market,
) -> None:
    assert len(_lane_partitions_used(market)) >= 2  # the strategies really are spread
    broker = new_broker(LANES)
    await publish(broker, market.records, LANES)
    worker = Worker(broker, FakeClock(), settings=LANES)
    await worker.start()
    await worker.settle()
    assert sorted(worker.runner.lanes.runners) == [0, 1, 2]
    await worker.idle_flush()
    assert_replay_outputs(broker, market)
    assert late_events(worker.runner) == 0
    assert worker.metric("policyloop_idle_flushes_total") == 3  # one per lane partition


async def test_two_workers_share_the_lane_partitions_and_give_replay_output(
    market: Market,
) -> None:
    broker = new_broker(LANES)
    clock = FakeClock()
    first = Worker(broker, clock, settings=LANES)
    second = Worker(broker, clock, settings=LANES)
    await first.start()
    await second.start()
    held = [set(w.runner.lanes.runners) for w in (first, second)]
    assert all(held) and not held[0] & held[1] and held[0] | held[1] == {0, 1, 2}
    globals_held = [len(w.runner.global_runner.runners) for w in (first, second)]
    assert sorted(globals_held) == [0, 1]
    for start in range(0, len(market.records), 900):  # a live feed into both workers
        await publish(broker, market.records[start : start + 900], LANES)
        await _settle_both(first, second)
    clock.advance(first.sequencer.idle_timeout_s)
    await _settle_both(first, second)
    clock.advance(first.options.idle_flush_s)
    await _settle_both(first, second)
    assert_replay_outputs(broker, market)
    assert late_events(first.runner) + late_events(second.runner) == 0


async def test_a_worker_killed_mid_stream_hands_its_lanes_over(market: Market) -> None:
    broker = new_broker(LANES)
    await publish(broker, market.records, LANES)
    clock = FakeClock()
    first = Worker(broker, clock, settings=LANES)
    second = Worker(broker, clock, settings=LANES)
    await first.start()
    await second.start()
    for _ in range(6):
        await first.step()
        await second.step()
    killed = first if first.runner.global_runner.runners else second
    survivor = second if killed is first else first
    await killed.runner.kill()
    assert killed.sequencer.consumer is not None
    await killed.sequencer.consumer.stop()
    assert sorted(survivor.runner.lanes.runners) == [0, 1, 2]
    assert len(survivor.runner.global_runner.runners) == 1
    await survivor.settle()
    await survivor.idle_flush()
    assert_replay_outputs(broker, market)
    assert late_events(survivor.runner) == 0


async def _settle_both(first: Worker, second: Worker, max_rounds: int = 10_000) -> None:
    for _ in range(max_rounds):
        ends = first.log_ends()
        moved = await first.step(), await second.step()
        if moved == ((0, 0), (0, 0)) and first.log_ends() == ends:
            return
    raise AssertionError("the workers still move")


def test_internal_topics_made_for_other_lane_partitions_are_refused() -> None:
    """A worker started with another POLICYLOOP_LANE_PARTITIONS than its internal topics
    were made with (or on an earlier version's one-partition log) stops with a clear error
    instead of routing lanes to partitions that do not exist."""
    specs = internal_topic_specs(LANES)
    made = {spec.name: list(range(spec.partitions)) for spec in specs}
    check_internal_partitions(specs, made)
    earlier = {**made, specs[0].name: [0]}
    with pytest.raises(InternalTopicsError, match="has 1 partitions, these settings need 3"):
        check_internal_partitions(specs, earlier)
