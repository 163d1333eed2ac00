"""Covariate drift: reference, ADWIN trigger + KS confirmation, one signal per shift,
re-reference, feature cap, summary and snapshot/restore."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from builders import flat_decision
from scipy import stats

from models.inputs import DecisionRecord
from models.taxonomy import AlertKind
from processors.core.base import AlertSignal, StateVersionError
from processors.drift.covariate_drift import (
    CovariateDrift,
    CovariateDriftConfig,
    ks_p_value,
    ks_statistic,
    within_symbol_autocorrelation,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def decision(i: int, features: dict[str, float], strategy: str = "momo") -> DecisionRecord:
    bar_ts = T0 + timedelta(minutes=15 * i)
    return flat_decision(f"d{i}", bar_ts, False, strategy_id=strategy, features=features)


def shifted_stream(n: int = 6000, at: int = 3000, seed: int = 11) -> list[DecisionRecord]:
    x = np.random.default_rng(seed).normal(size=(n, 3))
    x[at:, 0] += 1.0
    return [decision(i, {f"f{j}": float(x[i, j]) for j in range(3)}) for i in range(n)]


def run(detector: CovariateDrift, stream: list[DecisionRecord]) -> list[tuple[int, AlertSignal]]:
    found: list[tuple[int, AlertSignal]] = []
    for i, d in enumerate(stream):
        found.extend((i, s) for s in detector.on_decision(d).signals)
    return found


def test_one_shift_gives_one_confirmed_signal() -> None:
    stream = shifted_stream()
    detector = CovariateDrift()
    found = run(detector, stream)
    assert len(found) == 1
    index, signal = found[0]
    assert 3000 < index < 3300
    assert signal.kind is AlertKind.COVARIATE_DRIFT
    assert signal.scope.feature == "f0"
    assert signal.scope.strategy_id == "momo"
    assert signal.scope.classification == "small_cap"
    assert signal.dedup_key == "covariate_drift|momo|small_cap|f0"
    assert signal.source_id == f"d{index}"
    assert signal.event_time == stream[index].bar_ts
    assert signal.p_value is not None and signal.p_value < 0.01
    evidence = signal.evidence
    assert evidence["family_size"] == 3
    assert evidence["n_current"] == 100
    assert evidence["psi"] > 0.25
    assert evidence["effect_size"] == pytest.approx(1.0, abs=0.35)
    orjson.dumps(evidence)
    summary = detector.summary()
    rows = summary["strategies"]["momo"]["small_cap"]
    assert rows["f0"]["detections"] == 1
    assert rows["f0"]["state"] == "monitoring"  # re-referenced on the new regime
    assert rows["f1"]["psi"] < 0.1
    assert summary["detections"] == 1
    orjson.dumps(summary)


def test_reference_phase_and_feature_cap() -> None:
    detector = CovariateDrift(CovariateDriftConfig(reference_size=10, max_features=2))
    for i in range(5):
        detector.on_decision(decision(i, {"a": float(i), "b": 1.0, "c": 2.0}))
    rows = detector.summary()["strategies"]["momo"]["small_cap"]
    assert set(rows) == {"a", "b"}
    assert rows["a"] == {
        "state": "reference",
        "n_reference": 5,
        "triggers": 0,
        "detections": 0,
        "unconfirmed": 0,
    }
    assert detector.ignored_features == 5
    assert detector.metrics()[0].value == 2.0


def test_ks_helpers_against_known_values() -> None:
    ref = np.sort(np.array([0.0, 1.0, 2.0, 3.0]))
    assert ks_statistic(ref, np.array([10.0, 11.0])) == 1.0
    assert ks_statistic(ref, ref.copy()) == 0.0
    assert ks_p_value(0.0, 500, 100) == 1.0
    assert ks_p_value(0.5, 0, 100) == 1.0
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=500), rng.normal(0.3, 1.0, size=100)
    d = ks_statistic(np.sort(a), b)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic)
    assert ks_p_value(d, 500, 100) == pytest.approx(expected.pvalue, rel=0.2)
    # Stephens' corrected lambda in the asymptotic Kolmogorov distribution
    en = math.sqrt(500 * 100 / 600)
    lam = (en + 0.12 + 0.11 / en) * d
    assert ks_p_value(d, 500, 100) == pytest.approx(stats.kstwobign.sf(lam), rel=1e-12)
    # the series 2 sum (-1)^(j-1) exp(-2 j^2 lambda^2) at fractional effective sizes
    en = math.sqrt(80.5 * 40.25 / (80.5 + 40.25))
    lam = (en + 0.12 + 0.11 / en) * 0.2
    series = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 60))
    assert ks_p_value(0.2, 80.5, 40.25) == pytest.approx(series, rel=1e-12)


def test_snapshot_restore_mid_stream_gives_identical_signals() -> None:
    stream = shifted_stream(n=4000, at=3000, seed=12)
    baseline = [(i, s.dedup_key, s.evidence) for i, s in run(CovariateDrift(), stream)]
    assert baseline
    trigger_index = baseline[0][0] - 50  # inside the confirmation period
    for split in (700, trigger_index):
        first = CovariateDrift()
        found = run(first, stream[:split])
        state = orjson.loads(orjson.dumps(first.snapshot()))
        second = CovariateDrift()
        second.restore(state)
        found += [(i + split, s) for i, s in run(second, stream[split:])]
        assert [(i, s.dedup_key, s.evidence) for i, s in found] == baseline
        assert second.summary() == CovariateDrift.summary(_replayed(stream))


def _replayed(stream: list[DecisionRecord]) -> CovariateDrift:
    detector = CovariateDrift()
    run(detector, stream)
    return detector


def test_input_is_not_mutated() -> None:
    features = {"f0": 1.0}
    d = decision(0, features)
    CovariateDrift().on_decision(d)
    assert d.features == {"f0": 1.0}


def test_within_symbol_autocorrelation() -> None:
    rng = np.random.default_rng(4)
    iid = rng.normal(size=2000)
    codes = np.arange(2000, dtype=np.int64) % 4
    assert within_symbol_autocorrelation(iid, codes) < 0.1
    walk = np.zeros((500, 4))
    for t in range(1, 500):
        walk[t] = 0.8 * walk[t - 1] + 0.6 * rng.normal(size=4)
    rho = within_symbol_autocorrelation(walk.reshape(-1), codes)
    assert rho == pytest.approx(0.8, abs=0.1)
    assert within_symbol_autocorrelation(walk.reshape(-1), np.arange(2000, dtype=np.int64)) == 0.0


def test_constant_reference_then_a_step_is_detected_once() -> None:
    stream = [decision(i, {"flag": 0.0 if i < 800 else 1.0}) for i in range(1600)]
    found = run(CovariateDrift(), stream)
    assert [(s.scope.feature, s.evidence["ks_stat"]) for _, s in found] == [("flag", 1.0)]
    assert 800 <= found[0][0] <= 950


def test_config_rejects_a_level_outside_the_unit_interval() -> None:
    message = r"CovariateDriftConfig\.alpha must be > 0 and < 1, got 1\.5"
    with pytest.raises(ValueError, match=message):
        CovariateDriftConfig(alpha=1.5)


def test_restore_refuses_a_snapshot_of_another_state_version() -> None:
    detector = CovariateDrift(CovariateDriftConfig(reference_size=10))
    run(detector, shifted_stream(n=50))
    state = orjson.loads(orjson.dumps(detector.snapshot()))
    with pytest.raises(StateVersionError, match="CovariateDrift: snapshot has state version 0"):
        CovariateDrift().restore({**state, "version": 0})
    CovariateDrift().restore(state)
