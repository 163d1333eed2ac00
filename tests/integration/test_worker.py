"""The worker on the real broker: parity with replay, and the faults production brings.

Each test publishes a simulated market with ``policyloop produce``, runs real
``policyloop worker`` processes, reads the outputs back with ``policyloop dump`` and compares
them with ``policyloop replay`` of the same file.
"""

from __future__ import annotations

import functools
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from kafka_harness import (
    ROOT,
    Worker,
    assert_same_outputs,
    cli,
    doubled_and_missing,
    produce,
    read_lines,
    wait_until,
)

from streams.kafka_topics import input_message_limit
from streams.settings import Settings
from streams.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.integration
FAST = ("--idle-flush", "1.5", "--checkpoint-interval", "0.5")


def _market(tmp_path: Path, days: int = 2, symbols: int = 6, seed: int = 5) -> Path:
    path = tmp_path / "market.jsonl"
    simulate(SimulationConfig(seed=seed, days=days, symbols=symbols), path)
    return path


def _replay_and_dump(kafka: Settings, market: Path, tmp_path: Path) -> tuple[Path, Path]:
    replay_dir, dump_dir = tmp_path / "replay", tmp_path / "dump"
    cli(kafka, "replay", str(market), "--out", str(replay_dir))
    cli(kafka, "dump", "--out", str(dump_dir), "--idle-ms", "2000")
    return replay_dir, dump_dir


def test_worker_output_equals_replay(kafka: Settings, tmp_path: Path) -> None:
    market = _market(tmp_path)
    records = produce(kafka, market)
    worker = Worker(kafka, tmp_path, "a", *FAST)
    try:
        wait_until(
            lambda: worker.processed() >= records and worker.settled(),
            120,
            "the worker to settle",
            [worker],
        )
    finally:
        worker.stop()
    assert_same_outputs(*_replay_and_dump(kafka, market, tmp_path))


def test_sigkill_mid_stream_loses_and_doubles_nothing(kafka: Settings, tmp_path: Path) -> None:
    market = _market(tmp_path, days=4, symbols=8)
    records = produce(kafka, market)
    first = Worker(kafka, tmp_path, "first", *FAST, "--max-records", "300")
    wait_until(lambda: first.processed() >= records * 0.3, 120, "a third of the input", [first])
    first.kill()
    second = Worker(kafka, tmp_path, "second", *FAST)
    try:
        wait_until(
            lambda: second.processed() >= records and second.settled(),
            180,
            "the restarted worker to settle",
            [first, second],
        )
        assert second.metrics().get("policyloop_recoveries_total", 0) >= 1
    finally:
        second.stop()
    assert_same_outputs(*_replay_and_dump(kafka, market, tmp_path))


def _has_restored(worker: Worker) -> bool:
    return "restored at offset" in worker.log_path.read_text()


def test_repeated_sigkills_including_during_recovery_double_and_lose_nothing(
    kafka: Settings, tmp_path: Path
) -> None:
    """Issue 9, defect 4: the holder is killed four times, the last three about a second
    after it restored (while it recomputes below the committed offset); the last worker
    settles and every output topic holds replay's records, none doubled, none missing."""
    market = _market(tmp_path, days=4, symbols=8)
    records = produce(kafka, market)
    slow = (*FAST, "--max-records", "200")
    killed: list[Worker] = []
    holder = Worker(kafka, tmp_path, "kill-0", *slow)
    wait_until(lambda: holder.processed() >= records * 0.3, 120, "30% of the input", [holder])
    for round_number in range(1, 4):
        holder.kill()
        killed.append(holder)
        holder = Worker(kafka, tmp_path, f"kill-{round_number}", *slow)
        wait_until(
            functools.partial(_has_restored, holder),
            120,
            f"holder {round_number} to restore",
            [holder],
        )
        time.sleep(1.0)
    holder.kill()
    killed.append(holder)
    last = Worker(kafka, tmp_path, "last", *FAST)
    try:
        wait_until(
            lambda: last.processed() >= records and last.settled(),
            240,
            "the last holder to settle",
            [*killed, last],
        )
    finally:
        last.stop()
    replay_dir, dump_dir = _replay_and_dump(kafka, market, tmp_path)
    counts = doubled_and_missing(replay_dir, dump_dir)
    print(f"fault run: {len(killed)} kills; (doubled, missing) per topic: {counts}")
    assert all(pair == (0, 0) for pair in counts.values()), counts
    assert_same_outputs(replay_dir, dump_dir)


def test_two_workers_share_the_lanes_and_one_hands_over_by_sigkill(
    kafka: Settings, tmp_path: Path
) -> None:
    """Issue 10, load pattern (g): two workers share the input partitions (sequencers) and
    the lane partitions of the sequenced log (lane runners), one of them holds the global
    runner; that one is killed with SIGKILL mid-stream, the other takes over its lanes and
    the global runner and finishes with exactly replay's output, no record late."""
    market = _market(tmp_path, days=4, symbols=8)
    cli(kafka, "topics", "create")
    flags = ("--idle-flush", "10", "--checkpoint-interval", "0.5", "--max-records", "300")
    a = Worker(kafka, tmp_path, "a", *flags)
    b = Worker(kafka, tmp_path, "b", *flags)
    logs = [a, b]
    try:
        lanes = kafka.lane_partitions

        def both_share() -> bool:
            metrics = [w.metrics() for w in (a, b)]
            held = [m.get("policyloop_lane_partitions", 0) for m in metrics]
            sequencing = [m.get("policyloop_sequencer_partitions", 0) for m in metrics]
            global_held = sum(m.get("policyloop_global_runner", 0) for m in metrics)
            return min(held) > 0 and sum(held) == lanes and min(sequencing) > 0 and global_held == 1

        wait_until(both_share, 120, "both workers to share the lanes", logs)
        records = produce(kafka, market, "--batch", "1000")
        wait_until(lambda: a.processed() + b.processed() >= records * 0.3, 120, "progress", logs)
        sequenced = [w.metrics().get("policyloop_sequenced_records_total", 0) for w in (a, b)]
        assert min(sequenced) > 0, f"both workers sequence their share: {sequenced}"
        victim, survivor = (a, b) if a.metrics().get("policyloop_global_runner") == 1 else (b, a)
        victim.kill()
        wait_until(
            lambda: (
                survivor.metrics().get("policyloop_pipeline_active") == lanes + 1
                and survivor.processed() >= records
                and survivor.settled()
            ),
            240,
            "the remaining worker to take everything over and settle",
            logs,
        )
        final = survivor.metrics()
        assert final.get("policyloop_recoveries_total", 0) >= lanes + 1
        late = {k: v for k, v in final.items() if k.startswith("policyloop_late_events_total")}
        assert not any(late.values()), f"records behind the watermark: {late}"
    finally:
        a.stop()
        b.stop()
    replay_dir, dump_dir = _replay_and_dump(kafka, market, tmp_path)
    counts = doubled_and_missing(replay_dir, dump_dir)
    assert all(pair == (0, 0) for pair in counts.values()), counts
    assert_same_outputs(replay_dir, dump_dir)


def test_malformed_records_on_every_topic_become_dead_letters(
    kafka: Settings, tmp_path: Path
) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    market = _market(tmp_path, days=1, symbols=4)
    records = produce(kafka, market)
    bad_values = [b"not json", b"[1, 2]", b'{"event_id": "x"}', b"\xff\xfe", b"", b"{" * 10]
    topics = ("bar_decisions", "fills", "stand_down", "plans", "outcomes")

    async def send_bad() -> None:
        producer = AIOKafkaProducer(**kafka.aiokafka_common())
        await producer.start()
        try:
            for topic in topics:
                for value in bad_values:
                    await producer.send_and_wait(kafka.topic(topic), value, key=b"BAD")
        finally:
            await producer.stop()

    asyncio.run(send_bad())
    worker = Worker(kafka, tmp_path, "a", *FAST)
    try:
        total = records + len(topics) * len(bad_values)
        wait_until(
            lambda: worker.processed() >= total and worker.settled(),
            120,
            "the worker to settle",
            [worker],
        )
        assert worker.alive()
    finally:
        worker.stop()
    replay_dir, dump_dir = _replay_and_dump(kafka, market, tmp_path)
    letters = (dump_dir / "dead_letters.jsonl").read_text().splitlines()
    replayed = (replay_dir / "dead_letters.jsonl").read_text().splitlines()
    assert len(letters) == len(replayed) + len(topics) * len(bad_values)
    injected = [line for line in letters if '"key":"BAD"' in line]
    assert {t for t in topics if any(f'"source_topic":"{t}"' in x for x in injected)} == set(topics)


def test_records_at_and_over_the_size_limit_never_wedge_the_worker(
    kafka: Settings, tmp_path: Path
) -> None:
    """Issue 9, defect 3: with POLICYLOOP_MAX_RECORD_BYTES = 200,000 the input topics are
    created with room for one such record (plus framing); a record of exactly that size
    goes through the sequenced log (it is not a valid fill, so it is a dead letter of its
    own kind), and one 1,000 bytes larger, which the topic still takes (it has 4 KiB of
    room for framing), is a ``too_large`` dead letter, cut; the market around them gives
    replay's dead letters and nothing more."""
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    limit = 200_000
    sized = kafka.with_overrides(max_record_bytes=limit)
    market = _market(tmp_path, days=1, symbols=4)
    records = produce(sized, market)
    key = b"BIG"
    at_limit = b'{"x":"' + b"a" * (limit - len(key) - 8) + b'"}'
    over = b'{"x":"' + b"a" * (limit + 1000 - len(key) - 8) + b'"}'

    async def send_sized() -> str:
        admin = AIOKafkaAdminClient(**sized.aiokafka_common())
        await admin.start()
        try:
            resource = ConfigResource(ConfigResourceType.TOPIC, sized.topic("fills"))
            (described,) = await admin.describe_configs([resource])
            entries = {e[0]: e[1] for e in described.resources[0][4]}
        finally:
            await admin.close()
        producer = AIOKafkaProducer(max_request_size=2 * limit, **sized.aiokafka_common())
        await producer.start()
        try:
            for value in (at_limit, over):
                await producer.send_and_wait(sized.topic("fills"), value, key=key)
        finally:
            await producer.stop()
        return str(entries["max.message.bytes"])

    topic_limit = asyncio.run(send_sized())
    assert int(topic_limit) == input_message_limit(sized)
    worker = Worker(sized, tmp_path, "a", *FAST)
    try:
        wait_until(
            lambda: worker.processed() >= records + 2 and worker.settled(),
            120,
            "the worker to settle",
            [worker],
        )
        assert worker.alive()
        assert worker.metrics().get("policyloop_oversized_records_total") == 1
    finally:
        worker.stop()
    replay_dir, dump_dir = _replay_and_dump(sized, market, tmp_path)
    letters = [orjson.loads(x) for x in read_lines(dump_dir / "dead_letters.jsonl")]
    big = sorted((d["error"]["type"], d["raw_truncated"]) for d in letters if d["key"] == "BIG")
    assert big == [("missing", True), ("too_large", True)], big  # both raws cut to 64 KiB
    assert len(letters) == len(read_lines(replay_dir / "dead_letters.jsonl")) + 2


def test_broker_restart_mid_stream_is_survived(kafka: Settings, tmp_path: Path) -> None:
    market = _market(tmp_path, days=4, symbols=8)
    records = produce(kafka, market)
    worker = Worker(kafka, tmp_path, "a", *FAST, "--max-records", "300")
    try:
        wait_until(
            lambda: worker.processed() >= records * 0.3,
            120,
            "a third of the input",
            [worker],
        )
        restart = subprocess.run(
            ["bash", "deploy/kafka.sh", "restart"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert restart.returncode == 0, restart.stdout + restart.stderr
        wait_until(
            lambda: worker.processed() >= records and worker.settled(),
            240,
            "the worker to settle after the broker restart",
            [worker],
        )
        assert worker.alive()
    finally:
        worker.stop()
    assert_same_outputs(*_replay_and_dump(kafka, market, tmp_path))
