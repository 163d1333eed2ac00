"""The pipeline runner over a sequenced log, without Kafka: what the worker computes is
replay's output, whatever the interleaving of the input partitions in the log, re-appended
records, restores from checkpoints taken anywhere, and however far the watermark waits.

The log is built as the sequencer writes it (streams/worker/sequencer.py): each input
partition's records in order, partitions interleaved in random chunks, a progress marker per
partition after each chunk, an idleness marker once a partition has delivered everything
(the sequencer's idle timeout), some chunks appended twice (a sequencer that lost its
partition before committing), and a flush marker at the end (the idle flush).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry

from models.codec import encode
from models.topics import DEAD_LETTERS, OUTPUT_FILES, PERFORMANCE
from processors.global_stage import PartitionedGlobalStage
from processors.pipeline import PipelineConfig
from streams.produce import _LineConverter, replay_lines
from streams.replay import run_replay
from streams.settings import Settings
from streams.simulator import SimulationConfig, simulate
from streams.worker.checkpoint import Checkpoint, decode_state, encode_state
from streams.worker.framing import flush_frame, idle_frame, progress_frame, record_frame
from streams.worker.lane_items import FLUSHED, parse_lane_frame
from streams.worker.memory_broker import MemoryBroker
from streams.worker.runner import LaneRunner, RunnerOptions, Send, StageTopics
from streams.worker.stats import WorkerStats

PARTITIONS = 4
LANE_ITEMS = "lane-items"
Sent = tuple[str, bytes]  # (topic, value) of an output record
Partitioned = dict[tuple[str, int], list[tuple[bytes | None, bytes, int | None]]]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Partitioned, Path]:
    """The input partitions of a small simulated market (as ``produce`` partitions it), and
    replay's output directory for the same file."""
    folder = tmp_path_factory.mktemp("runner-log")
    path = folder / "market.jsonl"
    simulate(SimulationConfig(seed=11, days=2, symbols=4), path)
    run_replay(path, folder / "replay")
    converter = _LineConverter()
    partitions: Partitioned = defaultdict(list)
    for number, line in replay_lines(path):
        topic, key, value, ts, part_key = converter.convert(number, line)
        if topic == DEAD_LETTERS:  # produce publishes these itself; the worker never sees them
            continue
        hashed = murmur2(part_key) if part_key is not None else 0
        partitions[(topic, (hashed & 0x7FFFFFFF) % PARTITIONS)].append((key, value, ts))
    return dict(partitions), folder / "replay"


def sequenced_log(partitions: Partitioned, rng: random.Random) -> list[bytes]:
    """A log as the sequencer could append it (see the module docstring)."""
    cursors = dict.fromkeys(partitions, 0)
    log: list[bytes] = []
    while any(cursors[slot] < len(records) for slot, records in partitions.items()):
        slot = rng.choice(sorted(s for s in partitions if cursors[s] < len(partitions[s])))
        start = cursors[slot]
        if start and rng.random() < 0.1:  # re-append what a lost sequencer had not committed
            start = max(0, start - rng.randint(1, 100))
        end = min(len(partitions[slot]), cursors[slot] + rng.randint(1, 300))
        for offset in range(start, end):
            key, value, ts = partitions[slot][offset]
            log.append(record_frame(slot[0], slot[1], offset, key, ts, value))
        cursors[slot] = end
        for other in sorted(partitions):
            log.append(progress_frame(other[0], other[1], cursors[other], len(partitions[other])))
        if end == len(partitions[slot]):
            log.append(idle_frame(slot[0], slot[1], end))
    log.append(flush_frame())
    return log


class Runners:
    """A lane runner over one sequenced partition and the global stage it feeds, in this
    process: ``apply`` gives the output records (topic, value) of one log record, the lane's
    own and the global stage's from the lane's items."""

    def __init__(self, partitions: Partitioned, lateness_ms: int) -> None:
        self.lane = new_runner(partitions, lateness_ms)
        self.global_stage = PartitionedGlobalStage(PipelineConfig(), 1)

    def apply(self, raw: bytes) -> list[Sent]:
        return self.deliver([*self.lane.apply(raw), *self.lane.after_batch()])

    def deliver(self, sends: list[Send]) -> list[Sent]:
        out: list[Sent] = []
        for topic, _, value, _ in sends:
            if topic != LANE_ITEMS:
                out.append((topic, value))
                continue
            frame = parse_lane_frame(value)
            if frame.kind == FLUSHED:
                produced = self.global_stage.on_flushed(frame.partition)
            else:
                produced = self.global_stage.on_items(
                    frame.partition, frame.items, frame.watermark_ms
                )
            out.extend((o.topic, encode(o.value)) for o in produced)
        return out


def run_log(
    log: list[bytes], partitions: Partitioned, lateness_ms: int, rng: random.Random, crashes: int
) -> tuple[list[Sent], LaneRunner]:
    """The runners over ``log``, the lane runner crashing ``crashes`` times: each crash
    restores the last checkpoint (through the checkpoint codec) and re-reads the log from
    its offset, with what it sends below the last committed offset suppressed, as
    LogRunner._recover does."""
    crash_at = sorted(rng.sample(range(1, len(log)), crashes))
    runners, outputs, position, committed = Runners(partitions, lateness_ms), [], 0, 0
    runner = runners.lane
    checkpoint: tuple[int, bytes] | None = None
    while position < len(log):
        sends = [*runner.apply(log[position]), *runner.after_batch()]
        if position >= committed:
            outputs.extend(runners.deliver(sends))
        position += 1
        committed = max(committed, position)
        if rng.random() < 0.01:
            checkpoint = (position, encode_state(runner.state()))
        if crash_at and position == crash_at[0]:
            crash_at.pop(0)
            runner = runners.lane = new_runner(partitions, lateness_ms)
            position = 0
            if checkpoint is not None:
                position = checkpoint[0]
                runner.restore(Checkpoint(1, position, decode_state(checkpoint[1])))
    return outputs, runner


def assert_replay_output(outputs: list[Sent], replay_dir: Path) -> None:
    got: dict[str, list[bytes]] = defaultdict(list)
    for topic, value in outputs:
        got[topic].append(value)
    for topic in (*OUTPUT_FILES, PERFORMANCE):
        if topic == DEAD_LETTERS:
            continue
        expected = (replay_dir / f"{topic}.jsonl").read_bytes().splitlines()
        assert Counter(got[topic]) == Counter(expected), topic


@pytest.mark.parametrize(
    ("seed", "lateness_ms", "crashes"),
    [(1, 15 * 60_000, 0), (2, 15 * 60_000, 3), (3, 2 * 86_400_000, 2), (4, 60_000, 4)],
)
def test_runner_over_any_sequenced_log_gives_replay_output(
    market: tuple[Partitioned, Path], seed: int, lateness_ms: int, crashes: int
) -> None:
    partitions, replay_dir = market
    rng = random.Random(seed)
    log = sequenced_log(partitions, rng)
    outputs, runner = run_log(log, partitions, lateness_ms, rng, crashes)
    assert_replay_output(outputs, replay_dir)
    # re-appended records were skipped, not counted as duplicates; nothing was late
    summary = orjson.loads((replay_dir / "summary.json").read_bytes())
    counted = {(t, o): n for (t, o), n in runner.pipeline.counts.items() if o != "dead_letter"}
    expected = {
        (topic, outcome): row[outcome]
        for topic, row in summary["inputs"].items()
        for outcome in ("processed", "duplicate")
        if row[outcome]
    }
    assert counted == expected
    assert not runner.pipeline.late


def test_a_caught_up_partition_holds_the_watermark_until_it_is_idle(
    market: tuple[Partitioned, Path],
) -> None:
    """A partition that is caught up (here: empty so far) but not declared idle holds the
    watermark, so what it delivers later is sorted in, not late: a slower producer, a topic
    loaded after the others, a backfill."""
    partitions, replay_dir = market
    held = max(partitions, key=lambda slot: len(partitions[slot]))
    others = {slot: records for slot, records in partitions.items() if slot != held}
    log = sequenced_log(others, random.Random(5))[:-1]  # all but the held one, no flush
    log.append(progress_frame(held[0], held[1], 0, 0))  # the held partition: caught up, empty
    runners = Runners(partitions, 15 * 60_000)
    runner = runners.lane
    outputs = [output for raw in log for output in runners.apply(raw)]
    assert runner.pipeline.watermark_ms < -(2**61)  # nothing released: it waits for `held`
    tail = [
        record_frame(held[0], held[1], offset, key, ts, value)
        for offset, (key, value, ts) in enumerate(partitions[held])
    ]
    for raw in [*tail, idle_frame(held[0], held[1], len(tail)), flush_frame()]:
        outputs.extend(runners.apply(raw))
    assert not runner.pipeline.late
    assert_replay_output(outputs, replay_dir)


def test_a_partition_that_delivers_after_it_was_idle_arrives_late(
    market: tuple[Partitioned, Path],
) -> None:
    """The live rule the README states: once a partition is declared idle it does not hold
    the watermark, so records it delivers later, behind the watermark the others moved, are
    late (and output may then differ from replay's)."""
    partitions, _ = market
    held = max(partitions, key=lambda slot: len(partitions[slot]))
    others = {slot: records for slot, records in partitions.items() if slot != held}
    log = sequenced_log(others, random.Random(5))[:-1]
    log.append(idle_frame(held[0], held[1], 0))  # empty and quiet for the idle timeout
    for offset, (key, value, ts) in enumerate(partitions[held]):
        log.append(record_frame(held[0], held[1], offset, key, ts, value))
    runner = new_runner(partitions, 15 * 60_000)
    for raw in log:
        runner.apply(raw)
    assert runner.pipeline.late.get(held[0], 0) > 0


def new_runner(partitions: Partitioned, lateness_ms: int) -> LaneRunner:
    inputs: dict[str, list[int]] = defaultdict(list)
    for topic, partition in sorted(partitions):
        inputs[topic].append(partition)
    return LaneRunner(
        Settings(),
        StageTopics("sequenced", LANE_ITEMS, "state", 1),
        0,
        dict(inputs),
        WorkerStats(CollectorRegistry()),
        RunnerOptions(allowed_lateness_ms=lateness_ms),
        PipelineConfig(),
        MemoryBroker(),
        time.monotonic,
    )
