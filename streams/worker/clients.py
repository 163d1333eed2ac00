"""The Kafka clients of the worker's stages, as protocols, and the factory that builds them.

``Consumer`` and ``Producer`` are the part of aiokafka's ``AIOKafkaConsumer`` and
``AIOKafkaProducer`` the stages call, with aiokafka's semantics: a stage is written against
them and runs unchanged on aiokafka (``KafkaClients``, production) or on the in-memory
broker (``streams.worker.memory_broker.MemoryBroker``, tests), which implements the same
contract. A stage is given a ``Clients`` factory and asks it for every client it needs,
passing its own configuration (group, isolation level, transactional id, ...) in aiokafka's
keyword arguments; the factory adds the deployment's connection settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from streams.kafka_batches import BatchProducer
from streams.settings import Settings


class RebalanceListener(Protocol):
    """aiokafka's ``ConsumerRebalanceListener``: called around every group rebalance."""

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None: ...

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None: ...


class Consumer(Protocol):
    """The ``AIOKafkaConsumer`` methods the stages use (same arguments, same meaning)."""

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None: ...

    def assign(self, partitions: Sequence[TopicPartition]) -> None: ...

    def assignment(self) -> Collection[TopicPartition]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...

    async def position(self, partition: TopicPartition) -> int: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    async def end_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def committed(self, partition: TopicPartition) -> int | None: ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...


class Producer(BatchProducer, Protocol):
    """The ``AIOKafkaProducer`` methods the stages use (same arguments, same meaning)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Awaitable[Any]: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], group_id: str
    ) -> None: ...


class Clients(Protocol):
    """Builds the clients of a stage; ``config`` is aiokafka's keyword arguments."""

    def consumer(self, *topics: str, **config: Any) -> Consumer: ...

    def producer(self, **config: Any) -> Producer: ...


@dataclass(frozen=True)
class KafkaClients:
    """aiokafka clients on the deployment's brokers (``settings.aiokafka_common()``)."""

    settings: Settings

    def consumer(self, *topics: str, **config: Any) -> Consumer:
        consumer: Consumer = AIOKafkaConsumer(*topics, **config, **self.settings.aiokafka_common())
        return consumer

    def producer(self, **config: Any) -> Producer:
        producer: Producer = AIOKafkaProducer(**config, **self.settings.aiokafka_common())
        return producer
