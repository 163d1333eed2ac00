"""Audits of what the trading services did: stand-downs honoured (``stand_down_book`` over
``stand_down_timeline``), emergency exits justified, and no-change replans suppressed
(``replan_guard`` over ``plan_fingerprint``)."""

from processors.audit.emergency_exits import EmergencyExitAudit, EmergencyExitConfig
from processors.audit.replan_guard import ReplanGuard, ReplanGuardConfig
from processors.audit.stand_down_book import StandDownBook, StandDownConfig

__all__ = [
    "EmergencyExitAudit",
    "EmergencyExitConfig",
    "ReplanGuard",
    "ReplanGuardConfig",
    "StandDownBook",
    "StandDownConfig",
]
