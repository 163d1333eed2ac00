"""The no-change replan guard: one ReplanVerdict per plan, replan rate and churn alerts.

Contract:
- ``on_plan(plan)`` emits exactly one ReplanVerdict (topic ``replan_verdicts``, key
  strategy_id, ``event_id`` = the plan's). The verdict is ``accepted`` when the plan's
  material content (see processors/audit/plan_fingerprint.py) differs from the strategy's last
  ACCEPTED plan, ``suppressed`` otherwise. A strategy's first plan is accepted with ``changed``
  = every material path of the plan and reason ``first plan``.
- The guard is a gate on the stream of plans: it compares with the last accepted plan in
  ARRIVAL order, also when a plan arrives out of event-time order.
- Replan rate: accepted plans (the first plan included) are tallied per strategy and
  event-time UTC day of the plan's ``ts``. A strategy's *current day* is the UTC day of the
  latest plan ``ts`` it has sent (accepted or suppressed).
  ``policyloop_replan_rate_per_day{strategy_id}`` = accepted plans whose ts falls in the
  strategy's current day (0 once a later day starts). Tallies are kept for the current day
  and the ``days_kept - 1`` days before it; an accepted plan older than that gets its verdict
  but is not tallied.
- Churn: when a strategy's accepted plans in one day pass ``churn_limit_per_day`` (the
  (limit+1)-th), one ``replan_churn`` AlertSignal for that strategy and day, with evidence
  count, limit, day, and the changed paths of that day's accepted plans.
- ``policyloop_no_change_replan_suppressed_total{strategy_id}`` counts suppressed plans.

State, per strategy (bounded by keys): the last accepted material view, its fingerprint and
plan id, the suppressed count, and at most ``days_kept`` day tallies, each with at most 256
changed paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from models.common import EPOCH, MAX_ENTRIES, MAX_STR, to_ms
from models.inputs import PlanEvent
from models.outputs import AlertScope, ReplanVerdict
from models.taxonomy import AlertKind, ReplanDecision, Severity
from models.topics import REPLAN_VERDICTS
from processors.audit.plan_fingerprint import (
    View,
    empty_view,
    material_diff,
    material_view,
    view_fingerprint,
)
from processors.core import metric_names as mn
from processors.core.base import (
    DAY_MS,
    AlertSignal,
    Emitted,
    MetricSample,
    Output,
    WithoutTimers,
    check_state_version,
)
from processors.core.config_checks import at_least, check_bounds

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ReplanGuardConfig:
    """``churn_limit_per_day``: accepted replans a strategy may make in one event-time UTC day
    before a ``replan_churn`` signal (default 12). ``days_kept``: days of tallies kept per
    strategy for plans that arrive late (default 2: the current day and the one before).
    ``churn_severity``: the suggested severity of the churn signal (default medium)."""

    churn_limit_per_day: int = 12
    days_kept: int = 2
    churn_severity: Severity = Severity.MEDIUM

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {"churn_limit_per_day": at_least(1), "days_kept": at_least(1)},
        )


def clamp_text(text: str, limit: int = MAX_STR) -> str:
    """``text`` cut to ``limit`` characters (ending in ``...`` when cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clamp_paths(paths: list[str]) -> list[str]:
    """Sorted paths made to fit a contract list of names: each at most 256 characters, at most
    256 entries; when more, the first 255 and a last entry ``+<n> more``."""
    clamped = sorted({clamp_text(path) for path in paths})
    if len(clamped) > MAX_ENTRIES:
        extra = len(clamped) - (MAX_ENTRIES - 1)
        clamped = [*clamped[: MAX_ENTRIES - 1], f"+{extra} more"]
    return clamped


def day_text(day: int) -> str:
    return (EPOCH + timedelta(days=day)).date().isoformat()


@dataclass(slots=True)
class _DayTally:
    accepted: int = 0
    paths: set[str] = field(default_factory=set)
    alerted: bool = False


@dataclass(slots=True)
class _StrategyState:
    view: View | None = None
    fingerprint: str | None = None
    plan_id: str | None = None
    suppressed: int = 0
    current_day: int | None = None
    days: dict[int, _DayTally] = field(default_factory=dict)


class ReplanGuard(WithoutTimers):
    """Gate on a strategy's plans: accepted when materially new, suppressed otherwise."""

    takes: ClassVar[Mapping[type, str]] = {PlanEvent: "on_plan"}

    def __init__(self, config: ReplanGuardConfig | None = None) -> None:
        self.config = config or ReplanGuardConfig()
        self._strategies: dict[str, _StrategyState] = {}

    def on_plan(self, plan: PlanEvent, ts_ms: int | None = None) -> Emitted:
        """One ReplanVerdict for ``plan``, and a churn signal when the day's limit is passed."""
        state = self._strategies.get(plan.strategy_id)
        if state is None:
            state = self._strategies[plan.strategy_id] = _StrategyState()
        view = material_view(plan)
        plan_print = view_fingerprint(view)
        day = to_ms(plan.ts) // DAY_MS
        self._roll_day(state, day)

        emitted = Emitted()
        if state.view is None:
            decision = ReplanDecision.ACCEPTED
            changed = material_diff(empty_view(), view)
            reason = "first plan"
        elif plan_print == state.fingerprint:
            decision = ReplanDecision.SUPPRESSED
            changed = []
            reason = f"no material change since accepted plan {state.plan_id}"
        else:
            decision = ReplanDecision.ACCEPTED
            changed = material_diff(state.view, view)
            count = len(changed)
            reason = (
                f"material change in {count} path{'s' if count != 1 else ''} "
                f"since accepted plan {state.plan_id}"
            )
        changed = clamp_paths(changed)

        if decision is ReplanDecision.ACCEPTED:
            state.view, state.fingerprint, state.plan_id = view, plan_print, plan.plan_id
            signal = self._tally(state, day, changed, plan)
            if signal is not None:
                emitted.signals.append(signal)
        else:
            state.suppressed += 1

        verdict = ReplanVerdict(
            event_id=plan.event_id,
            plan_id=plan.plan_id,
            strategy_id=plan.strategy_id,
            ts=plan.ts,
            verdict=decision,
            changed=changed,
            reason=clamp_text(reason),
        )
        emitted.outputs.append(Output(REPLAN_VERDICTS, plan.strategy_id, verdict))
        return emitted

    def _roll_day(self, state: _StrategyState, day: int) -> None:
        if state.current_day is not None and day <= state.current_day:
            return
        state.current_day = day
        oldest = day - max(self.config.days_kept, 1) + 1
        for old_day in [d for d in state.days if d < oldest]:
            del state.days[old_day]

    def _tally(
        self, state: _StrategyState, day: int, changed: list[str], plan: PlanEvent
    ) -> AlertSignal | None:
        current_day = day if state.current_day is None else state.current_day
        if day <= current_day - max(self.config.days_kept, 1):
            return None  # older than the days kept: verdict given, not tallied
        tally = state.days.get(day)
        if tally is None:
            tally = state.days[day] = _DayTally()
        tally.accepted += 1
        for path in changed:
            if len(tally.paths) >= MAX_ENTRIES:
                break
            tally.paths.add(path)
        limit = self.config.churn_limit_per_day
        if tally.accepted <= limit or tally.alerted:
            return None
        tally.alerted = True
        return AlertSignal(
            kind=AlertKind.REPLAN_CHURN,
            severity=self.config.churn_severity,
            scope=AlertScope(strategy_id=plan.strategy_id),
            event_time=plan.ts,
            evidence={
                "strategy_id": plan.strategy_id,
                "count": tally.accepted,
                "limit": limit,
                "day": day_text(day),
                "changed_paths": sorted(tally.paths),
                "plan_id": plan.plan_id,
            },
            dedup_key=f"replan_churn|{plan.strategy_id}",
            source_id=plan.event_id,
        )

    # -- reads -------------------------------------------------------------------------------

    def replan_rate_per_day(self, strategy_id: str) -> int:
        """Accepted plans in the strategy's current event-time day (0 for an unknown one)."""
        state = self._strategies.get(strategy_id)
        if state is None or state.current_day is None:
            return 0
        tally = state.days.get(state.current_day)
        return tally.accepted if tally is not None else 0

    def suppressed_total(self, strategy_id: str) -> int:
        state = self._strategies.get(strategy_id)
        return state.suppressed if state is not None else 0

    def metrics(self) -> list[MetricSample]:
        samples: list[MetricSample] = []
        for strategy_id in sorted(self._strategies):
            labels = (("strategy_id", strategy_id),)
            samples.append(
                MetricSample(
                    mn.REPLAN_SUPPRESSED_TOTAL, labels, float(self.suppressed_total(strategy_id))
                )
            )
            samples.append(
                MetricSample(
                    mn.REPLAN_RATE_PER_DAY, labels, float(self.replan_rate_per_day(strategy_id))
                )
            )
        return samples

    # -- state -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        strategies: dict[str, Any] = {}
        for strategy_id in sorted(self._strategies):
            state = self._strategies[strategy_id]
            strategies[strategy_id] = {
                "view": state.view,
                "fingerprint": state.fingerprint,
                "plan_id": state.plan_id,
                "suppressed": state.suppressed,
                "current_day": state.current_day,
                "days": [
                    [day, tally.accepted, sorted(tally.paths), tally.alerted]
                    for day, tally in sorted(state.days.items())
                ],
            }
        return {"version": STATE_VERSION, "strategies": strategies}

    def restore(self, state: dict[str, Any]) -> None:
        check_state_version(state, STATE_VERSION, "ReplanGuard")
        restored: dict[str, _StrategyState] = {}
        for strategy_id, item in state.get("strategies", {}).items():
            current_day = item.get("current_day")
            restored[str(strategy_id)] = _StrategyState(
                view=item.get("view"),
                fingerprint=item.get("fingerprint"),
                plan_id=item.get("plan_id"),
                suppressed=int(item.get("suppressed", 0)),
                current_day=None if current_day is None else int(current_day),
                days={
                    int(day): _DayTally(int(accepted), {str(p) for p in paths}, bool(alerted))
                    for day, accepted, paths, alerted in item.get("days", [])
                },
            )
        self._strategies = restored
