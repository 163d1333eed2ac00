"""simulate(): build the market, run the trading loop, write the replay file and its truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.simulator.config import CLASSIFICATIONS, REGIMES, SimulationConfig, fmt_ms
from streams.simulator.edges import EdgeModel, build_edges, truth_tables
from streams.simulator.market import Market, build_market
from streams.simulator.plans import build_plans, plan_truth
from streams.simulator.signals import assign_pairs, build_signals, covariate_drift_of, drift_truth
from streams.simulator.standdowns import build_episodes, coverage, episode_events, episode_truth
from streams.simulator.trading import TradingLoop
from streams.simulator.truth import GroundTruth
from streams.simulator.writer import ReplayWriter


def truth_path(out_path: Path) -> Path:
    """Where the ground truth of a replay file goes: ``<out>.truth.json`` (suffix replaced)."""
    return out_path.with_suffix(".truth.json")


def simulate(config: SimulationConfig, out_path: Path) -> GroundTruth:
    """Write the replay file of ``config`` to ``out_path`` (JSON Lines, one Kafka record a
    line, in arrival order) and its ground truth to ``truth_path(out_path)``; return the truth.

    Deterministic: the same config gives byte-identical files (seeded numpy generators only).
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    market = build_market(config)
    pairs = assign_pairs(config)
    present: list[set[int]] = [set() for _ in config.strategies]
    for pair in pairs:
        present[pair.strategy].add(int(market.class_index[pair.symbol]))
    edges = build_edges(config, present)
    signals = build_signals(config, market, edges, pairs)
    episodes = build_episodes(config, pairs)
    plans = build_plans(config)
    loop = TradingLoop(config, market, pairs, signals, episodes, coverage(episodes, pairs, config))
    expected_good = len(pairs) * config.n_bars
    with ReplayWriter(
        out_path, config.seed, expected_good, config.malformed_per_kind, config.duplicate_rate
    ) as writer:
        for episode in episodes:
            for arrival, event_ms, key, value in episode_events(episode, config, market.symbols):
                writer.push(arrival, "stand_down", key, event_ms, value)
        for plan in plans:
            key = plan.value["strategy_id"]
            writer.push(plan.ts_ms, "plans", key, plan.ts_ms, plan.value, sort_keys=False)
        loop.run(writer)
    start_ms, bar_ms = config.start_ms, config.bar_s * 1000
    bar_ts = [fmt_ms(start_ms + t * bar_ms) for t in range(config.n_bars)]
    faults = writer.truth()
    truth = GroundTruth(
        config=config.to_json(),
        symbols=dict(zip(market.symbols, market.classifications, strict=True)),
        strategy_symbols={
            sid: [market.symbols[p.symbol] for p in pairs if p.strategy == s]
            for s, sid in enumerate(config.strategies)
        },
        regime_segments=_segments(market, config),
        **truth_tables(edges, config, bar_ts),
        good_combos=_combos(edges.good, config),
        bad_combos=_combos(edges.bad, config),
        concept_drifts=_changes(edges, "concept", config, bar_ts),
        calibration_drifts=_changes(edges, "calibration", config, bar_ts),
        covariate_drifts=drift_truth(covariate_drift_of(config), config, bar_ts),
        **plan_truth(plans, config),
        stand_downs=[episode_truth(ep, config, market.symbols) for ep in episodes],
        stand_down_violations=loop.sd_violations,
        stand_down_data_quality=loop.sd_data_quality,
        stand_down_late_events=[f"sd-{ep.index:03d}-start" for ep in episodes if ep.late],
        emergency_exits=loop.emergency,
        emergency_violations=loop.emergency_violations,
        execution=loop.stats,
        crossing_zero_examples=loop.crossing_examples[:20],
        malformed=faults["malformed"],
        duplicates=faults["duplicates"],
        counts=faults["counts"],
        lines=faults["lines"],
    )
    truth_path(out_path).write_bytes(truth.to_json())
    return truth


def _segments(market: Market, config: SimulationConfig) -> dict[str, list[list[Any]]]:
    bar_ms = config.bar_s * 1000
    return {
        symbol: [
            [fmt_ms(config.start_ms + start * bar_ms), REGIMES[regime]]
            for start, regime in market.segments[i]
            if start < config.n_bars
        ]
        for i, symbol in enumerate(market.symbols)
    }


def _combos(indices: tuple[int, ...], config: SimulationConfig) -> list[str]:
    return [
        f"{sid}|{CLASSIFICATIONS[c]}"
        for sid, c in zip(config.strategies, indices, strict=True)
        if c >= 0
    ]


def _changes(
    edges: EdgeModel, kind: str, config: SimulationConfig, bar_ts: list[str]
) -> list[dict[str, Any]]:
    return [
        {
            "strategy_id": config.strategies[ch.strategy],
            "classification": CLASSIFICATIONS[ch.classification],
            "ts": bar_ts[ch.bar],
            "bar_index": ch.bar,
            "edge_before": dict(zip(REGIMES, ch.edge_before, strict=True)),
            "edge_after": dict(zip(REGIMES, ch.edge_after, strict=True)),
            "claimed_before": dict(zip(REGIMES, ch.claimed_before, strict=True)),
            "claimed_after": dict(zip(REGIMES, ch.claimed_after, strict=True)),
        }
        for ch in edges.changes
        if ch.kind == kind
    ]
