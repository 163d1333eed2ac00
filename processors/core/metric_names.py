"""The one catalogue of metric names. Drivers register exactly these; processors report
samples under these names. Labels never carry a symbol (cardinality)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...]


PREFIX = "policyloop_"

EVENTS_TOTAL = "policyloop_events_total"
REPLAN_SUPPRESSED_TOTAL = "policyloop_no_change_replan_suppressed_total"
REPLAN_RATE_PER_DAY = "policyloop_replan_rate_per_day"
TRADE_COUNT = "policyloop_trade_count"
TURNOVER = "policyloop_turnover"
AVG_HOLD_TIME_SECONDS = "policyloop_avg_hold_time_seconds"
CANCEL_COUNT = "policyloop_cancel_count"
ALERTS_TOTAL = "policyloop_alerts_total"
POLICY_VERSION_INFO = "policyloop_policy_version_info"
WATERMARK_SECONDS = "policyloop_watermark_seconds"
WIN_RATE = "policyloop_win_rate"
DRIFT_DETECTORS = "policyloop_drift_detectors"
STAND_DOWNS_ACTIVE = "policyloop_stand_downs_active"
LATE_EVENTS_TOTAL = "policyloop_late_events_total"
BUFFERED_EVENTS = "policyloop_buffered_events"

CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec(
        EVENTS_TOTAL,
        "counter",
        "Input records by topic and outcome (processed, duplicate, dead_letter).",
        ("topic", "outcome"),
    ),
    MetricSpec(
        REPLAN_SUPPRESSED_TOTAL,
        "counter",
        "Plans suppressed by the no-change replan guard.",
        ("strategy_id",),
    ),
    MetricSpec(
        REPLAN_RATE_PER_DAY,
        "gauge",
        "Accepted replans in the current event-time day.",
        ("strategy_id",),
    ),
    MetricSpec(
        TRADE_COUNT,
        "gauge",
        "Closed round trips (window all) per strategy and group.",
        ("strategy_id", "group"),
    ),
    MetricSpec(TURNOVER, "gauge", "Fill notional over mean equity (window all).", ("strategy_id",)),
    MetricSpec(
        AVG_HOLD_TIME_SECONDS, "gauge", "Mean holding time of closed round trips.", ("strategy_id",)
    ),
    MetricSpec(CANCEL_COUNT, "gauge", "Order cancels seen.", ("strategy_id",)),
    MetricSpec(
        ALERTS_TOTAL,
        "counter",
        "Alerts emitted (after dedup and rate limit).",
        ("kind", "severity"),
    ),
    MetricSpec(
        POLICY_VERSION_INFO, "gauge", "1 for the active (last-good) policy version.", ("version",)
    ),
    MetricSpec(WATERMARK_SECONDS, "gauge", "Event-time watermark, seconds since the epoch.", ()),
    MetricSpec(WIN_RATE, "gauge", "Win rate of closed round trips (window all).", ("strategy_id",)),
    MetricSpec(DRIFT_DETECTORS, "gauge", "Online drift detectors running, by kind.", ("kind",)),
    MetricSpec(STAND_DOWNS_ACTIVE, "gauge", "Stand-downs active at the watermark.", ()),
    MetricSpec(
        LATE_EVENTS_TOTAL,
        "counter",
        "Inputs that arrived after the watermark had "
        "passed their event time (processed at once, out of event-time order).",
        ("topic",),
    ),
    MetricSpec(BUFFERED_EVENTS, "gauge", "Inputs held in the event-time reorder buffer.", ()),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}
