"""The emergency-exit audit: a stateless rule on each decision that asks for an emergency exit.

A decision with ``exit_intent.emergency`` True must carry ``cooldown_recommendation_bars``
(not None) and either
(a) ``target_weight_final`` == 0 (|w| <= zero_weight_tolerance) and ``emergency_exit_executed``
    in ``block_events``, or
(b) ``emergency_exit_veto_same_bar`` in ``block_events`` (the exit was vetoed on this bar; the
    weight may then be anything).
Anything else is one ``emergency_exit_violation`` AlertSignal (severity high) whose evidence
``rules_broken`` lists, in this order, every rule broken:
``missing_cooldown``; and, without a veto, ``nonzero_weight_without_veto`` and/or
``missing_executed_block_event``. Decisions without emergency intent produce nothing.

The only state is two counters (decisions audited, violations found), kept so that the audit
has the standard snapshot / restore; no catalogued metric belongs to it, so ``metrics()`` is
empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from models.common import format_utc
from models.inputs import DecisionRecord
from models.outputs import AlertScope
from models.taxonomy import AlertKind, BlockEvent, Severity
from processors.core.base import (
    EMPTY,
    AlertSignal,
    Emitted,
    MetricSample,
    WithoutTimers,
    check_state_version,
)
from processors.core.config_checks import NON_NEGATIVE, check_bounds

STATE_VERSION = 1
MISSING_COOLDOWN = "missing_cooldown"
NONZERO_WEIGHT_WITHOUT_VETO = "nonzero_weight_without_veto"
MISSING_EXECUTED_BLOCK_EVENT = "missing_executed_block_event"


@dataclass(frozen=True, slots=True)
class EmergencyExitConfig:
    """``zero_weight_tolerance``: |target_weight_final| at most this counts as flat (default
    exactly 0). ``severity``: the suggested severity of a violation (default high)."""

    zero_weight_tolerance: float = 0.0
    severity: Severity = Severity.HIGH

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {"zero_weight_tolerance": NON_NEGATIVE},
        )


def rules_broken(decision: DecisionRecord, zero_weight_tolerance: float = 0.0) -> list[str]:
    """The emergency-exit rules ``decision`` breaks (empty without emergency intent)."""
    intent = decision.exit_intent
    if intent is None or not intent.emergency:
        return []
    broken: list[str] = []
    if decision.cooldown_recommendation_bars is None:
        broken.append(MISSING_COOLDOWN)
    blocks = decision.block_events
    if BlockEvent.EMERGENCY_EXIT_VETO_SAME_BAR not in blocks:
        if abs(decision.target_weight_final) > zero_weight_tolerance:
            broken.append(NONZERO_WEIGHT_WITHOUT_VETO)
        if BlockEvent.EMERGENCY_EXIT_EXECUTED not in blocks:
            broken.append(MISSING_EXECUTED_BLOCK_EVENT)
    return broken


class EmergencyExitAudit(WithoutTimers):
    """Checks every decision with emergency exit intent; see the module docstring."""

    takes: ClassVar[Mapping[type, str]] = {DecisionRecord: "on_decision"}

    def __init__(self, config: EmergencyExitConfig | None = None) -> None:
        self.config = config or EmergencyExitConfig()
        self.audited = 0
        self.violations = 0

    def on_decision(self, decision: DecisionRecord, bar_ms: int | None = None) -> Emitted:
        """Nothing, or one ``emergency_exit_violation`` signal."""
        intent = decision.exit_intent
        if intent is None or not intent.emergency:
            return EMPTY
        self.audited += 1
        broken = rules_broken(decision, self.config.zero_weight_tolerance)
        if not broken:
            return EMPTY
        self.violations += 1
        signal = AlertSignal(
            kind=AlertKind.EMERGENCY_EXIT_VIOLATION,
            severity=self.config.severity,
            scope=AlertScope(strategy_id=decision.strategy_id, symbol=decision.symbol),
            event_time=decision.bar_ts,
            evidence={
                "rules_broken": broken,
                "decision_event_id": decision.event_id,
                "strategy_id": decision.strategy_id,
                "symbol": decision.symbol,
                "bar_ts": format_utc(decision.bar_ts),
                "target_weight_final": decision.target_weight_final,
                "cooldown_recommendation_bars": decision.cooldown_recommendation_bars,
                "block_events": [block.value for block in decision.block_events],
                "exit_reason": intent.reason,
            },
            dedup_key=f"emergency_exit_violation|{decision.strategy_id}|{decision.symbol}",
            source_id=decision.event_id,
        )
        return Emitted(signals=[signal])

    def metrics(self) -> list[MetricSample]:
        return []

    def snapshot(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "audited": self.audited, "violations": self.violations}

    def restore(self, state: dict[str, Any]) -> None:
        check_state_version(state, STATE_VERSION, "EmergencyExitAudit")
        self.audited = int(state.get("audited", 0))
        self.violations = int(state.get("violations", 0))
