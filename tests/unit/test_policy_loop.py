"""The policy loop end to end: cadence by event time, alert-triggered runs with debounce,
promotion and rejection outputs, automatic and manual rollback, determinism, snapshot."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from builders import BACKTEST, flat_decision

from models.codec import encode
from models.common import to_ms
from models.inputs import DecisionRecord
from models.outputs import Alert, AlertScope, FeedbackSummary, PolicyCandidate, PolicyUpdate
from models.policy import EngineParams, PolicyConfig
from models.taxonomy import AlertKind, Promotion, Severity
from processors.core import metric_names as mn
from processors.core.base import AlertSignal, Output
from processors.policy.gate import EvaluationGateConfig
from processors.policy.loop import LoopContext, PolicyLoop, PolicyLoopConfig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=15)
DAY_MS = 86_400_000
V0 = PolicyConfig(
    version="v0",
    created_at=T0,
    engine=EngineParams(tau=0.05, vol_target=0.002, epsilon_w=0.02, cooldown_bars=0),
)
CONFIG = PolicyLoopConfig(
    window_ms=4 * DAY_MS,
    min_decisions=100,
    initial_policy=V0,
    gate=EvaluationGateConfig(batch_bars=2),
    monitor_interval_ms=6 * 3_600_000,
)


def market(
    days: int, seed: int = 1, flip_at_day: float | None = None, edge: float = 0.2
) -> list[DecisionRecord]:
    """Classification ``good`` (4 symbols, +edge) and ``bad`` (2 symbols, -edge); from
    ``flip_at_day`` on the edges swap sign. Sorted by (bar_ts, symbol)."""
    rng = np.random.default_rng(seed)
    bars = days * 96
    out: list[DecisionRecord] = []
    for cls, sign, count in (("good", 1.0, 4), ("bad", -1.0, 2)):
        for k in range(count):
            returns = rng.normal(0.0, 0.002, bars)
            price = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
            flip = np.ones(bars)
            if flip_at_day is not None:
                flip[int(flip_at_day * 96) :] = -1.0
            agree = rng.random(bars) < 0.5 + sign * edge * flip
            direction = np.where(agree, np.sign(returns), -np.sign(returns))
            for t in range(bars):
                out.append(
                    flat_decision(
                        f"{cls}{k}-{t}",
                        T0 + t * BAR,
                        **BACKTEST,
                        symbol=f"{cls}{k}",
                        classification=cls,
                        price=float(price[t]),
                        p_hat=0.5 + float(direction[t]) * 0.1,
                        features={"x": float(rng.normal())},
                    )
                )
    return sorted(out, key=lambda d: (d.bar_ts, d.symbol))


def alert(at: datetime, severity: Severity = Severity.HIGH, dedup: str = "concept|s") -> Alert:
    return Alert(
        alert_id=f"a-{at.isoformat()}",
        kind=AlertKind.CONCEPT_DRIFT,
        severity=severity,
        scope=AlertScope(strategy_id="s"),
        event_time=at,
        evidence={},
        recommended_actions=[],
        dedup_key=dedup,
    )


def drive(
    loop: PolicyLoop,
    records: list[DecisionRecord],
    alerts: dict[int, list[Alert]] | None = None,
) -> tuple[list[Output], list[AlertSignal]]:
    """Feed records as the pipeline does: before each new bar, on_tick(bar - 1); alerts
    keyed by record index are handed over just before that record."""
    outputs: list[Output] = []
    signals: list[AlertSignal] = []
    last = None
    for index, record in enumerate(records):
        for a in (alerts or {}).get(index, []):
            loop.on_alert(a)
        ts = to_ms(record.bar_ts)
        if last is not None and ts != last and loop.due(ts - 1):
            emitted = loop.on_tick(ts - 1, LoopContext(drift={"alerts": 0}))
            outputs.extend(emitted.outputs)
            signals.extend(emitted.signals)
        loop.on_decision(record)
        last = ts
    return outputs, signals


def of_type(outputs: list[Output], kind: type) -> list:  # type: ignore[type-arg]
    return [o.value for o in outputs if isinstance(o.value, kind)]


def test_scheduled_runs_daily_at_midnight_utc_of_event_time() -> None:
    outputs, _ = drive(PolicyLoop(CONFIG), market(4))
    summaries = of_type(outputs, FeedbackSummary)
    assert [s.run_id for s in summaries] == [
        f"run-2024-01-0{d}T00:00:00Z-scheduled" for d in (2, 3, 4)
    ]
    for s in summaries:
        assert s.window.end - s.window.start == timedelta(days=4)
        assert s.window.end.hour == 0 and s.window.end.minute == 0
    for o in outputs:
        assert o.topic in ("policy_candidates", "policy_updates", "feedback_summaries")
        key = {"policy_updates": "default", "feedback_summaries": getattr(o.value, "run_id", "")}
        assert o.key == key.get(o.topic, getattr(o.value, "candidate_id", None))


def test_interval_and_offset_are_configurable() -> None:
    config = replace(CONFIG, interval_ms=DAY_MS // 2, offset_ms=DAY_MS // 4)
    outputs, _ = drive(PolicyLoop(config), market(2))
    ends = [s.window.end.strftime("%dT%H") for s in of_type(outputs, FeedbackSummary)]
    assert ends == ["01T06", "01T18", "02T06", "02T18"]


def test_a_promotion_then_rejections_with_their_outputs() -> None:
    loop = PolicyLoop(CONFIG)
    outputs, signals = drive(loop, market(4))
    assert signals == []
    candidates = of_type(outputs, PolicyCandidate)
    updates = of_type(outputs, PolicyUpdate)
    summaries = of_type(outputs, FeedbackSummary)
    assert [c.status.value for c in candidates] == ["promoted", "rejected", "rejected"]
    first = candidates[0]
    assert first.version == "v1" and first.parent_version == "v0"
    assert "s|bad" in first.policy.disabled and first.gate.decision.value == "PASS"
    changes: list[dict[str, Any]] = first.evidence["changes"]
    assert any(c["key"] == "s|bad" for c in changes)
    assert [(u.version, u.previous_version, u.action) for u in updates] == [
        ("v1", "v0", Promotion.PROMOTED)
    ]
    assert [s.promotion for s in summaries] == [
        Promotion.PROMOTED,
        Promotion.KEPT_LAST_GOOD,
        Promotion.KEPT_LAST_GOOD,
    ]
    assert candidates[1].parent_version == "v1" and candidates[1].gate.reasons
    assert summaries[1].policy_versions.model_dump() == {
        "champion": "v1",
        "candidate": "v2",
        "active": "v1",
    }
    assert summaries[0].drift == {"alerts": 0}
    assert {"feature_importance", "regimes", "combos", "performance"} <= set(summaries[0].stats)
    assert loop.metrics()[0].name == mn.POLICY_VERSION_INFO
    assert loop.metrics()[0].labels == (("version", "v1"),)
    assert [e.status for e in loop.archive.entries()] == [
        "superseded",
        "active",
        "rejected",
        "rejected",
    ]


def test_alert_triggered_runs_are_debounced() -> None:
    records = market(2)
    at = {i: to_ms(r.bar_ts) for i, r in enumerate(records)}

    def index_at(hour: float) -> int:
        target = to_ms(T0) + int(hour * 3_600_000)
        return min(i for i, t in at.items() if t >= target)

    alerts = {
        index_at(30): [alert(T0 + timedelta(hours=29, minutes=50))],
        index_at(31): [alert(T0 + timedelta(hours=30, minutes=50))],  # debounced
        index_at(33): [alert(T0 + timedelta(hours=32), Severity.MEDIUM)],  # too mild
        index_at(34): [alert(T0 + timedelta(hours=33), dedup="policy_rollback|v1")],  # ours
        index_at(40): [alert(T0 + timedelta(hours=39))],
    }
    loop = PolicyLoop(replace(CONFIG, alert_debounce_ms=6 * 3_600_000))
    outputs, _ = drive(loop, records, alerts)
    ids = [s.run_id for s in of_type(outputs, FeedbackSummary)]
    assert ids == [
        "run-2024-01-02T00:00:00Z-scheduled",
        "run-2024-01-02T05:50:00Z-alert",
        "run-2024-01-02T15:00:00Z-alert",
    ]
    assert loop.counters["debounced"] == 1


def test_a_collapsing_promotion_is_rolled_back_with_an_alert() -> None:
    loop = PolicyLoop(CONFIG)
    outputs, signals = drive(loop, market(3, seed=4, flip_at_day=1.0, edge=0.3))
    updates = of_type(outputs, PolicyUpdate)
    assert updates[0].action is Promotion.PROMOTED and updates[0].version == "v1"
    rollback = updates[1]
    assert rollback.action is Promotion.ROLLED_BACK
    assert (rollback.version, rollback.previous_version) == ("v0", "v1")
    assert rollback.reason and rollback.policy == V0
    assert rollback.promoted_at == T0 + timedelta(days=1, hours=12)  # the second check
    assert len(signals) == 1
    signal = signals[0]
    assert signal.kind is AlertKind.PERFORMANCE_DRIFT and signal.severity is Severity.HIGH
    assert signal.evidence["rolled_back"] == "v1" and signal.evidence["reasons"]
    assert signal.dedup_key == "policy_rollback|v1"
    summary = next(s for s in of_type(outputs, FeedbackSummary) if s.run_id.endswith("rollback"))
    assert summary.promotion is Promotion.ROLLED_BACK
    assert summary.policy_versions.active == "v0" and summary.gate.decision.value == "FAIL"
    assert loop.archive.get("v1").status == "rolled_back"
    assert loop.archive.active_version == "v0" and loop.monitor is None
    loop.on_alert(alert(signal.event_time, dedup=signal.dedup_key))  # never re-triggers
    assert loop.pending_alert_ms is None


def test_manual_rollback_and_lineage() -> None:
    loop = PolicyLoop(CONFIG)
    records = market(3)
    drive(loop, records)
    assert loop.archive.active_version == "v1" and "v2" in loop.archive
    at = to_ms(T0 + timedelta(days=2, hours=1))
    emitted = loop.manual_rollback("v0", at, "ops request")
    assert emitted.signals == []
    update = of_type(emitted.outputs, PolicyUpdate)[0]
    assert update.action is Promotion.ROLLED_BACK and update.version == "v0"
    assert update.reason == "manual_rollback: ops request"
    summary = of_type(emitted.outputs, FeedbackSummary)[0]
    assert summary.promotion is Promotion.ROLLED_BACK
    assert summary.run_id == "run-2024-01-03T01:00:00Z-manual-rollback"
    with pytest.raises(ValueError):
        loop.manual_rollback("v2", at)  # rejected, never active
    loop.run(to_ms(records[-1].bar_ts) + 1, "manual")  # the next candidate descends from v0
    assert loop.archive.ancestors("v3") == ["v0"]
    assert loop.archive.ancestors("v2") == ["v1", "v0"]
    assert loop.archive.descendants("v0") == ["v1", "v2", "v3"]
    assert loop.archive.descendants("v1") == ["v2"]


def test_too_few_decisions_skip_the_run() -> None:
    loop = PolicyLoop(replace(CONFIG, min_decisions=10**6))
    outputs, _ = drive(loop, market(3))
    assert outputs == [] and loop.counters["skipped"] == 2


def encoded(outputs: list[Output]) -> list[bytes]:
    return [o.topic.encode() + b"|" + o.key.encode() + b"|" + encode(o.value) for o in outputs]


def test_the_whole_loop_is_deterministic() -> None:
    records = market(3, seed=4, flip_at_day=1.0, edge=0.3)
    first, second = PolicyLoop(CONFIG), PolicyLoop(CONFIG)
    out_a, sig_a = drive(first, records)
    out_b, sig_b = drive(second, records)
    assert encoded(out_a) == encoded(out_b) and len(out_a) > 3
    assert [s.evidence for s in sig_a] == [s.evidence for s in sig_b]
    assert first.archive.to_json() == second.archive.to_json()


def test_snapshot_mid_stream_then_restore_gives_identical_outputs() -> None:
    records = market(3, seed=4, flip_at_day=1.0, edge=0.3)
    whole, _ = drive(PolicyLoop(CONFIG), records)
    cut = len(records) * 11 // 24  # 09:00 on day 2, while the promotion is monitored
    first = PolicyLoop(CONFIG)
    before, _ = drive(first, records[:cut])
    state = orjson.loads(orjson.dumps(first.snapshot()))
    assert state["monitor"] is not None
    second = PolicyLoop(CONFIG)
    second.restore(state)
    assert orjson.dumps(second.snapshot()) == orjson.dumps(state)
    rest: list[Output] = []
    last = to_ms(records[cut - 1].bar_ts)
    for record in records[cut:]:  # continue exactly where drive() stopped
        ts = to_ms(record.bar_ts)
        if ts != last and second.due(ts - 1):
            rest.extend(second.on_tick(ts - 1, LoopContext(drift={"alerts": 0})).outputs)
        second.on_decision(record)
        last = ts
    assert encoded(before + rest) == encoded(whole)


def test_nothing_is_due_before_the_first_boundary_and_an_alert_at_it_is_folded() -> None:
    loop = PolicyLoop(CONFIG)
    assert not loop.due(2**62) and loop.on_tick(2**62).outputs == []
    records = market(2)
    midnight = T0 + timedelta(days=1)
    first_of_day_2 = next(i for i, r in enumerate(records) if r.bar_ts >= midnight)
    outputs, _ = drive(loop, records, {first_of_day_2 - 1: [alert(midnight)]})
    ids = [s.run_id for s in of_type(outputs, FeedbackSummary)]
    assert ids == ["run-2024-01-02T00:00:00Z-scheduled"]
    assert not loop.due(to_ms(midnight + timedelta(hours=23)))
    assert loop.due(to_ms(midnight + timedelta(days=1)))
