"""Concept and calibration drift per (strategy_id, classification), on labelled decisions.

Decisions are joined to their truth by ``processors.drift.truth.TruthJoin`` (outcomes, or later
prices of the same symbol after the horizon). Each labelled decision is one point of its
series, and the series is indexed by decision time: labels arrive out of decision order
(outcomes soon after the horizon, price labels after the outcome grace), so they wait in
``label_order.DecisionTimeOrder`` and enter their series in (bar_ts, decision_id) order once the
watermark has passed bar_ts + ``label_reorder_ms`` (set it to the longest horizon plus the
outcome grace). A signal's event time is max(label time, bar_ts + label_reorder_ms).

Per series, a rolling window of the last ``window`` points (see calibration_stats.py):
- concept drift: river ADWIN on the 0/1 error of the thresholded prediction (predict 1 when
  p_hat >= ``decision_threshold``). A trigger is confirmed once ``confirm_size`` more
  labels have arrived: their error rate against the window at the trigger without its last
  ``confirm_gap`` labels (ADWIN fires ~100-200 labels after a change; at least
  ``min_reference`` labels), one-sided two-proportion test at the Bonferroni level
  ``concept_alpha / number of series``. Only a rise is alerted;
- calibration drift: every ``check_every`` labels (once ``min_labels`` are in), ECE and
  Brier reliability of the window against a bootstrap null for the window's own p_hats
  (``resamples`` draws y* ~ Bernoulli(p_hat), ``default_rng`` seeded by a stable hash of
  (seed, series key, check number)); alert above the (1 - alpha_c) null quantile,
  alpha_c = calibration_alpha / (2 x series with ``min_labels``); then a cooldown of
  ``cooldown_labels`` labels (default ``window``).
Overlapping labels (same symbol, bars closer than the horizon: forward returns that share
bars) are positively correlated, which a Bernoulli null ignores; both tests scale their
variance by the window's estimated design effect (``calibration_stats.design_effect``,
about 3 for 4-bar labels on every bar, 1 for independent labels).
Signals carry ``p_value`` = the family-adjusted (Bonferroni) p-value of the test.

Cost per label: a ring write and an ADWIN update (~2 us with the bookkeeping); statistics
and the bootstrap (~0.5 ms for 200 x 500) run every ``check_every`` labels per series.
State per series: four arrays of ``window`` entries and one ADWIN (~2 KB pickled).
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from models.common import format_utc, utc_from_ms
from models.inputs import DecisionRecord, Outcome
from models.outputs import AlertScope
from models.taxonomy import AlertKind, Severity
from processors.core import metric_names as mn
from processors.core.base import (
    EMPTY,
    HOUR_MS,
    AlertSignal,
    Emitted,
    MetricSample,
    check_state_version,
)
from processors.core.config_checks import (
    NON_NEGATIVE,
    OPEN_UNIT,
    UNIT,
    at_least,
    between,
    check_bounds,
)
from processors.drift.adwin import ADWIN, update_adwin
from processors.drift.calibration_stats import (
    FloatArray,
    RollingCalibration,
    bootstrap_null,
    decompose,
    design_effect,
    error_rate_rise,
    stable_seed,
)
from processors.drift.label_order import DecisionTimeOrder
from processors.drift.multiple_testing import bonferroni_adjust
from processors.drift.truth import Label, TruthConfig, TruthJoin

STATE_VERSION = 1
_COUNTERS = (
    "labelled",
    "since_check",
    "checks",
    "cooldown",
    "horizon",
    "confirm_left",
    "ref_errors",
    "ref_n",
    "concept_detections",
    "calibration_detections",
    "unconfirmed",
)


@dataclass(frozen=True)
class ConceptDriftConfig:
    """Settings (module docstring). Measured with the defaults over 50 seeds of independent
    labels (``python tests/unit/test_detector_calibration.py 50``): 0.14 false alarms per
    10k calibrated labels (concept + calibration); for p_hat 0.6 against a true rate falling
    from 0.6 to 0.3, calibration drift 249 labels after the change (every seed: the first
    check after it) and concept drift 303 (median; max 399), plus ``label_reorder_ms`` of
    event time. ``label_reorder_ms`` should cover the longest horizon plus the grace."""

    truth: TruthConfig = field(default_factory=TruthConfig)
    window: int = 500
    bins: int = 10
    min_labels: int = 200
    check_every: int = 250
    resamples: int = 200
    concept_alpha: float = 0.01
    calibration_alpha: float = 0.005
    seed: int = 0
    adwin_delta: float = 0.002
    confirm_size: int = 200
    confirm_gap: int = 100
    min_reference: int = 100
    decision_threshold: float = 0.5
    cooldown_labels: int | None = None
    label_reorder_ms: int = 7 * HOUR_MS

    def __post_init__(self) -> None:
        """Raise ValueError naming the first field outside its range."""
        window = self.window
        check_bounds(
            self,
            {
                "window": at_least(1),
                "bins": at_least(1),
                "min_labels": between(1, window),
                "check_every": at_least(1),
                "resamples": at_least(2),
                "concept_alpha": OPEN_UNIT,
                "calibration_alpha": OPEN_UNIT,
                "adwin_delta": OPEN_UNIT,
                "confirm_size": between(1, window),
                "confirm_gap": between(0, window - 1),
                "min_reference": at_least(1),
                "decision_threshold": UNIT,
                "cooldown_labels": NON_NEGATIVE,
                "label_reorder_ms": NON_NEGATIVE,
            },
        )


class _Series:
    """One (strategy, classification): window, ADWIN, counters (names in _COUNTERS)."""

    __slots__ = ("detector", "last", "rolling", *_COUNTERS)

    def __init__(self, cfg: ConceptDriftConfig) -> None:
        self.rolling = RollingCalibration(cfg.window, cfg.bins)
        self.detector: Any = ADWIN(delta=cfg.adwin_delta)
        self.labelled = self.since_check = self.checks = self.cooldown = 0
        self.horizon = 1
        self.confirm_left = self.ref_errors = self.ref_n = 0
        self.concept_detections = self.calibration_detections = self.unconfirmed = 0
        self.last: dict[str, float] = {}

    def design_effect(self, residuals: FloatArray) -> float:
        group, index = self.rolling.positions()
        return design_effect(residuals, group, index, self.horizon)


class ConceptDrift:
    """Concept and calibration drift on decisions joined with their labels.

    Call ``on_decision`` for every DecisionRecord, ``on_outcome`` for every Outcome and
    ``on_tick(watermark_ms)`` as event time advances (held price labels are applied, old
    decisions evicted and ordered labels released there); ``flush`` at the end of a finite
    input feeds every label still waiting for its turn.
    """

    takes: ClassVar[Mapping[type, str]] = {DecisionRecord: "on_decision", Outcome: "on_outcome"}
    timers: ClassVar[bool] = True

    def __init__(self, config: ConceptDriftConfig | None = None) -> None:
        self.config = config or ConceptDriftConfig()
        self.truth = TruthJoin(self.config.truth)
        self.order = DecisionTimeOrder(self.config.label_reorder_ms)
        self._series: dict[str, _Series] = {}
        self._checked_series = 0
        self._codes: dict[str, int] = {}

    def on_decision(self, d: DecisionRecord, bar_ms: int | None = None) -> Emitted:
        """``bar_ms``: the decision's bar_ts in ms, when the caller has it already."""
        return self._feed(self.truth.add_decision(d, bar_ms))

    def on_outcome(self, o: Outcome, label_ms: int | None = None) -> Emitted:
        """``label_ms``: the outcome's label_ts in ms, when the caller has it already."""
        return self._feed(self.truth.add_outcome(o, label_ms))

    def on_tick(self, watermark_ms: int) -> Emitted:
        truth = self.truth
        if watermark_ms > truth.watermark and not truth.advance_if_quiet(watermark_ms):
            return self._feed(truth.advance(watermark_ms))
        return EMPTY if self.order.idle(truth.watermark) else self._feed([])

    def flush(self) -> Emitted:
        emitted = Emitted()
        for label in self.order.flush():
            self._add(label, emitted)
        return emitted

    def _feed(self, labels: list[Label]) -> Emitted:
        order = self.order
        watermark = self.truth.watermark
        if not labels and order.idle(watermark):
            return EMPTY
        ready = order.push(labels, watermark)
        if not ready:
            return EMPTY
        emitted = Emitted()
        for label in ready:
            self._add(label, emitted)
        return emitted if emitted.signals else EMPTY

    def _add(self, label: Label, emitted: Emitted) -> None:
        cfg = self.config
        _, strategy_id, classification, p, y, _, _, _, _, price_series, bar_index, horizon = label
        key = f"{strategy_id}|{classification}"
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(cfg)
        code = self._codes.get(price_series)
        if code is None:
            code = self._codes[price_series] = len(self._codes)
        series.rolling.add(p, y, code, bar_index)
        if horizon > series.horizon:
            series.horizon = horizon
        series.labelled += 1
        if series.labelled == cfg.min_labels:
            self._checked_series += 1
        error = 1.0 if (p >= cfg.decision_threshold) != (y == 1) else 0.0
        drift = update_adwin(series.detector, error)
        if series.confirm_left:
            series.confirm_left -= 1
            if not series.confirm_left:
                self._confirm_concept(key, series, label, emitted)
        elif drift:
            self._open_confirmation(series)
        if series.cooldown:
            series.cooldown -= 1
        series.since_check += 1
        if series.since_check >= cfg.check_every and series.rolling.n >= cfg.min_labels:
            series.since_check = 0
            self._check_calibration(key, series, label, emitted)

    def _errors(self, series: _Series) -> FloatArray:
        p, y = series.rolling.arrays()
        errors: FloatArray = ((p >= self.config.decision_threshold) != (y == 1.0)).astype(float)
        return errors

    def _open_confirmation(self, series: _Series) -> None:
        reference = self._errors(series)[: -self.config.confirm_gap]
        if reference.size < self.config.min_reference:
            series.unconfirmed += 1
            return
        series.ref_errors, series.ref_n = int(reference.sum()), int(reference.size)
        series.confirm_left = self.config.confirm_size

    def _confirm_concept(self, key: str, series: _Series, label: Label, emitted: Emitted) -> None:
        cfg = self.config
        errors = self._errors(series)
        after = errors[-cfg.confirm_size :]
        deff = series.design_effect(errors)
        errors_after, n_after = float(after.sum()), int(after.size)
        z, p_raw = error_rate_rise(series.ref_errors, series.ref_n, errors_after, n_after, deff)
        family = max(1, len(self._series))
        adjusted = bonferroni_adjust(p_raw, family)
        if z <= 0.0 or adjusted >= cfg.concept_alpha:
            series.unconfirmed += 1
            return
        series.concept_detections += 1
        before = series.ref_errors / series.ref_n
        evidence: dict[str, Any] = {
            "detector": "adwin",
            "error_rate_before": before,
            "error_rate_after": errors_after / n_after,
            "error_rate_increase": errors_after / n_after - before,
            "n_before": series.ref_n,
            "n_after": n_after,
            "z": z,
            "design_effect": deff,
            "p_value_raw": p_raw,
            "p_value_adjusted": adjusted,
            "alpha": cfg.concept_alpha,
            "family_size": family,
        }
        emitted.signals.append(self._signal(AlertKind.CONCEPT_DRIFT, key, label, evidence))

    def _check_calibration(self, key: str, series: _Series, label: Label, emitted: Emitted) -> None:
        cfg = self.config
        p, y = series.rolling.arrays()
        deff = series.design_effect(y - p)
        seed = stable_seed(cfg.seed, key, series.checks)
        null = bootstrap_null(p, cfg.bins, cfg.resamples, seed, inflation=deff)
        series.checks += 1
        stats = decompose(p, y, cfg.bins)
        family = 2 * max(1, self._checked_series)
        alpha_c = cfg.calibration_alpha / family
        ece_threshold = null.ece.quantile(1.0 - alpha_c)
        rel_threshold = null.reliability.quantile(1.0 - alpha_c)
        ece_p = null.ece.p_value(stats.ece)
        rel_p = null.reliability.p_value(stats.reliability)
        series.last = {
            "ece_threshold": ece_threshold,
            "reliability_threshold": rel_threshold,
            "ece_p_value": ece_p,
            "reliability_p_value": rel_p,
        }
        fired = stats.ece > ece_threshold or stats.reliability > rel_threshold
        if not fired or series.cooldown:
            return
        series.calibration_detections += 1
        series.cooldown = cfg.window if cfg.cooldown_labels is None else cfg.cooldown_labels
        evidence: dict[str, Any] = {
            "n": stats.n,
            "brier": stats.brier,
            "reliability": stats.reliability,
            "resolution": stats.resolution,
            "uncertainty": stats.uncertainty,
            "ece": stats.ece,
            "ece_empirical_p_value": null.ece.empirical_p_value(stats.ece),
            **series.last,
            "p_value_adjusted": bonferroni_adjust(min(ece_p, rel_p), family),
            "mean_p_hat": float(np.mean(p)),
            "label_rate": float(np.mean(y)),
            "alpha": cfg.calibration_alpha,
            "family_size": family,
            "resamples": cfg.resamples,
            "design_effect": deff,
        }
        emitted.signals.append(self._signal(AlertKind.CALIBRATION_DRIFT, key, label, evidence))

    def _signal(
        self, kind: AlertKind, key: str, label: Label, evidence: dict[str, Any]
    ) -> AlertSignal:
        evidence["decision_bar_ts"] = format_utc(utc_from_ms(label.bar_ms))
        evidence["label_source"] = label.source
        event_ms = max(label.label_ms, label.bar_ms + self.config.label_reorder_ms)
        return AlertSignal(
            kind=kind,
            severity=Severity.MEDIUM,
            scope=AlertScope(strategy_id=label.strategy_id, classification=label.classification),
            event_time=utc_from_ms(event_ms),
            evidence=evidence,
            dedup_key=f"{kind.value}|{key}",
            source_id=label.source_id,
            p_value=evidence["p_value_adjusted"],
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per series n labelled, Brier terms, ECE, the last check's thresholds,
        detections; the truth join's label counters; decisions kept."""
        series_out: dict[str, Any] = {}
        for key, s in self._series.items():
            stats = s.rolling.decomposition()
            series_out[key] = {
                "labelled": s.labelled,
                "window_n": stats.n,
                "brier": stats.brier,
                "reliability": stats.reliability,
                "resolution": stats.resolution,
                "uncertainty": stats.uncertainty,
                "ece": stats.ece,
                "ece_threshold": s.last.get("ece_threshold"),
                "reliability_threshold": s.last.get("reliability_threshold"),
                "concept_detections": s.concept_detections,
                "calibration_detections": s.calibration_detections,
                "unconfirmed_triggers": s.unconfirmed,
            }
        labels = {**self.truth.counts, "buffered": len(self.order), "late": self.order.late}
        return {"series": series_out, "labels": labels, "pending_decisions": self.truth.pending}

    def metrics(self) -> list[MetricSample]:
        n = float(len(self._series))
        return [
            MetricSample(mn.DRIFT_DETECTORS, (("kind", AlertKind.CONCEPT_DRIFT.value),), n),
            MetricSample(mn.DRIFT_DETECTORS, (("kind", AlertKind.CALIBRATION_DRIFT.value),), n),
        ]

    def snapshot(self) -> dict[str, Any]:
        series_state = {
            key: {
                "rolling": s.rolling.snapshot(),
                "detector": base64.b64encode(pickle.dumps(s.detector)).decode("ascii"),
                "counters": [getattr(s, name) for name in _COUNTERS],
                "last": dict(s.last),
            }
            for key, s in self._series.items()
        }
        return {
            "version": STATE_VERSION,
            "truth": self.truth.snapshot(),
            "order": self.order.snapshot(),
            "series": series_state,
            "checked_series": self._checked_series,
            "codes": list(self._codes),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state (the detector pickles come from our own snapshots only).
        Raises ``StateVersionError`` for a snapshot of another ``STATE_VERSION``."""
        check_state_version(state, STATE_VERSION, "ConceptDrift")
        self.truth = TruthJoin(self.config.truth)
        self.truth.restore(state["truth"])
        self.order = DecisionTimeOrder(self.config.label_reorder_ms)
        self.order.restore(state["order"])
        self._series = {}
        for key, item in state["series"].items():
            s = _Series(self.config)
            s.rolling.restore(item["rolling"])
            s.detector = pickle.loads(base64.b64decode(item["detector"]))
            for name, value in zip(_COUNTERS, item["counters"], strict=True):
                setattr(s, name, int(value))
            s.last = {str(k): float(v) for k, v in item["last"].items()}
            self._series[str(key)] = s
        self._checked_series = int(state["checked_series"])
        self._codes = {str(name): code for code, name in enumerate(state["codes"])}
