"""Concept and calibration drift: window statistics, bootstrap thresholds, signals, the
truth join (outcomes, self-labels, orphans) and snapshot/restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from builders import flat_decision

from models.common import to_ms
from models.inputs import DecisionRecord, Outcome
from models.taxonomy import AlertKind
from processors.core.base import HOUR_MS, AlertSignal
from processors.drift.calibration_stats import decompose
from processors.drift.concept_drift import ConceptDrift, ConceptDriftConfig
from processors.drift.truth import TruthConfig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=15)


def decision(i: int, p_hat: float, price: float = 100.0, symbol: str = "AAA") -> DecisionRecord:
    return flat_decision(f"d{i}", T0 + i * BAR, False, symbol=symbol, price=price, p_hat=p_hat)


def outcome(i: int, label: int, decision_id: str | None = None) -> Outcome:
    return Outcome.model_construct(
        event_id=f"o{i}",
        decision_id=decision_id or f"d{i}",
        strategy_id="momo",
        symbol="AAA",
        bar_ts=T0 + i * BAR,
        horizon_bars=4,
        label=1 if label else 0,
        label_ts=T0 + i * BAR + timedelta(minutes=1),
        realized_return=0.0,
        label_definition="fwd_return",
    )


def broken_stream(n: int = 4000, at: int = 3000, seed: int = 5) -> list[tuple[float, int]]:
    rng = np.random.default_rng(seed)
    truth = np.where(np.arange(n) < at, 0.6, 0.3)
    labels = (rng.random(n) < truth).astype(int)
    return [(0.6, int(y)) for y in labels]


def run(
    drift: ConceptDrift, pairs: list[tuple[float, int]], start: int = 0
) -> list[tuple[int, AlertSignal]]:
    found: list[tuple[int, AlertSignal]] = []
    for i, (p, y) in enumerate(pairs, start=start):
        found.extend((i, s) for s in drift.on_decision(decision(i, p)).signals)
        found.extend((i, s) for s in drift.on_outcome(outcome(i, y)).signals)
    return found


def test_summary_matches_the_batch_decomposition() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.1, 0.9, 300)
    y = (rng.random(300) < p).astype(int)
    drift = ConceptDrift(ConceptDriftConfig(window=200))
    run(drift, list(zip(p.tolist(), y.tolist(), strict=True)))
    assert drift.summary()["labels"]["buffered"] == 28  # the last 7 h of 15 m bars
    drift.flush()
    row = drift.summary()["series"]["momo|small_cap"]
    expected = decompose(p[-200:], y[-200:])
    assert row["labelled"] == 300
    assert row["window_n"] == 200
    assert row["brier"] == pytest.approx(expected.brier)
    assert row["reliability"] == pytest.approx(expected.reliability)
    assert row["resolution"] == pytest.approx(expected.resolution)
    assert row["ece"] == pytest.approx(expected.ece)
    assert row["ece_threshold"] is not None and row["ece_threshold"] > row["ece"]
    orjson.dumps(drift.summary())


def test_calibration_break_signals_calibration_and_concept_drift() -> None:
    found = run(ConceptDrift(), broken_stream())
    kinds = [(i, s.kind) for i, s in found]
    calibration = [s for i, s in found if s.kind is AlertKind.CALIBRATION_DRIFT]
    concept = [s for i, s in found if s.kind is AlertKind.CONCEPT_DRIFT]
    assert all(i >= 3000 for i, _ in kinds)
    assert calibration and concept
    signal = calibration[0]
    assert signal.dedup_key == "calibration_drift|momo|small_cap"
    assert signal.scope.strategy_id == "momo" and signal.scope.classification == "small_cap"
    assert signal.p_value is not None and signal.p_value < 0.01
    assert signal.evidence["ece"] > signal.evidence["ece_threshold"]
    assert signal.evidence["label_source"] == "outcome"
    assert signal.source_id.startswith("o")
    assert concept[0].evidence["error_rate_after"] > concept[0].evidence["error_rate_before"]
    assert concept[0].dedup_key == "concept_drift|momo|small_cap"
    orjson.dumps([s.evidence for s in calibration + concept])


def test_bootstrap_seed_makes_runs_repeat_and_matters() -> None:
    pairs = broken_stream(n=1200, at=10_000)

    def thresholds(seed: int) -> float:
        drift = ConceptDrift(ConceptDriftConfig(seed=seed))
        run(drift, pairs)
        value = drift.summary()["series"]["momo|small_cap"]["ece_threshold"]
        assert isinstance(value, float)
        return value

    assert thresholds(1) == thresholds(1)
    assert thresholds(1) != thresholds(2)


def test_orphans_and_unlabelled_are_counted() -> None:
    drift = ConceptDrift()
    drift.on_decision(decision(0, 0.5))
    drift.on_outcome(outcome(1, 1, decision_id="unknown"))
    drift.on_tick(to_ms(T0) + 4 * 24 * HOUR_MS)
    labels = drift.summary()["labels"]
    assert labels["orphan_outcomes"] == 1
    assert labels["unlabelled_evicted"] == 1
    assert drift.summary()["pending_decisions"] == 0


def test_self_labels_from_prices_are_released_on_tick() -> None:
    truth = TruthConfig(outcome_grace_ms=HOUR_MS)
    drift = ConceptDrift(ConceptDriftConfig(truth=truth, label_reorder_ms=0))
    for i in range(10):
        drift.on_decision(decision(i, 0.7, price=100.0 + i))
    # bar 0 settles at bar 4 and is due 1 h later (bar 8): bars 0 and 1 are in by bar 9
    assert drift.summary()["series"]["momo|small_cap"]["labelled"] == 2
    drift.on_tick(to_ms(T0 + 9 * BAR) + HOUR_MS)
    row = drift.summary()["series"]["momo|small_cap"]
    assert row["labelled"] == 6  # bars 0..5 reached their 4-bar horizon
    assert row["brier"] == pytest.approx(0.09)  # (0.7 - 1)^2, prices only rise


def test_series_are_indexed_by_decision_time_not_label_arrival() -> None:
    pairs = broken_stream(n=3400, at=3000, seed=6)
    in_order = ConceptDrift()
    expected = [(s.kind, s.evidence) for _, s in run(in_order, pairs)]
    expected += [(s.kind, s.evidence) for s in in_order.flush().signals]
    assert expected
    shuffled = ConceptDrift()
    got: list[AlertSignal] = []
    block = 8  # outcomes of 8 bars (2 h) arrive together, newest first
    for start in range(0, len(pairs), block):
        for i in range(start, min(start + block, len(pairs))):
            got += shuffled.on_decision(decision(i, pairs[i][0])).signals
        for i in reversed(range(start, min(start + block, len(pairs)))):
            got += shuffled.on_outcome(outcome(i, pairs[i][1])).signals
    got += shuffled.flush().signals
    assert [(s.kind, s.evidence) for s in got] == expected
    assert shuffled.summary()["labels"]["late"] == 0


def test_snapshot_restore_mid_stream_gives_identical_signals() -> None:
    pairs = broken_stream(n=3600, at=3000, seed=8)
    baseline = [(i, s.kind, s.evidence) for i, s in run(ConceptDrift(), pairs)]
    assert baseline
    for split in (1000, 3100):
        first = ConceptDrift()
        found = run(first, pairs[:split])
        state = orjson.loads(orjson.dumps(first.snapshot()))
        second = ConceptDrift()
        second.restore(state)
        found += run(second, pairs[split:], start=split)
        assert [(i, s.kind, s.evidence) for i, s in found] == baseline


def test_config_rejects_min_labels_above_the_window() -> None:
    message = r"ConceptDriftConfig\.min_labels must be >= 1 and <= 500, got 600"
    with pytest.raises(ValueError, match=message):
        ConceptDriftConfig(min_labels=600)
