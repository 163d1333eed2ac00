"""Checkpoints of the runner's state in a compacted Kafka topic.

A checkpoint is the orjson of the state, zlib-compressed and cut into chunks that fit a Kafka
record (``chunk-<generation>-<i>``), plus a ``manifest`` record naming the generation, the
chunk count, a sha256 and the sequenced-log offset the state includes. Writes happen inside
the runner's transaction, so a checkpoint is visible exactly when the outputs and the consumer
offset of the same batch are; the previous generation's chunks are tombstoned in the same
transaction, so compaction keeps the topic small.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition

from streams.worker.clients import Clients, Producer

CHUNK_BYTES = 512 * 1024
MANIFEST_KEY = b"manifest"


@dataclass(frozen=True)
class Checkpoint:
    generation: int
    next_offset: int
    state: dict[str, Any]


def encode_state(state: dict[str, Any]) -> bytes:
    return zlib.compress(orjson.dumps(state), 3)


def decode_state(blob: bytes) -> dict[str, Any]:
    state: dict[str, Any] = orjson.loads(zlib.decompress(blob))
    return state


async def write_checkpoint(
    producer: Producer,
    topic: str,
    generation: int,
    previous: Checkpoint | None,
    next_offset: int,
    state: dict[str, Any],
    previous_chunks: int,
    partition: int = 0,
) -> int:
    """Send a checkpoint to ``partition`` of ``topic`` (inside the caller's transaction);
    returns its chunk count. Every stage that checkpoints has a partition of its own."""
    blob = encode_state(state)
    chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
    for index, chunk in enumerate(chunks):
        key = f"chunk-{generation}-{index}".encode()
        await producer.send(topic, chunk, key=key, partition=partition)
    manifest = {
        "generation": generation,
        "chunks": len(chunks),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "next_offset": next_offset,
    }
    await producer.send(topic, orjson.dumps(manifest), key=MANIFEST_KEY, partition=partition)
    if previous is not None:
        for index in range(previous_chunks):
            key = f"chunk-{previous.generation}-{index}".encode()
            await producer.send(topic, None, key=key, partition=partition)
    return len(chunks)


async def read_checkpoint(
    clients: Clients, topic: str, partition: int = 0
) -> tuple[Checkpoint | None, int]:
    """The latest committed checkpoint (or None) and its chunk count, read from the start of
    ``partition`` of ``topic`` by a consumer of ``clients`` without a group."""
    consumer = clients.consumer(
        isolation_level="read_committed", enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: dict[bytes, bytes | None] = {}
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.key is not None:
                    latest[record.key] = record.value
    finally:
        await consumer.stop()
    manifest_raw = latest.get(MANIFEST_KEY)
    if manifest_raw is None:
        return None, 0
    manifest = orjson.loads(manifest_raw)
    generation = int(manifest["generation"])
    parts = [latest.get(f"chunk-{generation}-{i}".encode()) for i in range(manifest["chunks"])]
    if any(part is None for part in parts):
        raise RuntimeError(f"checkpoint generation {generation} is missing chunks")
    blob = b"".join(part for part in parts if part is not None)
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise RuntimeError(f"checkpoint generation {generation} fails its checksum")
    state = decode_state(blob)
    return Checkpoint(generation, int(manifest["next_offset"]), state), int(manifest["chunks"])
