"""Performance drift: reference warm-up, PageHinkley on standardised returns, one signal per
drop with its evidence, degenerate inputs and snapshot/restore."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from models.taxonomy import AlertKind
from processors.core.base import AlertSignal
from processors.drift.performance_drift import PerformanceDrift, PerformanceDriftConfig
from processors.performance.trades import RoundTrip

T0_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


def trip(i: int, pnl_pct: float, strategy: str = "momo") -> RoundTrip:
    return RoundTrip(
        strategy_id=strategy,
        symbol="AAA",
        classification="small_cap",
        regime="trend",
        direction=1,
        qty=1.0,
        entry_ts_ms=T0_MS + i * 60_000,
        exit_ts_ms=T0_MS + i * 60_000 + 30_000,
        entry_notional=100.0,
        exit_notional=100.0 + pnl_pct * 100,
        fees=0.0,
        pnl=pnl_pct * 100,
        pnl_pct=pnl_pct,
        close_event_id=f"fill-{i}",
    )


def returns(n: int = 3000, drop_at: int = 2000, drop_sd: float = 1.0, seed: int = 4) -> list[float]:
    x = np.random.default_rng(seed).normal(0.002, 0.01, n)
    x[drop_at:] -= drop_sd * 0.01
    return [float(v) for v in x]


def run(
    drift: PerformanceDrift, values: list[float], start: int = 0
) -> list[tuple[int, AlertSignal]]:
    found: list[tuple[int, AlertSignal]] = []
    for i, v in enumerate(values, start=start):
        found.extend((i, s) for s in drift.on_round_trip(trip(i, v)).signals)
    return found


def test_drop_gives_one_signal_with_evidence() -> None:
    drift = PerformanceDrift()
    found = run(drift, returns())
    assert len(found) == 1
    index, signal = found[0]
    assert 2000 < index < 2060
    assert signal.kind is AlertKind.PERFORMANCE_DRIFT
    assert signal.dedup_key == "performance_drift|momo"
    assert signal.scope.strategy_id == "momo"
    assert signal.source_id == f"fill-{index}"
    assert signal.event_time.timestamp() * 1000 == T0_MS + index * 60_000 + 30_000
    evidence = signal.evidence
    assert evidence["mean_before"] == pytest.approx(0.002, abs=0.003)
    assert evidence["mean_after"] < evidence["mean_before"] - 0.005
    assert evidence["n_before"] == 100
    assert evidence["effect_size"] > 0.5
    assert signal.p_value is not None and signal.p_value < 0.01
    orjson.dumps(evidence)
    summary = drift.summary()["strategies"]["momo"]
    assert summary["detections"] == 1
    assert summary["trades"] == 3000
    orjson.dumps(drift.summary())


def test_warm_up_and_degenerate_returns_never_raise() -> None:
    drift = PerformanceDrift(PerformanceDriftConfig(warmup_trades=10))
    assert run(drift, [0.01] * 10) == []
    assert drift.summary()["strategies"]["momo"]["state"] == "monitoring"
    found = run(drift, [0.01] * 50 + [-0.05] * 50, start=10)  # zero reference spread
    assert len(found) == 1
    assert drift.on_round_trip(trip(200, float("inf"))).signals == []
    assert drift.metrics()[0].value == 1.0


def test_snapshot_restore_mid_stream_gives_identical_signals() -> None:
    values = returns(n=2600, drop_at=2000, drop_sd=0.5, seed=9)
    baseline = [(i, s.evidence) for i, s in run(PerformanceDrift(), values)]
    assert baseline
    for split in (50, 2010):
        first = PerformanceDrift()
        found = run(first, values[:split])
        second = PerformanceDrift()
        second.restore(orjson.loads(orjson.dumps(first.snapshot())))
        found += run(second, values[split:], start=split)
        assert [(i, s.evidence) for i, s in found] == baseline


def test_config_rejects_a_warm_up_too_short_for_an_sd() -> None:
    message = r"PerformanceDriftConfig\.warmup_trades must be >= 2, got 1"
    with pytest.raises(ValueError, match=message):
        PerformanceDriftConfig(warmup_trades=1)
