"""Alert router: severity policy, recommended actions, event-time dedup / rate limit /
folding, fleet budget, deterministic ids, flush, metrics and snapshot/restore."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from models.common import to_ms
from models.outputs import Alert, AlertScope
from models.taxonomy import AlertKind, Severity
from processors.core import metric_names as mn
from processors.core.alert_router import RECOMMENDED_ACTIONS, AlertRouter, AlertRouterConfig
from processors.core.base import HOUR_MS, AlertSignal, Output

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def signal(
    minutes: float,
    kind: AlertKind = AlertKind.COVARIATE_DRIFT,
    key: str = "covariate_drift|momo|small_cap|rsi",
    source: str | None = None,
    severity: Severity = Severity.MEDIUM,
    p_value: float | None = 0.001,
    evidence: dict[str, Any] | None = None,
) -> AlertSignal:
    return AlertSignal(
        kind=kind,
        severity=severity,
        scope=AlertScope(strategy_id="momo", classification="small_cap"),
        event_time=T0 + timedelta(minutes=minutes),
        evidence=evidence if evidence is not None else {"psi": 0.1, "n": int(minutes)},
        dedup_key=key,
        source_id=source or f"d{minutes}",
        p_value=p_value,
    )


def alerts(outputs: list[Output]) -> list[Alert]:
    assert all(o.topic == "alerts" for o in outputs)
    assert all(o.key == o.value.dedup_key for o in outputs)  # type: ignore[attr-defined]
    return [o.value for o in outputs]  # type: ignore[misc]


def test_first_signal_is_emitted_at_once_with_policy_fields() -> None:
    router = AlertRouter()
    [alert] = alerts(router.route([signal(0)]))
    assert alert.count == 1
    assert alert.kind is AlertKind.COVARIATE_DRIFT
    assert alert.severity is Severity.MEDIUM
    assert alert.event_time == T0
    assert alert.evidence == {"psi": 0.1, "n": 0, "p_value": 0.001}
    assert alert.recommended_actions == list(RECOMMENDED_ACTIONS[AlertKind.COVARIATE_DRIFT])
    text = f"covariate_drift|momo|small_cap|rsi\x1f{to_ms(T0)}\x1fd0".encode()
    assert alert.alert_id == hashlib.sha256(text).hexdigest()[:32]


def test_signals_within_the_rate_limit_are_folded_and_emitted_at_close() -> None:
    router = AlertRouter()
    assert len(router.route([signal(0)])) == 1
    assert router.route([signal(10), signal(20, p_value=1e-9), signal(59)]) == []
    assert router.on_tick(to_ms(T0) + HOUR_MS - 1) == []
    [folded] = alerts(router.on_tick(to_ms(T0) + HOUR_MS))
    assert folded.count == 3
    assert folded.event_time == T0 + timedelta(minutes=10)
    assert folded.severity is Severity.HIGH  # the highest of the folded (p 1e-9)
    assert folded.evidence["n"] == 59  # evidence of the last occurrence
    assert folded.evidence["folded_first_event_time"] == "2024-05-01T09:10:00Z"
    assert folded.evidence["folded_last_event_time"] == "2024-05-01T09:59:00Z"
    text = f"covariate_drift|momo|small_cap|rsi\x1f{to_ms(T0) + 600_000}\x1fd10".encode()
    assert folded.alert_id == hashlib.sha256(text).hexdigest()[:32]
    assert router.on_tick(to_ms(T0) + 5 * HOUR_MS) == []
    assert router.summary()["folded"] == 3


def test_next_signal_after_the_window_closes_it_without_a_tick() -> None:
    router = AlertRouter()
    router.route([signal(0), signal(30)])
    out = alerts(router.route([signal(70)]))
    assert [(a.count, a.event_time) for a in out] == [
        (1, T0 + timedelta(minutes=30)),
        (1, T0 + timedelta(minutes=70)),
    ]
    assert router.on_tick(to_ms(T0) + 10 * HOUR_MS) == []  # nothing folded in the new window


def test_fleet_budget_folds_the_excess_into_its_key() -> None:
    router = AlertRouter(AlertRouterConfig(max_alerts_per_hour=2))
    batch = [signal(i, key=f"covariate_drift|momo|small_cap|f{i}") for i in range(4)]
    assert len(router.route(batch)) == 2
    assert router.summary()["budget_folded"] == 2
    late = alerts(router.on_tick(to_ms(T0) + HOUR_MS + 3 * 60_000))
    assert [(a.dedup_key, a.count) for a in late] == [
        ("covariate_drift|momo|small_cap|f2", 1),
        ("covariate_drift|momo|small_cap|f3", 1),
    ]


def test_budget_exhausted_at_close_waits_another_window_and_flush_ignores_it() -> None:
    router = AlertRouter(AlertRouterConfig(max_alerts_per_hour=1))
    router.route([signal(0), signal(5)])
    router.route([signal(60, key="data_quality|x")])  # spends the 10:00 hour's budget
    assert router.on_tick(to_ms(T0) + HOUR_MS) == []  # no budget left at 10:00
    [flushed] = alerts(router.flush())
    assert flushed.count == 1 and flushed.event_time == T0 + timedelta(minutes=5)
    assert router.flush() == []


def test_severity_policy_per_kind() -> None:
    router = AlertRouter()
    sd = AlertKind.STAND_DOWN_VIOLATION

    def severities(signals: list[AlertSignal]) -> list[Severity]:
        return [a.severity for a in alerts(router.route(signals))]

    repeated = [
        signal(
            h * 120,
            kind=sd,
            key="stand_down_violation|momo|AAA",
            severity=Severity.LOW,
            p_value=None,
        )
        for h in range(3)
    ]
    assert severities(repeated) == [Severity.HIGH, Severity.HIGH, Severity.CRITICAL]
    assert severities([signal(0, key="a", p_value=1e-7)]) == [Severity.HIGH]
    assert severities([signal(0, key="b", evidence={"psi": 0.3})]) == [Severity.HIGH]
    assert severities([signal(0, key="c", severity=Severity.CRITICAL)]) == [Severity.HIGH]
    dq = AlertKind.DATA_QUALITY
    assert severities([signal(0, kind=dq, key="d", severity=Severity.HIGH)]) == [Severity.MEDIUM]
    assert severities([signal(0, kind=dq, key="e", severity=Severity.INFO)]) == [Severity.LOW]


def test_bad_evidence_and_long_keys_never_raise() -> None:
    router = AlertRouter()
    long_key = "covariate_drift|" + "x" * 400
    evidence = {"v": float("nan"), "np": np.float64(0.5), "n": np.int64(3), "t": (1, 2)}
    out = alerts(router.route([signal(0, key=long_key, evidence=evidence)]))
    assert out[0].evidence == {"v": None, "np": 0.5, "n": 3, "t": [1, 2], "p_value": 0.001}
    orjson.dumps(out[0].model_dump(mode="json"))
    assert len(out[0].dedup_key) <= 256


def test_metrics_count_emitted_alerts() -> None:
    router = AlertRouter()
    router.route([signal(0), signal(1), signal(0, key="k2", p_value=1e-8)])
    router.flush()
    samples = {(s.name, s.labels): s.value for s in router.metrics()}
    medium = (("kind", "covariate_drift"), ("severity", "medium"))
    high = (("kind", "covariate_drift"), ("severity", "high"))
    assert samples == {(mn.ALERTS_TOTAL, medium): 2.0, (mn.ALERTS_TOTAL, high): 1.0}


def test_snapshot_restore_mid_stream_gives_identical_outputs() -> None:
    stream: list[tuple[str, Any]] = []
    for i in range(40):
        stream.append(("route", [signal(i * 17, key=f"covariate_drift|k{i % 3}")]))
        stream.append(("tick", to_ms(T0) + i * 17 * 60_000))
    stream.append(("flush", None))

    def run(router: AlertRouter, steps: list[tuple[str, Any]]) -> list[bytes]:
        out: list[Output] = []
        for op, arg in steps:
            out += (
                router.route(arg)
                if op == "route"
                else (router.on_tick(arg) if op == "tick" else router.flush())
            )
        return [orjson.dumps(o.value.model_dump(mode="json")) for o in out]

    baseline = run(AlertRouter(), stream)
    assert len(baseline) > 10
    for split in (9, 33, 60):
        first = AlertRouter()
        got = run(first, stream[:split])
        second = AlertRouter()
        second.restore(orjson.loads(orjson.dumps(first.snapshot())))
        assert got + run(second, stream[split:]) == baseline


def test_every_alert_kind_has_its_severity_bounds_and_actions() -> None:
    """A new AlertKind must say how the router bounds it and what on-call should do."""
    from processors.core.alert_router import SEVERITY_BOUNDS

    for kind in AlertKind:
        assert kind in SEVERITY_BOUNDS, kind
        assert RECOMMENDED_ACTIONS.get(kind), kind
