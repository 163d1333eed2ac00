"""Stage 2: the pipeline over the sequenced log, with exactly-once outputs.

Consumes the single partition of the sequenced topic in the group ``<group>-pipeline`` (one
worker at a time holds it). Each record of the log is applied in order:
- an input record already taken for its source partition is skipped (re-append);
- otherwise it is decoded (a bad one becomes a dead letter) and given to the pipeline;
- idleness markers move the watermark: it is the event-time frontier of the input
  partitions that are not idle (streams/worker/sources.py) minus the allowed lateness, so
  nothing is released while a partition that is not idle may still deliver earlier records;
  progress markers (position and end offset) feed the lag and settled metrics;
- a flush marker releases everything, as replay does at the end of its file.
The outputs of a batch, the consumer offset and, every ``checkpoint_interval_s``, a checkpoint
of the whole state are published in one transaction (transactional id
``<prefix><group>-pipeline``: a new holder fences the old one). On assignment or after any
error the state is restored from the last checkpoint and the log re-read from there; outputs
of records below the last committed offset are recomputed but not sent again.

The Kafka clients come from an injected ``Clients`` factory (aiokafka by default, the
in-memory broker in tests) and the idle and checkpoint timers read an injected ``Clock``, so
the runner can be driven step by step (``start``, ``step``, ``stop``) without Kafka or waits.
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
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from models.codec import DecodeError, encode
from models.common import to_ms
from processors.core.base import Output
from processors.pipeline import Pipeline, PipelineConfig
from streams.adapter import Rejected, decode_record
from streams.settings import Settings
from streams.worker.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from streams.worker.clients import Clients, Consumer, KafkaClients, Producer
from streams.worker.framing import FLUSH, IDLE, PROGRESS, flush_frame, parse_frame
from streams.worker.sources import NO_TIME, Sources
from streams.worker.stats import WorkerStats

log = logging.getLogger(__name__)
NEVER = 2**63  # max event time minus this is below any watermark: no auto release
IDLE_POLL_MS = 200
STANDBY_SLEEP_S = 0.1
RETRY_SLEEP_S = 1.0

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic``): only for operational timers, never for outputs."""


@dataclass(frozen=True)
class RunnerOptions:
    """How the runner batches and times its work.

    allowed_lateness_ms: event-time skew between input partitions waited for before
    records are released; checkpoint_interval_s: a checkpoint goes into the first
    transaction this long after the previous one; idle_flush_s: how long every input must
    be caught up with nothing new before a flush marker is appended (records arriving after
    a flush are late: the only way these timers reach the outputs); max_records: sequenced
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


class Runner:
    """Runs the pipeline when this worker holds the sequenced partition.

    ``clients`` builds the Kafka clients (default: aiokafka with ``settings``); ``clock``
    times the idle flush and the checkpoint interval (default ``time.monotonic``).
    """

    def __init__(
        self,
        settings: Settings,
        topics: dict[str, str],
        input_partitions: dict[str, list[int]],
        stats: WorkerStats,
        options: RunnerOptions | None = None,
        config: PipelineConfig | None = None,
        *,
        clients: Clients | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clients: Clients = clients or KafkaClients(settings)
        self.clock = clock
        self.topics = topics
        self.input_partitions = input_partitions
        self.stats = stats
        self.options = options or RunnerOptions()
        self.base_config = config or PipelineConfig()
        self.tp = TopicPartition(topics["sequenced"], 0)
        self.group = f"{settings.consumer_group}-pipeline"
        self.pipeline = self._fresh_pipeline()
        self.sources = Sources(input_partitions)
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.assigned = False
        self.needs_recovery = False
        self.next_offset = 0
        self.suppress_below = 0
        self.checkpoint: Checkpoint | None = None
        self.checkpoint_chunks = 0
        self.last_checkpoint_at = 0.0
        self.last_data_at = clock()
        self.flush_requested = False
        self.input_timestamp_ms: int | None = None

    def _fresh_pipeline(self) -> Pipeline:
        # the runner moves the watermark itself (advance), never from max seen
        return Pipeline(replace(self.base_config, allowed_lateness_ms=NEVER))

    # -- applying the log ---------------------------------------------------------------

    def apply(self, raw: bytes) -> list[Output]:
        """Apply one record of the sequenced log; a pure function of the log so far."""
        frame = parse_frame(raw)
        pipeline = self.pipeline
        if frame.kind == PROGRESS:
            self.sources.marker(frame.topic, frame.partition, frame.offset, frame.end)
            return []
        if frame.kind == IDLE:
            self.sources.mark_idle(frame.topic, frame.partition, frame.offset)
            self.stats.idle_partitions.set(self.sources.idle_count())
            return self._advance()
        if frame.kind == FLUSH:
            self.flush_requested = False
            return pipeline.finish()
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
            return pipeline.reject(frame.topic, key, frame.value, error, source, raw_cut=cut)
        decoded = decode_record(frame.topic, frame.key, frame.value, source, frame.timestamp_ms)
        if isinstance(decoded, Rejected):  # moves no frontier: nothing to advance
            return pipeline.reject(
                decoded.source_topic, decoded.key, decoded.raw, decoded.error, decoded.source
            )
        out_of_bounds = pipeline.out_of_bounds_total
        out = pipeline.handle(decoded)
        if pipeline.out_of_bounds_total == out_of_bounds:  # taken, not dead-lettered
            self.sources.saw_event(frame.topic, frame.partition, to_ms(decoded.value.event_time))
        advanced = self._advance()
        return out + advanced if advanced else out

    def _advance(self) -> list[Output]:
        frontier = self.sources.event_time_frontier()
        watermark = frontier - self.options.allowed_lateness_ms
        if frontier == NO_TIME or watermark <= self.pipeline.watermark_ms:
            return []
        return self.pipeline.advance(watermark)

    # -- state --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline.snapshot(), "sources": self.sources.snapshot()}

    def restore(self, checkpoint: Checkpoint | None) -> None:
        self.pipeline = self._fresh_pipeline()
        self.sources = Sources(self.input_partitions)
        if checkpoint is not None:
            self.pipeline.restore(checkpoint.state["pipeline"])
            known = Sources()
            known.restore(checkpoint.state["sources"])
            self.sources.add_known(known)
        self.next_offset = checkpoint.next_offset if checkpoint else 0

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Run until ``stopping`` is set; a Kafka error leads to a recovery, not an exit."""
        try:
            await self.start()
            while not stopping.is_set():
                try:
                    await self.step()
                except KafkaError as exc:
                    log.warning("pipeline runner: %s; recovering from the last checkpoint", exc)
                    self.needs_recovery = True
                    await self._stop_producer()
                    await asyncio.sleep(RETRY_SLEEP_S)
        finally:
            await self.stop()

    async def start(self) -> None:
        """Create the consumer and join the group ``<group>-pipeline``."""
        consumer = self.clients.consumer(
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        consumer.subscribe([self.tp.topic], listener=_Listener(self))
        await consumer.start()
        self.consumer = consumer

    async def step(self) -> int:
        """One turn: recover if newly assigned, then process one batch of the log (or, when
        there is none, consider the idle flush). Returns the number of records of the log
        applied (0 when idle or standing by); raises the clients' KafkaError."""
        consumer = self.consumer
        if consumer is None:
            raise RuntimeError("Runner.step before start")
        if self.needs_recovery and self.assigned:
            await self._recover(consumer)
        return await self._step(consumer)

    async def stop(self) -> None:
        """Stop the producer and leave the group."""
        await self._stop_producer()
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _recover(self, consumer: Consumer) -> None:
        self.checkpoint, self.checkpoint_chunks = await read_checkpoint(
            self.clients, self.topics["state"]
        )
        self.restore(self.checkpoint)
        committed = await consumer.committed(self.tp)
        self.suppress_below = committed or 0
        consumer.seek(self.tp, self.next_offset)
        await self._stop_producer()
        producer = self.clients.producer(
            transactional_id=f"{self.settings.topic_prefix}{self.group}",
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
        self.stats.active.set(1)
        log.info(
            "pipeline runner: restored at offset %d (committed %d)",
            self.next_offset,
            self.suppress_below,
        )

    async def _stop_producer(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def _step(self, consumer: Consumer) -> int:
        if not self.assigned or self.producer is None:
            await asyncio.sleep(STANDBY_SLEEP_S)
            return 0
        batch = await consumer.getmany(
            self.tp, timeout_ms=IDLE_POLL_MS, max_records=self.options.max_records
        )
        records = batch.get(self.tp, [])
        if not records:
            await self._maybe_request_flush()
            return 0
        outputs: list[Output] = []
        timestamps: list[int] = []
        for record in records:
            self.input_timestamp_ms = None
            produced = self.apply(record.value)
            if record.offset >= self.suppress_below:
                outputs.extend(produced)
                if produced and self.input_timestamp_ms is not None:
                    timestamps.append(self.input_timestamp_ms)
            else:
                self.stats.suppressed_total.inc(len(produced))
            self.next_offset = record.offset + 1
        self.last_data_at = self.clock()
        self.stats.settled.set(0)
        await self._commit(outputs)
        now_ms = time.time() * 1000.0
        for stamp in timestamps:
            self.stats.latency.observe(max(now_ms - stamp, 0.0) / 1000.0)
        end = consumer.highwater(self.tp)
        if end is not None:
            self.stats.pipeline_lag.set(max(end - self.next_offset, 0))
        return len(records)

    async def _commit(self, outputs: list[Output]) -> None:
        producer = self.producer
        assert producer is not None
        topic = self.settings.topic
        checkpoint_due = self.clock() - self.last_checkpoint_at >= (
            self.options.checkpoint_interval_s
        )
        async with producer.transaction():
            for output in outputs:
                await producer.send(
                    topic(output.topic), encode(output.value), key=output.key.encode()
                )
            if checkpoint_due:
                generation = (self.checkpoint.generation + 1) if self.checkpoint else 1
                chunks = await write_checkpoint(
                    producer,
                    self.topics["state"],
                    generation,
                    self.checkpoint,
                    self.next_offset,
                    self.state(),
                    self.checkpoint_chunks,
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

    async def _maybe_request_flush(self) -> None:
        """All inputs caught up and nothing new for a while: append a flush marker to the log
        (acted on when read back, so a recovery replays it at the same place)."""
        pipeline = self.pipeline
        idle = self.clock() - self.last_data_at >= self.options.idle_flush_s
        has_pending = pipeline.buffered() > 0 or pipeline.watermark_ms < pipeline.max_event_ms
        # every partition idle (markers in the log), not merely caught up right now: a
        # partition that is only slower than the others still holds everything back
        all_idle = self.sources.all_idle()
        self.stats.settled.set(1 if all_idle and not has_pending else 0)
        if not (idle and has_pending and all_idle and not self.flush_requested):
            return
        producer = self.producer
        assert producer is not None
        async with producer.transaction():
            await producer.send(self.tp.topic, flush_frame(), partition=0)
        self.flush_requested = True
        self.stats.idle_flushes_total.inc()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        if self.runner.tp in revoked:
            self.runner.assigned = False
            self.runner.stats.active.set(0)
            await self.runner._stop_producer()

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        if self.runner.tp in assigned:
            self.runner.assigned = True
            self.runner.needs_recovery = True
