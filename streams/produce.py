"""``policyloop produce FILE``: publish a replay file (CONTRACT.md "Replay files") to Kafka.

Every line that is a Kafka record goes to ``settings.topic(line.topic)`` with
- value: exactly ``streams.adapter.record_value_bytes(line.value)``, valid or not (a value
  that fails its model is the worker's to dead-letter, as replay does);
- key: the line's key as UTF-8; a null key stays null on the record, and its partition is
  then the one of the contract key taken from the value (symbol, strategy_id, scope's
  strategy_id or ``*``), so the records of one contract key keep their order either way;
- partition: murmur2 of the key, as the Java client and aiokafka's default partitioner do;
- timestamp: the line's ``timestamp_ms`` (CreateTime), the broker's clock when null or with
  ``wall_clock``; a value Kafka cannot carry (negative or over 2**63 - 1) is dropped and
  counted.
A line that cannot become a Kafka record (not JSON, not an object, no topic or value, key or
timestamp of the wrong type, unknown topic) is not sent to an input topic: its dead letter is
published to ``dead_letters``, built by ``streams.adapter.decode_line`` and
``Pipeline.reject`` exactly as ``policyloop replay`` builds it (same source_offset
``line:N``). One more case replay cannot have: a record over ``max_record_bytes``
(``POLICYLOOP_MAX_RECORD_BYTES``) is dead-lettered with error type ``too_large``. Blank
lines are skipped, as replay does.

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

from models.codec import DecodeError, encode
from models.topics import DEAD_LETTERS, INPUT_TOPICS
from processors.core.base import Output
from processors.pipeline import Pipeline
from streams.adapter import Rejected, decode_line, record_value_bytes, too_deep
from streams.kafka_batches import PartitionBatches
from streams.kafka_topics import input_message_limit, topic_partitions
from streams.settings import Settings

MAX_RECORD_BYTES = 1_000_000
"""The default of ``Settings.max_record_bytes``, for a converter built without settings."""
"""Key + value bytes above this become a ``too_large`` dead letter (broker limit ~1 MiB)."""
BATCH_BYTES = 512 * 1024
MAX_TIMESTAMP_MS = 2**63 - 1
KafkaRecord = tuple[str, bytes | None, bytes, int | None, bytes | None]


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
    """What ``produce_file`` did.

    lines: number of the last non-blank line read; records: records sent to input topics;
    dead_letters: lines published as dead letters; timestamps_dropped: timestamps Kafka
    cannot carry, replaced by the broker's clock; sent: records per contract topic name
    (``dead_letters`` included, topics with none left out); elapsed_s: wall time of sending.
    """

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


def replay_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline) of every non-blank line, as replay numbers them."""
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            line = raw_line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


class _LineConverter:
    """Turns numbered replay lines into Kafka records, dead letters included."""

    def __init__(self, wall_clock: bool = False, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.rejecter = Pipeline()
        self.timestamps_dropped = 0
        self.wall_clock = wall_clock
        self.max_record_bytes = max_record_bytes

    def convert(self, number: int, line: bytes) -> KafkaRecord:
        """(contract topic, key, value, timestamp_ms, partition key) of a line."""
        parsed = parse_line(line)
        if parsed is None:
            rejected = decode_line(line, f"line:{number}")
            if not isinstance(rejected, Rejected):  # parse_line and decode_line disagree: a bug
                raise RuntimeError(f"line {number}: envelope checks of produce and replay differ")
            return self._dead_letter(
                rejected.source_topic, rejected.key, rejected.raw, rejected.error, rejected.source
            )
        key = parsed.key.encode("utf-8") if parsed.key is not None else None
        deep = too_deep(line, parsed.value)
        if deep is not None:  # orjson could not write the value back
            return self._dead_letter(parsed.topic, parsed.key, line, deep, f"line:{number}")
        value = record_value_bytes(parsed.value)
        size = len(value) + len(key or b"")
        if size > self.max_record_bytes:
            error = DecodeError(
                "too_large",
                f"record of {size} bytes (key and value), over POLICYLOOP_MAX_RECORD_BYTES = "
                f"{self.max_record_bytes}",
            )
            return self._dead_letter(parsed.topic, parsed.key, value, error, f"line:{number}")
        part_key = key
        if key is None:
            derived = INPUT_TOPICS[parsed.topic].key_of(parsed.value)
            part_key = derived.encode("utf-8") if derived is not None else None
        ts = None if self.wall_clock else parsed.timestamp_ms
        if ts is not None and not 0 <= ts <= MAX_TIMESTAMP_MS:
            ts = None
            self.timestamps_dropped += 1
        return parsed.topic, key, value, ts, part_key

    def _dead_letter(
        self, topic: str, key: str | None, raw: bytes | str, error: DecodeError, source: str
    ) -> KafkaRecord:
        letter: Output = self.rejecter.reject(topic, key, raw, error, source)[0]
        letter_key = letter.key.encode("utf-8")
        return DEAD_LETTERS, letter_key, encode(letter.value), None, letter_key


async def produce_file(
    path: Path,
    settings: Settings,
    *,
    batch: int = 50_000,
    rate: float | None = None,
    wall_clock: bool = False,
) -> ProduceResult:
    """Publish the replay file ``path`` to its (prefixed) topics; see the module docs.

    ``batch``: records between delivery checkpoints (open batches are submitted and the
    previous checkpoint's deliveries awaited). ``rate``: records a second, None = as fast as
    possible. ``wall_clock``: leave every timestamp to the client's clock. Raises
    MissingTopicsError when a topic does not exist (the broker would
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
        max_request_size=max(input_message_limit(settings), BATCH_BYTES),
        compression_type=None if settings.compression_type == "none" else settings.compression_type,
    )
    await producer.start()
    try:
        batches = PartitionBatches(producer, {t: len(p) for t, p in partitions.items()})
        return await _produce(
            path,
            targets,
            batches,
            batch,
            rate,
            _LineConverter(wall_clock, settings.max_record_bytes),
        )
    finally:
        await producer.stop()


async def _produce(
    path: Path,
    targets: dict[str, str],
    batches: PartitionBatches,
    batch: int,
    rate: float | None,
    converter: _LineConverter,
) -> ProduceResult:
    convert, add, slot_of = converter.convert, batches.add, batches.slot
    sent = dict.fromkeys(targets, 0)
    started = time.perf_counter()
    step = max(1, int(rate / 200)) if rate else batch  # pace in ~5 ms steps
    count, lines, next_check, next_gather = 0, 0, step, batch
    previous: list[Awaitable[Any]] = []
    for lines, line in replay_lines(path):
        topic, key, value, ts, part_key = convert(lines, line)
        slot = slot_of(targets[topic], part_key)
        await add(slot, key, value, ts)
        sent[topic] += 1
        count += 1
        if count < next_check:
            continue
        next_check += step
        if rate:
            await batches.submit_all()
            delay = started + count / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if count >= next_gather:  # bound what is in flight; fail early on delivery errors
            next_gather += batch
            await batches.submit_all()
            await asyncio.gather(*previous)
            previous, batches.pending = batches.pending, []
    await batches.submit_all()
    await asyncio.gather(*previous)
    await batches.delivered()
    return ProduceResult(
        lines=lines,
        records=count - sent[DEAD_LETTERS],
        dead_letters=sent[DEAD_LETTERS],
        timestamps_dropped=converter.timestamps_dropped,
        sent={name: n for name, n in sent.items() if n},
        elapsed_s=time.perf_counter() - started,
    )
