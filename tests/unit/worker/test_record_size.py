"""Record size (issue 9, defect 3) on the in-memory broker, which refuses a batch over its
topic's ``max.message.bytes`` and then, as an idempotent producer does, fails every later
send of that producer.

- a record at the input limit goes through; one over ``max_record_bytes`` is sequenced cut
  and dead-lettered as ``too_large``, and everything else is replay's output;
- a refused batch does not wedge the sequencer: it restarts its clients and goes on, and
  after failing ``MAX_FAILURES_IN_A_ROW`` times in a row it raises, for the worker to exit
  non-zero.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from conftest import (
    FakeClock,
    Market,
    Worker,
    assert_replay_outputs,
    new_broker,
    publish,
)

from models.topics import DEAD_LETTERS
from streams.kafka_topics import input_message_limit
from streams.settings import Settings
from streams.worker.app import internal_topic_specs, internal_topics
from streams.worker.memory_broker import MemoryBroker
from streams.worker.sequencer import MAX_FAILURES_IN_A_ROW, StageFailedError

SMALL = Settings(topic_prefix="t.", consumer_group="g", max_record_bytes=50_000)


async def _send_raw(broker: MemoryBroker, topic: str, key: bytes, value: bytes) -> None:
    producer = broker.producer(acks="all", enable_idempotence=True)
    await producer.start()
    await producer.send_and_wait(SMALL.topic(topic), value, key=key)
    await producer.stop()


def _letters(broker: MemoryBroker) -> list[dict[str, object]]:
    return [orjson.loads(r.value or b"") for r in broker.records(SMALL.topic(DEAD_LETTERS))]


async def test_records_at_and_over_the_limit(market: Market) -> None:
    broker = new_broker(SMALL)
    assert broker.max_message_bytes[SMALL.topic("fills")] == input_message_limit(SMALL)
    await publish(broker, market.records, SMALL)
    key = b"BIG"
    at_limit = b'{"x":"' + b"a" * (SMALL.max_record_bytes - len(key) - 8) + b'"}'
    assert len(key) + len(at_limit) == SMALL.max_record_bytes
    await _send_raw(broker, "fills", key, at_limit)  # within the limit: not a valid fill
    await _send_raw(broker, "fills", key, at_limit + b" ")  # one byte over
    worker = Worker(broker, FakeClock(), settings=SMALL)
    await worker.start()
    await worker.settle()
    await worker.idle_flush()
    letters = [d for d in _letters(broker) if d["key"] == "BIG"]
    assert [d["error"]["type"] for d in letters] == ["missing", "too_large"], letters  # type: ignore[index]
    too_large = letters[1]
    assert too_large["raw_truncated"] is False  # 50 kB: kept whole (cut beyond 64 KiB)
    assert f"record of {SMALL.max_record_bytes + 1} bytes" in too_large["error"]["message"]  # type: ignore[index]
    assert worker.sequencer_metric("policyloop_oversized_records_total") == 1
    assert_replay_outputs(broker, market, frozenset({"BIG"}))


async def test_a_refused_batch_restarts_the_sequencer_instead_of_wedging_it(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = new_broker(SMALL)
    await publish(broker, market.records, SMALL)
    worker = Worker(broker, FakeClock(), settings=SMALL)
    sequenced = internal_topics(SMALL)["sequenced"]
    limit = broker.max_message_bytes[sequenced]
    broker.max_message_bytes[sequenced] = 200  # the first batch is refused ...
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.sequencer.run(stopping, retry_after_s=0.0))
    for _ in range(200):
        await asyncio.sleep(0)
        if worker.sequencer_metric("policyloop_stage_errors_total", stage="sequencer") >= 1:
            break
    broker.max_message_bytes[sequenced] = limit  # ... then the broker takes them again
    for _ in range(2000):
        await asyncio.sleep(0)
    stopping.set()
    await task
    assert worker.sequencer_metric("policyloop_stage_errors_total", stage="sequencer") >= 1
    await worker.start()  # run() stopped the sequencer's clients on its way out
    await worker.settle()
    await worker.idle_flush()
    assert_replay_outputs(broker, market)


async def test_a_batch_refused_again_and_again_ends_the_stage(market: Market) -> None:
    broker = MemoryBroker(clock_ms=lambda: 1_700_000_000_000)
    from streams.kafka_topics import contract_topics

    specs = internal_topic_specs(SMALL)
    specs[0] = type(specs[0])(specs[0].name, 1, {"max.message.bytes": "200"})  # an old topic
    broker.create_topics([*contract_topics(SMALL), *specs])
    await publish(broker, market.records, SMALL)
    worker = Worker(broker, FakeClock(), settings=SMALL)
    with pytest.raises(StageFailedError):
        await worker.sequencer.run(asyncio.Event(), retry_after_s=0.0)
    assert (
        worker.sequencer_metric("policyloop_stage_errors_total", stage="sequencer")
        == MAX_FAILURES_IN_A_ROW
    )
