"""Running real ``policyloop worker`` processes against the test broker, and comparing what
they publish with what ``policyloop replay`` writes for the same file."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from streams.metrics import scrape
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
POLICYLOOP = [sys.executable, "-m", "streams.cli"]
OUTPUT_FILES = (
    "alerts",
    "replan_verdicts",
    "policy_candidates",
    "policy_updates",
    "feedback_summaries",
    "performance",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "POLICYLOOP_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "POLICYLOOP_TOPIC_PREFIX": settings.topic_prefix,
            "POLICYLOOP_CONSUMER_GROUP": f"{settings.topic_prefix}group",
            "POLICYLOOP_MAX_RECORD_BYTES": str(settings.max_record_bytes),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def cli(settings: Settings, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [*POLICYLOOP, *args],
        env=env_for(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"policyloop {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout + done.stderr


def produce(settings: Settings, path: Path, *flags: str) -> int:
    """``policyloop produce PATH --create-topics --wall-clock`` (a broker with time-based
    retention would delete records stamped with a market's months-old event times seconds
    after the load; outputs do not depend on record timestamps); the records produced."""
    text = cli(settings, "produce", str(path), "--create-topics", "--wall-clock", *flags)
    match = re.search(r"produced (\d+) records", text)
    assert match, text
    return int(match.group(1))


class Worker:
    """One ``policyloop worker`` process with its own metrics port."""

    def __init__(
        self, settings: Settings, log_dir: Path, name: str, *flags: str, **env: str
    ) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"worker-{name}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [*POLICYLOOP, "worker", "--loglevel", "info", *flags],
            env=env_for(settings, POLICYLOOP_METRICS_PORT=str(self.port), **env),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def metrics(self) -> dict[str, float]:
        """Samples by full name with labels, e.g. 'policyloop_pipeline_settled'."""
        return scrape(self.port)

    def processed(self) -> float:
        return sum(v for k, v in self.metrics().items() if k.startswith("policyloop_events_total{"))

    def settled(self) -> bool:
        return self.metrics().get("policyloop_pipeline_settled") == 1.0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.log.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def describe(self) -> str:
        """Exit status and the progress metrics, for a failure message."""
        code = self.process.poll()
        state = "running" if code is None else f"exited with {code}"
        shown = ("events_total", "sequenc", "pipeline_", "recoveries", "idle_flushes")
        samples = {k: v for k, v in self.metrics().items() if any(s in k for s in shown)}
        return f"{self.log_path.stem}: {state}; metrics {samples or 'unavailable'}"


def wait_until(check: Callable[[], bool], timeout: float, what: str, workers: list[Worker]) -> None:
    """Poll ``check`` until it holds; on timeout fail with each worker's state and log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    report = "\n".join(
        f"--- {w.describe()}\n{w.log_path.read_text()[-4000:] if w.log_path.exists() else ''}"
        for w in workers
    )
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{report}")


def read_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line] if path.exists() else []


def key_of(topic: str, record: dict[str, object]) -> str:
    """The Kafka key each output is published under (models/topics.py)."""
    if topic == "alerts":
        return str(record["dedup_key"])
    if topic == "replan_verdicts":
        return str(record["strategy_id"])
    if topic == "policy_candidates":
        return str(record["candidate_id"])
    if topic == "policy_updates":
        return "default"
    if topic == "feedback_summaries":
        return str(record["run_id"])
    return f"{record['strategy_id']}|{record['group']}|{record['window']}"


def doubled_and_missing(replay_dir: Path, dump_dir: Path) -> dict[str, tuple[int, int]]:
    """Per output topic: (records the dump holds more often than replay, records it lacks),
    comparing the canonical records themselves."""
    counts: dict[str, tuple[int, int]] = {}
    for topic in OUTPUT_FILES:
        expected = Counter(read_lines(replay_dir / f"{topic}.jsonl"))
        got = Counter(read_lines(dump_dir / f"{topic}.jsonl"))
        counts[topic] = (sum((got - expected).values()), sum((expected - got).values()))
    return counts


def assert_same_outputs(replay_dir: Path, dump_dir: Path) -> None:
    """The same multiset per output topic and the same order per key; dead letters the same
    but for where they came from (a file line versus topic:partition:offset)."""
    for topic in OUTPUT_FILES:
        expected = read_lines(replay_dir / f"{topic}.jsonl")
        got = read_lines(dump_dir / f"{topic}.jsonl")
        assert sorted(got) == sorted(expected), (
            f"{topic}: {len(got)} vs {len(expected)}; (doubled, missing) per topic: "
            f"{doubled_and_missing(replay_dir, dump_dir)}"
        )
        per_key_expected: dict[str, list[bytes]] = {}
        per_key_got: dict[str, list[bytes]] = {}
        for lines, into in ((expected, per_key_expected), (got, per_key_got)):
            for line in lines:
                into.setdefault(key_of(topic, orjson.loads(line)), []).append(line)
        assert per_key_got == per_key_expected, f"{topic}: order per key differs"
    assert dead_letters(dump_dir) == dead_letters(replay_dir)
    assert orjson.loads((dump_dir / "performance.json").read_bytes()) == orjson.loads(
        (replay_dir / "performance.json").read_bytes()
    )


def dead_letters(directory: Path) -> list[bytes]:
    return sorted(
        orjson.dumps(
            {k: v for k, v in orjson.loads(line).items() if k != "source_offset"},
            option=orjson.OPT_SORT_KEYS,
        )
        for line in read_lines(directory / "dead_letters.jsonl")
    )
