"""Every branch of the emergency-exit audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from models.inputs import DecisionRecord
from models.outputs import AlertScope
from models.taxonomy import AlertKind, Severity
from processors.audit.emergency_exits import (
    EmergencyExitAudit,
    EmergencyExitConfig,
    rules_broken,
)
from processors.core.base import AlertSignal

BAR = datetime(2024, 3, 4, 10, 15, tzinfo=UTC)
EXECUTED = "emergency_exit_executed"
VETO = "emergency_exit_veto_same_bar"


def decision(
    weight: float = 0.0,
    blocks: list[str] | None = None,
    cooldown: int | None = 4,
    emergency: bool | None = True,
) -> DecisionRecord:
    raw: dict[str, Any] = {
        "event_id": "d1",
        "run_id": "r1",
        "mode": "live",
        "strategy_id": "momo",
        "symbol": "AAPL",
        "classification": "large_cap",
        "regime": "high_vol",
        "timeframe": "15m",
        "bar_ts": BAR.isoformat(),
        "price": 100.0,
        "p_hat": 0.2,
        "vol_hat": 0.5,
        "features": {},
        "current_weight": 0.3,
        "equity": 1e6,
        "target_weight_raw": 0.0,
        "target_weight_final": weight,
        "reasons": ["emergency_exit"],
        "block_events": [EXECUTED] if blocks is None else blocks,
        "policy_version": "v1",
    }
    if cooldown is not None:
        raw["cooldown_recommendation_bars"] = cooldown
    if emergency is not None:
        raw["exit_intent"] = {"emergency": emergency, "reason": "gap_down"}
    return DecisionRecord.model_validate(raw)


@pytest.mark.parametrize(
    ("kwargs", "broken"),
    [
        ({}, []),  # flattened and executed
        ({"cooldown": 0}, []),  # 0 bars is a recommendation too
        ({"weight": 0.3, "blocks": [VETO]}, []),  # vetoed on this bar: weight may stay
        ({"weight": 0.0, "blocks": [VETO, EXECUTED]}, []),
        ({"cooldown": None}, ["missing_cooldown"]),
        ({"weight": 0.1}, ["nonzero_weight_without_veto"]),
        ({"blocks": []}, ["missing_executed_block_event"]),
        ({"blocks": ["cooldown_block"]}, ["missing_executed_block_event"]),
        (
            {"weight": -0.2, "blocks": []},
            ["nonzero_weight_without_veto", "missing_executed_block_event"],
        ),
        ({"cooldown": None, "blocks": [VETO], "weight": 0.5}, ["missing_cooldown"]),
        (
            {"cooldown": None, "weight": 0.1, "blocks": []},
            ["missing_cooldown", "nonzero_weight_without_veto", "missing_executed_block_event"],
        ),
    ],
)
def test_rules(kwargs: dict[str, Any], broken: list[str]) -> None:
    d = decision(**kwargs)
    assert rules_broken(d) == broken
    emitted = EmergencyExitAudit().on_decision(d)
    assert emitted.outputs == []
    assert [s.evidence["rules_broken"] for s in emitted.signals] == ([broken] if broken else [])


@pytest.mark.parametrize("emergency", [None, False])
def test_no_emergency_intent_produces_nothing(emergency: bool | None) -> None:
    audit = EmergencyExitAudit()
    d = decision(weight=0.7, blocks=[], cooldown=None, emergency=emergency)
    emitted = audit.on_decision(d)
    assert emitted.signals == [] and emitted.outputs == []
    assert audit.snapshot() == {"version": 1, "audited": 0, "violations": 0}


def test_violation_signal_exact() -> None:
    audit = EmergencyExitAudit()
    signals = audit.on_decision(decision(weight=0.1, blocks=["risk_cap_block"], cooldown=None))
    assert signals.signals == [
        AlertSignal(
            kind=AlertKind.EMERGENCY_EXIT_VIOLATION,
            severity=Severity.HIGH,
            scope=AlertScope(strategy_id="momo", symbol="AAPL"),
            event_time=BAR,
            evidence={
                "rules_broken": [
                    "missing_cooldown",
                    "nonzero_weight_without_veto",
                    "missing_executed_block_event",
                ],
                "decision_event_id": "d1",
                "strategy_id": "momo",
                "symbol": "AAPL",
                "bar_ts": "2024-03-04T10:15:00Z",
                "target_weight_final": 0.1,
                "cooldown_recommendation_bars": None,
                "block_events": ["risk_cap_block"],
                "exit_reason": "gap_down",
            },
            dedup_key="emergency_exit_violation|momo|AAPL",
            source_id="d1",
        )
    ]
    orjson.dumps(signals.signals[0].evidence)  # evidence is plain JSON


def test_zero_weight_tolerance() -> None:
    d = decision(weight=1e-12)
    assert [s.evidence["rules_broken"] for s in EmergencyExitAudit().on_decision(d).signals] == [
        ["nonzero_weight_without_veto"]
    ]
    tolerant = EmergencyExitAudit(EmergencyExitConfig(zero_weight_tolerance=1e-9))
    assert tolerant.on_decision(d).signals == []


def test_state_metrics_and_purity() -> None:
    audit = EmergencyExitAudit()
    good, bad = decision(), decision(weight=0.2)
    before = (good.model_dump(), bad.model_dump())
    audit.on_decision(good)
    audit.on_decision(bad)
    assert (good.model_dump(), bad.model_dump()) == before
    state = orjson.loads(orjson.dumps(audit.snapshot()))
    assert state == {"version": 1, "audited": 2, "violations": 1}
    restored = EmergencyExitAudit()
    restored.restore(state)
    assert restored.snapshot() == audit.snapshot()
    assert restored.on_decision(bad) == audit.on_decision(bad)
    assert audit.metrics() == []
