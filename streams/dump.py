"""``policyloop dump --out DIR``: the output topics, read from the beginning, in replay layout.

A fresh consumer without a group (nothing committed, nobody else's offsets touched), with
``isolation_level="read_committed"``, reads every partition of every output topic from its
earliest offset until idle: no record for ``idle_ms`` *and* every position at its end offset
(the last stable offset). Each value is validated with its output model and re-encoded with
``models.codec.encode``, so a line has the same bytes replay writes for that record.

Written through ``streams.output_files.OutputFiles``:
- DIR/<topic>.jsonl for every output topic, ``performance`` included: partition 0's records
  in offset order, then partition 1's, and so on. Kafka orders records per partition only
  (that is, per key), so compare a dump with a replay per key, or as multisets per topic,
  not line by line across keys.
- DIR/performance.json: the last row per key of ``performance`` (compacted semantics; a
  tombstone deletes its key), sorted like ``PerformanceTables.rows()``: by strategy_id,
  group_by, group, then window 1d, 7d, 30d, all. Unlike replay, whose final rows are all
  recomputed as of the end of the input, these are the last snapshots the worker published.
- DIR/metrics.prom: empty (metrics are not on a topic; scrape the worker's /metrics).
- DIR/summary.json: ``outputs`` (records per output topic, as in replay's summary),
  ``partitions`` (records per partition), ``invalid`` (records that failed their model and
  were left out), ``tombstones``, ``missing_topics`` and ``topic_prefix``.
Tombstones (null values) are not written to the JSON Lines files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from models.codec import encode
from models.outputs import PerformanceRow
from models.topics import OUTPUT_TOPICS, PERFORMANCE
from streams.kafka_topics import topic_partitions
from streams.output_files import STREAM_FILES, OutputFiles
from streams.settings import Settings

WINDOW_ORDER = {"1d": 0, "7d": 1, "30d": 2, "all": 3}
POLL_MS = 200
MAX_RECORDS = 10_000
Records = dict[TopicPartition, list[tuple[bytes | None, bytes | None]]]


class DumpTimeoutError(TimeoutError):
    """The output topics did not become idle within ``max_wait_ms``."""


async def dump_outputs(
    settings: Settings,
    out_dir: Path,
    *,
    idle_ms: int = 2000,
    max_wait_ms: int = 600_000,
) -> dict[str, Any]:
    """Dump every output topic into ``out_dir`` (see the module docs).

    Returns the summary written to summary.json plus ``records`` (total), ``elapsed_s`` and
    ``idle_s`` (the final idle wait, part of elapsed_s); raises
    DumpTimeoutError when the topics are still moving after ``max_wait_ms``.
    """
    started = time.perf_counter()
    names = {settings.topic(name): name for name in OUTPUT_TOPICS}
    partitions = await topic_partitions(settings, list(names))
    missing = [name for name in names if name not in partitions]
    tps = [TopicPartition(topic, p) for topic, ids in partitions.items() for p in ids]
    records, idle_s = await _read_all(settings, tps, idle_ms, max_wait_ms)
    summary = _write(out_dir, records, names, missing, settings.topic_prefix)
    total = sum(summary["outputs"].values())
    elapsed = time.perf_counter() - started
    return {**summary, "records": total, "elapsed_s": elapsed, "idle_s": idle_s}


async def _read_all(
    settings: Settings, tps: list[TopicPartition], idle_ms: int, max_wait_ms: int
) -> tuple[Records, float]:
    """(key, value) of every record of ``tps``, per partition in offset order, and the
    seconds spent idle after the last record."""
    records: Records = {tp: [] for tp in tps}
    if not tps:
        return records, 0.0
    consumer = AIOKafkaConsumer(
        **settings.aiokafka_common(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        start = last_record = time.monotonic()
        while True:
            batch = await consumer.getmany(
                timeout_ms=min(POLL_MS, idle_ms), max_records=MAX_RECORDS
            )
            now = time.monotonic()
            for tp, messages in batch.items():
                records[tp].extend((m.key, m.value) for m in messages)
                last_record = now
            if now - last_record >= idle_ms / 1000 and await _at_end(consumer, tps):
                return records, time.monotonic() - last_record
            if now - start > max_wait_ms / 1000:
                raise DumpTimeoutError(f"output topics still moving after {max_wait_ms} ms")
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return False
    return True


def _write(
    out_dir: Path,
    records: Records,
    names: dict[str, str],
    missing: list[str],
    prefix: str,
) -> dict[str, Any]:
    outputs = dict.fromkeys(OUTPUT_TOPICS, 0)
    partitions: dict[str, dict[str, int]] = {name: {} for name in OUTPUT_TOPICS}
    invalid = dict.fromkeys(OUTPUT_TOPICS, 0)
    tombstones = dict.fromkeys(OUTPUT_TOPICS, 0)
    last_rows: dict[str, PerformanceRow] = {}
    with OutputFiles(out_dir) as files:
        for tp in sorted(records, key=lambda tp: (tp.topic, tp.partition)):
            name = names[tp.topic]
            model = OUTPUT_TOPICS[name].model
            lines = []
            for key, value in records[tp]:
                if value is None:
                    tombstones[name] += 1
                    if name == PERFORMANCE and key is not None:
                        last_rows.pop(key.decode("utf-8", errors="replace"), None)
                    continue
                try:
                    parsed = model.model_validate_json(value)
                except ValidationError:
                    invalid[name] += 1
                    continue
                lines.append(encode(parsed))
                if isinstance(parsed, PerformanceRow):
                    last_rows[_row_key(key, parsed)] = parsed
            outputs[name] += len(lines)
            partitions[name][str(tp.partition)] = len(lines)
            if name in STREAM_FILES:
                files.write_raw(name, lines)
        summary = {
            "source": "kafka",
            "topic_prefix": prefix,
            "outputs": outputs,
            "partitions": partitions,
            "invalid": invalid,
            "tombstones": tombstones,
            "missing_topics": sorted(missing),
        }
        files.finish(sorted(last_rows.values(), key=_row_order), b"", summary)
    return summary


def _row_key(key: bytes | None, row: PerformanceRow) -> str:
    """The compaction key of a row: the record key, else the contract's key of the row."""
    if key is not None:
        return key.decode("utf-8", errors="replace")
    return f"{row.strategy_id}|{row.group}|{row.window.value}"


def _row_order(row: PerformanceRow) -> tuple[str, str, str, int]:
    return (row.strategy_id, row.group_by.value, row.group, WINDOW_ORDER[row.window.value])
