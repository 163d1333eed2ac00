"""The topic catalogue: every topic of the contract, its payload model and its key.

Default names; a deployment may put a prefix in front of every one (settings). Input keys:
``bar_decisions``, ``fills`` and ``outcomes`` by symbol; ``plans`` by strategy_id;
``stand_down`` by its scope's strategy_id or ``*``. Output keys are given with each output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from models.inputs import (
    DecisionRecord,
    ExecutionEvent,
    InputModel,
    Outcome,
    PlanEvent,
    StandDownEvent,
)
from models.outputs import (
    Alert,
    DeadLetter,
    FeedbackSummary,
    PerformanceRow,
    PolicyCandidate,
    PolicyUpdate,
    ReplanVerdict,
)

BAR_DECISIONS = "bar_decisions"
FILLS = "fills"
STAND_DOWN = "stand_down"
PLANS = "plans"
OUTCOMES = "outcomes"

ALERTS = "alerts"
REPLAN_VERDICTS = "replan_verdicts"
POLICY_CANDIDATES = "policy_candidates"
POLICY_UPDATES = "policy_updates"
FEEDBACK_SUMMARIES = "feedback_summaries"
PERFORMANCE = "performance"
DEAD_LETTERS = "dead_letters"

ALL_STRATEGIES_KEY = "*"
DEFAULT_POLICY_SCOPE = "default"


@dataclass(frozen=True)
class TopicSpec:
    """A topic: name, payload model, how its key is formed, and whether it is compacted."""

    name: str
    model: type[BaseModel]
    key_doc: str
    compacted: bool = False


def input_key(topic: str, value: InputModel) -> str:
    """The Kafka key the contract gives an input record."""
    if isinstance(value, StandDownEvent):
        return value.scope.strategy_id or ALL_STRATEGIES_KEY
    if isinstance(value, PlanEvent):
        return value.strategy_id
    return value.symbol


INPUT_TOPICS: dict[str, TopicSpec] = {
    BAR_DECISIONS: TopicSpec(BAR_DECISIONS, DecisionRecord, "symbol"),
    FILLS: TopicSpec(FILLS, ExecutionEvent, "symbol"),
    STAND_DOWN: TopicSpec(STAND_DOWN, StandDownEvent, "scope.strategy_id, or * for all"),
    PLANS: TopicSpec(PLANS, PlanEvent, "strategy_id"),
    OUTCOMES: TopicSpec(OUTCOMES, Outcome, "symbol"),
}

OUTPUT_TOPICS: dict[str, TopicSpec] = {
    ALERTS: TopicSpec(ALERTS, Alert, "dedup_key"),
    REPLAN_VERDICTS: TopicSpec(REPLAN_VERDICTS, ReplanVerdict, "strategy_id"),
    POLICY_CANDIDATES: TopicSpec(POLICY_CANDIDATES, PolicyCandidate, "candidate_id"),
    POLICY_UPDATES: TopicSpec(
        POLICY_UPDATES, PolicyUpdate, "policy scope (default: default)", compacted=True
    ),
    FEEDBACK_SUMMARIES: TopicSpec(FEEDBACK_SUMMARIES, FeedbackSummary, "run_id"),
    PERFORMANCE: TopicSpec(PERFORMANCE, PerformanceRow, "strategy_id|group|window", compacted=True),
    DEAD_LETTERS: TopicSpec(DEAD_LETTERS, DeadLetter, "source topic key, as received"),
}

OUTPUT_FILES: tuple[str, ...] = (
    ALERTS,
    REPLAN_VERDICTS,
    POLICY_CANDIDATES,
    POLICY_UPDATES,
    FEEDBACK_SUMMARIES,
    DEAD_LETTERS,
)
"""Output topics written one JSON Lines file each by replay (performance goes to a JSON file)."""

KeyFn = Callable[[Any], str]
