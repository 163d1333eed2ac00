"""``make demo``: simulate a market, replay it, and print what a person wants to see."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from streams.demo_report import (
    audits_vs_truth,
    drift_vs_truth,
    performance_table,
    policy_loop_section,
    read_jsonl,
    replans_vs_truth,
)
from streams.replay import run_replay


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(out: Path, seed: int = 7, days: int = 30) -> int:
    """Simulate ``days`` of market with ``seed`` into ``out``, replay it, print a summary."""
    from streams.simulator import SimulationConfig, simulate

    out.mkdir(parents=True, exist_ok=True)
    market = out / "market.jsonl"
    results = out / "replay"
    _say(f"[1/2] simulating {days} days of a synthetic market (seed {seed}) -> {market}")
    started = time.perf_counter()
    simulate(SimulationConfig(seed=seed, days=days), market)
    _say(f"      done in {time.perf_counter() - started:.1f}s")

    _say(f"[2/2] replaying it through the pipeline -> {results}/")
    started = time.perf_counter()

    def progress(lines: int) -> None:
        if lines % 100_000 < 2048:
            print(f"      ... {lines:,} lines", file=sys.stderr, flush=True)

    result = run_replay(market, results, progress=progress)
    elapsed = time.perf_counter() - started
    summary = result.summary
    totals = summary["input_totals"]
    _say(
        f"      {totals['records']:,} records in {elapsed:.1f}s "
        f"({totals['records'] / max(elapsed, 1e-9):,.0f} records/s)"
    )
    _say()
    _say("Inputs            records  processed  duplicate  dead_letter  late")
    for topic, row in sorted(summary["inputs"].items()):
        _say(
            f"  {topic:<15} {row['records']:>7}  {row['processed']:>9}  {row['duplicate']:>9}"
            f"  {row['dead_letter']:>11}  {row['late']:>4}"
        )
    _say()
    _say("Outputs")
    for topic, count in summary["outputs"].items():
        _say(f"  {topic:<20} {count:>7}")
    alerts = read_jsonl(results / "alerts.jsonl")
    _say()
    _say(
        f"Alerts by kind and severity ({len(alerts)} alerts, "
        f"{sum(a['count'] for a in alerts)} occurrences)"
    )
    by_kind = Counter((a["kind"], a["severity"]) for a in alerts)
    for (kind, severity), count in sorted(by_kind.items()):
        _say(f"  {kind:<26} {severity:<9} {count:>5}")
    verdicts = read_jsonl(results / "replan_verdicts.jsonl")
    suppressed = Counter(v["strategy_id"] for v in verdicts if v["verdict"] == "suppressed")
    accepted = Counter(v["strategy_id"] for v in verdicts if v["verdict"] == "accepted")
    _say()
    _say("Replans (no-change guard)   accepted  suppressed")
    for strategy in sorted(set(suppressed) | set(accepted)):
        _say(f"  {strategy:<25} {accepted[strategy]:>8}  {suppressed[strategy]:>10}")
    truth = orjson.loads(market.with_suffix(".truth.json").read_bytes())
    _say()
    audits_vs_truth(alerts, truth, _say)
    replans_vs_truth(verdicts, truth, _say)
    _say()
    drift_vs_truth(alerts, truth, _say)
    _say()
    performance_table(orjson.loads((results / "performance.json").read_bytes()), _say)
    _say()
    policy_loop_section(
        read_jsonl(results / "policy_candidates.jsonl"),
        read_jsonl(results / "policy_updates.jsonl"),
        _say,
    )
    letters = read_jsonl(results / "dead_letters.jsonl")
    _say()
    _say(f"Dead letters ({len(letters)}) by error type")
    for kind, count in sorted(Counter(d["error"]["type"] for d in letters).items()):
        _say(f"  {kind:<26} {count:>5}")
    _say()
    _say(
        f"Outputs are in {results}/: alerts.jsonl, replan_verdicts.jsonl, performance.json, "
        "policy_candidates.jsonl, policy_updates.jsonl, feedback_summaries.jsonl, feedback/*.md, "
        "policy_archive.json, metrics.prom, summary.json"
    )
    _say(
        f"Policy history: .venv/bin/policyloop policy --archive {results}/policy_archive.json "
        "history"
    )
    return 0
