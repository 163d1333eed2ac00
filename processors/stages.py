"""The stage table: every stage of the pipeline in one place, with its configuration.

A stage is a processor (``processors.core.base.Processor``): it declares the inputs it takes
(``takes``: input type -> name of its ``(value, event_ms) -> Emitted`` handler), whether it
has timers (``timers``: ``on_tick(upto_ms) -> Emitted``), and keeps ``snapshot`` / ``restore``
/ ``metrics``. The pipeline derives from this table its routing (which handlers an input
reaches, in table order), the names of the state in a snapshot, the metrics it reports, the
policy loop's drift context and what runs at the end of a finite input. Adding a detector is
one entry here, one field in ``PipelineConfig`` and its module.

Two stages are fleet-wide (``scope="global"``) and wired by the global stage itself: the
alert ``router``, which every lane's signals pass through, and the ``policy_loop``, which
ticks on its own cadence with a context gathered from the lanes and hears the router's
alerts. Every other stage keeps state per strategy and runs in the strategy's lane
(processors/lane.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from processors.audit import (
    EmergencyExitAudit,
    EmergencyExitConfig,
    ReplanGuard,
    ReplanGuardConfig,
    StandDownBook,
    StandDownConfig,
)
from processors.core import AlertRouter, AlertRouterConfig, DedupConfig, Emitted, Processor
from processors.core.base import DAY_MS
from processors.core.config_checks import NON_NEGATIVE, POSITIVE, check_bounds
from processors.drift import (
    ConceptDrift,
    ConceptDriftConfig,
    CovariateDrift,
    CovariateDriftConfig,
    PerformanceDrift,
    PerformanceDriftConfig,
)
from processors.performance import PerformanceConfig, PerformanceTables
from processors.policy import PolicyLoop, PolicyLoopConfig


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's configuration; the defaults are the embedded default of the demo."""

    allowed_lateness_ms: int = 15 * 60 * 1000
    max_event_time_ahead_ms: int | None = 7 * DAY_MS
    """A record whose event time is further than this ahead of the latest event time seen is
    a dead letter (``event_time_out_of_bounds``): one record dated a year ahead would
    otherwise move the watermark a year and make the rest of the stream late. None: no
    bound."""
    max_event_time_behind_ms: int | None = 7 * DAY_MS
    """A record further than this behind the watermark is a dead letter too (by default the
    dedup horizon: a duplicate that old could no longer be recognised). None: no bound."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    # compacted topic: one snapshot of every changed row per event-time day is plenty
    performance: PerformanceConfig = field(
        default_factory=lambda: PerformanceConfig(snapshot_interval_ms=DAY_MS)
    )
    replan: ReplanGuardConfig = field(default_factory=ReplanGuardConfig)
    stand_down: StandDownConfig = field(
        default_factory=lambda: StandDownConfig(allowed_lateness_ms=0)
    )
    emergency_exit: EmergencyExitConfig = field(default_factory=EmergencyExitConfig)
    covariate: CovariateDriftConfig = field(default_factory=CovariateDriftConfig)
    concept: ConceptDriftConfig = field(default_factory=ConceptDriftConfig)
    performance_drift: PerformanceDriftConfig = field(default_factory=PerformanceDriftConfig)
    alerts: AlertRouterConfig = field(default_factory=AlertRouterConfig)
    policy_loop: PolicyLoopConfig = field(default_factory=PolicyLoopConfig)

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {
                "allowed_lateness_ms": NON_NEGATIVE,
                "max_event_time_ahead_ms": POSITIVE,
                "max_event_time_behind_ms": POSITIVE,
            },
        )


StageScope = Literal["lane", "global"]
"""Where a stage runs: in every strategy's lane (its state is per strategy: one instance per
strategy_id) or in the one global stage (fleet-wide state, fed by the lanes)."""

FinishPhase = Literal["signals", "rows"]
"""When a stage's ``finish`` runs at the end of a finite input: ``signals`` before the alert
router flushes (what it reports still becomes alerts), ``rows`` after (final tables)."""


@dataclass(frozen=True)
class StageSpec:
    """One row of the stage table.

    ``name`` is the stage's key in a lane's or the global stage's snapshot; ``build`` makes it
    from the pipeline's configuration; ``scope`` says whether it runs per strategy (``lane``)
    or fleet-wide (``global``); ``drift_summary`` names its ``summary()`` in the policy loop's
    drift context; ``finish`` (with its phase) is what it emits at the end of a finite input,
    given the final event time.
    """

    name: str
    build: Callable[[PipelineConfig], Processor]
    scope: StageScope = "lane"
    drift_summary: str | None = None
    finish: Callable[[Any, int], Emitted] | None = None
    finish_phase: FinishPhase = "signals"


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "performance",
        lambda c: PerformanceTables(c.performance),
        finish=lambda stage, end_ms: stage.flush(end_ms),
        finish_phase="rows",
    ),
    StageSpec("replan_guard", lambda c: ReplanGuard(c.replan)),
    StageSpec(
        "stand_downs",
        lambda c: StandDownBook(c.stand_down),
        finish=lambda stage, end_ms: stage.flush(),
    ),
    StageSpec("emergency_exits", lambda c: EmergencyExitAudit(c.emergency_exit)),
    StageSpec("covariate", lambda c: CovariateDrift(c.covariate), drift_summary="covariate"),
    StageSpec(
        "concept",
        lambda c: ConceptDrift(c.concept),
        drift_summary="concept",
        finish=lambda stage, end_ms: stage.flush(),
    ),
    StageSpec(
        "performance_drift",
        lambda c: PerformanceDrift(c.performance_drift),
        drift_summary="performance",
    ),
    StageSpec("router", lambda c: AlertRouter(c.alerts), scope="global"),
    StageSpec("policy_loop", lambda c: PolicyLoop(c.policy_loop), scope="global"),
)
"""Every stage, in routing order: an input reaches the stages that take its type in this
order, and their outputs (then their signals, through the router) go out in this order."""

LANE_STAGES: tuple[StageSpec, ...] = tuple(spec for spec in STAGES if spec.scope == "lane")
GLOBAL_STAGES: tuple[StageSpec, ...] = tuple(spec for spec in STAGES if spec.scope == "global")
