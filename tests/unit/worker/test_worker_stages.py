"""The sequencer and the runner on the in-memory broker, time driven by a fake clock: what
the output topics hold is replay's output, through recoveries, re-appends and rebalances;
the idle flush and the checkpoints happen when the clock says, not before."""

from __future__ import annotations

import orjson
import pytest
from conftest import (
    SETTINGS,
    FakeClock,
    Market,
    Stages,
    Worker,
    assert_replay_outputs,
    keyed_outputs,
    late_events,
    new_broker,
    outcomes,
    publish,
)
from prometheus_client import CollectorRegistry

from models.codec import encode
from models.topics import ALERTS, DEAD_LETTERS
from streams.worker.app import internal_topics
from streams.worker.checkpoint import MANIFEST_KEY, read_checkpoint
from streams.worker.framing import FLUSH, RECORD, parse_frame
from streams.worker.memory_broker import MemoryBroker, MemoryProducer
from streams.worker.runner import RunnerOptions
from streams.worker.sequencer import Sequencer
from streams.worker.stats import WorkerStats

SEQUENCED = internal_topics(SETTINGS)["sequenced"]
STATE = internal_topics(SETTINGS)["state"]


def frame_kinds(broker: MemoryBroker) -> list[str]:
    """The kind of every committed record of the sequenced log, in order."""
    return [parse_frame(r.value or b"").kind for r in broker.records(SEQUENCED)]


def manifests(broker: MemoryBroker, partition: int = 0) -> list[dict[str, int]]:
    """Every committed checkpoint manifest of a partition of the state topic (default: the
    lane runner's), in order."""
    return [
        orjson.loads(r.value or b"")
        for r in broker.records(STATE)
        if r.key == MANIFEST_KEY and r.partition == partition
    ]


async def test_preloaded_input_gives_replay_output(market: Market) -> None:
    broker = new_broker()
    await publish(broker, market.records)
    worker = Worker(broker, FakeClock())
    await worker.start()
    await worker.settle()
    await worker.idle_flush()
    assert_replay_outputs(broker, market)
    assert late_events(worker.runner) == 0
    assert worker.metric("policyloop_idle_flushes_total") == 1


async def test_input_arriving_in_chunks_gives_replay_output(market: Market) -> None:
    """A live feed: the file in chunks of lines, each sequenced and run before the next
    arrives, small batches on both stages (many interleavings of the partitions)."""
    broker = new_broker()
    options = RunnerOptions(allowed_lateness_ms=2 * 86_400_000, max_records=300)
    worker = Worker(broker, FakeClock(), options, sequencer_records=250)
    await worker.start()
    for start in range(0, len(market.records), 700):
        await publish(broker, market.records[start : start + 700])
        await worker.settle()
    await worker.idle_flush()
    assert_replay_outputs(broker, market)
    assert late_events(worker.runner) == 0


async def test_a_new_runner_recovers_from_the_checkpoint_without_duplicates(
    market: Market,
) -> None:
    """The runner dies after a checkpoint, some transactions after it and one left open; a
    new runner restores the checkpoint, recomputes up to the committed offset without
    sending again, and the topics end up with replay's output, nothing doubled."""
    broker = new_broker()
    await publish(broker, market.records)
    clock = FakeClock()
    options = RunnerOptions(checkpoint_interval_s=10.0, max_records=300)
    worker = Worker(broker, clock, options)
    await worker.start()
    while await worker.sequencer.step():
        pass
    first = worker.runner
    for _ in range(5):
        await first.step()
    clock.advance(10.0)
    await first.step()  # this transaction holds the checkpoint
    assert [m["generation"] for m in manifests(broker)] == [1]
    checkpoint_offset = manifests(broker)[0]["next_offset"]
    for _ in range(4):  # committed, not in any checkpoint
        assert await first.step() > 0
    committed = broker.committed_offset(first.lane.group, first.lane.tp)
    assert committed is not None and committed > checkpoint_offset
    producer = first.lane.producer
    assert isinstance(producer, MemoryProducer)
    await producer.begin_transaction()  # dies mid-transaction: a record sent, never committed
    await producer.send(SETTINGS.topic(ALERTS), b'{"stray": true}', key=b"stray")
    await first.kill()  # the process is gone: the groups drop it, nothing else runs

    second = worker.runner = worker.new_runner()
    await second.start()
    await worker.settle()
    await worker.idle_flush()

    assert worker.metric("policyloop_recoveries_total", second) == 2  # lane and global runner
    assert worker.metric("policyloop_recovered_outputs_suppressed_total", second) > 0
    assert second.lane.suppress_below == committed
    assert producer.fenced
    assert_replay_outputs(broker, market)  # the stray record was aborted with its transaction
    stray = keyed_outputs(broker, committed=False)[ALERTS]["stray"]
    assert stray == [b'{"stray": true}']


async def test_idle_flush_fires_after_idle_flush_s_and_not_before(market: Market) -> None:
    broker = new_broker()
    await publish(broker, market.records)
    clock = FakeClock()
    worker = Worker(broker, clock, RunnerOptions(idle_flush_s=3.0))
    await worker.start()
    await worker.settle()
    assert worker.runner.sources.all_caught_up()
    assert not worker.runner.sources.all_idle()  # caught up, not idle yet
    await worker.go_idle()  # the idleness markers are the last data the runner read
    assert worker.runner.sources.all_idle()
    assert FLUSH not in frame_kinds(broker)
    held = keyed_outputs(broker)

    clock.advance(2.75)
    await worker.settle()
    assert FLUSH not in frame_kinds(broker)
    assert worker.metric("policyloop_idle_flushes_total") == 0
    assert keyed_outputs(broker) == held  # the buffer still holds what replay's end releases

    clock.advance(0.25)
    await worker.settle()
    kinds = frame_kinds(broker)
    assert kinds.count(FLUSH) == 1
    assert len(kinds) - 1 - kinds[::-1].index(RECORD) < kinds.index(FLUSH)  # after the data
    assert worker.metric("policyloop_idle_flushes_total") == 1
    assert_replay_outputs(broker, market)

    clock.advance(100.0)  # nothing left to release: no second marker
    await worker.settle()
    assert frame_kinds(broker).count(FLUSH) == 1


async def test_no_idle_flush_while_an_input_partition_is_behind(market: Market) -> None:
    broker = new_broker()
    await publish(broker, market.records)
    clock = FakeClock()
    worker = Worker(broker, clock, RunnerOptions(idle_flush_s=3.0), sequencer_records=100)
    await worker.start()
    await worker.sequencer.step()  # 100 records: every partition still has more to deliver
    while await worker.runner.step():
        pass
    assert not worker.runner.sources.all_caught_up()
    clock.advance(60.0)
    for _ in range(3):
        assert await worker.runner.step() == 0
    assert FLUSH not in frame_kinds(broker)

    await worker.settle()
    assert FLUSH not in frame_kinds(broker)  # caught up now, but idle only from now on
    await worker.idle_flush()
    assert frame_kinds(broker).count(FLUSH) == 1
    assert_replay_outputs(broker, market)


async def test_a_checkpoint_is_written_once_checkpoint_interval_s_has_passed(
    market: Market,
) -> None:
    broker = new_broker()
    await publish(broker, market.records)
    clock = FakeClock()
    worker = Worker(broker, clock, RunnerOptions(checkpoint_interval_s=10.0, max_records=200))
    await worker.start()
    while await worker.sequencer.step():
        pass
    stages = worker.runner
    assert await stages.step() > 0  # recovers (the interval starts), then a transaction
    runner = stages.lane
    clock.advance(9.75)
    assert await stages.step() > 0
    assert manifests(broker) == []
    assert worker.metric("policyloop_checkpoints_total") == 0

    clock.advance(0.25)
    assert await stages.step() > 0
    assert [(m["generation"], m["next_offset"]) for m in manifests(broker)] == [
        (1, runner.next_offset)
    ]
    assert worker.metric("policyloop_checkpoints_total") == 2  # the lane's and the global's
    checkpoint, chunks = await read_checkpoint(broker, STATE)
    assert checkpoint is not None and chunks >= 1
    assert checkpoint.next_offset == runner.next_offset
    assert checkpoint.state == orjson.loads(orjson.dumps(runner.state()))

    assert await stages.step() > 0  # the interval restarts at the checkpoint
    clock.advance(9.0)
    assert await stages.step() > 0
    assert len(manifests(broker)) == 1
    clock.advance(1.0)
    assert await stages.step() > 0
    assert [m["generation"] for m in manifests(broker)] == [1, 2]


async def test_a_sequencer_lost_before_its_commit_is_re_appended_and_skipped(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sequencers share the input partitions; one appends a batch, dies before it
    commits the input offsets, and the other takes its partitions over and appends those
    records again: the runner skips the re-appended records (not counted as duplicates)."""
    broker = new_broker()
    await publish(broker, market.records)
    worker = Worker(broker, FakeClock(), sequencer_records=400)
    stats = WorkerStats(CollectorRegistry())
    other = Sequencer(SETTINGS, SEQUENCED, stats, clients=broker, clock=worker.clock)
    await worker.start()
    await other.start()
    first = worker.sequencer.consumer
    assert first is not None and other.consumer is not None
    shared = (first.assignment(), other.consumer.assignment())
    assert all(shared) and not shared[0] & shared[1]
    for _ in range(3):
        await worker.step()
        await other.step()

    async def no_commit() -> None:  # dies between the append and the commit
        return None

    monkeypatch.setattr(first, "commit", no_commit)
    lost = await worker.sequencer.step()
    assert lost > 0
    await first.stop()
    assert other.consumer.assignment() == shared[0] | shared[1]
    worker.sequencer = other
    await worker.settle()
    await worker.idle_flush()

    inputs = sum(1 for record in market.records if record[0] != DEAD_LETTERS)
    assert frame_kinds(broker).count(RECORD) >= inputs + lost
    assert_replay_outputs(broker, market)
    got = outcomes(worker.runner)
    assert got["duplicate"] == market.outcomes["duplicate"]
    assert got["processed"] == market.outcomes["processed"]


def test_reference_outputs_are_not_empty(market: Market) -> None:
    """A guard for the tests above: the market exercises every output path they compare."""
    topics = {output.topic for output in market.reference}
    assert {"alerts", "performance", "replan_verdicts", "dead_letters"} <= topics
    assert all(encode(output.value) for output in market.reference)


async def test_repeated_kills_during_recovery_neither_double_nor_lose_an_output(
    market: Market,
) -> None:
    """Issue 9, defect 4: a holder killed while it is still recomputing below the committed
    offset must not have moved that offset backwards, or the next holder sends again what
    was already published. Three holders; the second dies mid-recomputation; the committed
    offset never decreases and the topics hold replay's output exactly."""
    broker = new_broker()
    await publish(broker, market.records)
    clock = FakeClock()
    options = RunnerOptions(checkpoint_interval_s=10.0, max_records=200)
    worker = Worker(broker, clock, options)
    await worker.start()
    while await worker.sequencer.step():
        pass
    committed_seen: list[int] = []

    def note_committed(stages: Stages) -> None:
        offset = broker.committed_offset(stages.lane.group, stages.lane.tp)
        if offset is not None:
            committed_seen.append(offset)

    first = worker.runner
    for _ in range(3):
        await first.step()
    clock.advance(10.0)
    await first.step()  # the checkpoint
    for _ in range(6):
        assert await first.step() > 0
        note_committed(first)
    await first.kill()

    second = worker.runner = worker.new_runner()
    await second.start()
    for _ in range(2):  # still below what the first holder committed
        assert await second.step() > 0
        assert second.lane.next_offset < second.lane.suppress_below
        note_committed(second)
    await second.kill()

    third = worker.runner = worker.new_runner()
    await third.start()
    await worker.settle()
    await worker.idle_flush()
    note_committed(third)
    assert committed_seen == sorted(committed_seen), committed_seen
    assert third.lane.suppress_below == max(committed_seen[:8])
    assert_replay_outputs(broker, market)
