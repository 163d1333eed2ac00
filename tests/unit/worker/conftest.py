"""The worker's stages on the in-memory broker, driven step by step with a fake clock.

``market``: a small simulated market, its records as ``policyloop produce`` publishes them,
and the reference: the outputs of offline replay (``Pipeline`` over the file as
``streams.replay`` runs it, checked against ``run_replay``'s files). ``Worker`` holds one
worker's sequencer and runner on a ``MemoryBroker``; ``assert_replay_outputs`` compares what
the output topics hold (read_committed) with the reference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from models.codec import encode
from models.topics import DEAD_LETTERS, INPUT_TOPICS, OUTPUT_TOPICS
from processors.core.base import Envelope, Output
from processors.pipeline import Pipeline
from streams.adapter import Rejected, decode_line
from streams.kafka_batches import PartitionBatches
from streams.kafka_topics import contract_topics
from streams.output_files import STREAM_FILES
from streams.produce import _LineConverter, replay_lines
from streams.replay import run_replay
from streams.settings import Settings
from streams.simulator import SimulationConfig, simulate
from streams.worker.app import internal_topic_specs, internal_topics, stage_topics
from streams.worker.memory_broker import MemoryBroker
from streams.worker.runner import LaneRunner, RunnerOptions, StageGroup, global_group, lane_group
from streams.worker.sequencer import Sequencer
from streams.worker.sources import Sources
from streams.worker.stats import WorkerStats

SETTINGS = Settings(topic_prefix="t.", consumer_group="g", lane_partitions=1)
"""One lane partition: one lane runner holds every lane (tests/unit/worker/test_scale_out.py
runs several)."""
KafkaRecord = tuple[str, bytes | None, bytes, int | None, bytes | None]
Keyed = dict[str, dict[str, list[bytes]]]  # topic -> key -> values in order


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Market:
    """A simulated market: the Kafka records of its lines, replay's outputs for it and
    replay's input counts by outcome (processed, duplicate, dead_letter)."""

    records: list[KafkaRecord]
    reference: list[Output]
    outcomes: dict[str, float]


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    folder = tmp_path_factory.mktemp("worker-market")
    path = folder / "market.jsonl"
    simulate(SimulationConfig(seed=5, days=2, symbols=6), path)
    pipeline = Pipeline()
    reference = offline_replay(path, pipeline)
    run_replay(path, folder / "replay")
    for topic in STREAM_FILES:  # the reference is replay's output, record for record
        expected = (folder / "replay" / f"{topic}.jsonl").read_bytes().splitlines()
        assert [encode(o.value) for o in reference if o.topic == topic] == expected, topic
    converter = _LineConverter()
    records = [converter.convert(number, line) for number, line in replay_lines(path)]
    return Market(records, reference, outcomes(pipeline))


def offline_replay(path: Path, pipeline: Pipeline) -> list[Output]:
    """Every output of ``pipeline`` over ``path``, in order, fed as ``streams.replay`` does."""
    outputs: list[Output] = []
    batch: list[Envelope] = []
    for number, line in replay_lines(path):
        decoded = decode_line(line, f"line:{number}")
        if isinstance(decoded, Rejected):
            outputs += pipeline.handle_batch(batch)
            batch = []
            outputs += pipeline.reject(
                decoded.source_topic, decoded.key, decoded.raw, decoded.error, decoded.source
            )
        else:
            batch.append(decoded)
    outputs += pipeline.handle_batch(batch)
    outputs += pipeline.finish()
    return outputs


def new_broker(settings: Settings = SETTINGS) -> MemoryBroker:
    """A broker with every contract and internal topic of ``settings``."""
    broker = MemoryBroker(clock_ms=lambda: 1_700_000_000_000)
    broker.create_topics([*contract_topics(settings), *internal_topic_specs(settings)])
    return broker


async def publish(
    broker: MemoryBroker, records: list[KafkaRecord], settings: Settings = SETTINGS
) -> None:
    """Publish ``records`` as ``policyloop produce`` does: input records to their topic's
    partition of their partition key (murmur2), dead letters to ``dead_letters``."""
    producer = broker.producer(acks="all", enable_idempotence=True)
    await producer.start()
    targets = {name: settings.topic(name) for name in (*INPUT_TOPICS, DEAD_LETTERS)}
    batches = PartitionBatches(
        producer, {name: len(broker.partitions(name)) for name in targets.values()}
    )
    for topic, key, value, ts, part_key in records:
        await batches.add(batches.slot(targets[topic], part_key), key, value, ts)
    await batches.submit_all()
    await batches.delivered()
    await producer.stop()


class Stages:
    """One worker's lane runners and global runner (its ``pipeline`` role): ``step`` steps
    the lane group, then the global group; ``kill`` stops both consumers without a word,
    as a process that is gone (the groups drop it)."""

    def __init__(self, lanes: StageGroup, global_runner: StageGroup) -> None:
        self.lanes = lanes
        self.global_runner = global_runner

    async def start(self) -> None:
        await self.lanes.start()
        await self.global_runner.start()

    async def stop(self) -> None:
        await self.lanes.stop()
        await self.global_runner.stop()

    async def kill(self) -> None:
        for group in (self.lanes, self.global_runner):
            assert group.consumer is not None
            await group.consumer.stop()

    async def step(self) -> int:
        return await self.lanes.step() + await self.global_runner.step()

    @property
    def lane(self) -> LaneRunner:
        """The lane runner of partition 0 (the only one with ``lane_partitions`` 1)."""
        runner = self.lanes.runners[0]
        assert isinstance(runner, LaneRunner)
        return runner

    def lane_runners(self) -> list[LaneRunner]:
        return [r for _, r in sorted(self.lanes.runners.items()) if isinstance(r, LaneRunner)]

    @property
    def pipeline(self) -> Pipeline:
        return self.lane.pipeline

    @property
    def sources(self) -> Sources:
        return self.lane.sources


@dataclass
class Worker:
    """One worker's stages on ``broker``: ``step`` runs a sequencer step, then a step of its
    lane runners and global runner."""

    broker: MemoryBroker
    clock: FakeClock
    options: RunnerOptions = field(default_factory=RunnerOptions)
    settings: Settings = SETTINGS
    sequencer_records: int = 20_000

    def __post_init__(self) -> None:
        self._registries: dict[int, CollectorRegistry] = {}
        self.sequencer_registry = CollectorRegistry()
        self.sequencer = Sequencer(
            self.settings,
            internal_topics(self.settings)["sequenced"],
            WorkerStats(self.sequencer_registry),
            clients=self.broker,
            max_records=self.sequencer_records,
            clock=self.clock,
        )
        self.runner = self.new_runner()

    def new_runner(self) -> Stages:
        partitions = {
            name: self.broker.partitions(self.settings.topic(name)) for name in INPUT_TOPICS
        }
        registry = CollectorRegistry()
        stats = WorkerStats(registry)
        topics = stage_topics(self.settings)
        stages = Stages(
            lane_group(
                self.settings,
                topics,
                partitions,
                stats,
                self.options,
                clients=self.broker,
                clock=self.clock,
            ),
            global_group(
                self.settings, topics, stats, self.options, clients=self.broker, clock=self.clock
            ),
        )
        self._registries[id(stages)] = registry
        return stages

    def metric(self, name: str, runner: Stages | None = None) -> float:
        """A sample of ``runner``'s metrics (default: the current stages'), 0 when absent."""
        registry = self._registries[id(runner or self.runner)]
        return float(registry.get_sample_value(name) or 0.0)

    def sequencer_metric(self, name: str, **labels: str) -> float:
        """A sample of the sequencer's metrics, 0 when absent."""
        return float(self.sequencer_registry.get_sample_value(name, labels) or 0.0)

    async def start(self) -> None:
        await self.sequencer.start()
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
        await self.sequencer.stop()

    async def step(self) -> tuple[int, int]:
        """(input records sequenced, log records applied by the runners)."""
        return await self.sequencer.step(), await self.runner.step()

    async def settle(self, max_rounds: int = 10_000) -> int:
        """Step until a round moves nothing (no input sequenced, no log record applied, no
        flush marker appended); returns the rounds that moved something."""
        for rounds in range(max_rounds):
            ends = self.log_ends()
            if await self.step() == (0, 0) and self.log_ends() == ends:
                return rounds
        raise AssertionError(f"the stages still move after {max_rounds} rounds")

    def log_ends(self) -> list[int]:
        topics = stage_topics(self.settings)
        return [
            self.broker.end_offset(topics.sequenced, partition)
            for partition in range(topics.lane_partitions)
        ] + [self.broker.end_offset(topics.lane_items)]

    async def go_idle(self) -> None:
        """Let the idle timeout pass and step until the idleness markers are acted on."""
        self.clock.advance(self.sequencer.idle_timeout_s)
        await self.settle()

    async def idle_flush(self) -> None:
        """Let the inputs go idle, then ``idle_flush_s`` pass, and step until the flush is
        acted on and all settled."""
        await self.go_idle()
        self.clock.advance(self.options.idle_flush_s)
        await self.settle()


def _pipelines(of: Pipeline | Stages) -> list[Pipeline]:
    return [of] if isinstance(of, Pipeline) else [r.pipeline for r in of.lane_runners()]


def outcomes(of: Pipeline | Stages) -> dict[str, float]:
    """Input records by outcome (processed, duplicate, dead_letter), from the metrics (of
    every lane runner of ``Stages``)."""
    found: dict[str, float] = defaultdict(float)
    for pipeline in _pipelines(of):
        for sample in pipeline.metrics():
            if sample.name == "policyloop_events_total":
                found[dict(sample.labels)["outcome"]] += sample.value
    return dict(found)


def late_events(of: Pipeline | Stages) -> float:
    """Records that arrived behind the watermark (policyloop_late_events_total)."""
    return sum(
        s.value
        for pipeline in _pipelines(of)
        for s in pipeline.metrics()
        if s.name == "policyloop_late_events_total"
    )


def late_by_topic(stages: Stages) -> dict[str, int]:
    """Late records per input topic, over every lane runner."""
    late: dict[str, int] = defaultdict(int)
    for pipeline in _pipelines(stages):
        for topic, n in pipeline.late.items():
            late[topic] += n
    return dict(late)


def keyed_outputs(broker: MemoryBroker, *, committed: bool = True) -> Keyed:
    """The values of every output topic by key, in offset order (one key, one partition)."""
    level = "read_committed" if committed else "read_uncommitted"
    found: Keyed = {}
    for topic in OUTPUT_TOPICS:
        by_key: dict[str, list[bytes]] = defaultdict(list)
        for record in broker.records(SETTINGS.topic(topic), isolation_level=level):
            assert record.key is not None and record.value is not None
            by_key[record.key.decode()].append(record.value)
        found[topic] = dict(by_key)
    return found


def reference_outputs(reference: list[Output]) -> Keyed:
    found: Keyed = {topic: {} for topic in OUTPUT_TOPICS}
    for output in reference:
        found[output.topic].setdefault(output.key, []).append(encode(output.value))
    return found


def assert_replay_outputs(
    broker: MemoryBroker, market: Market, extra_letter_keys: frozenset[str] = frozenset()
) -> None:
    """Every output topic holds replay's records: per key the same records in the same order
    (so nothing missing, nothing doubled); dead letters the same but for where they came
    from (a file line in replay, topic:partition:offset on Kafka), and but for those keyed
    ``extra_letter_keys`` (records a test sent beside the market)."""
    got, expected = keyed_outputs(broker), reference_outputs(market.reference)
    for key in extra_letter_keys:
        got[DEAD_LETTERS].pop(key, None)
    for topic in OUTPUT_TOPICS:
        if topic == DEAD_LETTERS:
            assert _letters(got[topic]) == _letters(expected[topic])
        else:
            assert got[topic] == expected[topic], topic


def _letters(by_key: dict[str, list[bytes]]) -> list[bytes]:
    return sorted(
        orjson.dumps(
            {k: v for k, v in orjson.loads(value).items() if k != "source_offset"},
            option=orjson.OPT_SORT_KEYS,
        )
        for values in by_key.values()
        for value in values
    )
