"""Stages 2 and 3: the lane runners over the sequenced log and the global runner, each with
exactly-once outputs.

**Lane runners.** The sequenced log has ``POLICYLOOP_LANE_PARTITIONS`` partitions; the lanes
of strategy s are in partition ``crc32(s) mod N`` (streams/worker/sequencer.py). Every worker
consumes the log in the group ``<group>-pipeline``, so Kafka's group assignment spreads the
partitions over the workers and a worker that dies hands its partitions over. For each
partition it holds, a worker runs a ``LaneRunner``: the pipeline's front and lanes
(processors/pipeline.py, ``with_global_stage=False``) over that partition's log:
- an input record already taken for its source partition is skipped (re-append);
- otherwise it is decoded (a bad one becomes a dead letter) and given to the pipeline;
- progress markers carry each input partition's latest event time and idleness markers say
  a partition went idle: the watermark is the event-time frontier of the input partitions
  that are not idle (streams/worker/sources.py) minus the allowed lateness, the same in
  every lane partition, so nothing is released while a partition that is not idle may still
  deliver earlier records;
- a flush marker releases everything, as replay does at the end of its file.
The lanes' outputs (performance rows, replan verdicts, dead letters) go to the output topics;
what is for the global stage (alert signals, decision rows, lane summaries) goes to the
internal ``policyloop-lane-items`` topic with the partition's watermark after each batch.

**Global runner.** One worker at a time holds the lane-items topic (group
``<group>-global``) and runs the global stage (alert router, policy loop) over every lane
partition's items in tag order, each once all partitions' watermarks passed it
(``PartitionedGlobalStage``): alerts, candidates, updates and feedback summaries.

Every runner publishes the outputs of a batch, its consumer offset and, every
``checkpoint_interval_s``, a checkpoint of its whole state (its own partition of the
compacted state topic) in one transaction (transactional id per runner: a new holder fences
the old one). On assignment or after any error it restores its last checkpoint and re-reads
its log from there; outputs of records below the last committed offset are recomputed but
not sent again.

The Kafka clients come from an injected ``Clients`` factory (aiokafka by default, the
in-memory broker in tests) and the idle and checkpoint timers read an injected ``Clock``, so
the stages can be driven step by step (``start``, ``step``, ``stop``) without Kafka or waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerClosed
from aiokafka.structs import OffsetAndMetadata

from models.codec import DecodeError, encode
from models.common import to_ms
from processors.core.base import MetricSample, Output
from processors.global_stage import PartitionedGlobalStage
from processors.lane import Item
from processors.pipeline import Pipeline, PipelineConfig
from streams.adapter import Rejected, decode_record
from streams.settings import Settings
from streams.worker.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from streams.worker.clients import Clients, Consumer, KafkaClients, Producer
from streams.worker.framing import FLUSH, IDLE, PROGRESS, flush_frame, parse_frame
from streams.worker.lane_items import FLUSHED, flushed_frame, items_frames, parse_lane_frame
from streams.worker.sources import NO_TIME, Sources
from streams.worker.stats import WorkerStats

log = logging.getLogger(__name__)
NEVER = 2**63  # max event time minus this is below any watermark: no auto release
IDLE_POLL_MS = 200
STANDBY_SLEEP_S = 0.1
RETRY_SLEEP_S = 1.0

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic``): only for operational timers, never for outputs."""

Send = tuple[str, bytes | None, bytes, int | None]
"""A record a runner publishes: (topic, key, value, partition or None for the key's)."""


@dataclass(frozen=True)
class RunnerOptions:
    """How the runners batch and time their work.

    allowed_lateness_ms: event-time skew between input partitions waited for before
    records are released; checkpoint_interval_s: a checkpoint goes into the first
    transaction this long after the previous one; idle_flush_s: how long every input must
    be caught up with nothing new before a flush marker is appended (records arriving after
    a flush are late: the only way these timers reach the outputs); max_records: log
    records per transaction (at most).
    """

    allowed_lateness_ms: int = 15 * 60 * 1000
    checkpoint_interval_s: float = 30.0
    idle_flush_s: float = 3.0
    max_records: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerOptions:
        """The options of ``settings`` (WATERMARK_LATENESS_MS, CHECKPOINT_INTERVAL_S,
        IDLE_FLUSH_S, PIPELINE_BATCH_RECORDS)."""
        return cls(
            allowed_lateness_ms=settings.watermark_lateness_ms,
            checkpoint_interval_s=settings.checkpoint_interval_s,
            idle_flush_s=settings.idle_flush_s,
            max_records=settings.pipeline_batch_records,
        )


@dataclass(frozen=True)
class StageTopics:
    """The internal topics (deployed names) and how many lane partitions there are."""

    sequenced: str
    lane_items: str
    state: str
    lane_partitions: int

    @property
    def global_state_partition(self) -> int:
        """The state topic's partition of the global runner (the lanes' are 0..N-1)."""
        return self.lane_partitions


class LogRunner:
    """What the lane runner and the global runner share: apply one partition of a log in
    order, publish each batch's outputs with the consumer offset (and now and then a
    checkpoint) in one transaction, recover from the last checkpoint."""

    def __init__(
        self,
        settings: Settings,
        stats: WorkerStats,
        options: RunnerOptions,
        tp: TopicPartition,
        group: str,
        transactional_id: str,
        state_topic: str,
        state_partition: int,
        clients: Clients,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.options = options
        self.tp = tp
        self.group = group
        self.transactional_id = transactional_id
        self.state_topic = state_topic
        self.state_partition = state_partition
        self.clients = clients
        self.clock = clock
        self.producer: Producer | None = None
        self.assigned = True
        self.needs_recovery = True
        self.next_offset = 0
        self.suppress_below = 0
        self.checkpoint: Checkpoint | None = None
        self.checkpoint_chunks = 0
        self.last_checkpoint_at = 0.0
        self.last_data_at = clock()
        self.input_timestamp_ms: int | None = None
        """The input timestamp of the record being applied, if it is an input record."""

    # -- what a runner is -----------------------------------------------------------------

    def apply(self, raw: bytes) -> list[Send]:
        """Apply one record of the log; a pure function of the log so far."""
        raise NotImplementedError

    def applied(self, kept: bool) -> None:
        """After each ``apply``: whether what it produced goes out (False below the offset an
        earlier holder committed: it went out then)."""

    def after_batch(self) -> list[Send]:
        """What goes out after a batch's records (in the same transaction)."""
        return []

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, checkpoint: Checkpoint | None) -> None:
        """Fresh state, then ``checkpoint``'s if any; sets ``next_offset``."""
        raise NotImplementedError

    async def when_quiet(self) -> None:
        """A poll found nothing new."""

    @property
    def is_settled(self) -> bool:
        """Nothing held back (for ``policyloop_pipeline_settled``)."""
        return True

    def observe_latency(self, timestamps: list[int]) -> None:
        """Wall-clock latency of the records whose apply released outputs."""

    # -- the loop -------------------------------------------------------------------------

    async def step(self, consumer: Consumer) -> int:
        """One turn: recover if newly assigned, then apply one batch of the log (or, when
        there is none, ``when_quiet``). Returns the log records applied; raises the
        clients' KafkaError."""
        if not self.assigned:
            return 0
        if self.needs_recovery:
            await self._recover(consumer)
        batch = await consumer.getmany(
            self.tp, timeout_ms=IDLE_POLL_MS, max_records=self.options.max_records
        )
        records = batch.get(self.tp, [])
        if not self.assigned or self.producer is None:
            return 0  # revoked while fetching: the next holder reads these from its checkpoint
        if not records:
            await self.when_quiet()
            return 0
        sends: list[Send] = []
        timestamps: list[int] = []
        for record in records:
            self.input_timestamp_ms = None
            produced = self.apply(record.value)
            kept = record.offset >= self.suppress_below
            self.applied(kept)
            if kept:
                sends.extend(produced)
                if produced and self.input_timestamp_ms is not None:
                    timestamps.append(self.input_timestamp_ms)
            else:
                self.stats.suppressed_total.inc(len(produced))
            self.next_offset = record.offset + 1
        after = self.after_batch()
        if records[-1].offset >= self.suppress_below:
            sends.extend(after)
        self.last_data_at = self.clock()
        await self._commit(sends)
        self.observe_latency(timestamps)
        # (a revocation during the commit leaves nothing to measure)
        end = consumer.highwater(self.tp) if self.tp in consumer.assignment() else None
        if end is not None:
            self.stats.pipeline_lag.set(max(end - self.next_offset, 0))
        return len(records)

    async def _recover(self, consumer: Consumer) -> None:
        self.checkpoint, self.checkpoint_chunks = await read_checkpoint(
            self.clients, self.state_topic, self.state_partition
        )
        self.restore(self.checkpoint)
        committed = await consumer.committed(self.tp)
        self.suppress_below = committed or 0
        consumer.seek(self.tp, self.next_offset)
        await self.stop_producer()
        producer = self.clients.producer(
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=self.settings.linger_ms,
            max_batch_size=1024 * 1024,
        )
        await producer.start()
        self.producer = producer
        self.needs_recovery = False
        self.last_checkpoint_at = self.clock()
        self.stats.recoveries_total.inc()
        log.info(
            "%s: restored at offset %d (committed %d)",
            self.transactional_id,
            self.next_offset,
            self.suppress_below,
        )

    def _producer(self) -> Producer:
        """The transactional producer; ProducerClosed (a KafkaError: the partition recovers)
        when a revocation stopped it while this runner awaited."""
        if self.producer is None:
            raise ProducerClosed()
        return self.producer

    async def stop_producer(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def _commit(self, sends: list[Send]) -> None:
        producer = self._producer()
        checkpoint_due = self.clock() - self.last_checkpoint_at >= (
            self.options.checkpoint_interval_s
        )
        async with producer.transaction():
            for topic, key, value, partition in sends:
                await producer.send(topic, value, key=key, partition=partition)
            if checkpoint_due:
                generation = (self.checkpoint.generation + 1) if self.checkpoint else 1
                chunks = await write_checkpoint(
                    producer,
                    self.state_topic,
                    generation,
                    self.checkpoint,
                    self.next_offset,
                    self.state(),
                    self.checkpoint_chunks,
                    self.state_partition,
                )
            # While recomputing below what an earlier holder committed, the committed
            # offset stays there: moving it back would make the next holder, after a kill,
            # send again what was already published.
            committed = max(self.next_offset, self.suppress_below)
            await producer.send_offsets_to_transaction(
                {self.tp: OffsetAndMetadata(committed, "")}, self.group
            )
        self.stats.transactions_total.inc()
        if checkpoint_due:
            self.checkpoint = Checkpoint(generation, self.next_offset, {})
            self.checkpoint_chunks = chunks
            self.last_checkpoint_at = self.clock()
            self.stats.checkpoints_total.inc()


class LaneRunner(LogRunner):
    """The front and lanes of the pipeline over one partition of the sequenced log."""

    def __init__(
        self,
        settings: Settings,
        topics: StageTopics,
        partition: int,
        input_partitions: dict[str, list[int]],
        stats: WorkerStats,
        options: RunnerOptions,
        config: PipelineConfig,
        clients: Clients,
        clock: Clock,
    ) -> None:
        group = f"{settings.consumer_group}-pipeline"
        super().__init__(
            settings,
            stats,
            options,
            TopicPartition(topics.sequenced, partition),
            group,
            f"{settings.topic_prefix}{group}-{partition}",
            topics.state,
            partition,
            clients,
            clock,
        )
        self.topics = topics
        self.partition = partition
        self.input_partitions = input_partitions
        self.base_config = config
        self.pipeline = self._fresh_pipeline()
        self.sources = Sources(input_partitions)
        self.flush_requested = False
        self._batch_items: list[Item] = []
        """The items of this batch's records that go out (see ``applied``)."""
        self.settled = False
        """Every input partition idle and nothing held back (as of the last quiet poll)."""
        self.flushed = False
        """Nothing but a flush marker since the last one acted on: a partition flushes once
        per quiet spell, even when it holds nothing back, so that the global stage hears
        every partition's flush."""

    def _fresh_pipeline(self) -> Pipeline:
        # the runner moves the watermark itself (advance), never from max seen
        return Pipeline(
            replace(self.base_config, allowed_lateness_ms=NEVER), with_global_stage=False
        )

    def apply(self, raw: bytes) -> list[Send]:
        frame = parse_frame(raw)
        pipeline = self.pipeline
        self.flushed = frame.kind == FLUSH
        if frame.kind == PROGRESS:
            self.sources.marker(frame.topic, frame.partition, frame.offset, frame.end)
            if frame.timestamp_ms is not None:
                self.sources.saw_event(frame.topic, frame.partition, frame.timestamp_ms)
            return self._sends(self._advance())
        if frame.kind == IDLE:
            self.sources.mark_idle(frame.topic, frame.partition, frame.offset)
            self.stats.idle_partitions.set(self.sources.idle_count())
            return self._sends(self._advance())
        if frame.kind == FLUSH:
            self.flush_requested = False
            self.stats.idle_flushes_total.inc()
            out = pipeline.finish()
            sends = self._sends(out)
            sends.extend(self._items())
            sends.append((self.topics.lane_items, None, flushed_frame(self.partition), 0))
            return sends
        if not self.sources.take(frame.topic, frame.partition, frame.offset):
            return []
        self.input_timestamp_ms = frame.timestamp_ms
        source = f"{frame.topic}:{frame.partition}:{frame.offset}"
        if frame.original_size is not None:
            limit = self.settings.max_record_bytes
            error = DecodeError(
                "too_large",
                f"record of {frame.original_size} bytes (key and value), over "
                f"POLICYLOOP_MAX_RECORD_BYTES = {limit}",
            )
            key = frame.key.decode("utf-8", errors="replace") if frame.key is not None else None
            kept = len(frame.key or b"") + len(frame.value)
            cut = kept < frame.original_size
            letters = pipeline.reject(frame.topic, key, frame.value, error, source, raw_cut=cut)
            return self._sends(letters)
        decoded = decode_record(frame.topic, frame.key, frame.value, source, frame.timestamp_ms)
        if isinstance(decoded, Rejected):  # moves no frontier: nothing to advance
            letters = pipeline.reject(
                decoded.source_topic, decoded.key, decoded.raw, decoded.error, decoded.source
            )
            return self._sends(letters)
        out_of_bounds = pipeline.out_of_bounds_total
        out = pipeline.handle(decoded)
        if pipeline.out_of_bounds_total == out_of_bounds:  # taken, not dead-lettered
            self.sources.saw_event(frame.topic, frame.partition, to_ms(decoded.value.event_time))
        advanced = self._advance()
        return self._sends(out + advanced if advanced else out)

    def _advance(self) -> list[Output]:
        frontier = self.sources.event_time_frontier()
        watermark = frontier - self.options.allowed_lateness_ms
        if frontier == NO_TIME or watermark <= self.pipeline.watermark_ms:
            return []
        return self.pipeline.advance(watermark, frontier)

    def _sends(self, outputs: list[Output]) -> list[Send]:
        topic = self.settings.topic
        return [
            (topic(output.topic), output.key.encode(), encode(output.value), None)
            for output in outputs
        ]

    def _items(self) -> list[Send]:
        """The frames of the batch's items so far (kept ones: see ``applied``) and of the
        pipeline's new ones, the last with the watermark."""
        items = [*self._batch_items, *self.pipeline.take_global_items()]
        self._batch_items = []
        frames = items_frames(self.partition, items, self.pipeline.watermark_ms)
        return [(self.topics.lane_items, None, frame, 0) for frame in frames]

    def applied(self, kept: bool) -> None:
        items = self.pipeline.take_global_items()
        if kept:
            self._batch_items.extend(items)

    def after_batch(self) -> list[Send]:
        self.settled = False
        return self._items()

    @property
    def is_settled(self) -> bool:
        return self.settled

    def observe_latency(self, timestamps: list[int]) -> None:
        now_ms = time.time() * 1000.0
        for stamp in timestamps:
            self.stats.latency.observe(max(now_ms - stamp, 0.0) / 1000.0)

    def state(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline.snapshot(),
            "sources": self.sources.snapshot(),
            "flushed": self.flushed,
        }

    def restore(self, checkpoint: Checkpoint | None) -> None:
        self.pipeline = self._fresh_pipeline()
        self.sources = Sources(self.input_partitions)
        self.flushed = False
        if checkpoint is not None:
            self.pipeline.restore(checkpoint.state["pipeline"])
            known = Sources()
            known.restore(checkpoint.state["sources"])
            self.sources.add_known(known)
            self.flushed = bool(checkpoint.state.get("flushed", False))
        self.next_offset = checkpoint.next_offset if checkpoint else 0

    async def when_quiet(self) -> None:
        """All inputs idle and nothing new for a while: append a flush marker to this
        partition's log (acted on when read back, so a recovery replays it at the same
        place). Once per quiet spell: the global stage flushes when every partition has."""
        pipeline = self.pipeline
        idle = self.clock() - self.last_data_at >= self.options.idle_flush_s
        has_pending = pipeline.buffered() > 0 or pipeline.watermark_ms < pipeline.max_event_ms
        # every partition idle (markers in the log), not merely caught up right now: a
        # partition that is only slower than the others still holds everything back
        all_idle = self.sources.all_idle()
        self.settled = all_idle and not has_pending
        unflushed = has_pending or not self.flushed
        if not (idle and unflushed and all_idle and not self.flush_requested):
            return
        producer = self._producer()
        async with producer.transaction():
            await producer.send(self.tp.topic, flush_frame(), partition=self.partition)
        self.flush_requested = True


class GlobalRunner(LogRunner):
    """The global stage over the lane-items topic."""

    def __init__(
        self,
        settings: Settings,
        topics: StageTopics,
        stats: WorkerStats,
        options: RunnerOptions,
        config: PipelineConfig,
        clients: Clients,
        clock: Clock,
    ) -> None:
        group = f"{settings.consumer_group}-global"
        super().__init__(
            settings,
            stats,
            options,
            TopicPartition(topics.lane_items, 0),
            group,
            f"{settings.topic_prefix}{group}",
            topics.state,
            topics.global_state_partition,
            clients,
            clock,
        )
        self.topics = topics
        self.config = config
        self.merge = PartitionedGlobalStage(config, topics.lane_partitions)

    def apply(self, raw: bytes) -> list[Send]:
        frame = parse_lane_frame(raw)
        if frame.kind == FLUSHED:
            out = self.merge.on_flushed(frame.partition)
        else:
            out = self.merge.on_items(frame.partition, frame.items, frame.watermark_ms)
        topic = self.settings.topic
        return [(topic(o.topic), o.key.encode(), encode(o.value), None) for o in out]

    def state(self) -> dict[str, Any]:
        return {"global": self.merge.snapshot()}

    def restore(self, checkpoint: Checkpoint | None) -> None:
        self.merge = PartitionedGlobalStage(self.config, self.topics.lane_partitions)
        if checkpoint is not None:
            self.merge.restore(checkpoint.state["global"])
        self.next_offset = checkpoint.next_offset if checkpoint else 0

    def metrics(self) -> list[MetricSample]:
        return self.merge.stage.metrics()


class StageGroup:
    """One consumer in ``group`` over ``topic``, and a runner (``make(partition)``) for
    every partition the group assigns to it; ``step`` steps each in turn."""

    def __init__(
        self,
        clients: Clients,
        topic: str,
        group: str,
        make: Callable[[int], LogRunner],
        stats: WorkerStats,
        stage: str,
    ) -> None:
        self.clients = clients
        self.stage = stage
        """"lanes" or "global": which of the worker's gauges this group's holdings go to."""
        self.topic = topic
        self.group = group
        self.make = make
        self.stats = stats
        self.runners: dict[int, LogRunner] = {}
        self._retired: list[LogRunner] = []
        self.consumer: Consumer | None = None

    async def start(self) -> None:
        """Create the consumer and join the group."""
        consumer = self.clients.consumer(
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        consumer.subscribe([self.topic], listener=_Listener(self))
        await consumer.start()
        self.consumer = consumer

    async def stop(self) -> None:
        """Stop the producers and leave the group."""
        await self._stop_retired()
        for runner in list(self.runners.values()):
            await runner.stop_producer()
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def step(self) -> int:
        """Step every runner once; sleeps a little when this worker holds no partition."""
        consumer = self.consumer
        if consumer is None:
            raise RuntimeError("StageGroup.step before start")
        await self._stop_retired()
        if not self.runners:
            await asyncio.sleep(STANDBY_SLEEP_S)
            return 0
        applied = 0
        failed = False
        for partition in sorted(self.runners):
            runner = self.runners.get(partition)
            if runner is None:  # revoked while another partition stepped
                continue
            try:
                applied += await runner.step(consumer)
            except KafkaError as exc:
                # that partition only recovers from its checkpoint (a revocation during its
                # transaction lands here too: the runner is gone from the group by then)
                failed = True
                log.warning("%s: %s; recovering from its last checkpoint", runner.tp, exc)
                runner.needs_recovery = True
                await runner.stop_producer()
        await self._stop_retired()
        if failed:
            await asyncio.sleep(RETRY_SLEEP_S)
        if self.stage == "lanes":
            settled = all(runner.is_settled for runner in self.runners.values())
            self.stats.settled.set(1 if self.runners and settled else 0)
        return applied

    async def run(self, stopping: asyncio.Event) -> None:
        """Run until ``stopping`` is set; a Kafka error leads to a recovery, not an exit."""
        try:
            await self.start()
            while not stopping.is_set():
                try:
                    await self.step()
                except KafkaError as exc:  # the consumer itself (its runners recover above)
                    log.warning("%s: %s; recovering from the last checkpoints", self.group, exc)
                    for runner in list(self.runners.values()):
                        runner.needs_recovery = True
                        await runner.stop_producer()
                    await asyncio.sleep(RETRY_SLEEP_S)
        finally:
            await self.stop()

    async def revoke(self, partitions: Collection[int]) -> None:
        """Drop the runners of ``partitions``. Their producers are stopped by ``step`` once
        no runner is mid-step: the listener runs while a runner may await its producer in a
        transaction, and stopping it under that await can leave the await hanging. A runner
        that still commits after it lost its partition is fenced by the next holder's
        transactional producer (same transactional id), or committed before it: either way
        the next holder recovers from what was committed."""
        for partition in partitions:
            runner = self.runners.pop(partition, None)
            if runner is not None:
                runner.assigned = False
                self._retired.append(runner)
        self.stats.set_held(self.stage, len(self.runners))

    async def _stop_retired(self) -> None:
        retired, self._retired = self._retired, []
        for runner in retired:
            await runner.stop_producer()

    def assign(self, partitions: Collection[int]) -> None:
        for partition in partitions:
            if partition not in self.runners:
                self.runners[partition] = self.make(partition)
        self.stats.set_held(self.stage, len(self.runners))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, group: StageGroup) -> None:
        self.group = group

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.group.revoke([tp.partition for tp in revoked if tp.topic == self.group.topic])

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.group.assign([tp.partition for tp in assigned if tp.topic == self.group.topic])


def lane_group(
    settings: Settings,
    topics: StageTopics,
    input_partitions: dict[str, list[int]],
    stats: WorkerStats,
    options: RunnerOptions | None = None,
    config: PipelineConfig | None = None,
    *,
    clients: Clients | None = None,
    clock: Clock = time.monotonic,
) -> StageGroup:
    """The lane runners of this worker: the group ``<group>-pipeline`` over the sequenced
    log."""
    chosen = clients or KafkaClients(settings)
    opts = options or RunnerOptions()
    cfg = config or PipelineConfig()

    def make(partition: int) -> LogRunner:
        return LaneRunner(
            settings, topics, partition, input_partitions, stats, opts, cfg, chosen, clock
        )

    group = f"{settings.consumer_group}-pipeline"
    return StageGroup(chosen, topics.sequenced, group, make, stats, "lanes")


def global_group(
    settings: Settings,
    topics: StageTopics,
    stats: WorkerStats,
    options: RunnerOptions | None = None,
    config: PipelineConfig | None = None,
    *,
    clients: Clients | None = None,
    clock: Clock = time.monotonic,
) -> StageGroup:
    """The global runner (held by one worker at a time): the group ``<group>-global`` over
    the lane-items topic."""
    chosen = clients or KafkaClients(settings)
    opts = options or RunnerOptions()
    cfg = config or PipelineConfig()

    def make(partition: int) -> LogRunner:
        return GlobalRunner(settings, topics, stats, opts, cfg, chosen, clock)

    group = f"{settings.consumer_group}-global"
    return StageGroup(chosen, topics.lane_items, group, make, stats, "global")
