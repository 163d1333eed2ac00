"""Stage 1: append every input record to the sequenced log, in each partition's order.

Runs in the consumer group ``<group>-sequencer`` over all input topics, so the workers share
the input partitions. Per fetched batch: each record is decoded (to learn its strategy and
event time; the lane runner decodes it again and dead-letters it if bad), framed with its
coordinates and sent to the partition of the sequenced topic that holds its strategy's lane
(``lane_partition_of``; a record for every strategy to every partition, one that does not
decode to a partition picked by its source partition); then, to every partition, a progress
marker (position, end offset, latest event time) for every assigned input partition whose
progress changed; then, once every send is acknowledged, the input offsets are committed.
At-least-once: after a crash or a rebalance a record may be appended twice; the lane runner
skips anything at or below the offset it has already seen for that input partition.

Idleness (the watermark rule of streams/worker/sources.py): a partition that is caught up
and delivers nothing new for ``idle_timeout_s`` of the injected clock (checked against fresh
end offsets from the broker, not the last fetch's high watermark, which can be stale) gets an
idleness marker in the log, once; a partition that delivers again starts over. This is the
one wall-clock decision that shapes output, and it is written into the log before it acts.

The Kafka clients come from an injected ``Clients`` factory (aiokafka by default, the
in-memory broker in tests) and the clock is injected too; ``start``, ``step`` and ``stop``
let a test drive it batch by batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from models.common import to_ms
from models.topics import INPUT_TOPICS
from processors.stages import PipelineConfig
from streams.adapter import Rejected, decode_record
from streams.kafka_batches import PartitionBatches
from streams.settings import Settings
from streams.worker.clients import Clients, Consumer, KafkaClients, Producer
from streams.worker.framing import (
    BATCH_BYTES,
    cut_record_frame,
    idle_frame,
    progress_frame,
    record_frame,
    sequenced_message_limit,
)
from streams.worker.stats import WorkerStats

log = logging.getLogger(__name__)
MAX_RECORDS = 20_000


def lane_partition_of(strategy_id: str, lane_partitions: int) -> int:
    """The partition of the sequenced log that holds ``strategy_id``'s lane."""
    return zlib.crc32(strategy_id.encode()) % lane_partitions


def _lane_of_source(topic: str, partition: int, lane_partitions: int) -> int:
    return zlib.crc32(f"{topic}:{partition}".encode()) % lane_partitions


MAX_FAILURES_IN_A_ROW = 5
"""Kafka errors in a row after which the sequencer gives up and the worker exits non-zero
(a supervisor restarts it); each one before restarts the clients."""


class StageFailedError(RuntimeError):
    """A stage failed ``MAX_FAILURES_IN_A_ROW`` times in a row; the worker exits."""


class Sequencer:
    """Consumes the input topics and appends them to the sequenced log.

    ``clients`` builds the Kafka clients (default: aiokafka with ``settings``);
    ``max_records`` bounds the input records of one step.
    """

    def __init__(
        self,
        settings: Settings,
        sequenced_topic: str,
        stats: WorkerStats,
        *,
        clients: Clients | None = None,
        max_records: int = MAX_RECORDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sequenced_topic = sequenced_topic
        self.stats = stats
        self.clients: Clients = clients or KafkaClients(settings)
        self.max_records = max_records
        self.clock = clock
        self.idle_timeout_s = settings.idle_timeout_s
        self._active_at: dict[TopicPartition, float] = {}
        self._idle_sent: set[TopicPartition] = set()
        self.lane_partitions = settings.lane_partitions
        self.max_ahead_ms = PipelineConfig().max_event_time_ahead_ms or 2**62
        self._max_event_ms: dict[TopicPartition, int] = {}
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self._reported: dict[TopicPartition, tuple[int, int, int | None]] = {}

    async def run(self, stopping: asyncio.Event, retry_after_s: float = 1.0) -> None:
        """Run until ``stopping`` is set.

        A Kafka error never wedges the stage: it is counted
        (``policyloop_stage_errors_total{stage="sequencer"}``) and logged, and the clients
        are restarted, so the consumer resumes from its committed offsets (the runner skips
        what is appended twice) and a fresh idempotent producer replaces one that a refused
        batch left failing every later send. After ``MAX_FAILURES_IN_A_ROW`` failures in a
        row it raises ``StageFailedError`` and the worker exits non-zero."""
        failures = 0
        try:
            await self.start()
            while not stopping.is_set():
                try:
                    await self.step()
                    failures = 0
                except KafkaError as exc:
                    failures += 1
                    self.stats.stage_errors_total.labels(stage="sequencer").inc()
                    if failures >= MAX_FAILURES_IN_A_ROW:
                        log.error("sequencer: %s; failed %d times in a row, exiting", exc, failures)
                        raise StageFailedError(f"sequencer failed {failures} times: {exc}") from exc
                    log.error("sequencer: %s; restarting its Kafka clients", exc)
                    await self.restart()
                    await asyncio.sleep(retry_after_s)
        finally:
            await self.stop()

    def _route(
        self, name: str, tp: TopicPartition, key: bytes | None, value: bytes | None, offset: int
    ) -> list[tuple[str, int]]:
        """The lane partitions a record goes to: its strategy's, every one for a record of
        all strategies, one picked by its source partition for a record that does not
        decode (its lane runner dead-letters it). Notes the record's event time for the
        partition's progress markers (a record far ahead of the partition's latest is not
        noted: one bad timestamp must not move the watermark; the pipeline dead-letters it)."""
        lanes = self.lane_partitions
        decoded = decode_record(name, key, value or b"", f"{name}:{tp.partition}:{offset}")
        if isinstance(decoded, Rejected):
            return [(self.sequenced_topic, _lane_of_source(name, tp.partition, lanes))]
        event_ms = to_ms(decoded.value.event_time)
        seen = self._max_event_ms.get(tp)
        if seen is None or seen < event_ms <= seen + self.max_ahead_ms:
            self._max_event_ms[tp] = event_ms
        strategy_id = INPUT_TOPICS[name].lane_of(decoded.value)
        if strategy_id is None:
            return [(self.sequenced_topic, p) for p in range(lanes)]
        return [(self.sequenced_topic, lane_partition_of(strategy_id, lanes))]

    async def restart(self) -> None:
        """Stop the clients (errors ignored) and start new ones."""
        with contextlib.suppress(KafkaError):
            await self.stop()
        self._reported.clear()
        self._active_at.clear()
        self._idle_sent.clear()
        await self.start()

    async def start(self) -> None:
        """Create the clients and join the group ``<group>-sequencer``."""
        settings = self.settings
        consumer = self.clients.consumer(
            *[settings.topic(name) for name in INPUT_TOPICS],
            group_id=f"{settings.consumer_group}-sequencer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        producer = self.clients.producer(
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.linger_ms,
            max_batch_size=BATCH_BYTES,
            max_request_size=sequenced_message_limit(settings.max_record_bytes),
        )
        await consumer.start()
        self.consumer = consumer
        await producer.start()
        self.producer = producer

    async def stop(self) -> None:
        """Leave the group and stop the producer."""
        consumer, self.consumer = self.consumer, None
        producer, self.producer = self.producer, None
        if consumer is not None:
            await consumer.stop()
        if producer is not None:
            await producer.stop()

    async def step(self) -> int:
        """Append one fetched batch and the changed progress markers, then commit; returns
        the number of input records appended."""
        consumer, producer = self.consumer, self.producer
        if consumer is None or producer is None:
            raise RuntimeError("Sequencer.step before start")
        batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
        unprefixed = self.settings.unprefixed
        lanes = self.lane_partitions
        sequenced = PartitionBatches(producer, {self.sequenced_topic: lanes})
        every_lane = [(self.sequenced_topic, p) for p in range(lanes)]
        max_bytes = self.settings.max_record_bytes
        forwarded = 0
        for tp, records in batches.items():
            name = unprefixed(tp.topic) or tp.topic
            for record in records:
                framer = record_frame
                if len(record.key or b"") + len(record.value or b"") > max_bytes:
                    framer = cut_record_frame
                    self.stats.oversized_total.inc()
                    targets = [every_lane[_lane_of_source(name, tp.partition, lanes)]]
                else:
                    targets = self._route(name, tp, record.key, record.value, record.offset)
                frame = framer(
                    name,
                    tp.partition,
                    record.offset,
                    record.key,
                    record.timestamp,
                    record.value,
                )
                for slot in targets:
                    await sequenced.add(slot, None, frame, None)
            forwarded += len(records)
        assignment = consumer.assignment()
        self.stats.sequencer_partitions.set(len(assignment))
        unknown = [tp for tp in assignment if consumer.highwater(tp) is None]
        ends = await consumer.end_offsets(unknown) if unknown else {}
        lag: dict[str, int] = {}
        now = self.clock()
        quiet: list[tuple[TopicPartition, int]] = []
        for stale in set(self._active_at) - set(assignment):  # revoked: start over if back
            del self._active_at[stale]
            self._idle_sent.discard(stale)
        for tp in sorted(assignment):
            position = await consumer.position(tp)
            end = consumer.highwater(tp)
            end = ends.get(tp, 0) if end is None else end
            name = unprefixed(tp.topic) or tp.topic
            seen = self._max_event_ms.get(tp)
            if self._reported.get(tp) != (position, end, seen):
                self._reported[tp] = (position, end, seen)
                frame = progress_frame(name, tp.partition, position, end, seen)
                for slot in every_lane:
                    await sequenced.add(slot, None, frame, None)
            lag[name] = lag.get(name, 0) + max(end - position, 0)
            if batches.get(tp) or position < end:
                self._active_at[tp] = now
                self._idle_sent.discard(tp)
            elif tp not in self._idle_sent:
                since = self._active_at.setdefault(tp, now)
                if now - since >= self.idle_timeout_s:
                    quiet.append((tp, position))
        if quiet:
            fresh = await consumer.end_offsets([tp for tp, _ in quiet])
            for tp, position in quiet:
                if position < fresh.get(tp, 0):  # the last fetch's end was stale
                    self._active_at[tp] = now
                    continue
                name = unprefixed(tp.topic) or tp.topic
                frame = idle_frame(name, tp.partition, position)
                for slot in every_lane:
                    await sequenced.add(slot, None, frame, None)
                self._idle_sent.add(tp)
                self.stats.idle_markers_total.inc()
        for name, behind in lag.items():
            self.stats.consumer_lag.labels(topic=name).set(behind)
        await sequenced.submit_all()
        await sequenced.delivered()
        if forwarded:
            await consumer.commit()
            self.stats.sequenced_total.inc(forwarded)
        return forwarded
