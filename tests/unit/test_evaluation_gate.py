"""Golden gate decisions on constructed markets: a clear improvement passes, noise fails, an
improvement that blows up turnover fails on turnover, too few trades fails, calibration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from builders import signal_paths

from models.policy import EngineParams, PolicyConfig
from models.taxonomy import GateDecision
from processors.policy.gate import (
    EvaluationGateConfig,
    batch_sums,
    evaluate,
    rollback_check,
    same_policy,
)
from processors.policy.replay import DecisionTape, TapeRow

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
BAR_MS = 15 * 60 * 1000
ENGINE = EngineParams(
    tau=0.05, vol_target=0.002, max_abs_weight=1.0, epsilon_w=0.02, cooldown_bars=0
)


GOOD_BAD = {"good": (0.2, 4), "bad": (-0.2, 2)}


def policy(version: str = "v0", **fields: Any) -> PolicyConfig:
    return PolicyConfig(
        version=version, created_at=datetime(2024, 1, 1, tzinfo=UTC), engine=ENGINE, **fields
    )


def market(classes: dict[str, tuple[float, int]], bars: int, seed: int) -> DecisionTape:
    """``classes``: classification -> (edge, symbols). The signal direction agrees with the
    next bar's return with probability 0.5 + edge; p_hat = 0.5 +- 0.1."""
    rows = [
        TapeRow(
            "s", f"{cls}{k}", cls, "trend", T0_MS + t * BAR_MS, price, 0.5 + direction * 0.1, 0.002
        )
        for cls, k, t, price, direction in signal_paths(np.random.default_rng(seed), classes, bars)
    ]
    return DecisionTape.from_decisions(rows)


def reasons_of(gate_reasons: list[str]) -> set[str]:
    return {reason.split(":")[0] for reason in gate_reasons}


def test_a_clear_improvement_passes() -> None:
    tape = market(GOOD_BAD, bars=200, seed=1)
    tape = market(GOOD_BAD, bars=200, seed=1)
    candidate = policy("v1", disabled=["s|bad"], trust={"s|good": 1.2})
    outcome = evaluate(tape, policy(), candidate)
    assert outcome.gate.decision is GateDecision.PASS, outcome.gate.reasons
    assert outcome.passed and outcome.gate.reasons == []
    tests: dict[str, Any] = outcome.gate.tests
    assert tests["improvement"]["msprt_p_value"] <= 0.05
    assert outcome.candidate.pnl_total > outcome.champion.pnl_total
    assert set(tests) >= {"min_trades", "turnover", "max_drawdown", "trade_count", "champion"}


FREE = EvaluationGateConfig(cost_bps=0.0)  # without costs, smaller weights save nothing


def test_noise_fails_on_the_main_metric_only() -> None:
    tape = market({"a": (0.0, 3), "b": (0.0, 3)}, bars=200, seed=2)
    candidate = policy("v1", trust={"s|a": 0.8})
    outcome = evaluate(tape, policy(), candidate, FREE)
    assert outcome.gate.decision is GateDecision.FAIL
    assert reasons_of(outcome.gate.reasons) == {"improvement"}


def test_noise_rarely_passes_over_many_seeds() -> None:
    passed = 0
    for seed in range(20):
        tape = market({"a": (0.0, 2), "b": (0.0, 2)}, bars=200, seed=100 + seed)
        outcome = evaluate(tape, policy(), policy("v1", trust={"s|a": 0.5}), FREE)
        passed += outcome.passed
    assert passed <= 2


def test_an_improvement_that_blows_up_turnover_fails_and_says_so() -> None:
    tape = market(GOOD_BAD, bars=200, seed=1)
    candidate = policy("v1", disabled=["s|bad"], trust={"s|good": 3.0})
    outcome = evaluate(tape, policy(), candidate)
    assert outcome.gate.decision is GateDecision.FAIL
    found = reasons_of(outcome.gate.reasons)
    assert "turnover" in found and "improvement" not in found
    assert outcome.candidate.pnl_total > outcome.champion.pnl_total
    limits: dict[str, Any] = outcome.gate.tests["turnover"]  # type: ignore[assignment]
    assert limits["candidate"] > limits["limit"]


def test_too_few_trades_fails() -> None:
    tape = market({"good": (0.2, 1), "bad": (-0.2, 1)}, bars=12, seed=3)
    outcome = evaluate(tape, policy(), policy("v1", disabled=["s|bad"]))
    assert outcome.gate.decision is GateDecision.FAIL
    assert "min_trades" in reasons_of(outcome.gate.reasons)


def test_every_failing_check_is_listed() -> None:
    tape = market({"good": (0.2, 1)}, bars=12, seed=4)
    same = policy("v1")
    assert same_policy(policy(), same)
    outcome = evaluate(tape, policy(), same, EvaluationGateConfig(min_trades=1000))
    assert reasons_of(outcome.gate.reasons) == {"no_change", "min_trades", "improvement"}


def test_guardrail_bands_are_configurable() -> None:
    tape = market(GOOD_BAD, bars=200, seed=1)
    candidate = policy("v1", disabled=["s|bad"], trust={"s|good": 3.0})
    loose = EvaluationGateConfig(turnover_band=5.0, drawdown_band=5.0, trade_count_hi=5.0)
    assert evaluate(tape, policy(), candidate, loose).passed


def test_trade_count_band() -> None:
    tape = market(GOOD_BAD, bars=200, seed=1)
    outcome = evaluate(
        tape, policy(), policy("v1", disabled=["s|bad"]), EvaluationGateConfig(trade_count_lo=0.9)
    )
    assert "trade_count" in reasons_of(outcome.gate.reasons)


def test_calibration_gate_when_the_p_hat_source_changes() -> None:
    tape = market(GOOD_BAD, bars=200, seed=1)
    candidate = policy("v1", disabled=["s|bad"], trust={"s|good": 1.2})
    labelled = np.zeros(len(tape), dtype=np.bool_)
    labelled[:-1] = ~tape.group_start[1:]
    labels = (labelled & (tape.forward_return > 0.0), labelled)
    same_source = evaluate(tape, policy(), candidate, labels=labels, p_hat_source_changed=True)
    assert same_source.passed
    calibration: dict[str, Any] = same_source.gate.tests["calibration"]  # type: ignore[assignment]
    assert calibration["brier_candidate"] == calibration["brier_champion"]
    worse = np.where(tape.p_hat > 0.5, 0.05, 0.95)  # confidently wrong everywhere
    outcome = evaluate(tape, policy(), candidate, labels=labels, candidate_p_hat=worse)
    assert reasons_of(outcome.gate.reasons) == {"calibration_brier", "calibration_ece"}
    unlabelled = evaluate(tape, policy(), candidate, p_hat_source_changed=True)
    assert reasons_of(unlabelled.gate.reasons) == {"calibration"}


def test_gate_is_deterministic_and_json_ready() -> None:
    tape = market({"good": (0.2, 3), "bad": (-0.2, 1)}, bars=100, seed=5)
    candidate = policy("v1", disabled=["s|bad"])
    first = evaluate(tape, policy(), candidate).gate
    second = evaluate(tape, policy(), candidate).gate
    assert first.model_dump_json() == second.model_dump_json()


def test_batch_sums_drop_the_partial_batch() -> None:
    assert batch_sums(np.arange(10, dtype=np.float64), 4).tolist() == [6.0, 22.0]
    assert batch_sums(np.arange(3, dtype=np.float64), 1).tolist() == [0.0, 1.0, 2.0]


def test_rollback_check_flags_a_policy_worse_than_the_previous_one() -> None:
    tape = market(GOOD_BAD, bars=200, seed=6)
    bad_choice = policy("v1", disabled=["s|good"])
    reasons, tests = rollback_check(tape, bad_choice, policy())
    assert "realised_pnl" in reasons_of(reasons)
    assert tests["msprt_p_value"] <= 0.05
    fine, _ = rollback_check(tape, policy("v1", disabled=["s|bad"]), policy())
    assert fine == []
