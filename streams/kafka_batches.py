"""Per-partition record batches over one aiokafka producer (its batch API: ``create_batch``
and ``send_batch``), far cheaper than a ``send`` and a future per record. Batches of one
partition go out in order over an idempotent producer, so a partition keeps the order of
``append`` calls. Used by ``policyloop produce`` and the worker's sequencer (over aiokafka,
or over the in-memory broker of streams/worker/memory_broker.py, which has the same batch
API)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

from aiokafka.partitioner import murmur2


class BatchBuilder(Protocol):
    """aiokafka's ``BatchBuilder``: ``append`` returns None when the batch is full."""

    def append(
        self, *, timestamp: int | None, key: bytes | None, value: bytes | None
    ) -> object | None: ...

    def close(self) -> None: ...


class BatchProducer(Protocol):
    """The batch API of ``AIOKafkaProducer``."""

    def create_batch(self) -> BatchBuilder: ...

    async def send_batch(
        self, batch: BatchBuilder, topic: str, *, partition: int
    ) -> Awaitable[Any]: ...


class PartitionBatches:
    """Per-(topic, partition) batch builders over one producer; keeps delivery futures."""

    def __init__(self, producer: BatchProducer, partitions: dict[str, int]) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], BatchBuilder] = {}
        self.partitions = partitions
        self.slots: dict[tuple[str, bytes | None], tuple[str, int]] = {}
        self.pending: list[Awaitable[Any]] = []

    def slot(self, topic: str, key: bytes | None) -> tuple[str, int]:
        """(topic, partition) of a key: murmur2, as the Java client and aiokafka partition."""
        found = self.slots.get((topic, key))
        if found is None:
            hashed = murmur2(key) if key is not None else 0
            found = self.slots[(topic, key)] = (
                topic,
                (hashed & 0x7FFFFFFF) % self.partitions[topic],
            )
        return found

    def append(
        self, slot: tuple[str, int], key: bytes | None, value: bytes, ts: int | None
    ) -> bool:
        """Append to the slot's open batch; False when that batch is full (submit, retry)."""
        builder = self.open.get(slot)
        if builder is None:
            builder = self.open[slot] = self.producer.create_batch()
        return builder.append(timestamp=ts, key=key, value=value) is not None

    async def add(
        self, slot: tuple[str, int], key: bytes | None, value: bytes, ts: int | None
    ) -> None:
        """Append to the slot's open batch, submitting it first when it is full."""
        if not self.append(slot, key, value, ts):
            await self.submit(slot)
            self.append(slot, key, value, ts)

    async def submit(self, slot: tuple[str, int]) -> None:
        builder = self.open.pop(slot)
        builder.close()  # a closed batch does not linger
        future = await self.producer.send_batch(builder, slot[0], partition=slot[1])
        self.pending.append(future)

    async def submit_all(self) -> None:
        for slot in list(self.open):
            await self.submit(slot)

    async def delivered(self) -> None:
        """Wait for every submitted batch; raises the first delivery error."""
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending)
