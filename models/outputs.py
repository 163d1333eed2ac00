"""The payloads policyloop writes (CONTRACT.md, "Output topics").

Every output id is derived from the ids of the inputs that caused it, so a consumer can dedupe
a redelivered output and a replay gives the same ids.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, JsonValue

from models.common import (
    MAX_ENTRIES,
    MAX_STR,
    EventId,
    Name,
    NonNegative,
    OutputModel,
    UtcDatetime,
    clip_text,
)
from models.policy import PolicyConfig
from models.taxonomy import (
    AlertKind,
    CandidateStatus,
    GateDecision,
    GroupBy,
    PerfWindow,
    Promotion,
    ReplanDecision,
    Severity,
)

Evidence = Annotated[dict[Name, JsonValue], Field(max_length=MAX_ENTRIES)]
Names = Annotated[list[Name], Field(max_length=MAX_ENTRIES)]
RAW_MAX_BYTES = 64 * 1024
MESSAGE_MAX = 2048


class AlertScope(OutputModel):
    strategy_id: Name | None = None
    symbol: Name | None = None
    classification: Name | None = None
    regime: Name | None = None
    feature: Name | None = None


class Alert(OutputModel):
    """`alerts`. ``alert_id`` is derived from ``dedup_key`` and the event time of the first
    occurrence; ``count`` is the number of occurrences folded into it (rate limit)."""

    alert_id: Name
    kind: AlertKind
    severity: Severity
    scope: AlertScope
    event_time: UtcDatetime
    evidence: Evidence
    recommended_actions: Names
    dedup_key: Name
    count: Annotated[int, Field(ge=1)] = 1


class ReplanVerdict(OutputModel):
    """`replan_verdicts`: one per plan; ``changed`` lists the material paths that differ from
    the strategy's last accepted plan (all of them for a first plan)."""

    event_id: EventId
    plan_id: Name
    strategy_id: Name
    ts: UtcDatetime
    verdict: ReplanDecision
    changed: Names
    reason: Name


class TimeWindow(OutputModel):
    start: UtcDatetime
    end: UtcDatetime


class Gate(OutputModel):
    """An evaluation gate's result: every reason for a FAIL, and the tests it ran."""

    decision: GateDecision
    reasons: Names
    tests: Evidence


class PolicyCandidate(OutputModel):
    """`policy_candidates`: a proposed policy with its evidence and gate result."""

    candidate_id: Name
    version: Name
    parent_version: Name | None
    created_at: UtcDatetime
    window: TimeWindow
    policy: PolicyConfig
    evidence: Evidence
    gate: Gate
    status: CandidateStatus


class PolicyUpdate(OutputModel):
    """`policy_updates` (compacted, key = policy scope): the last-good policy is the latest."""

    version: Name
    previous_version: Name | None
    promoted_at: UtcDatetime
    policy: PolicyConfig
    action: Promotion = Promotion.PROMOTED
    reason: Name | None = None


class PolicyVersions(OutputModel):
    champion: Name
    candidate: Name | None = None
    active: Name


class FeedbackSummary(OutputModel):
    """`feedback_summaries`: one per loop run."""

    run_id: Name
    window: TimeWindow
    drift: Evidence
    stats: Evidence
    gate: Gate
    promotion: Promotion
    policy_versions: PolicyVersions


class PerformanceRow(OutputModel):
    """`performance` (compacted, key = ``strategy_id|group|window``).

    Over the round trips closed in the window (by event time): win_rate = wins / trades;
    avg_return and total_return are the mean and sum of pnl_pct; sharpe = mean / std (ddof=1)
    of pnl_pct, null under 2 trades or zero spread; max_drawdown is the largest peak-to-trough
    fall of cumulative pnl (>= 0); turnover = fill notional / mean equity of the decisions.
    """

    strategy_id: Name
    group_by: GroupBy
    group: Name
    window: PerfWindow
    trade_count: Annotated[int, Field(ge=0)]
    win_count: Annotated[int, Field(ge=0)]
    win_rate: float
    avg_return: float
    total_return: float
    sharpe: float | None
    max_drawdown: NonNegative
    avg_hold_seconds: NonNegative
    turnover: NonNegative
    fees: NonNegative
    cancel_count: Annotated[int, Field(ge=0)]
    as_of: UtcDatetime


class DeadLetterError(OutputModel):
    type: Name
    message: Annotated[str, Field(min_length=1, max_length=MESSAGE_MAX)]
    field: Name | None = None


SOURCE_TOPIC_MAX = 1024
KEY_MAX = 1024


class DeadLetter(OutputModel):
    """`dead_letters`: a record that failed to decode or validate, kept with the reason.

    ``raw`` is the original text, cut to 64 KiB (``raw_truncated`` says so). ``source_offset``
    is the record's position in its source (line number in a replay file, partition:offset on
    Kafka) when known.
    """

    source_topic: Annotated[str, Field(min_length=1, max_length=SOURCE_TOPIC_MAX)]
    key: Annotated[str, Field(min_length=0, max_length=KEY_MAX)] | None
    raw: Annotated[str, Field(min_length=0, max_length=RAW_MAX_BYTES)]
    error: DeadLetterError
    raw_truncated: bool = False
    source_offset: Name | None = None

    @classmethod
    def clipped(
        cls,
        *,
        source_topic: str,
        key: str | None,
        raw: str,
        error_type: str,
        message: str,
        field: str | None,
        source_offset: str | None,
        cut_before: bool = False,
    ) -> DeadLetter:
        """A dead letter with every value clipped to this model's limits, so that building
        it cannot fail whatever the rejected record held (a 1,100-character topic, a huge
        key, a field path through a 300-character feature name). ``raw`` is cut to
        ``RAW_MAX_BYTES`` bytes, and ``raw_truncated`` says so (also when the caller had cut
        it already: ``cut_before``)."""
        encoded = raw.encode("utf-8")
        truncated = len(encoded) > RAW_MAX_BYTES
        if truncated:
            raw = encoded[:RAW_MAX_BYTES].decode("utf-8", errors="ignore")
        return cls(
            source_topic=clip_text(source_topic, SOURCE_TOPIC_MAX, "unknown"),
            key=None if key is None else clip_text(key, KEY_MAX),
            raw=raw,
            error=DeadLetterError(
                type=clip_text(error_type, MAX_STR, "invalid"),
                message=clip_text(message, MESSAGE_MAX, "invalid record"),
                field=clip_text(field, MAX_STR) if field else None,
            ),
            raw_truncated=truncated or cut_before,
            source_offset=clip_text(source_offset, MAX_STR) if source_offset else None,
        )
