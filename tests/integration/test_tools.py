"""The Kafka tools on the real broker: topics create, produce FILE, dump --out DIR."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from models.topics import DEAD_LETTERS, INPUT_TOPICS, OUTPUT_TOPICS, POLICY_UPDATES
from streams.adapter import Rejected, decode_line, record_value_bytes
from streams.dump import dump_outputs
from streams.kafka_topics import NewTopicSpec, create_topics, topic_partitions
from streams.output_files import STREAM_FILES
from streams.produce import MissingTopicsError, produce_file
from streams.replay import run_replay
from streams.settings import Settings
from streams.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.integration

ENVELOPE_ERRORS = {"json_invalid", "envelope_invalid", "unknown_topic"}
COMPACTED = {"policy_updates", "performance"}
Record = tuple[bytes | None, bytes | None, int]  # key, value, timestamp
OUTPUT_KEYS: dict[str, Callable[[dict[str, Any]], str]] = {
    "alerts": lambda v: v["dedup_key"],
    "replan_verdicts": lambda v: v["strategy_id"],
    "policy_candidates": lambda v: v["candidate_id"],
    "policy_updates": lambda v: "default",
    "feedback_summaries": lambda v: v["run_id"],
    "performance": lambda v: f"{v['strategy_id']}|{v['group']}|{v['window']}",
    "dead_letters": lambda v: v["key"] or "",
}


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("market") / "market.jsonl"
    simulate(SimulationConfig(days=1, symbols=4), path)
    return path


@pytest.fixture(scope="module")
def replayed(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay")
    run_replay(market, out)
    return out


async def consume_all(
    settings: Settings, topics: list[str], expected: int, timeout_s: float = 15.0
) -> dict[TopicPartition, list[Record]]:
    """Every record of ``topics`` (deployed names), per partition, until ``expected`` read."""
    consumer = AIOKafkaConsumer(
        **settings.aiokafka_common(), group_id=None, enable_auto_commit=False
    )
    partitions = await topic_partitions(settings, topics)
    tps = [TopicPartition(t, p) for t in topics for p in partitions[t]]
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: dict[TopicPartition, list[Record]] = {tp: [] for tp in tps}
        async with asyncio.timeout(timeout_s):
            while sum(map(len, out.values())) < expected:
                for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                    out[tp].extend((m.key, m.value, m.timestamp) for m in messages)
        await asyncio.sleep(0.3)  # nothing beyond what we expect
        for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
            out[tp].extend((m.key, m.value, m.timestamp) for m in messages)
        return out
    finally:
        await consumer.stop()


async def test_create_topics_is_idempotent(kafka: Settings) -> None:
    extra = NewTopicSpec(kafka.topic("worker-state-changelog"), 2, {"cleanup.policy": "compact"})
    created = await create_topics(kafka, extra_topics=[extra])
    expected = [kafka.topic(n) for n in (*INPUT_TOPICS, *OUTPUT_TOPICS)] + [extra.name]
    assert created == expected
    assert await create_topics(kafka, extra_topics=[extra]) == []

    admin = AIOKafkaAdminClient(**kafka.aiokafka_common())
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(expected)}
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
                for name in expected
            ]
        )
    finally:
        await admin.close()
    partitions = {name: len(t["partitions"]) for name, t in described.items()}
    for name in INPUT_TOPICS:
        assert partitions[kafka.topic(name)] == kafka.input_partitions
    for name in OUTPUT_TOPICS:
        want = 1 if name == POLICY_UPDATES else kafka.output_partition_count
        assert partitions[kafka.topic(name)] == want
    assert partitions[extra.name] == 2
    policy = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
        for response in responses
        for resource in response.resources
    }
    for name in (*INPUT_TOPICS, *OUTPUT_TOPICS):
        assert policy[kafka.topic(name)] == ("compact" if name in COMPACTED else "delete"), name
    assert policy[extra.name] == "compact"


async def test_produce_delivers_every_line_keyed_and_in_order(
    kafka: Settings, market: Path, replayed: Path
) -> None:
    expected: dict[str, list[tuple[str | None, bytes, int | None]]] = defaultdict(list)
    envelope_lines: set[str] = set()
    for number, raw in enumerate(market.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        decoded = decode_line(raw, f"line:{number}")
        if isinstance(decoded, Rejected) and decoded.error.type in ENVELOPE_ERRORS:
            envelope_lines.add(f"line:{number}")
            continue
        record = orjson.loads(raw)
        expected[record["topic"]].append(
            (record.get("key"), record_value_bytes(record["value"]), record.get("timestamp_ms"))
        )
    assert envelope_lines, "the simulated market should hold unparseable lines"

    await create_topics(kafka)
    result = await produce_file(market, kafka, batch=500)
    assert result.records == sum(map(len, expected.values()))
    assert result.dead_letters == len(envelope_lines)
    assert result.sent == {
        **{t: len(v) for t, v in expected.items()},
        DEAD_LETTERS: len(envelope_lines),
    }

    topics = [kafka.topic(t) for t in (*INPUT_TOPICS, DEAD_LETTERS)]
    total = result.records + result.dead_letters
    got = await consume_all(kafka, topics, total)
    assert sum(map(len, got.values())) == total
    for name, records in expected.items():
        per_key: dict[str | None, list[tuple[bytes, int | None]]] = defaultdict(list)
        for key, value, ts in records:
            per_key[key].append((value, ts))
        arrived: dict[str | None, list[tuple[bytes, int | None]]] = defaultdict(list)
        partitions_of_key: dict[str | None, set[int]] = defaultdict(set)
        for tp, messages in got.items():
            if tp.topic != kafka.topic(name):
                continue
            for key_bytes, value_bytes, ts in messages:
                key = key_bytes.decode() if key_bytes is not None else None
                assert value_bytes is not None
                arrived[key].append((value_bytes, ts))
                partitions_of_key[key].add(tp.partition)
        assert arrived == per_key, name  # same records, same order per key
        assert all(len(p) == 1 for p in partitions_of_key.values())

    replay_letters = sorted(
        line
        for line in (replayed / "dead_letters.jsonl").read_bytes().splitlines()
        if orjson.loads(line)["source_offset"] in envelope_lines
    )
    kafka_letters = sorted(
        value or b""
        for tp, ms in got.items()
        if tp.topic == kafka.topic(DEAD_LETTERS)
        for _, value, _ in ms
    )
    assert kafka_letters == replay_letters


async def test_produce_edge_cases(kafka: Settings, tmp_path: Path) -> None:
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b"")
    with pytest.raises(MissingTopicsError, match="topics create"):
        await produce_file(path, kafka)
    assert await create_topics(kafka, partitions=3), "produce must not auto-create topics"
    decision: dict[str, Any] = {"symbol": "ABC", "event_id": "e1"}
    lines = [
        {"topic": "bar_decisions", "key": None, "timestamp_ms": -5, "value": decision},
        {"topic": "stand_down", "key": None, "timestamp_ms": 7, "value": {"scope": {}}},
        {"topic": "fills", "key": "ABC", "value": {"symbol": "ABC", "blob": "x" * 1_100_000}},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n\n")
    result = await produce_file(path, kafka)
    assert (result.lines, result.records, result.dead_letters) == (3, 2, 1)
    assert result.timestamps_dropped == 1
    topics = [kafka.topic(t) for t in ("bar_decisions", "stand_down", DEAD_LETTERS)]
    got = await consume_all(kafka, topics, 3)
    flat = {tp.topic: (tp.partition, *ms[0]) for tp, ms in got.items() if ms}
    part, key, value, ts = flat[kafka.topic("bar_decisions")]
    assert (key, value) == (None, record_value_bytes(decision))
    assert ts > 0  # the broker's clock replaced the negative timestamp
    sd_part, sd_key, _, sd_ts = flat[kafka.topic("stand_down")]
    assert (sd_key, sd_ts) == (None, 7)
    producer = AIOKafkaProducer(**kafka.aiokafka_common())
    await producer.start()
    try:  # a null key goes where the contract key (symbol, or * for all) would go
        meta = await producer.send_and_wait(kafka.topic("bar_decisions"), b"{}", key=b"ABC")
        assert meta.partition == part
        meta = await producer.send_and_wait(kafka.topic("stand_down"), b"{}", key=b"*")
        assert meta.partition == sd_part
    finally:
        await producer.stop()
    letter = orjson.loads(flat[kafka.topic(DEAD_LETTERS)][2] or b"")
    assert letter["error"]["type"] == "too_large"

    # --wall-clock: the line's timestamp_ms (7) gives way to the current time
    path.write_bytes(orjson.dumps(lines[1]) + b"\n")
    before_ms = time.time() * 1000
    result = await produce_file(path, kafka, wall_clock=True)
    assert (result.records, result.timestamps_dropped) == (1, 0)
    again = await consume_all(kafka, [kafka.topic("stand_down")], 2)
    stamps = sorted(ts for records in again.values() for _, _, ts in records)
    assert stamps[0] == 7 and stamps[1] >= before_ms - 60_000
    assert (letter["source_topic"], letter["key"], letter["raw_truncated"]) == (
        "fills",
        "ABC",
        True,
    )
    assert letter["source_offset"] == "line:3"


async def publish_outputs(settings: Settings, replayed: Path) -> dict[str, list[bytes]]:
    """Every line of replay's output files to its output topic, keyed like the pipeline."""
    lines = {t: (replayed / f"{t}.jsonl").read_bytes().splitlines() for t in STREAM_FILES}
    producer = AIOKafkaProducer(**settings.aiokafka_common(), acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.topic(topic),
                line,
                key=OUTPUT_KEYS[topic](orjson.loads(line)).encode(),
            )
            for topic, topic_lines in lines.items()
            for line in topic_lines
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return lines


def last_rows_json(performance_lines: list[bytes]) -> bytes:
    windows = {"1d": 0, "7d": 1, "30d": 2, "all": 3}
    last = {}
    for line in performance_lines:
        row = orjson.loads(line)
        last[(row["strategy_id"], row["group"], row["window"])] = row
    rows = sorted(
        last.values(),
        key=lambda r: (r["strategy_id"], r["group_by"], r["group"], windows[r["window"]]),
    )
    return orjson.dumps(rows, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


async def test_dump_reproduces_the_replay_layout(
    kafka: Settings, replayed: Path, tmp_path: Path
) -> None:
    await create_topics(kafka, partitions=1)  # one partition: file order is offset order
    lines = await publish_outputs(kafka, replayed)
    out = tmp_path / "dump"
    summary = await dump_outputs(kafka, out, idle_ms=300)
    for topic in STREAM_FILES:
        assert (out / f"{topic}.jsonl").read_bytes() == (replayed / f"{topic}.jsonl").read_bytes()
        assert summary["outputs"][topic] == len(lines[topic])
    assert (out / "performance.json").read_bytes() == last_rows_json(lines["performance"])
    assert (out / "metrics.prom").read_bytes() == b""
    on_disk = orjson.loads((out / "summary.json").read_bytes())
    assert on_disk["outputs"] == summary["outputs"]
    assert summary["records"] == sum(map(len, lines.values()))


async def test_dump_over_partitions_keeps_order_per_key(
    kafka: Settings, replayed: Path, tmp_path: Path
) -> None:
    await create_topics(kafka)
    lines = await publish_outputs(kafka, replayed)
    tombstoned = OUTPUT_KEYS["performance"](orjson.loads(lines["performance"][0]))
    producer = AIOKafkaProducer(**kafka.aiokafka_common())
    await producer.start()
    try:
        await producer.send_and_wait(kafka.topic("performance"), None, key=tombstoned.encode())
        await producer.send_and_wait(kafka.topic("alerts"), b'{"not": "an alert"}', key=b"x")
    finally:
        await producer.stop()
    out = tmp_path / "dump"
    summary = await dump_outputs(kafka, out, idle_ms=300)
    assert summary["tombstones"]["performance"] == 1
    assert summary["invalid"]["alerts"] == 1
    for topic in STREAM_FILES:
        dumped = (out / f"{topic}.jsonl").read_bytes().splitlines()
        assert Counter(dumped) == Counter(lines[topic]), topic
        key_of = OUTPUT_KEYS[topic]
        for key in {key_of(orjson.loads(line)) for line in lines[topic]}:
            mine = [line for line in dumped if key_of(orjson.loads(line)) == key]
            assert mine == [line for line in lines[topic] if key_of(orjson.loads(line)) == key]
    rows = orjson.loads((out / "performance.json").read_bytes())
    assert tombstoned not in {OUTPUT_KEYS["performance"](row) for row in rows}
    assert len(rows) == len(orjson.loads(last_rows_json(lines["performance"]))) - 1
