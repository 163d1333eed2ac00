"""Live equals replay for the ways input really arrives (issue 10), on the real broker.

Each test starts a worker, loads a market into it the way a user's feed would, reads the
outputs back with ``policyloop dump`` and compares them with ``policyloop replay`` of the
same file, record for record, and asserts that no record was late. The worker runs with its
defaults but for a short idle flush and checkpoint interval (idle timeout 5 s). Patterns:
(a) ``policyloop produce FILE`` with its defaults; (d) a live feed, throttled and in small
batches; (e) a producer that pauses for less than the idle timeout; (f) a worker down during
the load and restarted (a backfill). SIGKILLs and a broker restart are in test_worker.py.

(b) one topic after another, each its own ``produce`` (about 2 s each here): the topics
whose load starts more than the idle timeout after the first are idle by then, so with the
default timeout some of their records are late, which the test pins; with the idle timeout
above the whole load's length the output is replay's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka_harness import Worker, assert_same_outputs, cli, produce, wait_until

from models.topics import INPUT_TOPICS
from streams.settings import Settings
from streams.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.integration
FAST = ("--idle-flush", "1.5", "--checkpoint-interval", "0.5")


def _market(tmp_path: Path) -> Path:
    path = tmp_path / "market.jsonl"
    simulate(SimulationConfig(seed=7, days=2, symbols=6), path)
    return path


def _split(market: Path, parts: int) -> list[Path]:
    lines = market.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    paths = []
    for index in range(parts):
        path = market.with_name(f"part-{index}.jsonl")
        path.write_bytes(b"".join(lines[index * size : (index + 1) * size]))
        paths.append(path)
    return paths


def _by_topic(market: Path) -> list[Path]:
    """One file per input topic, in the file's order within each (lines that name no input
    topic go with the first file), stand-downs last: the feed that arrives last."""
    topics = [*INPUT_TOPICS][::-1]
    files: dict[str, list[bytes]] = {topic: [] for topic in topics}
    for line in market.read_bytes().splitlines(keepends=True):
        try:
            topic = orjson.loads(line).get("topic")
        except (orjson.JSONDecodeError, AttributeError):
            topic = None
        files[topic if topic in files else topics[0]].append(line)
    paths = []
    for topic, lines in files.items():
        path = market.with_name(f"topic-{topic}.jsonl")
        path.write_bytes(b"".join(lines))
        paths.append(path)
    return paths


def _settle(worker: Worker, records: int) -> None:
    wait_until(
        lambda: worker.processed() >= records and worker.settled(),
        180,
        "the worker to settle",
        [worker],
    )


def _wait_serving(worker: Worker) -> None:
    wait_until(lambda: bool(worker.metrics()), 60, "the worker to serve metrics", [worker])


def _late_by_topic(worker: Worker) -> dict[str, float]:
    return {k: v for k, v in worker.metrics().items() if k.startswith("policyloop_late_events")}


def _late(worker: Worker) -> float:
    return sum(_late_by_topic(worker).values())


def _check(kafka: Settings, market: Path, tmp_path: Path) -> None:
    replay_dir, dump_dir = tmp_path / "replay", tmp_path / "dump"
    cli(kafka, "replay", str(market), "--out", str(replay_dir))
    cli(kafka, "dump", "--out", str(dump_dir), "--idle-ms", "2000")
    assert_same_outputs(replay_dir, dump_dir)


def _load_defaults(kafka: Settings, market: Path) -> int:
    return produce(kafka, market)


def _load_topic_by_topic(kafka: Settings, market: Path) -> int:
    return sum(produce(kafka, path) for path in _by_topic(market))


def _load_live_feed(kafka: Settings, market: Path) -> int:
    return produce(kafka, market, "--rate", "4000", "--batch", "200")


def _load_with_short_pauses(kafka: Settings, market: Path) -> int:
    total = 0
    for path in _split(market, 3):
        total += produce(kafka, path)
        time.sleep(2.0)  # shorter than the 5 s idle timeout
    return total


LOADERS: dict[str, Callable[[Settings, Path], int]] = {
    "a_produce_defaults": _load_defaults,
    "d_live_feed": _load_live_feed,
    "e_short_pauses": _load_with_short_pauses,
}


@pytest.mark.parametrize("pattern", LOADERS)
def test_loading_into_a_running_worker_gives_replay_output(
    kafka: Settings, tmp_path: Path, pattern: str
) -> None:
    market = _market(tmp_path)
    cli(kafka, "topics", "create")
    worker = Worker(kafka, tmp_path, pattern, *FAST)
    try:
        _wait_serving(worker)
        records = LOADERS[pattern](kafka, market)
        _settle(worker, records)
        late = _late(worker)
    finally:
        worker.stop()
    print(f"load pattern {pattern}: {records} records, {late:.0f} late")
    assert late == 0
    _check(kafka, market, tmp_path)


def test_f_a_worker_down_during_the_load_catches_up(kafka: Settings, tmp_path: Path) -> None:
    market = _market(tmp_path)
    first_half, second_half = _split(market, 2)
    cli(kafka, "topics", "create")
    first = Worker(kafka, tmp_path, "first", *FAST)
    try:
        _wait_serving(first)
        records = produce(kafka, first_half)
        wait_until(lambda: first.processed() >= records, 120, "the first half", [first])
    finally:
        first.stop()
    records += produce(kafka, second_half)  # nobody runs while it is loaded
    time.sleep(6.0)  # longer than the idle timeout
    second = Worker(kafka, tmp_path, "second", *FAST)
    try:
        _settle(second, records)
        late = _late(second)
    finally:
        second.stop()
    print(f"load pattern f_backfill: {records} records, {late:.0f} late")
    assert late == 0
    _check(kafka, market, tmp_path)


@pytest.mark.parametrize("idle_timeout", ["5", "30"])
def test_b_one_topic_after_another(kafka: Settings, tmp_path: Path, idle_timeout: str) -> None:
    market = _market(tmp_path)
    cli(kafka, "topics", "create")
    worker = Worker(kafka, tmp_path, "topics", *FAST, "--idle-timeout", idle_timeout)
    try:
        _wait_serving(worker)
        records = _load_topic_by_topic(kafka, market)
        _settle(worker, records)
        late_by_topic = _late_by_topic(worker)
    finally:
        worker.stop()
    late = sum(late_by_topic.values())
    print(f"load pattern b_topic_by_topic, idle timeout {idle_timeout} s: {late:.0f} late")
    if idle_timeout == "5":  # longer than the gap before the later topics start
        first_topic = [*INPUT_TOPICS][-1]
        assert late > 0
        assert not any(first_topic in k and v for k, v in late_by_topic.items())
    else:
        assert late == 0
        _check(kafka, market, tmp_path)
