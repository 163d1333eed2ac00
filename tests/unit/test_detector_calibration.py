"""Detector calibration: false alarms on no-change data and detection delays at known
change points, for every drift detector with its default configuration. Seeded and small.

Budgets asserted here (one seeded run each):
- false alarms: at most 1 per 10k events per family (covariate: 10k decisions x 5 iid normal
  features, and 10k values of an AR(1) feature with phi 0.9 over 10 symbols; concept +
  calibration: 10k calibrated labels; performance: 10k iid trades);
- covariate drift, 1 sd mean shift of one feature: detected within 250 decisions (ADWIN
  trigger ~60 + a 100-value KS confirmation);
- calibration break, p_hat 0.6 while the true rate falls from 0.6 to 0.3: calibration drift
  within 500 labels (checks every 250 labels), concept drift within 450 labels (ADWIN
  trigger + 200 confirmation labels); delays count decisions of the series (event time
  adds the label reorder delay, 7 h);
- performance drift: a 1 sd drop of pnl_pct within 60 trades, a 0.5 sd drop within 250.

The same scenarios over many seeds (rates per 10k events, delay quantiles):
``.venv/bin/python tests/unit/test_detector_calibration.py 20``
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from builders import flat_decision

from models.inputs import DecisionRecord, Outcome
from models.taxonomy import AlertKind
from processors.drift.concept_drift import ConceptDrift
from processors.drift.covariate_drift import CovariateDrift
from processors.drift.performance_drift import PerformanceDrift
from processors.performance.trades import RoundTrip

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FloatArray = npt.NDArray[np.float64]
BAR = timedelta(minutes=15)
CHANGE = 3000


def decision(
    i: int, features: dict[str, float], p_hat: float = 0.5, symbol: str = "AAA"
) -> DecisionRecord:
    fields = {"symbol": symbol, "p_hat": p_hat, "features": features}
    return flat_decision(f"d{i}", T0 + i * BAR, False, **fields)


def outcome(i: int, label: int) -> Outcome:
    return Outcome.model_construct(
        event_id=f"o{i}",
        decision_id=f"d{i}",
        strategy_id="momo",
        symbol="AAA",
        bar_ts=T0 + i * BAR,
        horizon_bars=1,
        label=1 if label else 0,
        realized_return=0.0,
        label_ts=T0 + i * BAR + BAR / 2,
        label_definition="fwd_return",
    )


# -- detectors over arrays -----------------------------------------------------------------


def covariate_signals(x: FloatArray, symbols: int = 1) -> list[tuple[int, str]]:
    detector = CovariateDrift()
    found: list[tuple[int, str]] = []
    names = [f"f{j}" for j in range(x.shape[1])]
    for i, row in enumerate(x.tolist()):
        d = decision(i, dict(zip(names, row, strict=True)), symbol=f"S{i % symbols}")
        found.extend((i, str(s.scope.feature)) for s in detector.on_decision(d).signals)
    return found


def concept_signals(p: FloatArray, y: FloatArray) -> list[tuple[int, AlertKind]]:
    """(decision index of the point that fired, kind)."""
    drift = ConceptDrift()
    signals = []
    for i, (p_i, y_i) in enumerate(zip(p.tolist(), y.tolist(), strict=True)):
        signals += drift.on_decision(decision(i, {}, p_hat=p_i)).signals
        signals += drift.on_outcome(outcome(i, int(y_i))).signals
    signals += drift.flush().signals
    found = []
    for s in signals:
        bar_ts = datetime.fromisoformat(str(s.evidence["decision_bar_ts"]))
        found.append((int((bar_ts - T0) / BAR), s.kind))
    return found


def performance_signals(x: FloatArray) -> list[int]:
    drift = PerformanceDrift()
    found: list[int] = []
    for i, v in enumerate(x.tolist()):
        t = RoundTrip(
            "momo",
            "AAA",
            "small_cap",
            "trend",
            1,
            1.0,
            i,
            i + 1,
            100.0,
            100.0,
            0.0,
            v * 100,
            v,
            f"f{i}",
        )
        found.extend(i for _ in drift.on_round_trip(t).signals)
    return found


# -- scenarios: (false alarms, {detector: delay or None}) --------------------------------


def iid_features(seed: int) -> int:
    return len(covariate_signals(np.random.default_rng(seed).normal(size=(10_000, 5))))


def autocorrelated_feature(seed: int) -> int:
    rng = np.random.default_rng(seed)
    x = np.zeros((1000, 10))
    for t in range(1, 1000):
        x[t] = 0.9 * x[t - 1] + np.sqrt(1 - 0.81) * rng.normal(size=10)
    return len(covariate_signals(x.reshape(-1, 1), symbols=10))


def shifted_feature(seed: int, shift: float = 1.0) -> tuple[int, int | None]:
    x = np.random.default_rng(seed).normal(size=(CHANGE + 1500, 3))
    x[CHANGE:, 0] += shift
    found = covariate_signals(x)
    false = sum(1 for i, f in found if i < CHANGE or f != "f0")
    delays = [i - CHANGE for i, f in found if i >= CHANGE and f == "f0"]
    return false, delays[0] if delays else None


def calibrated_labels(seed: int) -> int:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.8, 10_000)
    return len(concept_signals(p, (rng.random(10_000) < p).astype(float)))


def calibration_break(seed: int) -> tuple[int, dict[AlertKind, int]]:
    rng = np.random.default_rng(seed)
    n = CHANGE + 600
    truth = np.where(np.arange(n) < CHANGE, 0.6, 0.3)
    found = concept_signals(np.full(n, 0.6), (rng.random(n) < truth).astype(float))
    first: dict[AlertKind, int] = {}
    for i, kind in found:
        if i >= CHANGE:
            first.setdefault(kind, i - CHANGE)
    return sum(1 for i, _ in found if i < CHANGE), first


def iid_returns(seed: int) -> int:
    return len(performance_signals(np.random.default_rng(seed).normal(0.001, 0.01, 10_000)))


def return_drop(seed: int, drop_sd: float) -> tuple[int, int | None]:
    x = np.random.default_rng(seed).normal(0.001, 0.01, CHANGE + 500)
    x[CHANGE:] -= drop_sd * 0.01
    found = performance_signals(x)
    after = [i - CHANGE for i in found if i >= CHANGE]
    return sum(1 for i in found if i < CHANGE), after[0] if after else None


# -- tests -----------------------------------------------------------------------------


def test_covariate_false_alarms_on_iid_features() -> None:
    assert iid_features(101) <= 1


def test_covariate_false_alarms_on_autocorrelated_features() -> None:
    assert autocorrelated_feature(107) <= 1  # iid KS p-values: ~12 per 10k


def test_covariate_delay_for_a_one_sd_shift() -> None:
    false, delay = shifted_feature(102)
    assert false == 0
    assert delay is not None and delay <= 250


def test_concept_and_calibration_false_alarms_on_calibrated_labels() -> None:
    assert calibrated_labels(103) <= 1


def test_calibration_break_delays() -> None:
    false, first = calibration_break(104)
    assert false == 0
    assert first[AlertKind.CALIBRATION_DRIFT] <= 500
    assert first[AlertKind.CONCEPT_DRIFT] <= 450


def test_performance_false_alarms_on_iid_returns() -> None:
    assert iid_returns(105) <= 1


def test_performance_delays_for_mean_drops() -> None:
    for seed, drop_sd, bound in ((106, 1.0, 60), (108, 0.5, 250)):
        false, delay = return_drop(seed, drop_sd)
        assert false == 0
        assert delay is not None and delay <= bound


# -- many seeds ----------------------------------------------------------------------------


def _delays(values: list[int | None]) -> str:
    found = sorted(v for v in values if v is not None)
    missed = len(values) - len(found)
    if not found:
        return f"missed {missed}/{len(values)}"
    median, high = found[len(found) // 2], found[-1]
    return f"median {median}, max {high}, missed {missed}/{len(values)}"


def main(seeds: int) -> None:
    runs = range(1000, 1000 + seeds)
    per_10k = seeds  # every no-change scenario is 10k events a seed
    print(f"seeds: {seeds}")
    print(f"covariate, 5 iid features: {sum(map(iid_features, runs)) / per_10k:.2f} FA / 10k")
    ar = sum(map(autocorrelated_feature, runs)) / per_10k
    print(f"covariate, AR(1) phi 0.9 over 10 symbols: {ar:.2f} FA / 10k")
    for shift in (1.0, 0.5):
        shifted = [shifted_feature(s, shift)[1] for s in runs]
        print(f"covariate, {shift} sd shift delay (decisions): {_delays(shifted)}")
    print(f"concept + calibration: {sum(map(calibrated_labels, runs)) / per_10k:.2f} FA / 10k")
    breaks = [calibration_break(s)[1] for s in runs]
    for kind in (AlertKind.CALIBRATION_DRIFT, AlertKind.CONCEPT_DRIFT):
        print(f"{kind.value} delay (labels): {_delays([b.get(kind) for b in breaks])}")
    print(f"performance: {sum(map(iid_returns, runs)) / per_10k:.2f} FA / 10k")
    for drop in (1.0, 0.5):
        drops = [return_drop(s, drop)[1] for s in runs]
        print(f"performance, {drop} sd drop delay (trades): {_delays(drops)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
