"""The in-memory broker keeps the Kafka contract the stages rely on (aiokafka's semantics):
transactions and isolation, fencing, offsets committed with a transaction, consumer groups
and their rebalances, positions, batches."""

from __future__ import annotations

from collections.abc import Collection

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalOperation, IllegalStateError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from streams.worker.memory_broker import MemoryBroker, MemoryConsumer, MemoryProducer

TP = TopicPartition("t", 0)


async def started(broker: MemoryBroker, **config: object) -> MemoryProducer:
    producer = broker.producer(**config)
    await producer.start()
    return producer


async def reader(broker: MemoryBroker, isolation_level: str) -> MemoryConsumer:
    consumer = broker.consumer(
        isolation_level=isolation_level, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    consumer.assign([TP])
    await consumer.start()
    return consumer


async def values(consumer: MemoryConsumer) -> list[bytes | None]:
    batch = await consumer.getmany(TP, max_records=1000)
    return [record.value for record in batch.get(TP, [])]


@pytest.fixture
def broker() -> MemoryBroker:
    broker = MemoryBroker(clock_ms=lambda: 5)
    broker.create_topic("t", 1)
    broker.create_topic("four", 4)
    return broker


async def test_a_transaction_is_visible_to_read_committed_once_committed(
    broker: MemoryBroker,
) -> None:
    producer = await started(broker, transactional_id="tx")
    committed, uncommitted = (
        await reader(broker, "read_committed"),
        await reader(broker, "read_uncommitted"),
    )
    await producer.begin_transaction()
    await producer.send("t", b"a", key=b"k")
    assert await values(committed) == []
    assert await values(uncommitted) == [b"a"]
    assert await committed.end_offsets([TP]) == {TP: 0}  # the last stable offset
    await producer.commit_transaction()
    assert await values(committed) == [b"a"]
    # the commit marker takes an offset, is never returned, and the position passes it
    assert broker.end_offset("t") == 2
    assert await committed.position(TP) == 2
    assert committed.highwater(TP) == 2


async def test_an_open_transaction_holds_back_later_records_and_an_abort_drops_its_own(
    broker: MemoryBroker,
) -> None:
    transactional = await started(broker, transactional_id="tx")
    plain = await started(broker)
    committed = await reader(broker, "read_committed")
    await transactional.begin_transaction()
    await transactional.send("t", b"aborted", key=b"k")
    await plain.send("t", b"plain", key=b"k")
    assert await values(committed) == []
    await transactional.abort_transaction()
    assert await values(committed) == [b"plain"]
    assert [r.value for r in broker.records("t", isolation_level="read_uncommitted")] == [
        b"aborted",
        b"plain",
    ]


async def test_transaction_context_commits_or_aborts(broker: MemoryBroker) -> None:
    producer = await started(broker, transactional_id="tx")
    async with producer.transaction():
        await producer.send("t", b"kept", key=b"k")
    with pytest.raises(ZeroDivisionError):
        async with producer.transaction():
            await producer.send("t", b"dropped", key=b"k")
            raise ZeroDivisionError
    assert [r.value for r in broker.records("t")] == [b"kept"]


async def test_a_new_producer_with_the_same_transactional_id_fences_the_old_one(
    broker: MemoryBroker,
) -> None:
    old = await started(broker, transactional_id="tx")
    await old.begin_transaction()
    await old.send("t", b"zombie", key=b"k")
    new = await started(broker, transactional_id="tx")
    assert old.fenced
    with pytest.raises(ProducerFenced):
        await old.commit_transaction()
    with pytest.raises(ProducerFenced):
        await old.send("t", b"more", key=b"k")
    async with new.transaction():
        await new.send("t", b"new", key=b"k")
    assert [r.value for r in broker.records("t")] == [b"new"]


async def test_offsets_sent_to_a_transaction_are_committed_with_it(broker: MemoryBroker) -> None:
    producer = await started(broker, transactional_id="tx")
    await producer.begin_transaction()
    await producer.send_offsets_to_transaction({TP: OffsetAndMetadata(7, "")}, "g")
    await producer.abort_transaction()
    assert broker.committed_offset("g", TP) is None
    async with producer.transaction():
        await producer.send_offsets_to_transaction({TP: OffsetAndMetadata(9, "")}, "g")
    assert broker.committed_offset("g", TP) == 9


async def test_transactional_calls_outside_a_transaction_are_illegal(
    broker: MemoryBroker,
) -> None:
    producer = await started(broker, transactional_id="tx")
    with pytest.raises(IllegalOperation):
        await producer.send("t", b"x", key=b"k")
    with pytest.raises(IllegalOperation):
        await producer.send_offsets_to_transaction({TP: 1}, "g")
    plain = await started(broker)
    with pytest.raises(IllegalOperation):
        await plain.begin_transaction()


class Recorder:
    """A rebalance listener writing down every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, set[TopicPartition]]] = []

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self.calls.append(("revoked", set(revoked)))

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.calls.append(("assigned", set(assigned)))


def member(broker: MemoryBroker, listener: Recorder) -> MemoryConsumer:
    consumer = broker.consumer(group_id="g", enable_auto_commit=False, auto_offset_reset="earliest")
    consumer.subscribe(["four"], listener=listener)
    return consumer


async def test_group_members_share_partitions_and_hear_of_every_rebalance(
    broker: MemoryBroker,
) -> None:
    every = {TopicPartition("four", p) for p in range(4)}
    first_calls, second_calls = Recorder(), Recorder()
    first, second = member(broker, first_calls), member(broker, second_calls)
    await first.start()
    assert first.assignment() == every
    await second.start()
    shares = first.assignment(), second.assignment()
    assert shares[0] | shares[1] == every and len(shares[0]) == len(shares[1]) == 2
    assert first_calls.calls == [
        ("revoked", set()),
        ("assigned", every),
        ("revoked", every),
        ("assigned", shares[0]),
    ]
    await second.stop()  # the leaving member is not called back; the other takes all
    assert second_calls.calls[-1] == ("assigned", shares[1])
    assert first_calls.calls[-2:] == [("revoked", shares[0]), ("assigned", every)]
    assert first.assignment() == every


async def test_positions_restart_from_the_committed_offset_after_a_rebalance(
    broker: MemoryBroker,
) -> None:
    producer = await started(broker)
    for i in range(5):
        await producer.send("four", b"v%d" % i, partition=1)
    one = TopicPartition("four", 1)
    first = member(broker, Recorder())
    await first.start()
    assert await first.position(one) == 0
    assert len((await first.getmany(one, max_records=3))[one]) == 3
    await first.commit()
    assert broker.committed_offset("g", one) == 3
    await first.getmany(one)  # read on, never committed
    second = member(broker, Recorder())
    await second.start()
    owner, other = (first, second) if one in first.assignment() else (second, first)
    assert await owner.position(one) == 3
    with pytest.raises(IllegalStateError):
        await other.position(one)


async def test_getmany_takes_partitions_in_turn_within_max_records(
    broker: MemoryBroker,
) -> None:
    producer = await started(broker)
    for partition in range(4):
        for i in range(10):
            await producer.send("four", b"%d" % i, partition=partition)
    consumer = broker.consumer(enable_auto_commit=False, auto_offset_reset="earliest")
    consumer.assign([TopicPartition("four", p) for p in range(4)])
    await consumer.start()
    firsts = []
    for _ in range(4):
        batch = await consumer.getmany(max_records=10)
        assert sum(map(len, batch.values())) == 10
        firsts.append(next(iter(batch)).partition)
    assert sorted(firsts) == [0, 1, 2, 3]
    assert await consumer.getmany(max_records=10) == {}


async def test_a_batch_is_full_at_max_batch_size_and_keeps_its_order(
    broker: MemoryBroker,
) -> None:
    producer = await started(broker, max_batch_size=100)
    batch = producer.create_batch()
    appended = 0
    while batch.append(timestamp=None, key=None, value=b"x" * 30) is not None:
        appended += 1
    assert appended == 2  # 2 x (30 + 20 bytes of framing) = 100
    await producer.send_batch(batch, "t", partition=0)
    assert [r.offset for r in broker.records("t")] == [0, 1]
    assert all(r.timestamp == 5 for r in broker.records("t"))


async def test_keyed_records_go_to_the_partition_murmur2_gives(broker: MemoryBroker) -> None:
    from aiokafka.partitioner import murmur2

    producer = await started(broker)
    metadata = await (await producer.send("four", b"v", key=b"SYM001"))
    assert metadata.partition == (murmur2(b"SYM001") & 0x7FFFFFFF) % 4
