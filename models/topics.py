"""The topic catalogue: every topic of the contract, its payload model and its key.

Default names; a deployment may put a prefix in front of every one (settings). Input keys:
``bar_decisions``, ``fills`` and ``outcomes`` by symbol; ``plans`` by strategy_id;
``stand_down`` by its scope's strategy_id or ``*``. Output keys are given with each output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from models.inputs import (
    DecisionRecord,
    ExecutionEvent,
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


@dataclass(frozen=True)
class InputTopicSpec(TopicSpec):
    """An input topic, with what the pipeline needs to know of it.

    ``rank`` breaks ties at equal event time in the release order (a stand-down starting at a
    bar covers that bar's decisions, so stand-downs come first); ranks are unique.
    ``key_path`` is where the contract key sits in the value (``("scope", "strategy_id")``),
    ``key_default`` the key when that field is absent or null (``*`` for an all-strategy
    stand-down), None when the key is required.
    """

    rank: int = field(kw_only=True)
    key_path: tuple[str, ...] = field(kw_only=True)
    key_default: str | None = None
    lane_path: tuple[str, ...] = ("strategy_id",)
    """Where the strategy_id that picks a record's lane sits in the model; a record whose
    field is None (a stand-down of every strategy) goes to every lane."""

    def lane_of(self, value: BaseModel) -> str | None:
        """The strategy_id of a validated ``value`` of this topic, or None for all."""
        found: Any = value
        for name in self.lane_path:
            found = getattr(found, name)
        return found if isinstance(found, str) else None

    def key_of(self, value: Any) -> str | None:
        """The contract key of a raw (unvalidated) JSON value, None if it has none."""
        found: Any = value
        for name in self.key_path:
            found = found.get(name) if isinstance(found, dict) else None
        if isinstance(found, str):
            return found
        return self.key_default if isinstance(value, dict) else None


INPUT_TOPICS: dict[str, InputTopicSpec] = {
    STAND_DOWN: InputTopicSpec(
        STAND_DOWN,
        StandDownEvent,
        "scope.strategy_id, or * for all",
        rank=0,
        key_path=("scope", "strategy_id"),
        key_default=ALL_STRATEGIES_KEY,
        lane_path=("scope", "strategy_id"),
    ),
    PLANS: InputTopicSpec(PLANS, PlanEvent, "strategy_id", rank=1, key_path=("strategy_id",)),
    BAR_DECISIONS: InputTopicSpec(
        BAR_DECISIONS, DecisionRecord, "symbol", rank=2, key_path=("symbol",)
    ),
    FILLS: InputTopicSpec(FILLS, ExecutionEvent, "symbol", rank=3, key_path=("symbol",)),
    OUTCOMES: InputTopicSpec(OUTCOMES, Outcome, "symbol", rank=4, key_path=("symbol",)),
}
"""Every input topic, in release-rank order. A new input topic is one entry here (and its
model in ``models.inputs``); the reorder buffer, the keying of ``produce`` and the simulator
read their ranks and keys from this table."""

TOPIC_RANK: dict[str, int] = {name: spec.rank for name, spec in INPUT_TOPICS.items()}

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
