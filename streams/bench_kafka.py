"""Kafka figures for ``make bench``, all measured in the same run on the same broker:

- raw: aiokafka ``getmany`` + orjson over the input topics (the ceiling of any consumer);
- naive: a one-event-at-a-time Faust agent that only decodes (streams/bench_faust_naive.py);
- worker: ``policyloop worker`` end to end (sequencer, lane runners, global runner,
  transactional outputs), timed from its first processed record to all processed; once as
  one process, once as two worker processes sharing the input and lane partitions;
- replay: ``policyloop replay`` of the same market in one process, for the ratio;
- latency: a live feed, records produced at 5k records/s stamped with the wall clock, into a
  worker with 1 s lateness; p50 and p99 (bucket upper bounds) of the
  ``policyloop_processing_latency_seconds`` histogram (record timestamp to the commit of the
  transaction holding the outputs it released: alerts among them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from models.topics import INPUT_TOPICS
from streams.kafka_topics import create_topics
from streams.metrics import scrape
from streams.produce import produce_file
from streams.settings import Settings


async def _raw_rate(settings: Settings, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        *[settings.topic(t) for t in INPUT_TOPICS],
        group_id=f"{settings.topic_prefix}raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.aiokafka_common(),
    )
    await consumer.start()
    count, started = 0, 0.0
    try:
        while count < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            if batches and not started:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    if record.value:
                        with contextlib.suppress(orjson.JSONDecodeError):
                            orjson.loads(record.value)
                count += len(records)
    finally:
        await consumer.stop()
    return count / (time.perf_counter() - started)


async def _records_in_topics(settings: Settings) -> int:
    """What the input topics hold (the rates divide by what is there to read)."""
    from streams.kafka_topics import topic_partitions

    names = [settings.topic(t) for t in INPUT_TOPICS]
    partitions = await topic_partitions(settings, names)
    consumer = AIOKafkaConsumer(**settings.aiokafka_common())
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, ids in partitions.items() for p in ids]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        POLICYLOOP_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        POLICYLOOP_TOPIC_PREFIX=settings.topic_prefix,
        POLICYLOOP_CONSUMER_GROUP=settings.consumer_group,
        **extra,
    )
    return env


def _processed(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("policyloop_events_total{"))


def _quantile(samples: dict[str, float], q: float) -> float | None:
    """The upper bound of the latency bucket holding the ``q`` quantile (None: no data)."""
    buckets = sorted(
        (float(k.split('le="')[1].split('"')[0]), v)
        for k, v in samples.items()
        if k.startswith("policyloop_processing_latency_seconds_bucket")
    )
    total = samples.get("policyloop_processing_latency_seconds_count", 0.0)
    if not total:
        return None
    for bound, cumulative in buckets:
        if cumulative >= q * total:
            return bound
    return None


def _start_worker(
    settings: Settings, port: int, log: Path, role: str = "all", **env: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--idle-flush", "2", "--role", role],
        env=_env(settings, POLICYLOOP_METRICS_PORT=str(port), **env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _worker_rate(
    settings: Settings, expected: int, port: int, log: Path, processes: int = 1
) -> float:
    """Records a second from the first processed record to the last, over ``processes``
    workers (each ``--role all``: they share the input partitions and the lane partitions)."""
    workers = [
        _start_worker(settings, port + i, log.with_suffix(f".{i}.log")) for i in range(processes)
    ]
    first: float | None = None
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = sum(_processed(_scrape_or_empty(port + i)) for i in range(processes))
            now = time.perf_counter()
            if done > 0 and first is None:
                first = now
            if done >= expected and first is not None:
                return expected / (now - first)
            time.sleep(0.05)
        raise TimeoutError(f"worker did not finish; see {log}")
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=60)


def _scrape_or_empty(port: int) -> dict[str, float]:
    """The metrics at ``port``, or none while the worker is not serving yet."""
    try:
        return scrape(port)
    except OSError:
        return {}


LATENCY_LATENESS_MS = 1000


def _latency(settings: Settings, market: Path, rate: float, port: int, log: Path) -> Any:
    asyncio.run(create_topics(settings))
    lateness = str(LATENCY_LATENESS_MS)
    process = _start_worker(settings, port, log, POLICYLOOP_WATERMARK_LATENESS_MS=lateness)
    try:
        time.sleep(8)  # let the worker join its groups before the clock starts
        result = asyncio.run(produce_file(market, settings, rate=rate, wall_clock=True))
        deadline = time.monotonic() + 300
        while _processed(scrape(port)) < result.records and time.monotonic() < deadline:
            time.sleep(0.2)
        samples = scrape(port)
        return {
            "rate_per_s": rate,
            "lateness_ms": LATENCY_LATENESS_MS,
            "records": result.records,
            "p50_seconds_le": _quantile(samples, 0.5),
            "p99_seconds_le": _quantile(samples, 0.99),
            "count": samples.get("policyloop_processing_latency_seconds_count"),
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def _replay_seconds(market: Path, workdir: Path) -> float:
    """Seconds ``policyloop replay`` takes over ``market`` (one process), in this run."""
    from streams.replay import run_replay

    started = time.perf_counter()
    run_replay(market, workdir / "bench-kafka-replay-out")
    return time.perf_counter() - started


def _naive_figures(output: str) -> tuple[float | None, int | None]:
    """(records a second, records consumed) from bench_faust_naive's output line."""
    # the line may follow the terminal escapes of Faust's spinner
    found = re.search(r"naive_faust_records_per_s=(\d+) consumed=(\d+)", output)
    return (float(found.group(1)), int(found.group(2))) if found else (None, None)


async def _delete(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_common())
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def bench_kafka(market: Path, workdir: Path, latency_rate: float = 5_000.0) -> dict[str, Any]:
    """Raw, naive-Faust and worker rates on the same records; latency at a fixed rate."""
    base = Settings.from_env()
    run = uuid.uuid4().hex[:8]
    settings = base.with_overrides(topic_prefix=f"bench-{run}-", consumer_group=f"bench-{run}")
    latency_settings = base.with_overrides(
        topic_prefix=f"bench-{run}-lat-", consumer_group=f"bench-{run}-lat"
    )
    split_settings = base.with_overrides(
        topic_prefix=f"bench-{run}-split-", consumer_group=f"bench-{run}-split"
    )
    try:
        asyncio.run(create_topics(settings))
        # stamped with wall time: records stamped with their (months old) event time would
        # fall to the broker's time-based retention during the run, and latency is measured
        # from the record timestamp
        asyncio.run(produce_file(market, settings, wall_clock=True))
        expected = asyncio.run(_records_in_topics(settings))
        raw = asyncio.run(_raw_rate(settings, expected))
        naive_out = subprocess.run(
            [sys.executable, "-m", "streams.bench_faust_naive", str(expected)],
            env=_env(settings),
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        ).stdout
        naive, naive_consumed = _naive_figures(naive_out)
        worker = _worker_rate(settings, expected, 9191, workdir / "bench-worker.log")
        asyncio.run(create_topics(split_settings))
        asyncio.run(produce_file(market, split_settings, wall_clock=True))
        two = _worker_rate(split_settings, expected, 9193, workdir / "bench-worker-two.log", 2)
        replay_s = _replay_seconds(market, workdir)
        latency = _latency(
            latency_settings, market, latency_rate, 9192, workdir / "bench-latency-worker.log"
        )
    finally:
        asyncio.run(_delete(settings))
        asyncio.run(_delete(latency_settings))
        asyncio.run(_delete(split_settings))
    return {
        "records": expected,
        "raw_aiokafka_getmany_orjson_per_s": round(raw),
        "naive_faust_agent_decode_per_s": round(naive) if naive else None,
        "naive_faust_agent_consumed": naive_consumed,
        "worker_end_to_end_per_s": round(worker),
        "worker_vs_raw": round(worker / raw, 3),
        "worker_vs_naive_faust": round(worker / naive, 2) if naive else None,
        "worker_two_processes_per_s": round(two),
        "worker_two_processes_vs_one": round(two / worker, 3),
        "replay_per_s": round(expected / replay_s),
        "worker_vs_replay": round(worker * replay_s / expected, 3),
        "latency": latency,
    }
