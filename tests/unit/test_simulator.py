"""The synthetic market generator: determinism, contract validity, and exact ground truth.

Every injected case is checked against the replay file itself, recomputed independently where
the contract defines the rule (stand-down coverage by event time, replan materiality, round
trips by position).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.codec import DecodeError, decode_obj
from models.common import to_ms
from models.inputs import DecisionRecord, ExecutionEvent, Outcome, PlanEvent, StandDownEvent
from models.topics import INPUT_TOPICS
from streams.simulator import MALFORMED_KINDS, GroundTruth, SimulationConfig, simulate, truth_path

SMALL = SimulationConfig(seed=11, days=2, symbols=6)


@dataclass
class Replay:
    """A generated file, parsed: good records by line, and the truth."""

    raw_lines: list[bytes]
    good: dict[int, tuple[str, str | None, int | None, Any]]
    truth: GroundTruth

    def first(self, topic: str) -> list[tuple[int, Any]]:
        """(line, model) of the first occurrence of every event_id of a topic, in file order."""
        seen: set[str] = set()
        out: list[tuple[int, Any]] = []
        for line, (t, _, _, model) in sorted(self.good.items()):
            if t == topic and model.event_id not in seen:
                seen.add(model.event_id)
                out.append((line, model))
        return out


def _load(path: Path) -> Replay:
    truth = GroundTruth.from_json(truth_path(path).read_bytes())
    raw_lines = path.read_bytes().splitlines()
    malformed = {m["line"] for m in truth.malformed}
    good: dict[int, tuple[str, str | None, int | None, Any]] = {}
    for number, raw in enumerate(raw_lines, start=1):
        if number in malformed:
            continue
        record = orjson.loads(raw)
        topic = record["topic"]
        model = decode_obj(INPUT_TOPICS[topic].model, record["value"])
        assert not isinstance(model, DecodeError), (number, model)
        good[number] = (topic, record["key"], record["timestamp_ms"], model)
    return Replay(raw_lines, good, truth)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth, Replay]:
    path = tmp_path_factory.mktemp("sim") / "small.jsonl"
    truth = simulate(SMALL, path)
    return path, truth, _load(path)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(
    small: tuple[Path, GroundTruth, Replay], tmp_path: Path
) -> None:
    path, truth, _ = small
    again = tmp_path / "again.jsonl"
    assert simulate(SMALL, again) == truth
    assert again.read_bytes() == path.read_bytes()
    assert truth_path(again).read_bytes() == truth_path(path).read_bytes()
    other = tmp_path / "other.jsonl"
    simulate(SimulationConfig(seed=12, days=2, symbols=6), other)
    assert other.read_bytes() != path.read_bytes()


def test_truth_round_trips_and_counts_match(small: tuple[Path, GroundTruth, Replay]) -> None:
    _, truth, replay = small
    assert GroundTruth.from_json(truth.to_json()) == truth
    assert truth.lines == len(replay.raw_lines)
    counts = {topic: len(replay.first(topic)) for topic in INPUT_TOPICS}
    assert counts == truth.counts
    assert counts["bar_decisions"] == SMALL.symbols * len(SMALL.strategies) * SMALL.n_bars


def test_good_lines_have_contract_keys_and_event_time_timestamps(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, _, replay = small
    for topic, key, timestamp_ms, model in replay.good.values():
        assert key == INPUT_TOPICS[topic].key_of(model.model_dump(mode="json"))
        assert timestamp_ms == to_ms(model.event_time)


def test_every_malformed_line_fails_and_every_kind_occurs(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, truth, replay = small
    assert {m["kind"] for m in truth.malformed} == set(MALFORMED_KINDS)
    for entry in truth.malformed:
        assert _fails(replay.raw_lines[entry["line"] - 1]), entry


def _fails(raw: bytes) -> bool:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(record, dict) or "topic" not in record or "value" not in record:
        return True
    if record["topic"] not in INPUT_TOPICS:
        return True
    return isinstance(decode_obj(INPUT_TOPICS[record["topic"]].model, record["value"]), DecodeError)


def test_duplicates_are_exactly_the_repeated_event_ids(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, truth, replay = small
    first_line: dict[tuple[str, str], int] = {}
    repeats: dict[int, tuple[str, str]] = {}
    for line, (topic, _, _, model) in sorted(replay.good.items()):
        key = (topic, model.event_id)
        if key in first_line:
            repeats[line] = key
        else:
            first_line[key] = line
    assert {d["line"] for d in truth.duplicates} == set(repeats)
    for dup in truth.duplicates:
        assert repeats[dup["line"]] == (dup["topic"], dup["event_id"])
        assert first_line[(dup["topic"], dup["event_id"])] == dup["first_line"]
        same = replay.raw_lines[dup["line"] - 1] == replay.raw_lines[dup["first_line"] - 1]
        assert same == (dup["kind"] != "conflicting")
    kinds = {d["kind"] for d in truth.duplicates}
    assert kinds == {"exact_now", "exact_later", "conflicting"}
    assert any(d["line"] == d["first_line"] + 1 for d in truth.duplicates)


def test_stand_down_coverage_by_event_time_matches_decisions(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, truth, replay = small
    stand_downs = _stand_down_intervals([m for _, m in replay.first("stand_down")])
    violations = set(truth.stand_down_violations)
    data_quality = set(truth.stand_down_data_quality)
    assert violations and data_quality
    covered = 0
    for _, decision in replay.first("bar_decisions"):
        active = _until_if_covered(stand_downs, decision)
        if active is None:
            assert decision.stand_down is None
            assert "stand_down_active" not in decision.reasons
            continue
        covered += 1
        if decision.event_id in violations:
            assert decision.stand_down is not None and decision.target_weight_final != 0.0
        elif decision.event_id in data_quality:
            assert decision.stand_down is None and decision.target_weight_final == 0.0
        else:
            assert decision.stand_down is not None
            assert decision.stand_down.until_ts == active
            assert decision.target_weight_final == 0.0
            assert "stand_down_block" in decision.block_events
    assert covered > len(violations) + len(data_quality)


@dataclass
class _Interval:
    strategy_id: str | None
    symbol: str | None
    start: datetime
    end: datetime
    untils: list[tuple[datetime, datetime]]  # (known from, until_ts)


def _stand_down_intervals(events: list[StandDownEvent]) -> list[_Interval]:
    """The contract's rule, by event time: a start opens an interval of its scope until
    until_ts; an extend moves until_ts; a clear at c ends it at c."""
    open_by_scope: dict[tuple[str | None, str | None], _Interval] = {}
    intervals: list[_Interval] = []
    for event in sorted(events, key=lambda e: e.ts):
        scope = (event.scope.strategy_id, event.scope.symbol)
        if event.action.value == "start":
            assert event.until_ts is not None
            interval = _Interval(*scope, event.ts, event.until_ts, [(event.ts, event.until_ts)])
            open_by_scope[scope] = interval
            intervals.append(interval)
            continue
        interval = open_by_scope[scope]
        if event.action.value == "extend":
            assert event.until_ts is not None
            interval.untils.append((event.ts, event.until_ts))
            interval.end = event.until_ts
        else:
            interval.end = min(interval.end, event.ts)
    return intervals


def _until_if_covered(intervals: list[_Interval], decision: DecisionRecord) -> datetime | None:
    """The until_ts known at the decision's bar if a stand-down covers it, else None."""
    for iv in intervals:
        if iv.strategy_id not in (None, decision.strategy_id):
            continue
        if iv.symbol not in (None, decision.symbol):
            continue
        if iv.start <= decision.bar_ts < iv.end:
            return max((known, until) for known, until in iv.untils if known <= decision.bar_ts)[1]
    return None


def test_a_stand_down_start_arrives_after_later_decisions(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, truth, replay = small
    lines = {m.event_id: line for line, m in replay.first("stand_down")}
    decisions = replay.first("bar_decisions")
    assert truth.stand_down_late_events
    for event_id in truth.stand_down_late_events:
        line = lines[event_id]
        event = replay.good[line][3]
        later = [d for n, d in decisions if n < line and d.bar_ts > event.ts]
        assert later
        assert max(d.bar_ts for d in later) - event.ts <= timedelta(minutes=10)


def test_emergency_exits_executed_vetoed_and_violating(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, truth, replay = small
    decisions = {m.event_id: m for _, m in replay.first("bar_decisions")}
    for event_id in truth.emergency_exits["executed"]:
        d = decisions[event_id]
        assert d.exit_intent is not None and d.exit_intent.emergency
        assert d.target_weight_final == 0.0 and d.cooldown_recommendation_bars is not None
        assert "emergency_exit_executed" in d.block_events
    for event_id in truth.emergency_exits["vetoed"]:
        d = decisions[event_id]
        assert "emergency_exit_veto_same_bar" in d.block_events
        assert d.cooldown_recommendation_bars is not None
    kinds = {v["kind"] for v in truth.emergency_violations}
    assert kinds == {"missing_cooldown", "weight_without_veto"}
    for violation in truth.emergency_violations:
        d = decisions[violation["event_id"]]
        assert d.exit_intent is not None
        if violation["kind"] == "missing_cooldown":
            assert d.cooldown_recommendation_bars is None
        else:
            assert d.target_weight_final != 0.0 and not d.block_events
    flagged = {d.event_id for d in decisions.values() if d.exit_intent is not None}
    listed = set(truth.emergency_exits["executed"]) | set(truth.emergency_exits["vetoed"])
    assert flagged == listed | {v["event_id"] for v in truth.emergency_violations}


def test_fills_cover_partials_cancels_shorts_crossings_and_closed_trips(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, truth, replay = small
    decisions = {m.event_id: m for _, m in replay.first("bar_decisions")}
    position: dict[tuple[str, str], float] = defaultdict(float)
    fills_per_order: dict[str, int] = defaultdict(int)
    crossings = cancels = closes = shorts = 0
    for _, fill in replay.first("fills"):
        assert isinstance(fill, ExecutionEvent)
        decision = decisions[fill.decision_id or ""]
        assert fill.ts > decision.bar_ts and fill.regime == decision.regime
        if fill.kind.value == "cancel":
            cancels += 1
            continue
        fills_per_order[fill.order_id] += 1
        key = (fill.strategy_id, fill.symbol)
        before = position[key]
        after = before + fill.signed_qty
        position[key] = after
        reduces = before != 0.0 and (before > 0) != (fill.signed_qty > 0)
        assert (fill.exit_reason is not None) == reduces
        crossings += int(before * after < 0)
        closes += int(before != 0.0 and after == 0.0)
        shorts += int(after < 0 <= before)
    assert crossings and cancels and closes and shorts
    assert any(n >= 2 for n in fills_per_order.values())
    assert truth.execution["crossing_zero_fills"] == crossings


def test_decisions_are_consistent_with_the_sizing_rule(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, _, replay = small
    for _, d in replay.first("bar_decisions"):
        assert isinstance(d, DecisionRecord)
        assert d.horizon_bars == 4 and d.policy_version == "v0" and d.mode.value == "live"
        if "no_signal" in d.reasons:
            assert d.target_weight_raw == 0.0
        if {"rebalance_band_block", "min_hold_block"} & {b.value for b in d.block_events}:
            assert d.target_weight_final == d.current_weight
        # A held position may have drifted past the cap by less than the rebalance band.
        assert abs(d.target_weight_final) < SMALL.max_abs_weight + SMALL.rebalance_band
    weights = [d.current_weight for _, d in replay.first("bar_decisions")]
    assert min(weights) < 0.0 < max(weights)


def test_plan_verdicts_follow_materiality_and_churn_is_injected(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, truth, replay = small
    expected = {p["event_id"]: p["verdict"] for p in truth.plans}
    accepted: dict[str, Any] = {}
    plans = sorted((m.ts, m.event_id, m) for _, m in replay.first("plans"))
    for _, event_id, plan in plans:
        assert isinstance(plan, PlanEvent)
        material = _material(plan)
        verdict = "accepted" if accepted.get(plan.strategy_id) != material else "suppressed"
        if verdict == "accepted":
            accepted[plan.strategy_id] = material
        assert expected[event_id] == verdict, event_id
    changes = {p["change"] for p in truth.plans if p["verdict"] == "suppressed"}
    assert changes == {"none"}
    assert {p["verdict"] for p in truth.plans} == {"accepted", "suppressed"}
    burst = truth.replan_churn[0]
    assert burst["material_count"] == SMALL.churn_burst_size
    assert all(expected[e] == "accepted" for e in burst["event_ids"])
    raw_plans = [r for r in replay.raw_lines if r.startswith(b'{"topic":"plans"')]
    assert any(re.search(rb'"lookback_bars":\d+\.0', r) for r in raw_plans)
    assert any(re.search(rb'"lookback_bars":\d+[,}]', r) for r in raw_plans)
    key_orders = {tuple(orjson.loads(r)["value"]) for r in raw_plans}
    assert len(key_orders) > 1


def _material(plan: PlanEvent) -> Any:
    triggers = sorted(
        (
            t.trigger_id,
            sorted((k, float(v) if isinstance(v, int | float) else v) for k, v in t.params.items()),
        )
        for t in plan.triggers
    )
    return triggers, sorted(plan.risk_limits.items()), plan.policy_version


def test_outcomes_arrive_late_and_match_decisions(
    small: tuple[Path, GroundTruth, Replay],
) -> None:
    _, _, replay = small
    decisions = {m.event_id: (line, m) for line, m in replay.first("bar_decisions")}
    outcomes = replay.first("outcomes")
    assert 0.5 < len(outcomes) / len(decisions) < 0.7
    for line, outcome in outcomes:
        assert isinstance(outcome, Outcome)
        decision_line, decision = decisions[outcome.decision_id]
        assert decision_line < line and outcome.bar_ts == decision.bar_ts
        assert outcome.label == int(outcome.realized_return > 0)
        assert outcome.label_ts > outcome.bar_ts + timedelta(minutes=15 * 4)
    last_bar = max(d.bar_ts for _, d in decisions.values())
    after_later_decision: set[str] = set()
    latest: datetime | None = None
    for line in sorted(replay.good):
        topic, _, _, model = replay.good[line]
        if topic == "bar_decisions":
            latest = model.bar_ts if latest is None else max(latest, model.bar_ts)
        elif topic == "outcomes" and latest is not None and latest > model.bar_ts:
            after_later_decision.add(model.event_id)
    expected = {o.event_id for _, o in outcomes if o.bar_ts < last_bar}
    assert after_later_decision == expected


def test_symbols_per_strategy_gives_about_one_strategy_per_symbol(tmp_path: Path) -> None:
    config = SimulationConfig(days=1, symbols=100, symbols_per_strategy=34, churn_burst_size=0)
    truth = simulate(config, tmp_path / "wide.jsonl")
    traded = [s for symbols in truth.strategy_symbols.values() for s in symbols]
    assert len(traded) == 102 and set(traded) == set(truth.symbols)
    assert truth.counts["bar_decisions"] == 102 * config.n_bars


def test_edges_are_real_good_combos_win_more_than_bad(tmp_path: Path) -> None:
    config = SimulationConfig(seed=3, days=10, symbols=10, strategies=("momo",))
    path = tmp_path / "edges.jsonl"
    truth = simulate(config, path)
    malformed = {m["line"] for m in truth.malformed}
    decisions: dict[str, dict[str, Any]] = {}
    wins: dict[str, list[int]] = {"good": [], "bad": []}
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if number in malformed:
            continue
        record = orjson.loads(raw)
        topic, value = record["topic"], record["value"]
        if topic == "bar_decisions":
            decisions.setdefault(value["event_id"], value)
        elif topic == "outcomes":
            d = decisions[value["decision_id"]]
            edge = truth.edge_at(d["strategy_id"], d["classification"], d["regime"], d["bar_ts"])
            group = "good" if edge >= 0.1 else "bad" if edge <= -0.1 else None
            if group is not None and d["p_hat"] != 0.5:
                agrees = (value["label"] == 1) == (d["p_hat"] > 0.5)
                wins[group].append(int(agrees))
    good = sum(wins["good"]) / len(wins["good"])
    bad = sum(wins["bad"]) / len(wins["bad"])
    assert len(wins["good"]) > 300 and len(wins["bad"]) > 300
    assert good > 0.58 and bad < 0.42
