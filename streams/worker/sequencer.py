"""Stage 1: append every input record to the sequenced log, in each partition's order.

Runs in the consumer group ``<group>-sequencer`` over all input topics, so the workers share
the input partitions. Per fetched batch: each record is framed with its coordinates and sent
to the single partition of the sequenced topic; then a progress marker (position and end
offset) for every assigned partition whose progress changed; then, once every send is
acknowledged, the input offsets are committed. At-least-once: after a crash or a rebalance a
record may be appended twice; the runner skips anything at or below the offset it has already
seen for that partition.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from models.topics import INPUT_TOPICS
from streams.kafka_batches import PartitionBatches
from streams.settings import Settings
from streams.worker.framing import progress_frame, record_frame
from streams.worker.stats import WorkerStats

log = logging.getLogger(__name__)
MAX_RECORDS = 20_000


class Sequencer:
    """Consumes the input topics and appends them to the sequenced log."""

    def __init__(self, settings: Settings, sequenced_topic: str, stats: WorkerStats) -> None:
        self.settings = settings
        self.sequenced_topic = sequenced_topic
        self.stats = stats
        self._reported: dict[TopicPartition, tuple[int, int]] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        settings = self.settings
        consumer = AIOKafkaConsumer(
            *[settings.topic(name) for name in INPUT_TOPICS],
            group_id=f"{settings.consumer_group}-sequencer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **settings.aiokafka_common(),
        )
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.linger_ms,
            max_batch_size=1024 * 1024,
            **settings.aiokafka_common(),
        )
        await consumer.start()
        await producer.start()
        try:
            while not stopping.is_set():
                try:
                    await self._step(consumer, producer)
                except KafkaError as exc:
                    log.warning("sequencer: %s; retrying", exc)
                    await asyncio.sleep(1.0)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _step(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        batches = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
        unprefixed = self.settings.unprefixed
        log = PartitionBatches(producer, {self.sequenced_topic: 1})
        slot = (self.sequenced_topic, 0)
        forwarded = 0
        for tp, records in batches.items():
            name = unprefixed(tp.topic) or tp.topic
            for record in records:
                frame = record_frame(
                    name,
                    tp.partition,
                    record.offset,
                    record.key,
                    record.timestamp,
                    record.value,
                )
                await log.add(slot, None, frame, None)
            forwarded += len(records)
        assignment = consumer.assignment()
        self.stats.sequencer_partitions.set(len(assignment))
        unknown = [tp for tp in assignment if consumer.highwater(tp) is None]
        ends = await consumer.end_offsets(unknown) if unknown else {}
        lag: dict[str, int] = {}
        for tp in sorted(assignment):
            position = await consumer.position(tp)
            end = consumer.highwater(tp)
            end = ends.get(tp, 0) if end is None else end
            name = unprefixed(tp.topic) or tp.topic
            if self._reported.get(tp) != (position, end):
                self._reported[tp] = (position, end)
                frame = progress_frame(name, tp.partition, position, end)
                await log.add(slot, None, frame, None)
            lag[name] = lag.get(name, 0) + max(end - position, 0)
        for name, behind in lag.items():
            self.stats.consumer_lag.labels(topic=name).set(behind)
        await log.submit_all()
        await log.delivered()
        if forwarded:
            await consumer.commit()
            self.stats.sequenced_total.inc(forwarded)
