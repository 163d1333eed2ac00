"""An in-memory Kafka broker with the contract of the Kafka backend, for tests of the stages.

``MemoryBroker`` is a ``streams.worker.clients.Clients`` factory: its consumers and producers
implement the ``Consumer`` / ``Producer`` protocols with aiokafka's semantics (the idea of
getsentry/arroyo's LocalBroker), so the sequencer and the runner run on it unchanged, driven
step by step by a test, with no network, no threads and no wall-clock waits.

What it models, as Kafka does it:
- topics of numbered partitions, each an append-only log with offsets from 0 (no retention,
  no compaction: a reader keeps the latest value per key where it needs to);
- producers: ``send`` (key partitioned with murmur2, as aiokafka's default partitioner;
  a null key goes round-robin), the batch API ``create_batch`` / ``send_batch`` (a batch is
  full at ``max_batch_size`` bytes), every delivery future resolved at once;
- transactions: ``transactional_id`` producers, ``begin/commit/abort_transaction`` and
  ``transaction()``; a commit or abort appends a control record to every partition the
  transaction wrote (it takes an offset, as a transaction marker does, and no consumer
  returns it); ``send_offsets_to_transaction`` offsets become the group's committed offsets
  when the transaction commits, never if it aborts. Starting a producer with the
  transactional id of an older one fences the older one (``ProducerFenced`` on its next
  send, commit or abort) and aborts its open transaction. Sending outside a transaction,
  on a transactional producer, raises ``IllegalOperation``;
- isolation: a ``read_committed`` consumer reads up to the last stable offset (the first
  offset of a still-open transaction, else the log end) and skips aborted records; a
  ``read_uncommitted`` one reads to the log end, aborted records included;
- consumer groups: members that ``subscribe`` join at ``start`` and leave at ``stop``; each
  join or leave rebalances the group eagerly (round-robin over the members in join order):
  every member's listener gets ``on_partitions_revoked`` with its old partitions, then
  ``on_partitions_assigned`` with its new ones (a leaving member's own listener is not
  called, as in aiokafka), and every position restarts from the committed offset or
  ``auto_offset_reset``. ``assign`` gives a manual assignment without a group;
- ``getmany`` (at most ``max_records`` in all, partitions taken in turn so none starves),
  ``position``, ``seek``, ``seek_to_beginning``, ``highwater`` (the log end seen by the last
  fetch of the partition, None before one), ``end_offsets`` (last stable offset or log end,
  by isolation level), ``committed`` and ``commit``.

- record size: a topic's ``max.message.bytes`` (its creation config; default Kafka's
  1,048,588) bounds a batch; a larger one fails delivery with ``MessageSizeTooLargeError``
  and, as an idempotent producer's refused batch does, leaves that producer failing every
  later send with ``OutOfOrderSequenceNumber`` until it is replaced.

What it does not: replication, broker failures, retention, session or transaction
timeouts (a crashed producer's transaction stays open until a producer with its
transactional id starts), subscription changes after ``start``, auto-commit, headers.
``getmany`` never waits for ``timeout_ms``: with nothing to return it yields to the event
loop once and returns ``{}``, so a test drives time itself (with an injected clock).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiokafka import TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalOperation,
    IllegalStateError,
    MessageSizeTooLargeError,
    NoOffsetForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownTopicOrPartitionError,
)
from aiokafka.partitioner import murmur2
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, RecordMetadata

from streams.kafka_topics import NewTopicSpec

if TYPE_CHECKING:
    from streams.worker.clients import Clients, Consumer, Producer

log = logging.getLogger(__name__)

TxnState = Literal["open", "committed", "aborted"]
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")
RECORD_OVERHEAD_BYTES = 20
KAFKA_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default ``message.max.bytes``: a topic's limit unless it was created with one."""
"""Added to key and value sizes when filling a batch (roughly a v2 record's framing)."""
DEFAULT_BATCH_BYTES = 16384  # aiokafka's default max_batch_size
# aiokafka options that only tune I/O, batching or delivery: accepted and without effect here
PRODUCER_TUNING = frozenset(
    {
        "acks",
        "enable_idempotence",
        "linger_ms",
        "compression_type",
        "request_timeout_ms",
        "max_request_size",
    }
)
CONSUMER_TUNING = frozenset(
    {
        "max_partition_fetch_bytes",
        "fetch_max_wait_ms",
        "fetch_max_bytes",
        "max_poll_records",
        "request_timeout_ms",
        "session_timeout_ms",
        "heartbeat_interval_ms",
    }
)


@dataclass(eq=False)
class _Transaction:
    transactional_id: str
    state: TxnState = "open"
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    key: bytes | None
    value: bytes | None
    timestamp: int
    txn: _Transaction | None
    control: bool = False

    def visible(self, read_committed: bool) -> bool:
        if self.control:
            return False
        return not (read_committed and self.txn is not None and self.txn.state == "aborted")


class _Log:
    """One partition: entries by offset, and the open transactions writing to it."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.open: dict[_Transaction, int] = {}  # open transaction -> its first offset here

    def end(self) -> int:
        return len(self.entries)

    def stable_end(self) -> int:
        return min(self.open.values(), default=len(self.entries))

    def limit(self, read_committed: bool) -> int:
        return self.stable_end() if read_committed else self.end()


@dataclass(eq=False)
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    generation: int = 0


class MemoryBroker:
    """Topics, groups and transactions in memory; builds consumers and producers on them.

    ``clock_ms``: epoch milliseconds for records sent without a timestamp (default: the
    wall clock; record timestamps shape no output of the worker).
    """

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.logs: dict[str, list[_Log]] = {}
        self.max_message_bytes: dict[str, int] = {}
        self.groups: dict[str, _Group] = {}
        self.transactional: dict[str, MemoryProducer] = {}  # id -> current (unfenced) producer
        self._member_ids = itertools.count()

    # -- administration -------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int, max_message_bytes: int = KAFKA_MAX_MESSAGE_BYTES
    ) -> bool:
        """Create a topic; False when it exists (with as many partitions), ValueError else."""
        if partitions < 1:
            raise ValueError(f"{name}: a topic needs at least one partition")
        existing = self.logs.get(name)
        if existing is not None:
            if len(existing) != partitions:
                raise ValueError(f"{name} exists with {len(existing)} partitions")
            return False
        self.logs[name] = [_Log() for _ in range(partitions)]
        self.max_message_bytes[name] = max_message_bytes
        return True

    def create_topics(self, specs: Iterable[NewTopicSpec]) -> list[str]:
        """Create those of ``specs`` that do not exist; the names created."""
        return [
            spec.name
            for spec in specs
            if self.create_topic(
                spec.name,
                spec.partitions,
                int(spec.config.get("max.message.bytes", KAFKA_MAX_MESSAGE_BYTES)),
            )
        ]

    def partitions(self, topic: str) -> list[int]:
        """The partition ids of ``topic``; UnknownTopicOrPartitionError when it is missing."""
        return list(range(len(self._topic(topic))))

    def end_offset(self, topic: str, partition: int = 0) -> int:
        """The log end offset (high watermark) of a partition: control records included."""
        return self._log(TopicPartition(topic, partition)).end()

    def records(
        self, topic: str, *, isolation_level: str = "read_committed"
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """What a consumer reading all of ``topic`` from the start would get now: partition
        0's records in offset order, then partition 1's, and so on."""
        read_committed = _isolation(isolation_level)
        found = []
        for partition, log_ in enumerate(self._topic(topic)):
            for offset in range(log_.limit(read_committed)):
                entry = log_.entries[offset]
                if entry.visible(read_committed):
                    found.append(_record(topic, partition, offset, entry))
        return found

    def committed_offset(self, group_id: str, partition: TopicPartition) -> int | None:
        """The offset ``group_id`` has committed for ``partition`` (None: nothing)."""
        group = self.groups.get(group_id)
        return None if group is None else group.committed.get(partition)

    # -- the Clients factory ---------------------------------------------------------------

    def consumer(self, *topics: str, **config: Any) -> MemoryConsumer:
        """An unstarted consumer, as ``AIOKafkaConsumer(*topics, **config)``."""
        return MemoryConsumer(self, topics, **config)

    def producer(self, **config: Any) -> MemoryProducer:
        """An unstarted producer, as ``AIOKafkaProducer(**config)``."""
        return MemoryProducer(self, **config)

    # -- internals ---------------------------------------------------------------------------

    def _topic(self, topic: str) -> list[_Log]:
        found = self.logs.get(topic)
        if found is None:
            raise UnknownTopicOrPartitionError(f"unknown topic {topic}")
        return found

    def _log(self, tp: TopicPartition) -> _Log:
        logs = self._topic(tp.topic)
        partition: int = tp.partition
        if not 0 <= partition < len(logs):
            raise UnknownTopicOrPartitionError(f"unknown partition {tp}")
        return logs[partition]

    def _append(self, tp: TopicPartition, entry: _Entry) -> int:
        log_ = self._log(tp)
        offset = log_.end()
        log_.entries.append(entry)
        txn = entry.txn
        if txn is not None and tp not in txn.first_offsets:
            txn.first_offsets[tp] = offset
            log_.open[txn] = offset
        return offset

    def _end_transaction(self, txn: _Transaction, state: TxnState) -> None:
        txn.state = state
        now = self.clock_ms()
        for tp in txn.first_offsets:
            log_ = self._log(tp)
            log_.open.pop(txn, None)
            log_.entries.append(_Entry(None, None, now, txn, control=True))
        if state == "committed":
            for group_id, offsets in txn.offsets.items():
                self._group(group_id).committed.update(offsets)

    def _group(self, group_id: str) -> _Group:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = _Group()
        return group

    def _next_member_id(self) -> int:
        return next(self._member_ids)

    async def _rebalance(self, group: _Group) -> None:
        """Eager rebalance: revoke every member's partitions, assign round-robin, notify."""
        group.generation += 1
        members = list(group.members)
        for member in members:
            await member._revoke()
        partitions = sorted(
            TopicPartition(topic, partition)
            for topic in sorted({t for m in members for t in m.topics if t in self.logs})
            for partition in self.partitions(topic)
        )
        shares: dict[int, set[TopicPartition]] = {id(m): set() for m in members}
        turn = 0
        for tp in partitions:
            for step in range(len(members)):
                member = members[(turn + step) % len(members)]
                if tp.topic in member.topics:
                    shares[id(member)].add(tp)
                    turn = (turn + step + 1) % len(members)
                    break
        for member in members:
            await member._assign(shares[id(member)])


class MemoryConsumer:
    """``AIOKafkaConsumer`` on a ``MemoryBroker`` (see the module docs for what it models)."""

    def __init__(
        self,
        broker: MemoryBroker,
        topics: Sequence[str] = (),
        *,
        group_id: str | None = None,
        enable_auto_commit: bool = True,
        auto_offset_reset: str = "latest",
        isolation_level: str = "read_uncommitted",
        client_id: str = "memory",
        **tuning: Any,
    ) -> None:
        unknown = set(tuning) - CONSUMER_TUNING
        if unknown:
            raise TypeError(f"unexpected consumer options {sorted(unknown)}")
        if enable_auto_commit and group_id is not None:
            raise ValueError("the memory broker does not model auto-commit")
        if auto_offset_reset not in ("earliest", "latest", "none"):
            raise ValueError(f"auto_offset_reset {auto_offset_reset!r}")
        self.broker = broker
        self.topics: frozenset[str] = frozenset(topics)
        self.group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self.read_committed = _isolation(isolation_level)
        self.client_id = client_id
        self.member_id = broker._next_member_id()
        self.listener: Any = None
        self._assignment: set[TopicPartition] = set()
        self._manual = False
        self._positions: dict[TopicPartition, int] = {}
        self._highwater: dict[TopicPartition, int] = {}
        self._turn = 0
        self._started = False
        self._closed = False

    # -- subscription and assignment ---------------------------------------------------

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        if self._manual:
            raise IllegalStateError("subscribe after assign")
        if self._started:
            raise NotImplementedError("the memory broker takes subscriptions before start")
        if not topics:
            raise TypeError("You should provide either `topics` or `pattern`")
        self.topics = frozenset(topics)
        self.listener = listener

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        if self.topics:
            raise IllegalStateError("assign after subscribe")
        self._manual = True
        self._assignment = set(partitions)
        self._positions = {tp: p for tp, p in self._positions.items() if tp in self._assignment}

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    async def start(self) -> None:
        self._started = True
        if not self.topics:
            return
        if self.group_id is None:
            self._assignment = {
                TopicPartition(topic, p)
                for topic in self.topics
                for p in self.broker.partitions(topic)
            }
            return
        group = self.broker._group(self.group_id)
        group.members.append(self)
        await self.broker._rebalance(group)

    async def stop(self) -> None:
        """Close; a group member leaves its group (the others are rebalanced)."""
        if self._closed:
            return
        self._closed = True
        if self.group_id is not None and self.topics:
            group = self.broker._group(self.group_id)
            if self in group.members:
                group.members.remove(self)
                self._assignment = set()
                await self.broker._rebalance(group)

    async def _revoke(self) -> None:
        revoked, self._assignment = self._assignment, set()
        self._positions.clear()
        await self._notify("on_partitions_revoked", revoked)

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        self._assignment = set(assigned)
        self._positions.clear()
        self._highwater = {tp: h for tp, h in self._highwater.items() if tp in assigned}
        await self._notify("on_partitions_assigned", set(assigned))

    async def _notify(self, callback: str, partitions: set[TopicPartition]) -> None:
        if self.listener is None:
            return
        try:
            await getattr(self.listener, callback)(partitions)
        except Exception:  # aiokafka logs a failing listener and goes on
            log.exception("rebalance listener %s failed in %s", self.listener, callback)

    # -- reading -------------------------------------------------------------------------

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if self._closed:
            raise ConsumerStoppedError()
        if max_records is not None and max_records < 1:
            raise ValueError("`max_records` must be a positive Integer")
        wanted = sorted(partitions or self._assignment)
        for tp in wanted:
            self._check_assigned(tp)
        budget = max_records if max_records is not None else 500  # aiokafka's max_poll_records
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        if wanted:
            start = self._turn % len(wanted)
            self._turn += 1
            for tp in wanted[start:] + wanted[:start]:
                records = self._fetch(tp, budget)
                if records:
                    fetched[tp] = records
                    budget -= len(records)
                if budget == 0:
                    break
        await asyncio.sleep(0)
        return fetched

    def _fetch(self, tp: TopicPartition, budget: int) -> list[ConsumerRecord[bytes, bytes]]:
        log_ = self.broker._log(tp)
        self._highwater[tp] = log_.end()
        position = self._resolve(tp)
        limit = log_.limit(self.read_committed)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while position < limit and len(records) < budget:
            entry = log_.entries[position]
            if entry.visible(self.read_committed):
                records.append(_record(tp.topic, tp.partition, position, entry))
            position += 1
        self._positions[tp] = position
        return records

    async def position(self, partition: TopicPartition) -> int:
        self._check_assigned(partition)
        return self._resolve(partition)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise ValueError("Offset must be a positive integer")
        self._check_assigned(partition)
        self._positions[partition] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions or sorted(self._assignment):
            self.seek(tp, 0)

    def highwater(self, partition: TopicPartition) -> int | None:
        assert partition in self._assignment, "Partition is not assigned"
        return self._highwater.get(partition)

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.broker._log(tp).limit(self.read_committed) for tp in partitions}

    # -- offsets ---------------------------------------------------------------------------

    async def committed(self, partition: TopicPartition) -> int | None:
        if self.group_id is None:
            raise IllegalOperation("Requires group_id")
        return self.broker.committed_offset(self.group_id, partition)

    async def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None
    ) -> None:
        if self.group_id is None:
            raise IllegalOperation("Requires group_id")
        group = self.broker._group(self.group_id)
        if self.topics and self not in group.members:
            raise CommitFailedError("not a member of the group (stopped or never started)")
        if offsets is None:
            chosen = dict(self._positions)
        else:
            chosen = {}
            for tp, offset in offsets.items():
                if tp not in self._assignment:
                    raise IllegalStateError(f"Partition {tp} is not assigned")
                chosen[tp] = offset if isinstance(offset, int) else offset.offset
        group.committed.update(chosen)

    # -- internals ---------------------------------------------------------------------------

    def _check_assigned(self, tp: TopicPartition) -> None:
        if tp not in self._assignment:
            raise IllegalStateError(f"Partition {tp} is not assigned")

    def _resolve(self, tp: TopicPartition) -> int:
        """The position of ``tp``: set, else committed, else by ``auto_offset_reset``."""
        position = self._positions.get(tp)
        if position is None:
            committed = self.broker.committed_offset(self.group_id, tp) if self.group_id else None
            if committed is not None:
                position = committed
            elif self.auto_offset_reset == "earliest":
                position = 0
            elif self.auto_offset_reset == "latest":
                position = self.broker._log(tp).limit(self.read_committed)
            else:
                raise NoOffsetForPartitionError(str(tp))
            self._positions[tp] = position
        return position


class MemoryBatch:
    """aiokafka's ``BatchBuilder``: records for one partition, full at ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.records: list[tuple[int | None, bytes | None, bytes | None]] = []
        self.size = 0
        self.closed = False

    def append(
        self, *, timestamp: int | None, key: bytes | None, value: bytes | None
    ) -> int | None:
        """The record's index in the batch, or None when the batch is full or closed."""
        if self.closed:
            return None
        _check_bytes(key, value)
        size = len(key or b"") + len(value or b"") + RECORD_OVERHEAD_BYTES
        if self.records and self.size + size > self.max_bytes:
            self.closed = True
            return None
        self.records.append((timestamp, key, value))
        self.size += size
        return len(self.records) - 1

    def close(self) -> None:
        self.closed = True


class MemoryProducer:
    """``AIOKafkaProducer`` on a ``MemoryBroker`` (see the module docs for what it models)."""

    def __init__(
        self,
        broker: MemoryBroker,
        *,
        transactional_id: str | None = None,
        max_batch_size: int = DEFAULT_BATCH_BYTES,
        client_id: str = "memory",
        **tuning: Any,
    ) -> None:
        unknown = set(tuning) - PRODUCER_TUNING
        if unknown:
            raise TypeError(f"unexpected producer options {sorted(unknown)}")
        self.broker = broker
        self.transactional_id = transactional_id
        self.max_batch_size = max_batch_size
        self.client_id = client_id
        self.fenced = False
        self.wedged = False
        """Set when the broker refused one of this idempotent producer's batches."""
        self._txn: _Transaction | None = None
        self._round_robin = itertools.count()
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Start; with a transactional id, fence its previous producer and abort that one's
        open transaction (Kafka's InitProducerId)."""
        self._started = True
        txn_id = self.transactional_id
        if txn_id is None:
            return
        previous = self.broker.transactional.get(txn_id)
        if previous is not None and previous is not self:
            previous.fenced = True
            if previous._txn is not None:
                self.broker._end_transaction(previous._txn, "aborted")
                previous._txn = None
        self.broker.transactional[txn_id] = self

    async def stop(self) -> None:
        """Close. An open transaction stays open (Kafka aborts it at its timeout, not
        modelled here, or when a producer with the same transactional id starts)."""
        self._closed = True

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Append one record; the returned future is already resolved."""
        assert not (value is None and key is None), "Need at least one: key or value"
        self._check_can_send()
        _check_bytes(key, value)
        tp = TopicPartition(topic, self._partition(topic, partition, key))
        timestamp = self.broker.clock_ms() if timestamp_ms is None else timestamp_ms
        offset = self.broker._append(tp, _Entry(key, value, timestamp, self._txn))
        return _resolved(RecordMetadata(topic, tp.partition, tp, offset, timestamp, 0, 0))

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        return await (await self.send(topic, value, key, partition, timestamp_ms))

    def create_batch(self) -> MemoryBatch:
        return MemoryBatch(self.max_batch_size)

    async def send_batch(
        self, batch: Any, topic: str, *, partition: int
    ) -> Awaitable[RecordMetadata]:
        """Append a ``MemoryBatch``'s records, in order; the future is already resolved."""
        if not isinstance(batch, MemoryBatch):
            raise TypeError("send_batch takes a batch of this producer's create_batch()")
        self._check_can_send()
        tp = TopicPartition(topic, self._partition(topic, partition, None))
        limit = self.broker.max_message_bytes.get(topic, KAFKA_MAX_MESSAGE_BYTES)
        if self.wedged or batch.size > limit:
            error: Exception = (
                OutOfOrderSequenceNumber()
                if self.wedged
                else MessageSizeTooLargeError(f"a batch of {batch.size} bytes, over {limit}")
            )
            self.wedged = True
            return _failed(error)
        now = self.broker.clock_ms()
        first = self.broker._log(tp).end()
        for timestamp, key, value in batch.records:
            entry = _Entry(key, value, now if timestamp is None else timestamp, self._txn)
            self.broker._append(tp, entry)
        return _resolved(RecordMetadata(topic, tp.partition, tp, first, now, 0, 0))

    # -- transactions ----------------------------------------------------------------------

    async def begin_transaction(self) -> None:
        self._ensure_transactional()
        if self._txn is not None:
            raise IllegalStateError("a transaction is already open")
        assert self.transactional_id is not None
        self._txn = _Transaction(self.transactional_id)

    async def commit_transaction(self) -> None:
        self._end("committed")

    async def abort_transaction(self) -> None:
        self._end("aborted")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """begin; commit when the block ends, abort when it raises (unless fenced)."""
        await self.begin_transaction()
        try:
            yield
        except BaseException:
            if not self.fenced:
                await self.abort_transaction()
            raise
        await self.commit_transaction()

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata], group_id: str
    ) -> None:
        """Commit ``offsets`` for ``group_id`` if and when the open transaction commits."""
        self._ensure_transactional()
        if self._txn is None:
            raise IllegalOperation("Not in the middle of a transaction")
        if not group_id or not isinstance(group_id, str):
            raise ValueError(group_id)
        if not offsets:
            raise ValueError(offsets)
        pending = self._txn.offsets.setdefault(group_id, {})
        for tp, offset in offsets.items():
            pending[tp] = offset if isinstance(offset, int) else offset.offset

    # -- internals ---------------------------------------------------------------------------

    def _ensure_transactional(self) -> None:
        if self.transactional_id is None:
            raise IllegalOperation("You need to configure transaction_id to use transactions")
        if self.fenced:
            raise ProducerFenced()

    def _end(self, state: TxnState) -> None:
        self._ensure_transactional()
        txn = self._txn
        if txn is None:
            raise IllegalStateError("no transaction is open")
        self._txn = None
        self.broker._end_transaction(txn, state)

    def _check_can_send(self) -> None:
        if not self._started or self._closed:
            raise IllegalStateError("the producer is not running")
        if self.fenced:
            raise ProducerFenced()
        if self.transactional_id is not None and self._txn is None:
            raise IllegalOperation("Can't send messages while not in transaction")

    def _partition(self, topic: str, partition: int | None, key: bytes | None) -> int:
        count = len(self.broker._topic(topic))
        if partition is not None:
            if not 0 <= partition < count:
                raise UnknownTopicOrPartitionError(f"{topic} has no partition {partition}")
            return partition
        if key is None:
            return next(self._round_robin) % count
        hashed: int = murmur2(key)
        return (hashed & 0x7FFFFFFF) % count


def _isolation(level: str) -> bool:
    if level not in ISOLATION_LEVELS:
        raise ValueError(f"isolation_level {level!r}")
    return level == "read_committed"


def _check_bytes(key: object, value: object) -> None:
    for name, data in (("key", key), ("value", value)):
        if data is not None and not isinstance(data, bytes):
            raise TypeError(f"{name} must be bytes or None (no serializer), not {type(data)}")


def _record(topic: str, partition: int, offset: int, entry: _Entry) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=entry.timestamp,
        timestamp_type=0,
        key=entry.key,
        value=entry.value,
        checksum=None,
        serialized_key_size=-1 if entry.key is None else len(entry.key),
        serialized_value_size=-1 if entry.value is None else len(entry.value),
        headers=(),
    )


def _resolved(result: RecordMetadata) -> Awaitable[RecordMetadata]:
    future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


def _failed(error: Exception) -> Awaitable[RecordMetadata]:
    future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


if TYPE_CHECKING:  # mypy: the broker and its clients stay drop-ins for the stages' protocols

    def _conforms(
        broker: MemoryBroker, consumer: MemoryConsumer, producer: MemoryProducer
    ) -> tuple[Clients, Consumer, Producer]:
        return broker, consumer, producer
