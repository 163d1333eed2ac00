"""Learning-quality benchmark of the policy loop on a simulated market with known edges.

``bench_learning(days, symbols, seed)``:

1. simulates the market (``streams.simulator``; cached under ``.bench/``) and reads its
   decisions (deduplicated by event_id, first wins, in event-time order) and ground truth;
2. feeds them to a ``PolicyLoop`` as the pipeline would (``on_tick(bar - 1)`` before each
   new bar), from ``BENCH_V0`` (the simulated trading system's own sizing rule written as a
   PolicyConfig), and records every promotion and rollback;
3. replays all decisions (``policy_replay``, 2 bps costs, equity 100k, as the gate) under:
   the **adaptive** loop (at each bar the policy active then: the last PolicyUpdate at or
   before it), the **static** policy (v0 throughout) and the **oracle** (at each bar: the
   combinations whose true edge, averaged over regimes, is negative are disabled, and the
   trust of the others is their true edge / claimed edge, normalised to mean 1, so that
   weights follow the true edge). Each policy is replayed over the whole tape and its per-bar
   PnL is taken on the bars where it is active (positions carried across a switch are not
   re-simulated: a small approximation at each switch);
4. reports the cumulative PnL of the three, the share of the oracle's uplift captured
   ``(adaptive - static) / (oracle - static)``, and the false-promotion rate: promotions
   whose realised PnL over the next window (bars [T, T + window), at least a day of them)
   was below their champion's on the same bars;
5. times one loop run (stats + propose + gate by replay: ``PolicyLoop.run``) over 30 days x
   100 symbols of 15-minute bars (three strategies of 34 symbols each: ~290k decisions).

``python -m streams.bench_learning [--days D --symbols N --seed S] [--no-timing]`` prints the
figures as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.common import to_ms
from models.inputs import DecisionRecord
from models.outputs import PolicyUpdate
from models.policy import EngineParams, PolicyConfig, combo_key
from models.taxonomy import Promotion
from processors.core.base import DAY_MS, Envelope
from processors.policy.archive import iso
from processors.policy.loop import PolicyLoop, PolicyLoopConfig
from processors.policy.replay import DecisionTape, FloatArray, replay_policy
from streams.adapter import decode_line
from streams.simulator import GroundTruth, SimulationConfig, simulate, truth_path

BENCH_DIR = Path(".bench")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BENCH_V0 = PolicyConfig(
    version="v0",
    created_at=EPOCH,
    # The simulator sizes (p_hat - 0.5) * 0.0025 / vol_hat beyond |p_hat - 0.5| > 0.03, capped
    # at 0.1: with edge = 2 p_hat - 1 that is tau 0.06 and vol_target ~0.00125.
    engine=EngineParams(
        tau=0.06, vol_target=0.00125, max_abs_weight=0.1, epsilon_w=0.02, cooldown_bars=0
    ),
)


def market_file(config: SimulationConfig) -> Path:
    """The replay file of ``config`` under .bench/, simulated once."""
    BENCH_DIR.mkdir(exist_ok=True)
    per = config.symbols_per_strategy
    path = BENCH_DIR / f"learning-{config.days}d-{config.symbols}s-{per}-{config.seed}.jsonl"
    if not path.exists() or not truth_path(path).exists():
        print(f"simulating {path.name} ...", file=sys.stderr, flush=True)
        simulate(config, path)
    return path


def load_decisions(path: Path) -> list[DecisionRecord]:
    """Valid, first-seen decisions of a replay file in (bar_ts, symbol, file) order."""
    seen: dict[str, DecisionRecord] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if b'"bar_decisions"' not in line:
            continue
        decoded = decode_line(line, f"line:{number}")
        if isinstance(decoded, Envelope) and isinstance(decoded.value, DecisionRecord):
            seen.setdefault(decoded.value.event_id, decoded.value)
    return sorted(seen.values(), key=lambda d: (d.bar_ts, d.symbol))


def drive(
    loop: PolicyLoop, records: list[DecisionRecord]
) -> tuple[list[PolicyUpdate], list[float]]:
    """Feed the loop as the pipeline does; the PolicyUpdates and the seconds of each tick
    that ran something."""
    updates: list[PolicyUpdate] = []
    seconds: list[float] = []
    last: int | None = None
    for record in records:
        ts = to_ms(record.bar_ts)
        if last is not None and ts != last and loop.due(ts - 1):
            started = time.perf_counter()
            emitted = loop.on_tick(ts - 1)
            seconds.append(time.perf_counter() - started)
            updates += [o.value for o in emitted.outputs if isinstance(o.value, PolicyUpdate)]
        loop.on_decision(record)
        last = ts
    return updates, seconds


def oracle_policies(truth: GroundTruth, tape: DecisionTape) -> list[tuple[int, PolicyConfig]]:
    """(from_ms, oracle policy) at the start and at every change of the true edges."""
    changes = sorted({to_ms(_time(ts)) for rows in truth.edges.values() for ts, _ in rows})
    out: list[tuple[int, PolicyConfig]] = []
    for at in changes:
        stamp = iso(at)
        ratios: dict[str, float] = {}
        disabled: list[str] = []
        for strategy in tape.strategies:
            for cls in tape.classifications:
                regimes = [r for r in tape.regimes if f"{strategy}|{cls}|{r}" in truth.edges]
                if not regimes:
                    continue
                edge = float(np.mean([truth.edge_at(strategy, cls, r, stamp) for r in regimes]))
                claim = [truth.claimed_edge_at(strategy, cls, r, stamp) for r in regimes]
                if edge < 0.0:
                    disabled.append(combo_key(strategy, cls))
                else:
                    ratios[combo_key(strategy, cls)] = edge / max(float(np.mean(claim)), 1e-9)
        scale = float(np.mean(list(ratios.values()))) if ratios else 1.0
        trust = {k: round(v / scale, 6) for k, v in ratios.items()} if scale > 0 else {}
        policy = BENCH_V0.model_copy(
            update={"version": f"oracle-{len(out)}", "trust": trust, "disabled": disabled}
        )
        out.append((at, PolicyConfig.model_validate(policy.model_dump())))
    return out


def stitched(
    tape: DecisionTape, timeline: list[tuple[int, PolicyConfig]], cache: dict[str, FloatArray]
) -> FloatArray:
    """Per-bar PnL where each bar takes the policy active at it (the last one starting at
    or before it; the first one before its start)."""
    starts = np.array([at for at, _ in timeline], dtype=np.int64)
    active = np.maximum(np.searchsorted(starts, tape.bar_times, side="right") - 1, 0)
    out = np.zeros(tape.bar_times.shape[0], dtype=np.float64)
    for index, (_, policy) in enumerate(timeline):
        if policy.version not in cache:
            cache[policy.version] = replay_policy(tape, policy).bar_pnl
        chosen = active == index
        out[chosen] = cache[policy.version][chosen]
    return out


def bench_learning(
    days: int = 30, symbols: int = 24, seed: int = 7, timing: bool = True
) -> dict[str, Any]:
    """The learning-quality figures (module docstring) as a JSON-ready dict."""
    path = market_file(SimulationConfig(seed=seed, days=days, symbols=symbols))
    truth = GroundTruth.from_json(truth_path(path).read_bytes())
    records = load_decisions(path)
    config = PolicyLoopConfig(initial_policy=BENCH_V0)
    loop = PolicyLoop(config)
    started = time.perf_counter()
    updates, tick_seconds = drive(loop, records)
    loop_seconds = time.perf_counter() - started
    tape = DecisionTape.from_decisions(records)
    cache: dict[str, FloatArray] = {}
    policies = {e.version: e.policy for e in loop.archive.entries()}
    timeline = [(to_ms(EPOCH), BENCH_V0)]
    timeline += [(to_ms(u.promoted_at), u.policy) for u in updates]
    adaptive = stitched(tape, timeline, cache)
    static = stitched(tape, [(to_ms(EPOCH), BENCH_V0)], cache)
    oracle = stitched(tape, oracle_policies(truth, tape), cache)
    totals = {
        name: float(series.sum())
        for name, series in (("adaptive", adaptive), ("static", static), ("oracle", oracle))
    }
    uplift = totals["oracle"] - totals["static"]

    promotions = [u for u in updates if u.action is Promotion.PROMOTED]
    judged, false = 0, 0
    for update in promotions:
        start = to_ms(update.promoted_at)
        bars = (tape.bar_times >= start) & (tape.bar_times < start + config.window_ms)
        if not bars.any() or int(tape.bar_times[bars][-1]) - start < DAY_MS:
            continue  # too little of the next window left to judge
        previous = policies[update.previous_version or "v0"]
        for policy in (update.policy, previous):
            if policy.version not in cache:
                cache[policy.version] = replay_policy(tape, policy).bar_pnl
        judged += 1
        promoted_pnl = float(cache[update.policy.version][bars].sum())
        false += promoted_pnl < float(cache[previous.version][bars].sum())
    figures: dict[str, Any] = {
        "days": days,
        "symbols": symbols,
        "seed": seed,
        "decisions": len(records),
        "cumulative_pnl": totals,
        "uplift_captured": (totals["adaptive"] - totals["static"]) / uplift if uplift else None,
        "promotions": len(promotions),
        "rollbacks": sum(1 for u in updates if u.action is Promotion.ROLLED_BACK),
        "runs": loop.counters["runs"],
        "false_promotions": false,
        "promotions_judged": judged,
        "false_promotion_rate": false / judged if judged else None,
        "active_version": loop.archive.active_version,
        "active_disabled": loop.archive.last_good().disabled,
        "true_bad_combos": truth.bad_combos,
        "concept_drifts": [
            f"{d['strategy_id']}|{d['classification']}@{d['ts']}" for d in truth.concept_drifts
        ],
        "loop_seconds_total": round(loop_seconds, 3),
        "tick_seconds_max": round(max(tick_seconds), 3) if tick_seconds else None,
    }
    if timing:
        figures["loop_run"] = time_one_run(seed)
    return figures


def time_one_run(seed: int = 7, days: int = 30, symbols: int = 100) -> dict[str, Any]:
    """Seconds of ``PolicyLoop.run`` over one window of ``days`` days x ``symbols`` symbols
    (three strategies on 34 symbols each), best and median of 5."""
    config = SimulationConfig(seed=seed, days=days, symbols=symbols, symbols_per_strategy=34)
    records = load_decisions(market_file(config))
    loop = PolicyLoop(PolicyLoopConfig(initial_policy=BENCH_V0, window_ms=days * DAY_MS))
    for record in records:
        loop.window.add(record)
    end = (loop.window.latest_ms or 0) + 1
    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        loop.run(end, "bench")
        seconds.append(time.perf_counter() - started)
    return {
        "decisions": len(records),
        "best_seconds": round(min(seconds), 3),
        "median_seconds": round(statistics.median(seconds), 3),
        "target_seconds": 2.0,
    }


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench_learning")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-timing", action="store_true", help="skip the 290k-decision run")
    args = parser.parse_args(argv)
    figures = bench_learning(args.days, args.symbols, args.seed, timing=not args.no_timing)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
