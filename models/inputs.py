"""The five input payloads of the contract (CONTRACT.md, "Input topics").

Each input has an ``event_id`` unique per topic (a repeat is a duplicate) and an
``event_time``: the time that drives windows, truth assignment and the loop's cadence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, JsonValue, model_validator

from models.common import (
    MAX_ENTRIES,
    ContractModel,
    EventId,
    FloatMap,
    Name,
    NonNegative,
    Positive,
    Probability,
    UtcDatetime,
)
from models.taxonomy import (
    BlockEvent,
    ExitReason,
    FillKind,
    Liquidity,
    Mode,
    ReasonCode,
    Side,
    StandDownAction,
    StandDownSource,
)

NARRATION_MAX = 8 * 1024


class StandDownInfo(ContractModel):
    """The stand-down a decision says it was taken under."""

    until_ts: UtcDatetime
    reason: Name
    source: StandDownSource


class ExitIntent(ContractModel):
    """An exit the trigger engine asked for; ``emergency`` means flatten now."""

    emergency: bool
    reason: Name


class DecisionRecord(ContractModel):
    """`bar_decisions`: one per strategy, symbol and bar, whether it trades or not. Key: symbol.

    ``p_hat`` is the probability that the forward return over ``horizon_bars`` is positive.
    ``target_weight_raw`` is the policy's weight before caps and overrides,
    ``target_weight_final`` the weight after them. The decision's id, as referenced by fills
    and outcomes (``decision_id``), is its ``event_id``.
    """

    event_id: EventId
    run_id: Name
    mode: Mode
    strategy_id: Name
    symbol: Name
    classification: Name
    regime: Name
    timeframe: Name
    bar_ts: UtcDatetime
    price: Positive
    p_hat: Probability
    vol_hat: NonNegative
    features: FloatMap
    current_weight: float
    equity: Positive
    target_weight_raw: float
    target_weight_final: float
    reasons: Annotated[list[ReasonCode], Field(max_length=MAX_ENTRIES)]
    block_events: Annotated[list[BlockEvent], Field(max_length=MAX_ENTRIES)]
    policy_version: Name
    confidence: Probability | None = None
    stand_down: StandDownInfo | None = None
    exit_intent: ExitIntent | None = None
    cooldown_recommendation_bars: Annotated[int, Field(ge=0)] | None = None
    horizon_bars: Annotated[int, Field(ge=1)] | None = None

    @property
    def event_time(self) -> datetime:
        return self.bar_ts


class ExecutionEvent(ContractModel):
    """`fills`: a fill or a cancel of an order. Key: symbol.

    A ``fill`` must carry ``price``. Round trips are built per (strategy_id, symbol) first-in
    first-out; ``regime`` (optional, added by policyloop's contract v1.1) tags the trip for the
    regime tables, else the regime of the linked or latest decision is used.
    """

    event_id: EventId
    kind: FillKind
    order_id: Name
    strategy_id: Name
    symbol: Name
    classification: Name
    side: Side
    qty: Positive
    ts: UtcDatetime
    price: Positive | None = None
    decision_id: EventId | None = None
    fee: NonNegative = 0.0
    liquidity: Liquidity | None = None
    exit_reason: ExitReason | None = None
    regime: Name | None = None

    @model_validator(mode="after")
    def _fill_has_price(self) -> ExecutionEvent:
        if self.kind is FillKind.FILL and self.price is None:
            raise ValueError("price is required when kind is 'fill'")
        return self

    @property
    def event_time(self) -> datetime:
        return self.ts

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side is Side.BUY else -self.qty


class StandDownScope(ContractModel):
    """What a stand-down covers; a missing field means all."""

    strategy_id: Name | None = None
    symbol: Name | None = None


class StandDownEvent(ContractModel):
    """`stand_down`: start, extend or clear a stand-down. Key: scope strategy_id, or ``*``.

    It covers decisions of its scope with ``ts <= bar_ts < until_ts``; an ``extend`` moves
    ``until_ts``; a ``clear`` at time c ends it for ``bar_ts >= c``. ``until_ts`` is required
    for start and extend and must be after ``ts``.
    """

    event_id: EventId
    ts: UtcDatetime
    action: StandDownAction
    scope: StandDownScope
    reason: Name
    source: StandDownSource
    until_ts: UtcDatetime | None = None

    @model_validator(mode="after")
    def _until_when_needed(self) -> StandDownEvent:
        if self.action is not StandDownAction.CLEAR:
            if self.until_ts is None:
                raise ValueError(f"until_ts is required when action is '{self.action.value}'")
            if self.until_ts <= self.ts:
                raise ValueError("until_ts must be after ts")
        return self

    @property
    def event_time(self) -> datetime:
        return self.ts


Scalar = bool | int | float | Annotated[str, Field(min_length=0)]


class Trigger(ContractModel):
    """One trigger of a plan: its id and parameters (scalars; numbers compare by value)."""

    trigger_id: Name
    params: Annotated[dict[Name, Scalar | None], Field(max_length=MAX_ENTRIES)] = Field(
        default_factory=dict
    )


class PlanEvent(ContractModel):
    """`plans`: a strategy's plan, the input of the no-change replan guard. Key: strategy_id.

    Material: the trigger set (by trigger_id, with params), ``risk_limits`` and
    ``policy_version``. Non-material: everything else (ids, ts, narration, metadata).
    """

    event_id: EventId
    plan_id: Name
    strategy_id: Name
    ts: UtcDatetime
    triggers: Annotated[list[Trigger], Field(max_length=MAX_ENTRIES)]
    risk_limits: FloatMap
    policy_version: Name
    narration: Annotated[str, Field(min_length=0, max_length=NARRATION_MAX)] = ""
    metadata: Annotated[dict[Name, JsonValue], Field(max_length=MAX_ENTRIES)] = Field(
        default_factory=dict
    )

    @property
    def event_time(self) -> datetime:
        return self.ts


class Outcome(ContractModel):
    """`outcomes`: a late label for a decision. Key: symbol.

    ``label`` is 1 when the forward return over ``horizon_bars`` from ``bar_ts`` was positive.
    Its event time is ``label_ts`` (when the label became known), not the decision's bar.
    """

    event_id: EventId
    decision_id: EventId
    strategy_id: Name
    symbol: Name
    bar_ts: UtcDatetime
    horizon_bars: Annotated[int, Field(ge=1)]
    label: Literal[0, 1]
    realized_return: float
    label_ts: UtcDatetime
    label_definition: Name

    @property
    def event_time(self) -> datetime:
        return self.label_ts


InputModel = DecisionRecord | ExecutionEvent | StandDownEvent | PlanEvent | Outcome
