"""``make bench``: throughput figures, reported as ratios measured in the same run.

Machines here are shared and noisy, so every figure is printed beside a baseline measured in
the same process on the same data: replay (all processors on) against decode-only (orjson +
pydantic validation of every line) and against parse-only (orjson alone).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from models.topics import INPUT_TOPICS
from streams.adapter import decode_line
from streams.replay import run_replay

BENCH_DIR = Path(".bench")


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _parse_only(lines: list[bytes]) -> None:
    loads = orjson.loads
    for line in lines:
        with contextlib.suppress(orjson.JSONDecodeError):  # the market's malformed lines
            loads(line)


def _decode_only(lines: list[bytes]) -> None:
    for number, line in enumerate(lines, start=1):
        decode_line(line, f"line:{number}")


def bench_replay(days: int, symbols: int, seed: int = 7) -> dict[str, Any]:
    """Replay throughput on a simulated market, with decode-only and parse-only baselines."""
    from streams.simulator import SimulationConfig, simulate

    BENCH_DIR.mkdir(exist_ok=True)
    market = BENCH_DIR / f"market-{days}d-{symbols}s-{seed}.jsonl"
    if not market.exists():
        print(f"simulating {days} days x {symbols} symbols ...", file=sys.stderr, flush=True)
        simulate(SimulationConfig(seed=seed, days=days, symbols=symbols), market)
    lines = [ln for ln in market.read_bytes().splitlines() if ln.strip()]
    parse_s = min(_timed(lambda: _parse_only(lines)) for _ in range(2))
    decode_s = min(_timed(lambda: _decode_only(lines)) for _ in range(2))
    replay_s = min(_timed(lambda: run_replay(market, BENCH_DIR / "replay-out")) for _ in range(2))
    jobs2_s = _timed(lambda: run_replay(market, BENCH_DIR / "replay-jobs2-out", jobs=2))
    n = len(lines)
    return {
        "input_lines": n,
        "topics": sorted(INPUT_TOPICS),
        "parse_only_per_s": round(n / parse_s),
        "decode_only_per_s": round(n / decode_s),
        "replay_per_s": round(n / replay_s),
        "replay_seconds": round(replay_s, 3),
        "replay_jobs2_per_s": round(n / jobs2_s),
        "replay_jobs2_vs_jobs1": round(replay_s / jobs2_s, 3),
        "replay_vs_decode_only": round(decode_s / replay_s, 3),
        "replay_vs_parse_only": round(parse_s / replay_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=24)
    parser.add_argument(
        "--only", default="replay,loop,kafka", help="comma-separated sections: replay, loop, kafka"
    )
    args = parser.parse_args(argv)
    sections = set(args.only.split(","))
    results: dict[str, Any] = {}
    if "replay" in sections:
        results["replay"] = bench_replay(args.days, args.symbols)
    if "loop" in sections:
        from streams.bench_learning import bench_learning

        print("learning-quality benchmark ...", file=sys.stderr, flush=True)
        results["loop"] = bench_learning(days=args.days, symbols=args.symbols)
    if "kafka" in sections:
        from streams.bench_kafka import bench_kafka

        print("kafka benchmark ...", file=sys.stderr, flush=True)
        market = BENCH_DIR / f"market-{args.days}d-{args.symbols}s-7.jsonl"
        if not market.exists():
            bench_replay(args.days, args.symbols)
        results["kafka"] = bench_kafka(market, BENCH_DIR)
    BENCH_DIR.mkdir(exist_ok=True)
    (BENCH_DIR / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    for section, figures in results.items():
        print(f"[{section}]")
        for name, value in figures.items():
            print(f"  {name:<36} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
