"""The decision tape and the policy replay: engine agreement, exact metrics, determinism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from models.policy import EngineParams, PolicyConfig
from models.taxonomy import Mode
from models.taxonomy import ReasonCode as R
from processors.policy.engine import EngineInputs, decide, decision_record
from processors.policy.replay import DecisionTape, TapeRow, replay_policy

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
T0_MS = 1_709_542_800_000
BAR_MS = 15 * 60 * 1000
FREE = {"tau": 0.0, "epsilon_w": 0.0, "min_trade_notional": 0.0, "cooldown_bars": 0}


def policy(**fields: Any) -> PolicyConfig:
    engine = EngineParams(**(FREE | fields.pop("engine", {})))
    return PolicyConfig(version=fields.pop("version", "v1"), created_at=T0, engine=engine, **fields)


def row(symbol: str, cls: str, bar: int, price: float, p_hat: float, **kw: Any) -> TapeRow:
    return TapeRow("momo", symbol, cls, "trend", T0_MS + bar * BAR_MS, price, p_hat, 0.0, **kw)


# Symbol A (etf): weights 0.5, 0.5, -0.5, 0; B (small_cap): 0, 0.75, 0.75, 0.75.
HAND_TAPE = [
    row("A", "etf", 0, 100.0, 0.75),
    row("A", "etf", 1, 110.0, 0.75),
    row("A", "etf", 2, 99.0, 0.25),
    row("A", "etf", 3, 99.0, 0.5),
    row("B", "small_cap", 0, 50.0, 0.5),
    row("B", "small_cap", 1, 50.0, 0.875),
    row("B", "small_cap", 2, 55.0, 0.875),
    row("B", "small_cap", 3, 44.0, 0.875),
]


def test_tape_sorts_indexes_and_computes_forward_returns() -> None:
    shuffled = [HAND_TAPE[i] for i in (7, 2, 4, 0, 5, 3, 1, 6)]
    duplicate = row("A", "etf", 1, 500.0, 0.75)
    tape = DecisionTape.from_decisions([duplicate, *shuffled])  # the later A@1 wins
    assert len(tape) == 8
    assert tape.symbols == ("A", "B") and tape.classifications == ("etf", "small_cap")
    assert tape.symbol.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert tape.price.tolist() == [100.0, 110.0, 99.0, 99.0, 50.0, 50.0, 55.0, 44.0]
    expected = [110 / 100 - 1, 99 / 110 - 1, 0.0, 0.0, 0.0, 55 / 50 - 1, 44 / 55 - 1, 0.0]
    assert tape.forward_return.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert tape.group_start.tolist() == [True, False, False, False, True, False, False, False]
    assert tape.bar_times.tolist() == [T0_MS + i * BAR_MS for i in range(4)]
    assert tape.bar_index.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]


def test_tape_sanitises_values() -> None:
    tape = DecisionTape.from_decisions(
        [
            TapeRow("s", "X", "etf", "r", 0, 10.0, float("nan"), -1.0),
            TapeRow("s", "X", "etf", "r", 1, float("inf"), 1.5, float("inf")),
            TapeRow("s", "X", "etf", "r", 2, 12.0, 0.6, 0.01),
        ]
    )
    assert tape.p_hat.tolist() == [0.5, 1.0, 0.6]
    assert tape.vol_hat.tolist() == [0.0, 0.0, 0.01]
    assert tape.forward_return.tolist() == [0.0, 0.0, 0.0]


def test_hand_built_tape_exact_figures() -> None:
    tape = DecisionTape.from_decisions(HAND_TAPE)
    result = replay_policy(tape, policy(), equity=1_000.0, cost_bps=10.0)  # cost = |dw| each
    assert result.target_weight_final.tolist() == [0.5, 0.5, -0.5, 0.0, 0.0, 0.75, 0.75, 0.75]
    # A rows: 49.5, -50, -1, -0.5; B rows: 0, 74.25, -150, 0
    assert result.bar_pnl.tolist() == pytest.approx([49.5, 24.25, -151.0, -0.5], rel=1e-12)
    assert result.pnl_total == pytest.approx(-77.75, rel=1e-12)
    assert result.costs == pytest.approx(2.75) and result.turnover == pytest.approx(2.75)
    series = np.array([49.5, 24.25, -151.0, -0.5])
    assert result.sharpe == pytest.approx(series.mean() / series.std(ddof=1), rel=1e-9)
    assert result.sharpe == pytest.approx(-0.2158465842, rel=1e-9)
    assert result.max_drawdown == pytest.approx(151.5, rel=1e-12)  # peak 73.75 to -77.75
    assert result.trade_count == 4  # A: entry, flip, exit; B: entry
    assert result.round_trips == 2  # A: 0 -> 2 (flip), 2 -> 3; B still open
    assert result.avg_hold_bars == 1.5
    assert result.avg_hold_seconds == 1350.0
    etf, small = result.by_combo["momo|etf"], result.by_combo["momo|small_cap"]
    assert (etf.trade_count, etf.round_trips, etf.decisions) == (3, 2, 4)
    assert (small.trade_count, small.round_trips, small.decisions) == (1, 0, 4)
    assert etf.pnl == pytest.approx(-2.0) and small.pnl == pytest.approx(-75.75)
    summary = result.summary()
    assert summary["trade_count"] == 4 and summary["bars"] == 4
    assert summary["policy_version"] == "v1"


def random_rows(seed: int, keys: int = 6, bars: int = 60) -> list[TapeRow]:
    rng = np.random.default_rng(seed)
    rows: list[TapeRow] = []
    classes = ("etf", "penny_stock", "small_cap")
    for k in range(keys):
        prices = 20.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars)))
        for bar in range(bars):
            if rng.random() < 0.1:
                continue  # gaps: the next decision is more than one bar later
            rows.append(
                TapeRow(
                    f"s{k % 2}",
                    f"Y{k}",
                    classes[k % 3],
                    ("trend", "range", "high_vol")[int(rng.integers(0, 3))],
                    T0_MS + bar * BAR_MS,
                    float(prices[bar]),
                    float(np.clip(0.5 + rng.normal(0.0, 0.15), 0.0, 1.0)),
                    float(abs(rng.normal(0.01, 0.004))) if rng.random() < 0.9 else 0.0,
                    bool(rng.random() < 0.05),
                    bool(rng.random() < 0.02),
                )
            )
    rng.shuffle(rows)
    return rows


ENGINE_VARIANTS = [
    {"tau": 0.05, "epsilon_w": 0.02, "min_trade_notional": 100.0, "cooldown_bars": 1},
    {"tau": 0.1, "epsilon_w": 0.1, "min_trade_notional": 5_000.0, "cooldown_bars": 3},
    {"tau": 0.0, "epsilon_w": 0.0, "min_trade_notional": 0.0, "cooldown_bars": 0},
    {"tau": 0.2, "max_abs_weight": 0.4, "vol_target": 0.02, "cooldown_bars": 2},
]


@pytest.mark.parametrize("engine", ENGINE_VARIANTS)
def test_replay_matches_decide_record_by_record(engine: dict[str, Any]) -> None:
    pol = policy(
        engine=engine,
        base_weights={"s1": 0.7},
        trust={"s0|etf": 1.3, "s1|small_cap": 0.4},
        regime_multipliers={"high_vol": 0.5},
        disabled=["s0|penny_stock"],
    )
    equity = 50_000.0
    tape = DecisionTape.from_decisions(random_rows(seed=len(str(engine))))
    result = replay_policy(tape, pol, equity=equity)
    current, since = 0.0, None
    seen: set[R] = set()
    for i in range(len(tape)):
        if tape.group_start[i]:
            current, since = 0.0, None
        decision = decide(
            EngineInputs(
                p_hat=float(tape.p_hat[i]),
                vol_hat=float(tape.vol_hat[i]),
                price=float(tape.price[i]),
                strategy_id=tape.strategies[tape.strategy[i]],
                classification=tape.classifications[tape.classification[i]],
                regime=tape.regimes[tape.regime[i]],
                current_weight=current,
                equity=equity,
                bars_since_trade=since,
                stand_down_active=bool(tape.stand_down[i]),
                emergency_exit=bool(tape.emergency[i]),
            ),
            pol,
        )
        assert decision.target_weight_raw == result.target_weight_raw[i], i
        assert decision.target_weight_final == result.target_weight_final[i], i
        seen.update(decision.reasons)
        if decision.traded:
            since = 0
        elif since is not None:
            since += 1
        current = decision.target_weight_final
    # the comparison exercised trades, overrides and every block the variant has
    assert result.trade_count > 10
    assert {R.STAND_DOWN_ACTIVE, R.EMERGENCY_EXIT, R.DISABLED_COMBINATION, R.SIGNAL_FLIP} <= seen
    assert (R.COOLDOWN_ACTIVE in seen) == (pol.engine.cooldown_bars > 0)
    assert (R.BELOW_REBALANCE_BAND in seen) == (pol.engine.epsilon_w > 0)
    assert (R.BELOW_MIN_TRADE_NOTIONAL in seen) == (pol.engine.min_trade_notional > 0)


def test_tape_from_decision_records_reads_the_override_flags() -> None:
    pol = policy()
    records = []
    for bar, flags in enumerate([{}, {"stand_down_active": True}, {"emergency_exit": True}]):
        given = EngineInputs(0.75, 0.0, 10.0 + bar, "momo", "etf", "trend", 0.0, 1e5, **flags)
        records.append(
            decision_record(
                given,
                decide(given, pol),
                pol,
                event_id=f"d{bar}",
                run_id="r",
                mode=Mode.PAPER,
                symbol="Z",
                timeframe="15m",
                bar_ts=T0 + timedelta(minutes=15 * bar),
            )
        )
    tape = DecisionTape.from_decisions(records)
    assert tape.bar_ts_ms.tolist() == [T0_MS, T0_MS + BAR_MS, T0_MS + 2 * BAR_MS]
    assert tape.stand_down.tolist() == [False, True, False]
    assert tape.emergency.tolist() == [False, False, True]
    assert replay_policy(tape, pol).target_weight_final.tolist() == [0.5, 0.0, 0.0]


def test_disabling_a_losing_combination_improves_pnl() -> None:
    rows = []
    for bar in range(40):
        rows.append(row("WIN", "etf", bar, 100.0 * 1.002**bar, 0.8))
        rows.append(row("LOSE", "penny_stock", bar, 5.0 * 0.99**bar, 0.8))
    tape = DecisionTape.from_decisions(rows)
    champion = replay_policy(tape, policy())
    candidate = replay_policy(tape, policy(disabled=["momo|penny_stock"], version="v2"))
    assert champion.by_combo["momo|penny_stock"].pnl < 0.0
    assert candidate.by_combo["momo|penny_stock"].pnl == 0.0
    assert candidate.by_combo["momo|penny_stock"].trade_count == 0
    assert candidate.by_combo["momo|etf"].pnl == champion.by_combo["momo|etf"].pnl
    assert candidate.pnl_total > champion.pnl_total
    assert candidate.max_drawdown < champion.max_drawdown
    assert np.array_equal(candidate.bar_times, champion.bar_times)


def test_replay_is_deterministic_and_does_not_touch_the_tape() -> None:
    tape = DecisionTape.from_decisions(random_rows(seed=3))
    before = tape.p_hat.copy(), tape.forward_return.copy()
    pol = policy(engine={"tau": 0.05, "cooldown_bars": 1})
    first, second = replay_policy(tape, pol), replay_policy(tape, pol)
    assert first.summary() == second.summary()
    assert np.array_equal(first.bar_pnl, second.bar_pnl)
    assert first.by_combo == second.by_combo
    assert np.array_equal(tape.p_hat, before[0]) and np.array_equal(tape.forward_return, before[1])
    reordered = DecisionTape.from_decisions(list(reversed(random_rows(seed=3))))
    assert replay_policy(reordered, pol).summary() == first.summary()


def test_empty_tape_and_flat_policy() -> None:
    empty = replay_policy(DecisionTape.from_decisions([]), policy())
    assert (empty.pnl_total, empty.trade_count, empty.round_trips) == (0.0, 0, 0)
    assert empty.sharpe is None and empty.max_drawdown == 0.0 and empty.avg_hold_bars is None
    flat = replay_policy(DecisionTape.from_decisions(HAND_TAPE), policy(engine={"tau": 0.9}))
    assert flat.trade_count == 0 and flat.pnl_total == 0.0 and flat.sharpe is None
