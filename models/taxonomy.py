"""The override taxonomy: every code a decision record, fill or stand-down may carry.

These enums are the closed vocabularies of the contract. A producer that sends a code outside
them gets a dead letter naming the field, so that every reason in the audit trail is one the
feedback loop understands. Adding a code is a backwards-compatible change of the models.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """Where a decision was taken."""

    LIVE = "live"
    PAPER = "paper"
    BACKTEST = "backtest"


class ReasonCode(StrEnum):
    """Why target_weight_final is what it is (one decision may carry several)."""

    SIGNAL_ENTRY = "signal_entry"
    SIGNAL_EXIT = "signal_exit"
    SIGNAL_FLIP = "signal_flip"
    REBALANCE = "rebalance"
    HOLD = "hold"
    NO_SIGNAL = "no_signal"
    BASE_WEIGHT = "base_weight"
    TRUST_SCALED = "trust_scaled"
    REGIME_MULTIPLIER = "regime_multiplier"
    VOL_TARGET_SCALED = "vol_target_scaled"
    CAPPED_MAX_ABS_WEIGHT = "capped_max_abs_weight"
    BELOW_REBALANCE_BAND = "below_rebalance_band"
    BELOW_MIN_TRADE_NOTIONAL = "below_min_trade_notional"
    COOLDOWN_ACTIVE = "cooldown_active"
    STAND_DOWN_ACTIVE = "stand_down_active"
    EMERGENCY_EXIT = "emergency_exit"
    DISABLED_COMBINATION = "disabled_combination"
    RISK_CAP = "risk_cap"


class BlockEvent(StrEnum):
    """An execution-side event that blocked, clipped or forced a trade."""

    EMERGENCY_EXIT_VETO_SAME_BAR = "emergency_exit_veto_same_bar"
    EMERGENCY_EXIT_EXECUTED = "emergency_exit_executed"
    STAND_DOWN_BLOCK = "stand_down_block"
    COOLDOWN_BLOCK = "cooldown_block"
    MIN_HOLD_BLOCK = "min_hold_block"
    REBALANCE_BAND_BLOCK = "rebalance_band_block"
    MIN_NOTIONAL_BLOCK = "min_notional_block"
    DISABLED_COMBINATION_BLOCK = "disabled_combination_block"
    RISK_CAP_BLOCK = "risk_cap_block"
    MAX_ABS_WEIGHT_CLIP = "max_abs_weight_clip"


class StandDownSource(StrEnum):
    """Who ordered a stand-down."""

    JUDGE = "judge"
    OPS = "ops"
    RISK_ENGINE = "risk_engine"


class StandDownAction(StrEnum):
    START = "start"
    EXTEND = "extend"
    CLEAR = "clear"


class FillKind(StrEnum):
    FILL = "fill"
    CANCEL = "cancel"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class ExitReason(StrEnum):
    PROFIT_TARGET = "profit_target"
    STOP_LOSS = "stop_loss"
    EMERGENCY = "emergency"
    TIME_LIMIT = "time_limit"
    SIGNAL = "signal"
    REBALANCE = "rebalance"
    OTHER = "other"


class AlertKind(StrEnum):
    COVARIATE_DRIFT = "covariate_drift"
    CONCEPT_DRIFT = "concept_drift"
    CALIBRATION_DRIFT = "calibration_drift"
    PERFORMANCE_DRIFT = "performance_drift"
    REPLAN_CHURN = "replan_churn"
    STAND_DOWN_VIOLATION = "stand_down_violation"
    EMERGENCY_EXIT_VIOLATION = "emergency_exit_violation"
    DATA_QUALITY = "data_quality"


DRIFT_KINDS: tuple[AlertKind, ...] = (
    AlertKind.COVARIATE_DRIFT,
    AlertKind.CONCEPT_DRIFT,
    AlertKind.CALIBRATION_DRIFT,
    AlertKind.PERFORMANCE_DRIFT,
)
"""The alert kinds of the drift detectors (the rest are audits and data quality): the router
bounds their severity alike and the policy loop runs early on a high-severity one."""


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical, for comparisons."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class ReplanDecision(StrEnum):
    ACCEPTED = "accepted"
    SUPPRESSED = "suppressed"


class GateDecision(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"


class CandidateStatus(StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"
    PENDING = "pending"


class Promotion(StrEnum):
    PROMOTED = "promoted"
    KEPT_LAST_GOOD = "kept_last_good"
    ROLLED_BACK = "rolled_back"


class GroupBy(StrEnum):
    CLASSIFICATION = "classification"
    REGIME = "regime"


class PerfWindow(StrEnum):
    D1 = "1d"
    D7 = "7d"
    D30 = "30d"
    ALL = "all"
