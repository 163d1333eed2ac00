"""``policyloop produce FILE``: publish a replay file (CONTRACT.md "Replay files") to Kafka.

Every line that is a Kafka record goes to ``settings.topic(line.topic)`` with
- value: exactly ``streams.adapter.record_value_bytes(line.value)``, valid or not (a value
  that fails its model is the worker's to dead-letter, as replay does);
- key: the line's key as UTF-8; a null key stays null on the record, and its partition is
  then the one of the contract key taken from the value (symbol, strategy_id, scope's
  strategy_id or ``*``), so the records of one contract key keep their order either way;
- partition: murmur2 of the key, as the Java client and aiokafka's default partitioner do;
- timestamp: the line's ``timestamp_ms`` (CreateTime), the broker's clock when null; a value
  Kafka cannot carry (negative or over 2**63 - 1) is dropped and counted.
A line that cannot become a Kafka record (not JSON, not an object, no topic or value, key or
timestamp of the wrong type, unknown topic) is not sent to an input topic: its dead letter is
published to ``dead_letters``, built by ``streams.adapter.decode_line`` and
``Pipeline.reject`` exactly as ``policyloop replay`` builds it (same source_offset
``line:N``). One more case replay cannot have: a record over ``MAX_RECORD_BYTES`` is
dead-lettered with error type ``too_large``. Blank lines are skipped, as replay does.

Delivery: idempotent producer, acks=all, records appended to per-partition batches that are
submitted when full (or every ``batch`` records), so one partition's records are appended and
retried in file order. ``rate`` throttles to about that many records a second (latency tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from models.codec import DecodeError, encode
from models.topics import ALL_STRATEGIES_KEY, DEAD_LETTERS, INPUT_TOPICS, PLANS, STAND_DOWN
from processors.base import Output
from processors.pipeline import Pipeline
from streams.adapter import Rejected, decode_line, record_value_bytes
from streams.kafka_topics import topic_partitions
from streams.settings import Settings

MAX_RECORD_BYTES = 1_000_000
"""Key + value bytes above this become a ``too_large`` dead letter (broker limit ~1 MiB)."""
BATCH_BYTES = 512 * 1024
MAX_TIMESTAMP_MS = 2**63 - 1


class MissingTopicsError(RuntimeError):
    """The topics to produce to do not exist (run ``policyloop topics create``)."""


@dataclass(frozen=True, slots=True)
class LineRecord:
    """A replay line that is a Kafka record (its value not validated)."""

    topic: str
    key: str | None
    timestamp_ms: int | None
    value: Any


@dataclass
class ProduceResult:
    """What ``produce_file`` did: ``sent`` counts records per contract topic (dead letters
    under ``dead_letters``)."""

    lines: int = 0
    records: int = 0
    dead_letters: int = 0
    timestamps_dropped: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        """Records (dead letters included) a second."""
        return (self.records + self.dead_letters) / self.elapsed_s if self.elapsed_s else 0.0


def parse_line(line: bytes) -> LineRecord | None:
    """The Kafka record of a replay line, or None when ``decode_line`` rejects its envelope.

    Mirrors the envelope checks of ``streams.adapter.decode_line`` (not the value's model).
    """
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    topic, key, timestamp_ms = record.get("topic"), record.get("key"), record.get("timestamp_ms")
    if not isinstance(topic, str) or not topic or topic not in INPUT_TOPICS:
        return None
    if key is not None and not isinstance(key, str):
        return None
    if timestamp_ms is not None and (
        not isinstance(timestamp_ms, int) or isinstance(timestamp_ms, bool)
    ):
        return None
    if "value" not in record:
        return None
    return LineRecord(topic, key, timestamp_ms, record["value"])


def contract_key(topic: str, value: Any) -> str | None:
    """The key the contract gives a (raw, unvalidated) value, None if it has none."""
    if not isinstance(value, dict):
        return None
    if topic == STAND_DOWN:
        scope = value.get("scope")
        sid = scope.get("strategy_id") if isinstance(scope, dict) else None
        return sid if isinstance(sid, str) else ALL_STRATEGIES_KEY
    found = value.get("strategy_id" if topic == PLANS else "symbol")
    return found if isinstance(found, str) else None


def replay_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline) of every non-blank line, as replay numbers them."""
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            line = raw_line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


class _PartitionBatches:
    """Per-(topic, partition) batch builders over one producer; keeps delivery futures."""

    def __init__(self, producer: AIOKafkaProducer, partitions: dict[str, int]) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], Any] = {}
        self.partitions = partitions
        self.by_key: dict[tuple[str, bytes | None], int] = {}
        self.pending: list[Awaitable[Any]] = []

    def partition(self, topic: str, key: bytes | None) -> int:
        cached = self.by_key.get((topic, key))
        if cached is None:
            hashed = murmur2(key) if key is not None else 0
            cached = (hashed & 0x7FFFFFFF) % self.partitions[topic]
            self.by_key[(topic, key)] = cached
        return cached

    async def add(
        self, topic: str, partition: int, key: bytes | None, value: bytes, ts: int | None
    ) -> None:
        slot = (topic, partition)
        builder = self.open.get(slot)
        if builder is None:
            builder = self.open[slot] = self.producer.create_batch()
        if builder.append(timestamp=ts, key=key, value=value) is None:
            await self._submit(slot)
            builder = self.open[slot] = self.producer.create_batch()
            builder.append(timestamp=ts, key=key, value=value)

    async def _submit(self, slot: tuple[str, int]) -> None:
        builder = self.open.pop(slot)
        builder.close()  # a closed batch does not linger
        future = await self.producer.send_batch(builder, slot[0], partition=slot[1])
        self.pending.append(future)

    async def submit_all(self) -> None:
        for slot in list(self.open):
            await self._submit(slot)

    async def delivered(self) -> None:
        """Wait for every submitted batch; raises the first delivery error."""
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending)


async def produce_file(
    path: Path,
    settings: Settings,
    *,
    batch: int = 50_000,
    rate: float | None = None,
) -> ProduceResult:
    """Publish the replay file ``path`` to its (prefixed) topics; see the module docs.

    ``batch``: records between delivery checkpoints (open batches are submitted and the
    previous checkpoint's deliveries awaited). ``rate``: records a second, None = as fast as
    possible. Raises MissingTopicsError when a topic does not exist (the broker would
    auto-create it with the wrong partitions).
    """
    targets = {name: settings.topic(name) for name in (*INPUT_TOPICS, DEAD_LETTERS)}
    partitions = await topic_partitions(settings, list(targets.values()))
    missing = [name for name in targets.values() if name not in partitions]
    if missing:
        raise MissingTopicsError(
            "missing topics " + ", ".join(missing) + " (run `policyloop topics create`)"
        )
    producer = AIOKafkaProducer(
        **settings.aiokafka_common(),
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        max_batch_size=BATCH_BYTES,
        compression_type=None if settings.compression_type == "none" else settings.compression_type,
    )
    await producer.start()
    try:
        batches = _PartitionBatches(producer, {t: len(p) for t, p in partitions.items()})
        return await _produce(path, targets, batches, batch, rate)
    finally:
        await producer.stop()


async def _produce(
    path: Path,
    targets: dict[str, str],
    batches: _PartitionBatches,
    batch: int,
    rate: float | None,
) -> ProduceResult:
    result = ProduceResult()
    rejecter = Pipeline()
    sent = dict.fromkeys(targets, 0)
    started = time.perf_counter()
    pace_every = max(1, int(rate / 200)) if rate else 0
    previous: list[Awaitable[Any]] = []
    for number, line in replay_lines(path):
        result.lines = number
        parsed = parse_line(line)
        topic: str
        if parsed is not None:
            key = parsed.key.encode("utf-8") if parsed.key is not None else None
            value = record_value_bytes(parsed.value)
            if len(value) + len(key or b"") <= MAX_RECORD_BYTES:
                topic = targets[parsed.topic]
                part_key = key
                if key is None:
                    derived = contract_key(parsed.topic, parsed.value)
                    part_key = derived.encode("utf-8") if derived is not None else None
                ts = parsed.timestamp_ms
                if ts is not None and not 0 <= ts <= MAX_TIMESTAMP_MS:
                    ts = None
                    result.timestamps_dropped += 1
                await batches.add(topic, batches.partition(topic, part_key), key, value, ts)
                sent[parsed.topic] += 1
                result.records += 1
            else:
                error = DecodeError("too_large", f"record of {len(value)} bytes is over the limit")
                letter = rejecter.reject(parsed.topic, parsed.key, value, error, f"line:{number}")
                await _send_dead_letter(batches, targets[DEAD_LETTERS], letter[0])
                sent[DEAD_LETTERS] += 1
                result.dead_letters += 1
        else:
            rejected = decode_line(line, f"line:{number}")
            if not isinstance(rejected, Rejected):  # parse_line and decode_line disagree: a bug
                raise RuntimeError(f"line {number}: envelope checks of produce and replay differ")
            letters = rejecter.reject(
                rejected.source_topic, rejected.key, rejected.raw, rejected.error, rejected.source
            )
            await _send_dead_letter(batches, targets[DEAD_LETTERS], letters[0])
            sent[DEAD_LETTERS] += 1
            result.dead_letters += 1
        count = result.records + result.dead_letters
        if pace_every and count % pace_every == 0:
            await batches.submit_all()
            assert rate is not None
            delay = started + count / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if count % batch == 0:
            await batches.submit_all()
            await asyncio.gather(*previous)
            previous, batches.pending = batches.pending, []
    await batches.submit_all()
    await asyncio.gather(*previous)
    await batches.delivered()
    result.elapsed_s = time.perf_counter() - started
    result.sent = {name: n for name, n in sent.items() if n}
    return result


async def _send_dead_letter(batches: _PartitionBatches, topic: str, letter: Output) -> None:
    key = letter.key.encode("utf-8")
    await batches.add(topic, batches.partition(topic, key), key, encode(letter.value), None)
