"""Golden decisions of the policy engine for every branch and decision records."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from models.inputs import DecisionRecord, StandDownInfo
from models.policy import EngineParams, PolicyConfig
from models.taxonomy import BlockEvent as B
from models.taxonomy import Mode, StandDownSource
from models.taxonomy import ReasonCode as R
from processors.audit.emergency_exits import rules_broken
from processors.policy.engine import EngineDecision, EngineInputs, decide, decision_record

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
# A frictionless engine: no dead zone past tau, no band, no notional floor, no cooldown.
FREE = {"tau": 0.5, "vol_target": 0.01, "max_abs_weight": 1.0, "epsilon_w": 0.0}
FREE |= {"min_trade_notional": 0.0, "cooldown_bars": 0}


def policy(**fields: Any) -> PolicyConfig:
    engine = EngineParams(**(FREE | fields.pop("engine", {})))
    return PolicyConfig(version="v1", created_at=T0, engine=engine, **fields)


def inputs(**fields: Any) -> EngineInputs:
    base: dict[str, Any] = {
        "p_hat": 0.875,  # edge 0.75: (0.75 - 0.5) / 0.5 = 0.5 before other factors (exact)
        "vol_hat": 0.0,
        "price": 100.0,
        "strategy_id": "momo",
        "classification": "small_cap",
        "regime": "trend",
        "current_weight": 0.0,
        "equity": 100_000.0,
    }
    return EngineInputs(**(base | fields))


def check(
    decision: EngineDecision,
    raw: float,
    final: float,
    reasons: tuple[R, ...],
    blocks: tuple[B, ...] = (),
) -> None:
    assert decision.target_weight_raw == pytest.approx(raw, rel=1e-12, abs=1e-15)
    assert decision.target_weight_final == pytest.approx(final, rel=1e-12, abs=1e-15)
    assert decision.reasons == reasons
    assert decision.block_events == blocks


# --- step 1: raw weight ------------------------------------------------------------------


def test_dead_zone_gives_no_signal() -> None:
    check(decide(inputs(p_hat=0.7), policy()), 0.0, 0.0, (R.NO_SIGNAL, R.HOLD))
    # |edge| == tau is still inside the dead zone (0.75 -> edge 0.5 exactly)
    exact = decide(inputs(p_hat=0.75), policy())
    check(exact, 0.0, 0.0, (R.NO_SIGNAL, R.HOLD))


def test_edge_beyond_tau_long_and_short() -> None:
    check(decide(inputs(), policy()), 0.5, 0.5, (R.SIGNAL_ENTRY,))
    check(decide(inputs(p_hat=0.125), policy()), -0.5, -0.5, (R.SIGNAL_ENTRY,))
    check(decide(inputs(p_hat=1.0), policy()), 1.0, 1.0, (R.SIGNAL_ENTRY,))


def test_vol_target_scaling() -> None:
    scaled = decide(inputs(vol_hat=0.02), policy())  # 0.5 * 0.01 / 0.02
    check(scaled, 0.25, 0.25, (R.VOL_TARGET_SCALED, R.SIGNAL_ENTRY))
    up = decide(inputs(vol_hat=0.04), policy(engine={"vol_target": 0.08}))
    check(up, 1.0, 1.0, (R.VOL_TARGET_SCALED, R.SIGNAL_ENTRY))


def test_base_trust_and_regime_factors_are_recorded_only_when_not_one() -> None:
    pol = policy(
        base_weights={"momo": 2.0},
        trust={"momo|small_cap": 0.5},
        regime_multipliers={"trend": 1.5},
    )
    reasons = (R.VOL_TARGET_SCALED, R.BASE_WEIGHT, R.TRUST_SCALED, R.REGIME_MULTIPLIER)
    # 0.5 * (0.01 / 0.02) * 2 * 0.5 * 1.5 = 0.375
    check(decide(inputs(vol_hat=0.02), pol), 0.375, 0.375, (*reasons, R.SIGNAL_ENTRY))
    ones = policy(base_weights={"momo": 1.0}, trust={"momo|small_cap": 1.0})
    check(decide(inputs(), ones), 0.5, 0.5, (R.SIGNAL_ENTRY,))
    # another strategy / classification / regime is untouched
    other = decide(inputs(strategy_id="mr", classification="etf", regime="range"), pol)
    check(other, 0.5, 0.5, (R.SIGNAL_ENTRY,))


def test_non_finite_or_out_of_range_p_hat() -> None:
    check(decide(inputs(p_hat=math.nan), policy()), 0.0, 0.0, (R.NO_SIGNAL, R.HOLD))
    check(decide(inputs(p_hat=1.7), policy()), 1.0, 1.0, (R.SIGNAL_ENTRY,))
    tiny = decide(inputs(vol_hat=1e-300), policy())  # floored: finite raw, capped final
    assert math.isfinite(tiny.target_weight_raw) and tiny.target_weight_final == 1.0


# --- step 2: caps and overrides ----------------------------------------------------------


def test_cap_at_max_abs_weight() -> None:
    pol = policy(engine={"max_abs_weight": 0.3})
    capped = (R.CAPPED_MAX_ABS_WEIGHT, R.SIGNAL_ENTRY)
    check(decide(inputs(), pol), 0.5, 0.3, capped, (B.MAX_ABS_WEIGHT_CLIP,))
    check(decide(inputs(p_hat=0.125), pol), -0.5, -0.3, capped, (B.MAX_ABS_WEIGHT_CLIP,))


def test_external_weight_cap_only_when_tighter() -> None:
    risk = decide(inputs(weight_cap=0.2), policy())
    check(risk, 0.5, 0.2, (R.RISK_CAP, R.SIGNAL_ENTRY), (B.RISK_CAP_BLOCK,))
    loose = decide(inputs(weight_cap=0.9), policy(engine={"max_abs_weight": 0.3}))
    check(loose, 0.5, 0.3, (R.CAPPED_MAX_ABS_WEIGHT, R.SIGNAL_ENTRY), (B.MAX_ABS_WEIGHT_CLIP,))
    check(decide(inputs(weight_cap=0.9), policy()), 0.5, 0.5, (R.SIGNAL_ENTRY,))
    negative = decide(inputs(weight_cap=-1.0), policy())
    check(negative, 0.5, 0.0, (R.RISK_CAP, R.HOLD), (B.RISK_CAP_BLOCK,))


def test_disabled_combination_forces_flat() -> None:
    pol = policy(disabled=["momo|small_cap"])
    check(
        decide(inputs(current_weight=0.4), pol),
        0.5,
        0.0,
        (R.DISABLED_COMBINATION, R.SIGNAL_EXIT),
        (B.DISABLED_COMBINATION_BLOCK,),
    )
    flat = decide(inputs(), pol)
    check(flat, 0.5, 0.0, (R.DISABLED_COMBINATION, R.HOLD), (B.DISABLED_COMBINATION_BLOCK,))
    assert not flat.traded
    assert decide(inputs(classification="etf"), pol).target_weight_final == 0.5


def test_stand_down_forces_flat() -> None:
    check(
        decide(inputs(current_weight=-0.3, stand_down_active=True), policy()),
        0.5,
        0.0,
        (R.STAND_DOWN_ACTIVE, R.SIGNAL_EXIT),
        (B.STAND_DOWN_BLOCK,),
    )


def test_emergency_exit_forces_flat_and_is_recorded_even_when_flat() -> None:
    check(
        decide(inputs(current_weight=0.6, emergency_exit=True), policy()),
        0.5,
        0.0,
        (R.EMERGENCY_EXIT, R.SIGNAL_EXIT),
        (B.EMERGENCY_EXIT_EXECUTED,),
    )
    flat = decide(inputs(emergency_exit=True), policy())
    check(flat, 0.5, 0.0, (R.EMERGENCY_EXIT, R.HOLD), (B.EMERGENCY_EXIT_EXECUTED,))


def test_all_overrides_and_the_cap_are_all_recorded_in_order() -> None:
    pol = policy(engine={"max_abs_weight": 0.3}, disabled=["momo|small_cap"])
    both = decide(inputs(current_weight=0.3, stand_down_active=True, emergency_exit=True), pol)
    reasons = (R.CAPPED_MAX_ABS_WEIGHT, R.DISABLED_COMBINATION, R.STAND_DOWN_ACTIVE)
    blocks = (B.MAX_ABS_WEIGHT_CLIP, B.DISABLED_COMBINATION_BLOCK, B.STAND_DOWN_BLOCK)
    blocks_all = (*blocks, B.EMERGENCY_EXIT_EXECUTED)
    check(both, 0.5, 0.0, (*reasons, R.EMERGENCY_EXIT, R.SIGNAL_EXIT), blocks_all)


# --- step 3: delta-weight execution -----------------------------------------------------


def test_rebalance_band_keeps_current() -> None:
    pol = policy(engine={"epsilon_w": 0.015625})
    band = decide(inputs(current_weight=0.5 - 0.015625), pol)  # |delta| == epsilon: blocked
    check(band, 0.5, 0.484375, (R.BELOW_REBALANCE_BAND, R.HOLD), (B.REBALANCE_BAND_BLOCK,))
    assert not band.traded
    moved = decide(inputs(current_weight=0.48), pol)
    check(moved, 0.5, 0.5, (R.REBALANCE,))
    assert moved.traded


def test_min_trade_notional_keeps_current() -> None:
    pol = policy(engine={"min_trade_notional": 100.0})
    small = decide(inputs(current_weight=0.45, equity=1_000.0), pol)  # 0.05 * 1000 = 50 < 100
    check(small, 0.5, 0.45, (R.BELOW_MIN_TRADE_NOTIONAL, R.HOLD), (B.MIN_NOTIONAL_BLOCK,))
    big = decide(inputs(current_weight=0.25, equity=400.0), pol)  # 0.25 * 400 = 100: not below
    check(big, 0.5, 0.5, (R.REBALANCE,))


def test_cooldown_blocks_the_bars_after_a_trade() -> None:
    pol = policy(engine={"cooldown_bars": 2})
    for since in (0, 1):
        cool = decide(inputs(bars_since_trade=since), pol)
        check(cool, 0.5, 0.0, (R.COOLDOWN_ACTIVE, R.HOLD), (B.COOLDOWN_BLOCK,))
    check(decide(inputs(bars_since_trade=2), pol), 0.5, 0.5, (R.SIGNAL_ENTRY,))
    check(decide(inputs(bars_since_trade=None), pol), 0.5, 0.5, (R.SIGNAL_ENTRY,))
    check(decide(inputs(bars_since_trade=0), policy()), 0.5, 0.5, (R.SIGNAL_ENTRY,))


def test_every_applicable_block_is_recorded() -> None:
    pol = policy(engine={"epsilon_w": 0.02, "min_trade_notional": 100.0, "cooldown_bars": 1})
    blocked = decide(inputs(current_weight=0.49, equity=1_000.0, bars_since_trade=0), pol)
    reasons = (R.BELOW_REBALANCE_BAND, R.BELOW_MIN_TRADE_NOTIONAL, R.COOLDOWN_ACTIVE, R.HOLD)
    blocks = (B.REBALANCE_BAND_BLOCK, B.MIN_NOTIONAL_BLOCK, B.COOLDOWN_BLOCK)
    check(blocked, 0.5, 0.49, reasons, blocks)


@pytest.mark.parametrize(
    "override",
    [{"stand_down_active": True}, {"emergency_exit": True}, {"classification": "penny_stock"}],
)
def test_forced_exits_are_never_blocked(override: dict[str, Any]) -> None:
    pol = policy(
        engine={"epsilon_w": 0.05, "min_trade_notional": 1e9, "cooldown_bars": 5},
        disabled=["momo|penny_stock"],
    )
    forced = decide(inputs(current_weight=0.01, bars_since_trade=0, **override), pol)
    assert forced.target_weight_final == 0.0 and forced.traded
    assert forced.reasons[-1] is R.SIGNAL_EXIT
    blocking = {R.BELOW_REBALANCE_BAND, R.BELOW_MIN_TRADE_NOTIONAL, R.COOLDOWN_ACTIVE}
    assert not blocking & set(forced.reasons)


def test_signal_exit_is_blocked_like_any_move() -> None:
    pol = policy(engine={"cooldown_bars": 1})
    check(
        decide(inputs(p_hat=0.5, current_weight=0.3), policy()),
        0.0,
        0.0,
        (R.NO_SIGNAL, R.SIGNAL_EXIT),
    )
    held = decide(inputs(p_hat=0.5, current_weight=0.3, bars_since_trade=0), pol)
    check(held, 0.0, 0.3, (R.NO_SIGNAL, R.COOLDOWN_ACTIVE, R.HOLD), (B.COOLDOWN_BLOCK,))


def test_action_codes() -> None:
    pol = policy()
    check(decide(inputs(current_weight=-0.3), pol), 0.5, 0.5, (R.SIGNAL_FLIP,))
    check(decide(inputs(current_weight=0.2), pol), 0.5, 0.5, (R.REBALANCE,))
    check(decide(inputs(current_weight=0.5), pol), 0.5, 0.5, (R.HOLD,))
    check(decide(inputs(p_hat=0.125, current_weight=0.2), pol), -0.5, -0.5, (R.SIGNAL_FLIP,))
    assert not decide(inputs(current_weight=0.5), pol).traded


def test_a_kept_weight_never_exceeds_the_cap() -> None:
    pol = policy(engine={"max_abs_weight": 0.5, "epsilon_w": 0.7})
    kept = decide(inputs(p_hat=0.8, current_weight=0.8), pol)  # target 0.2: band keeps 0.8
    assert kept.target_weight_final == 0.5 and kept.traded
    assert kept.reasons == (R.BELOW_REBALANCE_BAND, R.CAPPED_MAX_ABS_WEIGHT, R.REBALANCE)
    assert kept.block_events == (B.REBALANCE_BAND_BLOCK, B.MAX_ABS_WEIGHT_CLIP)


def test_decide_is_deterministic_and_leaves_inputs_alone() -> None:
    given = inputs(vol_hat=0.013, current_weight=0.1, bars_since_trade=3)
    pol = policy(trust={"momo|small_cap": 0.7})
    before = (replace(given), pol.model_dump())
    assert decide(given, pol) == decide(given, pol)
    assert (given, pol.model_dump()) == before


# --- decision records --------------------------------------------------------------------


def record(given: EngineInputs, pol: PolicyConfig, **fields: Any) -> DecisionRecord:
    identity: dict[str, Any] = {
        "event_id": "d-1",
        "run_id": "run-1",
        "mode": Mode.BACKTEST,
        "symbol": "AAPL",
        "timeframe": "15m",
        "bar_ts": T0,
        "features": {"momentum": 1.25},
    }
    return decision_record(given, decide(given, pol), pol, **(identity | fields))


def test_decision_record_is_complete_and_valid() -> None:
    pol = policy(trust={"momo|small_cap": 0.5})
    given = inputs(vol_hat=0.02, current_weight=0.1, bars_since_trade=4)
    rec = record(given, pol, confidence=0.6, horizon_bars=4)
    again = DecisionRecord.model_validate(orjson.loads(orjson.dumps(rec.model_dump(mode="json"))))
    assert again == rec
    assert (rec.strategy_id, rec.classification, rec.regime) == ("momo", "small_cap", "trend")
    assert rec.target_weight_raw == pytest.approx(0.125) and rec.target_weight_final == 0.125
    assert rec.reasons == [R.VOL_TARGET_SCALED, R.TRUST_SCALED, R.REBALANCE]
    assert rec.policy_version == "v1" and rec.features == {"momentum": 1.25}
    assert rec.exit_intent is None and rec.cooldown_recommendation_bars is None
    assert rec.stand_down is None and rec.horizon_bars == 4


def test_emergency_exit_record_satisfies_the_audit() -> None:
    pol = policy(engine={"cooldown_bars": 3})
    rec = record(inputs(current_weight=0.4, emergency_exit=True), pol, exit_reason="gap_down")
    assert rec.exit_intent is not None and rec.exit_intent.emergency
    assert rec.exit_intent.reason == "gap_down"
    assert rec.cooldown_recommendation_bars == 3
    assert rules_broken(rec) == []


def test_stand_down_info_is_written_only_under_a_stand_down() -> None:
    info = StandDownInfo(until_ts=T0.replace(hour=12), reason="news", source=StandDownSource.OPS)
    covered = record(inputs(current_weight=0.2, stand_down_active=True), policy(), stand_down=info)
    assert covered.stand_down == info and covered.target_weight_final == 0.0
    assert record(inputs(), policy(), stand_down=info).stand_down is None
