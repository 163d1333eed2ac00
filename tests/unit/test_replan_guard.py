"""Golden tests of the plan fingerprint and the no-change replan guard."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from models.inputs import PlanEvent
from models.outputs import ReplanVerdict
from models.taxonomy import AlertKind, ReplanDecision, Severity
from processors.audit.plan_fingerprint import (
    canonical_scalar,
    empty_view,
    fingerprint,
    material_diff,
    material_view,
)
from processors.audit.replan_guard import ReplanGuard, ReplanGuardConfig, clamp_paths
from processors.core import metric_names as mn
from processors.core.base import Emitted

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def plan_dict(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "plan_id": "p1",
        "strategy_id": "momo",
        "ts": T0.isoformat(),
        "triggers": [
            {"trigger_id": "breakout", "params": {"lookback": 30, "z": 1.5}},
            {"trigger_id": "stop", "params": {"pct": 0.02, "trail": True}},
        ],
        "risk_limits": {"max_gross": 1.0, "max_dd": 0.1},
        "policy_version": "v7",
        "narration": "tighten stops",
        "metadata": {"author": "judge"},
    }
    base.update(overrides)
    return base


def plan(**overrides: Any) -> PlanEvent:
    return PlanEvent.model_validate(plan_dict(**overrides))


def verdict_of(emitted: Emitted) -> ReplanVerdict:
    assert len(emitted.outputs) == 1
    out = emitted.outputs[0]
    assert out.topic == "replan_verdicts"
    assert isinstance(out.value, ReplanVerdict)
    assert out.key == out.value.strategy_id
    return out.value


# -- fingerprint -----------------------------------------------------------------------------


def test_canonical_scalars_numbers_by_value_bools_and_strings_distinct() -> None:
    assert canonical_scalar(30.0) == 30 and type(canonical_scalar(30.0)) is int
    assert canonical_scalar(-0.0) == 0 and type(canonical_scalar(-0.0)) is int
    assert canonical_scalar(0.5) == 0.5
    assert canonical_scalar(True) is True
    assert canonical_scalar("30") == "30"
    assert canonical_scalar(None) is None
    assert canonical_scalar(2**70) == canonical_scalar(2.0**70)
    assert canonical_scalar(2**70 + 1) == {"big_int": str(2**70 + 1)}
    assert canonical_scalar(10**400) == {"big_int": str(10**400)}


def test_material_view_is_canonical() -> None:
    view = material_view(plan())
    assert view == {
        "policy_version": "v7",
        "risk_limits": {"max_dd": 0.1, "max_gross": 1},
        "triggers": [
            {"trigger_id": "breakout", "params": {"lookback": 30, "z": 1.5}},
            {"trigger_id": "stop", "params": {"pct": 0.02, "trail": True}},
        ],
    }
    assert list(view["risk_limits"]) == ["max_dd", "max_gross"]


def test_fingerprint_ignores_order_formatting_and_non_material_fields() -> None:
    reordered = plan(
        event_id="e2",
        plan_id="p2",
        ts=(T0 + timedelta(hours=1)).isoformat(),
        triggers=[
            {"trigger_id": "stop", "params": {"trail": True, "pct": 0.02}},
            {"trigger_id": "breakout", "params": {"z": 1.5, "lookback": 30.0}},
        ],
        risk_limits={"max_dd": 0.1, "max_gross": 1},
        narration="something else entirely",
        metadata={"author": "ops", "nested": {"a": [1, 2]}},
    )
    assert fingerprint(reordered) == fingerprint(plan())
    assert len(fingerprint(plan())) == 64


def test_bool_is_not_one_and_string_is_not_number() -> None:
    one = plan(triggers=[{"trigger_id": "t", "params": {"x": 1}}])
    true = plan(triggers=[{"trigger_id": "t", "params": {"x": True}}])
    text = plan(triggers=[{"trigger_id": "t", "params": {"x": "1"}}])
    floated = plan(triggers=[{"trigger_id": "t", "params": {"x": 1.0}}])
    assert fingerprint(one) == fingerprint(floated)
    assert len({fingerprint(one), fingerprint(true), fingerprint(text)}) == 3
    assert material_diff(material_view(one), material_view(true)) == ["triggers.t.params.x"]
    assert material_diff(material_view(one), material_view(text)) == ["triggers.t.params.x"]


def test_material_diff_paths_sorted() -> None:
    old = material_view(plan())
    new = material_view(
        plan(
            triggers=[
                {"trigger_id": "breakout", "params": {"lookback": 20, "z": 1.5, "k": 2}},
                {"trigger_id": "mean_rev", "params": {}},
            ],
            risk_limits={"max_gross": 1.0, "max_net": 0.5},
            policy_version="v8",
        )
    )
    assert material_diff(old, new) == [
        "policy_version",
        "risk_limits.max_dd",
        "risk_limits.max_net",
        "triggers.breakout.params.k",
        "triggers.breakout.params.lookback",
        "triggers.mean_rev",
        "triggers.stop",
    ]
    assert material_diff(new, new) == []
    assert material_diff(empty_view(), old) == [
        "policy_version",
        "risk_limits.max_dd",
        "risk_limits.max_gross",
        "triggers.breakout",
        "triggers.stop",
    ]


def test_duplicate_trigger_ids_form_a_set_of_members() -> None:
    single = plan(triggers=[{"trigger_id": "t", "params": {"x": 1}}])
    repeated = plan(
        triggers=[
            {"trigger_id": "t", "params": {"x": 1}},
            {"trigger_id": "t", "params": {"x": 1.0}},
        ]
    )
    two = plan(
        triggers=[{"trigger_id": "t", "params": {"x": 2}}, {"trigger_id": "t", "params": {"x": 1}}]
    )
    two_swapped = plan(
        triggers=[{"trigger_id": "t", "params": {"x": 1}}, {"trigger_id": "t", "params": {"x": 2}}]
    )
    assert fingerprint(single) == fingerprint(repeated)  # an exact repeat collapses
    assert fingerprint(two) == fingerprint(two_swapped)  # order does not matter
    assert fingerprint(two) != fingerprint(single)  # both members are material
    assert material_diff(material_view(single), material_view(two)) == ["triggers.t"]


def test_view_survives_json_round_trip() -> None:
    view = material_view(
        plan(triggers=[{"trigger_id": "t", "params": {"big": 2**70 + 1, "f": 2.0**70}}])
    )
    assert material_diff(view, orjson.loads(orjson.dumps(view))) == []


# -- guard -----------------------------------------------------------------------------------


def test_first_plan_accepted_with_all_paths() -> None:
    guard = ReplanGuard()
    verdict = verdict_of(guard.on_plan(plan()))
    assert verdict == ReplanVerdict(
        event_id="e1",
        plan_id="p1",
        strategy_id="momo",
        ts=T0,
        verdict=ReplanDecision.ACCEPTED,
        changed=[
            "policy_version",
            "risk_limits.max_dd",
            "risk_limits.max_gross",
            "triggers.breakout",
            "triggers.stop",
        ],
        reason="first plan",
    )


def test_same_material_plan_suppressed_and_counted() -> None:
    guard = ReplanGuard()
    guard.on_plan(plan())
    verdict = verdict_of(
        guard.on_plan(plan(event_id="e2", plan_id="p2", narration="new words", metadata={}))
    )
    assert verdict.verdict is ReplanDecision.SUPPRESSED
    assert verdict.changed == []
    assert verdict.event_id == "e2"
    assert verdict.reason == "no material change since accepted plan p1"
    assert guard.suppressed_total("momo") == 1
    assert guard.replan_rate_per_day("momo") == 1


def test_changed_plan_accepted_with_paths_and_becomes_reference() -> None:
    guard = ReplanGuard()
    guard.on_plan(plan())
    changed = plan(event_id="e2", plan_id="p2", policy_version="v8")
    verdict = verdict_of(guard.on_plan(changed))
    assert verdict.verdict is ReplanDecision.ACCEPTED
    assert verdict.changed == ["policy_version"]
    assert verdict.reason == "material change in 1 path since accepted plan p1"
    # the reference is now p2: going back to v7 is a change, repeating v8 is not
    assert (
        verdict_of(guard.on_plan(plan(event_id="e3", plan_id="p3", policy_version="v8"))).verdict
        is ReplanDecision.SUPPRESSED
    )
    back = verdict_of(guard.on_plan(plan(event_id="e4", plan_id="p4")))
    assert back.verdict is ReplanDecision.ACCEPTED
    assert back.reason == "material change in 1 path since accepted plan p2"


def test_strategies_are_independent() -> None:
    guard = ReplanGuard()
    guard.on_plan(plan())
    other = verdict_of(guard.on_plan(plan(event_id="e2", strategy_id="carry")))
    assert other.verdict is ReplanDecision.ACCEPTED and other.reason == "first plan"


def test_out_of_order_plan_compares_with_last_accepted_in_arrival_order() -> None:
    guard = ReplanGuard()
    guard.on_plan(plan(ts=(T0 + timedelta(hours=2)).isoformat()))
    late = plan(event_id="e2", plan_id="p0", ts=T0.isoformat(), policy_version="v6")
    verdict = verdict_of(guard.on_plan(late))
    assert verdict.verdict is ReplanDecision.ACCEPTED
    assert verdict.changed == ["policy_version"]
    # the late plan is now the reference
    assert verdict_of(guard.on_plan(plan(event_id="e3", policy_version="v6"))).verdict is (
        ReplanDecision.SUPPRESSED
    )


def _day_plan(i: int, day: int = 0, hour: int = 0) -> PlanEvent:
    ts = T0 + timedelta(days=day, hours=hour, minutes=i)
    return plan(
        event_id=f"d{day}-{i}",
        plan_id=f"p{day}-{i}",
        ts=ts.isoformat(),
        policy_version=f"v{day}-{i}",
    )


def test_churn_signal_once_per_strategy_day_when_limit_passed() -> None:
    guard = ReplanGuard(ReplanGuardConfig(churn_limit_per_day=3))
    signals = []
    for i in range(6):
        signals.extend(guard.on_plan(_day_plan(i)).signals)
    assert len(signals) == 1
    signal = signals[0]
    assert signal.kind is AlertKind.REPLAN_CHURN
    assert signal.severity is Severity.MEDIUM
    assert signal.source_id == "d0-3"
    assert signal.event_time == T0 + timedelta(minutes=3)
    assert signal.scope.strategy_id == "momo" and signal.scope.symbol is None
    assert signal.dedup_key == "replan_churn|momo"
    assert signal.evidence == {
        "strategy_id": "momo",
        "count": 4,
        "limit": 3,
        "day": "2024-03-04",
        "changed_paths": [
            "policy_version",
            "risk_limits.max_dd",
            "risk_limits.max_gross",
            "triggers.breakout",
            "triggers.stop",
        ],
        "plan_id": "p0-3",
    }
    assert guard.replan_rate_per_day("momo") == 6
    # next UTC day: the rate restarts, and a new churn signal may come
    next_day = [guard.on_plan(_day_plan(i, day=1)) for i in range(4)]
    assert guard.replan_rate_per_day("momo") == 4
    assert [len(e.signals) for e in next_day] == [0, 0, 0, 1]
    assert next_day[3].signals[0].evidence["day"] == "2024-03-05"


def test_suppressed_plans_do_not_count_toward_rate() -> None:
    guard = ReplanGuard(ReplanGuardConfig(churn_limit_per_day=1))
    emitted = [guard.on_plan(plan(event_id=f"e{i}")) for i in range(5)]
    assert guard.replan_rate_per_day("momo") == 1
    assert guard.suppressed_total("momo") == 4
    assert all(not e.signals for e in emitted)


def test_late_plan_counts_in_its_own_day_and_rate_follows_current_day() -> None:
    guard = ReplanGuard(ReplanGuardConfig(churn_limit_per_day=1))
    guard.on_plan(_day_plan(0, day=1))
    late = guard.on_plan(_day_plan(0, day=0))  # day 0 kept (days_kept=2)
    assert guard.replan_rate_per_day("momo") == 1
    again = guard.on_plan(_day_plan(1, day=0))
    assert late.signals == [] and len(again.signals) == 1
    assert again.signals[0].evidence["day"] == "2024-03-04"
    # a day older than the days kept is not tallied
    guard.on_plan(_day_plan(0, day=5))
    older = guard.on_plan(_day_plan(2, day=3))
    assert verdict_of(older).verdict is ReplanDecision.ACCEPTED
    assert guard.snapshot()["strategies"]["momo"]["days"] == [
        [19786 + 5, 1, ["policy_version"], False]
    ]


def test_metrics() -> None:
    guard = ReplanGuard()
    guard.on_plan(plan())
    guard.on_plan(plan(event_id="e2"))
    guard.on_plan(plan(event_id="e3", strategy_id="carry"))
    samples = {(s.name, s.labels): s.value for s in guard.metrics()}
    assert samples == {
        (mn.REPLAN_SUPPRESSED_TOTAL, (("strategy_id", "carry"),)): 0.0,
        (mn.REPLAN_RATE_PER_DAY, (("strategy_id", "carry"),)): 1.0,
        (mn.REPLAN_SUPPRESSED_TOTAL, (("strategy_id", "momo"),)): 1.0,
        (mn.REPLAN_RATE_PER_DAY, (("strategy_id", "momo"),)): 1.0,
    }
    assert ReplanGuard().metrics() == []


def test_restore_mid_stream_gives_identical_outputs() -> None:
    stream = [_day_plan(i % 3, hour=i) for i in range(8)] + [_day_plan(i, day=1) for i in range(14)]
    whole = ReplanGuard()
    expected = [whole.on_plan(p) for p in stream]
    first = ReplanGuard()
    got = [first.on_plan(p) for p in stream[:10]]
    state = orjson.loads(orjson.dumps(first.snapshot()))
    second = ReplanGuard()
    second.restore(state)
    got += [second.on_plan(p) for p in stream[10:]]
    assert got == expected
    assert second.snapshot() == whole.snapshot()
    assert second.metrics() == whole.metrics()


def test_input_not_mutated() -> None:
    raw = plan_dict()
    frozen = copy.deepcopy(raw)
    event = PlanEvent.model_validate(raw)
    before = event.model_dump()
    guard = ReplanGuard()
    guard.on_plan(event)
    guard.on_plan(event)
    assert event.model_dump() == before and raw == frozen


def test_long_and_many_paths_fit_the_contract() -> None:
    long_id = "x" * 256
    triggers = [{"trigger_id": f"t{i:03d}", "params": {}} for i in range(255)]
    triggers.append({"trigger_id": long_id, "params": {}})
    verdict = verdict_of(ReplanGuard().on_plan(plan(triggers=triggers, risk_limits={"a": 1.0})))
    assert len(verdict.changed) == 256
    assert verdict.changed[-1] == "+3 more"
    paths = clamp_paths([f"triggers.{long_id}"])
    assert len(paths[0]) == 256 and paths[0].endswith("...")
