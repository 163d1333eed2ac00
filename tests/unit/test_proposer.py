"""The proposer: disables losing combinations (configurable), re-enables recovered ones,
shrinks trust toward the prior by trade count, clamps, and records every change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from builders import BACKTEST, flat_decision, signal_paths

from models.inputs import DecisionRecord
from models.policy import EngineParams, PolicyConfig
from processors.policy.loop_window import LoopWindow, LoopWindowConfig, WindowView
from processors.policy.proposer import ProposerConfig, propose

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=15)
ENGINE = EngineParams(tau=0.05, vol_target=0.002, epsilon_w=0.02, cooldown_bars=0)


def policy(version: str = "v0", **fields: Any) -> PolicyConfig:
    return PolicyConfig(version=version, created_at=T0, engine=ENGINE, **fields)


def decisions(
    classes: dict[str, tuple[float, int]], bars: int, seed: int, strategy: str = "s"
) -> list[DecisionRecord]:
    """``classes``: classification -> (edge, symbols): the signal direction agrees with the
    next bar's return with probability 0.5 + edge; p_hat = 0.5 +- 0.1."""
    rng = np.random.default_rng(seed)
    out: list[DecisionRecord] = []
    for cls, k, t, price, direction in signal_paths(rng, classes, bars):
        out.append(
            flat_decision(
                f"{strategy}-{cls}{k}-{t}",
                T0 + t * BAR,
                **{**BACKTEST, "strategy_id": strategy},
                symbol=f"{cls}{k}",
                classification=cls,
                price=price,
                p_hat=0.5 + direction * 0.1,
                features={"x": float(rng.normal())},
            )
        )
    return out


def view_of(records: list[DecisionRecord]) -> WindowView:
    window = LoopWindow(LoopWindowConfig(retain_ms=10**12))
    for record in records:
        window.add(record)
    return window.view(0, 2**62)


def changes_by_key(changes: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["field"], c["key"]): c for c in changes}


def test_a_losing_combination_is_disabled_with_its_evidence() -> None:
    view = view_of(decisions({"good": (0.2, 3), "bad": (-0.2, 3)}, bars=200, seed=1))
    proposal = propose(view, policy(), "v1", T0)
    assert proposal.policy.version == "v1" and proposal.policy.created_at == T0
    assert proposal.policy.disabled == ["s|bad"]
    change = changes_by_key(proposal.changes)[("disabled", "s|bad")]
    assert (change["old"], change["new"]) == (0.0, 1.0)
    assert change["n"] >= 30 and change["estimate"] < 0.4
    assert proposal.combos["s|bad"]["win_rate"] == change["estimate"]
    assert proposal.combos["s|good"]["win_rate"] > 0.5
    assert proposal.combos["s|bad"]["slope"] < 0.0 < proposal.combos["s|good"]["slope"]


def test_disable_threshold_and_minimum_trades_are_configurable() -> None:
    view = view_of(decisions({"good": (0.2, 3), "bad": (-0.2, 3)}, bars=200, seed=1))
    strict = ProposerConfig(min_trades_to_disable=10**6)
    assert propose(view, policy(), "v1", T0, strict).policy.disabled == []
    lenient = ProposerConfig(disable_win_rate=0.9)
    assert propose(view, policy(), "v1", T0, lenient).policy.disabled == ["s|bad", "s|good"]


def test_a_recovered_combination_is_enabled_again() -> None:
    view = view_of(decisions({"good": (0.2, 3), "bad": (0.2, 3)}, bars=200, seed=2))
    proposal = propose(view, policy(disabled=["s|bad"]), "v1", T0)
    assert proposal.policy.disabled == []
    change = changes_by_key(proposal.changes)[("disabled", "s|bad")]
    assert (change["old"], change["new"]) == (1.0, 0.0) and change["estimate"] >= 0.45


def test_a_disabled_combination_without_recovery_stays_disabled() -> None:
    view = view_of(decisions({"good": (0.2, 3), "bad": (-0.2, 3)}, bars=200, seed=3))
    proposal = propose(view, policy(disabled=["s|bad"]), "v1", T0)
    assert proposal.policy.disabled == ["s|bad"]
    assert ("disabled", "s|bad") not in changes_by_key(proposal.changes)


def test_trust_is_shrunk_toward_the_prior_by_trade_count_and_clamped() -> None:
    records = decisions({"strong": (0.3, 3), "weak": (0.05, 3)}, bars=200, seed=4)
    view = view_of(records)
    cfg = ProposerConfig(trust_min=0.5, trust_max=1.5, min_change=0.0)
    proposal = propose(view, policy(), "v1", T0, cfg)
    trust = changes_by_key(proposal.changes)
    weak, strong = trust[("trust", "s|weak")], trust[("trust", "s|strong")]
    for change in (weak, strong):
        n, estimate = change["n"], change["estimate"]
        expected = 1.0 + n / (n + cfg.shrink_trades) * (estimate - 1.0)
        assert change["new"] == round(min(1.5, max(0.5, expected)), 4)
    assert weak["new"] < 1.0 < strong["new"]
    few = view_of([r for r in records if r.bar_ts < T0 + 12 * BAR])
    heavy = ProposerConfig(shrink_trades=10**6, min_change=0.0)
    shrunk = propose(few, policy(), "v1", T0, heavy)
    assert all(abs(c["new"] - 1.0) < 0.01 for c in shrunk.changes if c["field"] == "trust")


def test_small_moves_are_not_changes_and_no_edge_changes_nothing() -> None:
    view = view_of(decisions({"a": (0.0, 2), "b": (-0.01, 2)}, bars=100, seed=5))
    cfg = ProposerConfig(min_change=10.0, min_trades_to_disable=10**6)
    proposal = propose(view, policy(), "v1", T0, cfg)
    assert proposal.changes == []
    unchanged = proposal.policy.model_dump(exclude={"version"})
    assert unchanged == policy().model_dump(exclude={"version"})


def test_proposal_is_deterministic_and_does_not_touch_the_champion() -> None:
    view = view_of(decisions({"good": (0.2, 2), "bad": (-0.2, 2)}, bars=150, seed=6))
    champion = policy(trust={"s|good": 0.9})
    before = champion.model_dump_json()
    first = propose(view, champion, "v1", T0)
    second = propose(view, champion, "v1", T0)
    assert first.policy == second.policy and first.changes == second.changes
    assert champion.model_dump_json() == before
    assert all(set(c) == {"field", "key", "old", "new", "n", "estimate"} for c in first.changes)
