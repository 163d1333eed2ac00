"""The policy loop: on an event-time cadence, propose a policy, gate it, promote it or keep
the last-good one, archive everything, and roll a promotion back when it disappoints.

**Inputs** (from the pipeline): ``on_decision`` for every released decision (kept in a
``LoopWindow``), ``on_alert`` for every Alert the router emits, ``on_tick(watermark,
context)`` after the watermark moves; ``due(watermark)`` says whether on_tick would do
anything, so that the costly context is gathered only then.

**Cadence** (event time only): scheduled runs at every ``k * interval_ms + offset_ms``
(default daily at 00:00 UTC) after the first decision, each boundary handled in turn once the
watermark reaches it. An Alert of a drift kind with severity >= ``alert_severity`` triggers a
run ending at its event time (decisions before it), at most one per ``alert_debounce_ms``
(alerts inside the debounce are counted and dropped; the loop's own rollback alerts never
trigger a run).

**A run** ending at E (``run_id = run-<E>-scheduled|alert``) takes the decisions of
[E - window_ms, E) and is skipped (no output) under ``min_decisions``. The data span
[first bar_ts, E) is split in time: the proposer learns from the first 1 - holdout_fraction,
the gate replays the rest (out of sample: gating on the data a candidate was fitted to passes
overfitted candidates; ``holdout_fraction = 0`` gates on the whole window). Stats harness
(whole window), proposer, gate. PASS: the candidate becomes active, a PolicyUpdate is emitted
and the promotion is monitored. FAIL: the last-good policy stays, the candidate is archived
as rejected. Always a PolicyCandidate and a FeedbackSummary. Versions ``v1``, ``v2``, ... in
run order.

**Rollback**: for ``monitor_ms`` (default window_ms) after a promotion, every
``monitor_interval_ms`` the decisions since the promotion are replayed under the promoted and
the previous policy (``evaluation_gate.rollback_check``); past a guardrail (with at least
``monitor_min_bars`` bars) the previous policy is restored: a PolicyUpdate (action
rolled_back), an AlertSignal (performance_drift, high) and a FeedbackSummary (rolled_back).

**Initial champion**: ``initial_policy``, by default ``v0`` with default engine parameters
created at 1970-01-01T00:00:00Z (a fixed epoch: the archive does not depend on the input).
``seed`` is reserved: the loop draws no random numbers (replay and mSPRT are deterministic).
Memory: the window (max(window_ms, monitor_ms) + 1 day of decisions) and the archive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from models.common import EPOCH, to_ms, utc_from_ms
from models.inputs import DecisionRecord
from models.outputs import (
    Alert,
    AlertScope,
    FeedbackSummary,
    Gate,
    PolicyCandidate,
    PolicyUpdate,
    PolicyVersions,
    TimeWindow,
)
from models.policy import EngineParams, PolicyConfig
from models.taxonomy import (
    DRIFT_KINDS,
    AlertKind,
    CandidateStatus,
    GateDecision,
    Promotion,
    Severity,
)
from models.topics import DEFAULT_POLICY_SCOPE as POLICY_SCOPE
from models.topics import FEEDBACK_SUMMARIES, POLICY_CANDIDATES, POLICY_UPDATES
from processors.core import metric_names as mn
from processors.core.base import (
    DAY_MS,
    EMPTY,
    HOUR_MS,
    AlertSignal,
    Emitted,
    MetricSample,
    Output,
    check_state_version,
)
from processors.core.config_checks import NON_NEGATIVE, OPEN_UNIT, POSITIVE, at_least, check_bounds
from processors.policy.archive import PolicyArchive, iso
from processors.policy.gate import EvaluationGateConfig, evaluate, rollback_check
from processors.policy.loop_window import DecisionRow, LoopWindow, LoopWindowConfig, decision_row
from processors.policy.proposer import ProposerConfig, propose
from processors.policy.replay import replay_policies
from processors.policy.stats_harness import StatsHarnessConfig, json_ready, run_stats

STATE_VERSION = 1
ROLLBACK_DEDUP_PREFIX = "policy_rollback|"


def default_policy() -> PolicyConfig:
    """The default initial champion: ``v0``, default engine, created at the epoch."""
    return PolicyConfig(version="v0", created_at=EPOCH, engine=EngineParams())


@dataclass(frozen=True)
class LoopContext:
    """What the pipeline gathers from other processors when a run is due (JSON-ready dicts):
    ``drift`` (e.g. ``{"covariate": covariate.summary(), "concept": concept.summary(),
    "performance": performance_drift.summary()}``) and ``performance``
    (``performance.report(watermark)``)."""

    drift: dict[str, Any] = field(default_factory=dict)
    performance: dict[str, Any] = field(default_factory=dict)


ContextSource = LoopContext | Callable[[], LoopContext] | None
"""A loop context, a function that gathers it (called only when a run needs it), or none."""


def _resolve(context: ContextSource) -> LoopContext:
    if context is None:
        return LoopContext()
    return context if isinstance(context, LoopContext) else context()


@dataclass(frozen=True)
class PolicyLoopConfig:
    """Module docstring. Defaults: daily at 00:00 UTC, 7-day window, 500 decisions to run,
    half the span held out for the gate, alert runs at most every 6 hours, a promotion
    monitored for one window, checked daily (with the scheduled runs, before them) once it
    has 32 bars."""

    interval_ms: int = DAY_MS
    offset_ms: int = 0
    window_ms: int = 7 * DAY_MS
    min_decisions: int = 500
    holdout_fraction: float = 0.5
    seed: int = 0
    alert_severity: Severity = Severity.HIGH
    alert_kinds: tuple[AlertKind, ...] = DRIFT_KINDS
    alert_debounce_ms: int = 6 * HOUR_MS
    monitor_ms: int | None = None
    monitor_interval_ms: int = DAY_MS
    monitor_min_bars: int = 32
    p_hat_source_changed: bool = False
    initial_policy: PolicyConfig | None = None
    gate: EvaluationGateConfig = field(default_factory=EvaluationGateConfig)
    proposer: ProposerConfig = field(default_factory=ProposerConfig)
    stats: StatsHarnessConfig = field(default_factory=StatsHarnessConfig)
    max_rejected: int = 1000

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {
                "interval_ms": POSITIVE,
                "offset_ms": NON_NEGATIVE,
                "window_ms": POSITIVE,
                "min_decisions": at_least(1),
                "holdout_fraction": OPEN_UNIT,
                "alert_debounce_ms": NON_NEGATIVE,
                "monitor_ms": POSITIVE,
                "monitor_interval_ms": POSITIVE,
                "monitor_min_bars": at_least(1),
                "max_rejected": at_least(1),
            },
        )


class PolicyLoop:
    """The processor; see the module docstring."""

    takes: ClassVar[Mapping[type, str]] = {DecisionRecord: "on_decision"}
    timers: ClassVar[bool] = True

    def __init__(self, config: PolicyLoopConfig | None = None) -> None:
        self.config = cfg = config or PolicyLoopConfig()
        self.monitor_ms = cfg.window_ms if cfg.monitor_ms is None else cfg.monitor_ms
        retain = max(cfg.window_ms, self.monitor_ms) + DAY_MS
        self.window = LoopWindow(LoopWindowConfig(retain_ms=retain))
        self.archive = PolicyArchive(cfg.initial_policy or default_policy(), cfg.max_rejected)
        self.next_run_ms: int | None = None
        self.pending_alert_ms: int | None = None
        self.last_alert_run_ms: int | None = None
        self.monitor: dict[str, Any] | None = None
        self.counters = {"candidates": 0, "runs": 0, "skipped": 0, "debounced": 0}

    # -- inputs ----------------------------------------------------------------------------

    def on_decision(self, d: DecisionRecord, bar_ms: int | None = None) -> Emitted:
        """Keep a decision (a DecisionRecord) in the window; starts the schedule.
        ``bar_ms``: its bar_ts in ms, when the caller has it already."""
        self.on_decision_row(decision_row(d, bar_ms))
        return EMPTY

    def on_decision_row(self, row: DecisionRow) -> None:
        """``on_decision`` for a decision given as its ``decision_row`` (what a lane sends the
        global stage)."""
        self.window.add_row(row)
        if self.next_run_ms is None:
            cfg = self.config
            ts = row[1]
            self.next_run_ms = ((ts - cfg.offset_ms) // cfg.interval_ms + 1) * cfg.interval_ms
            self.next_run_ms += cfg.offset_ms

    def on_alert(self, a: Alert) -> None:
        """Note a drift alert for an alert-triggered run (debounced; module docstring)."""
        cfg = self.config
        if a.kind not in cfg.alert_kinds or a.severity.rank < cfg.alert_severity.rank:
            return
        if a.dedup_key.startswith(ROLLBACK_DEDUP_PREFIX):
            return
        t = to_ms(a.event_time)
        last = self.last_alert_run_ms
        if last is not None and t < last + cfg.alert_debounce_ms:
            self.counters["debounced"] += 1
        elif self.pending_alert_ms is None or t < self.pending_alert_ms:
            self.pending_alert_ms = t

    def due(self, watermark_ms: int) -> bool:
        """Whether ``on_tick(watermark_ms, ...)`` would run or check anything (cheap: meant
        to be asked on every tick)."""
        due = self.next_due_ms()
        return due is not None and due <= watermark_ms

    def on_tick(self, watermark_ms: int, context: ContextSource = None) -> Emitted:
        """Everything due up to the watermark, in event-time order (rollback checks first,
        then scheduled runs, then alert runs, at equal times). ``context`` may be a callable
        that builds it: it is called only when a run or a rollback needs it."""
        ctx = context
        emitted = Emitted()
        self.skip_idle_runs(watermark_ms)
        while True:
            t = self.next_due_ms()
            if t is None or t > watermark_ms:
                return emitted
            if self.monitor is not None and self.monitor["next_check_ms"] == t:
                emitted.extend(self._check_promotion(t, ctx))
            elif self.next_run_ms == t:
                self.next_run_ms = t + self.config.interval_ms
                if self.pending_alert_ms == t:  # this run covers the alert
                    self.pending_alert_ms = None
                emitted.extend(self.run(t, "scheduled", ctx))
            else:
                self.pending_alert_ms = None
                self.last_alert_run_ms = t
                emitted.extend(self.run(t, "alert", ctx))

    def skip_idle_runs(self, watermark_ms: int) -> None:
        """Count as skipped, in one step, the scheduled runs due up to ``watermark_ms``
        whose window can hold no decision (every decision seen is older than one window):
        each would find nothing and skip. A gap in event time then costs one step, not one
        per interval (a year of daily runs across a gap in the data)."""
        cfg = self.config
        due, latest = self.next_run_ms, self.window.latest_ms
        if due is None or latest is None or self.monitor is not None:
            return
        if self.pending_alert_ms is not None or due > watermark_ms:
            return
        if due - cfg.window_ms <= latest:  # this run's window may still hold decisions
            return
        skipped = (watermark_ms - due) // cfg.interval_ms + 1
        self.counters["skipped"] += skipped
        self.next_run_ms = due + skipped * cfg.interval_ms

    def next_due_ms(self) -> int | None:
        """The earliest event time at which ``on_tick`` has work, if any (cheap)."""
        due = self.next_run_ms
        alert = self.pending_alert_ms
        if alert is not None and (due is None or alert < due):
            due = alert
        if self.monitor is not None:
            check = int(self.monitor["next_check_ms"])
            if due is None or check < due:
                due = check
        return due

    # -- a run -----------------------------------------------------------------------------

    def run(self, end_ms: int, trigger: str, context: ContextSource = None) -> Emitted:
        """One loop run over [end - window_ms, end) (module docstring). Public so that a
        benchmark or an operator can force one; the cadence calls it by itself."""
        cfg = self.config
        start = end_ms - cfg.window_ms
        if self.window.count(start, end_ms) < cfg.min_decisions:
            self.counters["skipped"] += 1
            return Emitted()
        ctx = _resolve(context)
        self.counters["runs"] += 1
        run_id = f"run-{iso(end_ms)}-{trigger}"
        span = self.window.span(start, end_ms)  # sorted once for the three views
        full = span.view(start, end_ms)
        champion = self.archive.last_good()
        data_start = int(full.tape.bar_ts_ms.min())
        split = end_ms - int((end_ms - data_start) * cfg.holdout_fraction)
        fit = span.view(start, split) if cfg.holdout_fraction > 0.0 else full
        test = span.view(split, end_ms) if cfg.holdout_fraction > 0.0 else full
        version = self._next_version()
        created = utc_from_ms(end_ms)
        proposal = propose(fit, champion, version, created, cfg.proposer)
        jobs = [(test.tape, champion), (test.tape, proposal.policy), (full.tape, champion)]
        gate_cfg, n_jobs = cfg.gate, 2 if test is full else 3
        replays = replay_policies(jobs[:n_jobs], gate_cfg.equity, gate_cfg.cost_bps)
        outcome = evaluate(
            test.tape,
            champion,
            proposal.policy,
            cfg.gate,
            champion_result=replays[0],
            candidate_result=replays[1],
            labels=(test.label, test.labelled),
            p_hat_source_changed=cfg.p_hat_source_changed,
        )
        champion_full = replays[-1] if test is not full else outcome.champion
        stats = run_stats(full, champion_full, json_ready(ctx.drift), cfg.stats)
        drift = stats.pop("drift")
        stats["performance"] = json_ready(ctx.performance)
        stats["fit_window"] = [iso(start), iso(split)]
        stats["test_window"] = [iso(split), iso(end_ms)]

        promote, gate = outcome.passed, outcome.gate
        verdict = {"decision": gate.decision.value, "reasons": list(gate.reasons)}
        self.archive.add_candidate(
            proposal.policy, run_id, (start, end_ms), verdict, promote, end_ms
        )
        time_window = TimeWindow(start=utc_from_ms(start), end=created)
        replay = {name: gate.tests.get(name) for name in ("champion", "candidate")}
        evidence = {"changes": proposal.changes, "combos": proposal.combos, "replay": replay}
        evidence.update(fit_window=stats["fit_window"], test_window=stats["test_window"])
        candidate = PolicyCandidate(
            candidate_id=f"{run_id}/{version}",
            version=version,
            parent_version=champion.version,
            created_at=created,
            window=time_window,
            policy=proposal.policy,
            evidence=json_ready(evidence),
            gate=gate,
            status=CandidateStatus.PROMOTED if promote else CandidateStatus.REJECTED,
        )
        emitted = Emitted(outputs=[Output(POLICY_CANDIDATES, candidate.candidate_id, candidate)])
        if promote:
            update = PolicyUpdate(
                version=version,
                previous_version=champion.version,
                promoted_at=created,
                policy=proposal.policy,
            )
            emitted.outputs.append(Output(POLICY_UPDATES, POLICY_SCOPE, update))
            self.monitor = {
                "version": version,
                "previous": champion.version,
                "since_ms": end_ms,
                "until_ms": end_ms + self.monitor_ms,
                "next_check_ms": end_ms + cfg.monitor_interval_ms,
            }
        summary = FeedbackSummary(
            run_id=run_id,
            window=time_window,
            drift=_bounded(drift),
            stats=_bounded(stats),
            gate=gate,
            promotion=Promotion.PROMOTED if promote else Promotion.KEPT_LAST_GOOD,
            policy_versions=PolicyVersions(
                champion=champion.version,
                candidate=version,
                active=self.archive.active_version,
            ),
        )
        emitted.outputs.append(Output(FEEDBACK_SUMMARIES, run_id, summary))
        return emitted

    def _next_version(self) -> str:
        while True:
            self.counters["candidates"] += 1
            version = f"v{self.counters['candidates']}"
            if version not in self.archive:
                return version

    # -- rollback --------------------------------------------------------------------------

    def _check_promotion(self, t: int, ctx: ContextSource) -> Emitted:
        monitor = self.monitor
        assert monitor is not None
        cfg = self.config
        view = self.window.view(int(monitor["since_ms"]), t)
        active = self.archive.get(str(monitor["version"])).policy
        previous = self.archive.get(str(monitor["previous"])).policy
        if view.tape.bar_times.shape[0] >= cfg.monitor_min_bars:
            reasons, tests = rollback_check(view.tape, active, previous, cfg.gate)
            if reasons:
                return self._rollback(
                    str(monitor["previous"]), t, reasons, tests, _resolve(ctx), True
                )
        if t >= int(monitor["until_ms"]):
            self.monitor = None
        else:
            monitor["next_check_ms"] = min(t + cfg.monitor_interval_ms, int(monitor["until_ms"]))
        return Emitted()

    def manual_rollback(self, version: str, at_ms: int, reason: str = "manual") -> Emitted:
        """Make ``version`` active again at event time ``at_ms`` (ValueError if the archive
        refuses: unknown, already active or never active); no alert."""
        return self._rollback(version, at_ms, [f"manual_rollback: {reason}"], {}, None, False)

    def _rollback(
        self,
        version: str,
        t: int,
        reasons: list[str],
        tests: dict[str, Any],
        ctx: LoopContext | None,
        alert: bool,
    ) -> Emitted:
        rolled = self.archive.active_version
        run_id = f"run-{iso(t)}-{'rollback' if alert else 'manual-rollback'}"
        update = self.archive.rollback_update(version, t, "; ".join(reasons), run_id)
        self.monitor = None
        at = utc_from_ms(t)
        since = self.archive.get(rolled).promoted_at_ms
        summary = FeedbackSummary(
            run_id=run_id,
            window=TimeWindow(start=utc_from_ms(min(since or t, t)), end=at),
            drift=_bounded(json_ready(ctx.drift)) if ctx is not None else {},
            stats={"monitor": tests} if tests else {},
            gate=Gate(decision=GateDecision.FAIL, reasons=reasons, tests=tests),
            promotion=Promotion.ROLLED_BACK,
            policy_versions=PolicyVersions(champion=rolled, candidate=None, active=version),
        )
        emitted = Emitted(
            outputs=[
                Output(POLICY_UPDATES, POLICY_SCOPE, update),
                Output(FEEDBACK_SUMMARIES, run_id, summary),
            ]
        )
        if alert:
            emitted.signals.append(
                AlertSignal(
                    kind=AlertKind.PERFORMANCE_DRIFT,
                    severity=Severity.HIGH,
                    scope=AlertScope(),
                    event_time=at,
                    evidence=json_ready(
                        {"rolled_back": rolled, "restored": version, "reasons": reasons, **tests}
                    ),
                    dedup_key=f"{ROLLBACK_DEDUP_PREFIX}{rolled}",
                    source_id=run_id,
                )
            )
        return emitted

    # -- state -----------------------------------------------------------------------------

    def metrics(self) -> list[MetricSample]:
        labels = (("version", self.archive.active_version),)
        return [MetricSample(mn.POLICY_VERSION_INFO, labels, 1.0)]

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "window": self.window.snapshot(),
            "archive": self.archive.snapshot(),
            "next_run_ms": self.next_run_ms,
            "pending_alert_ms": self.pending_alert_ms,
            "last_alert_run_ms": self.last_alert_run_ms,
            "monitor": None if self.monitor is None else dict(self.monitor),
            "counters": dict(self.counters),
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_state_version(state, STATE_VERSION, "PolicyLoop")
        self.window.restore(state["window"])
        self.archive.restore(state["archive"])
        self.next_run_ms = state.get("next_run_ms")
        self.pending_alert_ms = state.get("pending_alert_ms")
        self.last_alert_run_ms = state.get("last_alert_run_ms")
        monitor = state.get("monitor")
        self.monitor = None if monitor is None else dict(monitor)
        self.counters = {str(k): int(v) for k, v in dict(state.get("counters", {})).items()}


def _bounded(values: dict[str, Any]) -> dict[str, Any]:
    """At most 256 top-level entries with 1-256 character keys (the Evidence limits)."""
    return {k: values[k] for k in sorted(k for k in values if 0 < len(k) <= 256)[:256]}
