"""Covariate drift: the distribution of each decision feature, per (strategy, classification).

One series per (strategy_id, classification, feature); the set of series is the
multiple-testing family. Per series:
1. reference: the first ``reference_size`` values, then frozen (mean, sd, sorted copy, PSI
   bin edges at its deciles);
2. monitoring: river ADWIN on the standardised value (x - ref_mean) / ref_sd (scale-free);
   a rolling ``current_size`` window of the latest values feeds the summary (PSI, KS);
3. an ADWIN trigger opens a confirmation: the values after it are compared with the
   reference by a two-sample Kolmogorov-Smirnov test, after ``confirm_size`` values and, if
   not yet significant, after 2x and 4x as many (``confirm_looks`` looks, at most
   ``current_size`` values); a drift is signalled when the Bonferroni-adjusted p-value
   (x monitored series x looks) is below ``alpha``, else the trigger is unconfirmed;
4. after a confirmed drift the series re-references on the new regime: the next
   ``reference_size`` values are the new reference, and monitoring resumes after them (so
   one shift gives one signal, with a cooldown of ``reference_size`` values).
ADWIN only reacts to a shift of the mean; a change of spread alone shows in the summary's
KS and PSI but is not alerted. Features are often autocorrelated per symbol (an AR(1)
feature with phi 0.9 gave 12 false alarms per 10k values with iid KS p-values): the
reference's within-symbol lag-1 autocorrelation rho (clamped to [0, 0.95]) shrinks both KS
sample sizes by (1 - rho) / (1 + rho) (AR(1) effective sample size).

Cost: about 1 us per feature value (a ring write and an ADWIN update; ADWIN itself is
~0.2 us in river's Rust core), so no subsampling. State per series: two float arrays of
``reference_size`` and ``current_size`` entries and one ADWIN (~2 KB pickled); at most
``max_features`` features per (strategy, classification) (further ones are counted and
ignored).
"""

from __future__ import annotations

import base64
import math
import pickle
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import kolmogorov

from models.inputs import DecisionRecord
from models.outputs import AlertScope
from models.taxonomy import AlertKind, Severity
from processors.core import metric_names as mn
from processors.core.base import (
    EMPTY,
    AlertSignal,
    Emitted,
    MetricSample,
    WithoutTimers,
    check_state_version,
)
from processors.core.config_checks import OPEN_UNIT, at_least, check_bounds
from processors.drift.adwin import ADWIN, update_adwin
from processors.drift.multiple_testing import bonferroni_adjust

STATE_VERSION = 1
FloatArray = npt.NDArray[np.float64]
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class CovariateDriftConfig:
    """Settings (module docstring). Measured with the defaults over 50 seeds
    (``python tests/unit/test_detector_calibration.py 50``): 0 false alarms in 2.5M iid
    normal values and in 500k values of an AR(1) feature (phi 0.9, 10 symbols); a 1 sd mean
    shift is signalled 159 values after it (median; max 191), a 0.5 sd shift 223 (max 555)."""

    reference_size: int = 500
    current_size: int = 500
    confirm_size: int = 100
    confirm_looks: int = 3
    adwin_delta: float = 0.002
    adwin_clock: int = 32
    alpha: float = 0.01
    psi_bins: int = 10
    max_features: int = 64

    def __post_init__(self) -> None:
        """Raise ValueError naming the first field outside its range."""
        check_bounds(
            self,
            {
                "reference_size": at_least(2),
                "current_size": at_least(1),
                "confirm_size": at_least(1),
                "confirm_looks": at_least(1),
                "adwin_delta": OPEN_UNIT,
                "adwin_clock": at_least(1),
                "alpha": OPEN_UNIT,
                "psi_bins": at_least(2),
                "max_features": at_least(1),
            },
        )


def ks_statistic(reference_sorted: FloatArray, sample: FloatArray) -> float:
    """Two-sample Kolmogorov-Smirnov distance (``reference_sorted`` must be sorted)."""
    sample_sorted = np.sort(sample)
    both = np.concatenate([reference_sorted, sample_sorted])
    cdf_ref = np.searchsorted(reference_sorted, both, side="right") / reference_sorted.size
    cdf_cur = np.searchsorted(sample_sorted, both, side="right") / sample_sorted.size
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def ks_p_value(distance: float, n: float, m: float) -> float:
    """Asymptotic two-sample KS p-value of ``distance`` between samples of sizes n and m
    (effective, possibly fractional sizes): the Kolmogorov distribution's survival function
    (``scipy.special.kolmogorov``) at lambda = (e + 0.12 + 0.11 / e) * distance, with
    e = sqrt(n m / (n + m)) and Stephens' small-sample correction. 1 when a size is <= 0."""
    if n <= 0 or m <= 0:
        return 1.0
    en = math.sqrt(n * m / (n + m))
    return float(kolmogorov((en + 0.12 + 0.11 / en) * distance))


def psi(edges: FloatArray, ref_frac: FloatArray, sample: FloatArray) -> float:
    """Population stability index of ``sample`` against reference bin fractions."""
    if sample.size == 0:
        return 0.0
    counts = np.bincount(np.searchsorted(edges, sample, side="right"), minlength=ref_frac.size)
    cur = np.maximum(counts / sample.size, PSI_FLOOR)
    ref = np.maximum(ref_frac, PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def within_symbol_autocorrelation(values: FloatArray, codes: npt.NDArray[np.int64]) -> float:
    """Lag-1 autocorrelation of consecutive values of the same symbol code (arrival order),
    around the overall mean; clamped to [0, 0.95]; 0 without pairs."""
    order = np.lexsort((np.arange(values.size), codes))
    centred = values[order] - values.mean()
    same = codes[order][1:] == codes[order][:-1]
    pairs = int(same.sum())
    variance = float(np.dot(centred, centred)) / max(1, values.size)
    if pairs == 0 or variance <= 0.0:
        return 0.0
    rho = float(np.dot(centred[1:][same], centred[:-1][same])) / pairs / variance
    return min(max(rho, 0.0), 0.95)


class _Series:
    """One feature's reference, current window and detector (see the module docstring)."""

    __slots__ = (
        "confirming",
        "cur",
        "cur_n",
        "cur_pos",
        "detections",
        "detector",
        "edges",
        "inv_sd",
        "look",
        "ref",
        "ref_codes",
        "ref_frac",
        "ref_mean",
        "ref_sd",
        "ref_sorted",
        "rho",
        "triggers",
        "unconfirmed",
    )

    def __init__(self, current_size: int) -> None:
        self.ref = array("d")
        self.ref_codes = array("q")
        self.rho = 0.0
        self.cur = array("d", bytes(8 * current_size))
        self.cur_pos = 0
        self.cur_n = 0
        self.detector: Any = None
        self.confirming = 0
        self.look = 0
        self.ref_mean = 0.0
        self.ref_sd = 0.0
        self.inv_sd = 0.0
        self.ref_sorted: FloatArray = np.zeros(0)
        self.edges: FloatArray = np.zeros(0)
        self.ref_frac: FloatArray = np.zeros(0)
        self.triggers = 0
        self.detections = 0
        self.unconfirmed = 0

    def derive(self, bins: int) -> None:
        """Reference summaries (recomputed on freeze and on restore, never stored)."""
        values = np.frombuffer(self.ref, dtype=np.float64)
        self.ref_sorted = np.sort(values)
        self.ref_mean = float(values.mean())
        self.ref_sd = float(values.std())
        # a constant reference keeps raw deviations (no overflow, ADWIN sees the step)
        self.inv_sd = 1.0 / self.ref_sd if self.ref_sd > 1e-12 else 1.0
        self.edges = np.unique(np.quantile(values, np.arange(1, bins) / bins))
        counts = np.bincount(
            np.searchsorted(self.edges, values, side="right"), minlength=self.edges.size + 1
        )
        self.ref_frac = counts / values.size
        codes = np.frombuffer(self.ref_codes, dtype=np.int64)
        self.rho = (
            within_symbol_autocorrelation(values, codes) if codes.size == values.size else 0.0
        )

    def recent(self, k: int) -> FloatArray:
        """The latest min(k, cur_n) values, oldest first."""
        size = len(self.cur)
        k = min(k, self.cur_n)
        index = (np.arange(self.cur_pos - k, self.cur_pos)) % size
        return np.frombuffer(self.cur, dtype=np.float64)[index]


class CovariateDrift(WithoutTimers):
    """Covariate drift detection over decision features (see the module docstring)."""

    takes: ClassVar[Mapping[type, str]] = {DecisionRecord: "on_decision"}

    def __init__(self, config: CovariateDriftConfig | None = None) -> None:
        self.config = config or CovariateDriftConfig()
        self._groups: dict[tuple[str, str], dict[str, _Series]] = {}
        self._monitored = 0
        self.ignored_features = 0
        self._symbols: dict[str, int] = {}

    def on_decision(self, d: DecisionRecord, bar_ms: int | None = None) -> Emitted:
        emitted = EMPTY
        group_key = (d.strategy_id, d.classification)
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = {}
        cfg = self.config
        code = self._symbols.get(d.symbol)
        if code is None:
            code = self._symbols[d.symbol] = len(self._symbols)
        size = cfg.current_size
        for name, value in d.features.items():
            series = group.get(name)
            if series is None:
                if len(group) >= cfg.max_features:
                    self.ignored_features += 1
                    continue
                series = group[name] = _Series(size)
            detector = series.detector
            if detector is None:
                series.ref.append(value)
                series.ref_codes.append(code)
                if len(series.ref) >= cfg.reference_size:
                    self._start_monitoring(series)
                continue
            pos = series.cur_pos
            series.cur[pos] = value
            series.cur_pos = pos + 1 if pos + 1 < size else 0
            if series.cur_n < size:
                series.cur_n += 1
            drift = update_adwin(detector, (value - series.ref_mean) * series.inv_sd)
            if series.confirming:
                series.confirming -= 1
                if series.confirming == 0:
                    if emitted is EMPTY:
                        emitted = Emitted()
                    self._confirm(d, name, series, emitted)
            elif drift:
                series.triggers += 1
                series.look = 0
                series.confirming = self._look_size(0)
        return emitted

    def _start_monitoring(self, series: _Series) -> None:
        cfg = self.config
        series.derive(cfg.psi_bins)
        series.detector = ADWIN(delta=cfg.adwin_delta, clock=cfg.adwin_clock)
        series.cur_pos = 0
        series.cur_n = 0
        self._monitored += 1

    def _look_size(self, look: int) -> int:
        """Values after the trigger tested at confirmation look ``look`` (0-based)."""
        return min(self.config.confirm_size << look, self.config.current_size)

    def _confirm(self, d: DecisionRecord, name: str, series: _Series, emitted: Emitted) -> None:
        cfg = self.config
        size = self._look_size(series.look)
        sample = series.recent(size)
        distance = ks_statistic(series.ref_sorted, sample)
        shrink = (1.0 - series.rho) / (1.0 + series.rho)
        p_raw = ks_p_value(distance, series.ref_sorted.size * shrink, sample.size * shrink)
        family = max(1, self._monitored) * max(1, cfg.confirm_looks)
        adjusted = bonferroni_adjust(p_raw, family)
        if adjusted >= cfg.alpha:
            series.look += 1
            if series.look < cfg.confirm_looks and self._look_size(series.look) > size:
                series.confirming = self._look_size(series.look) - size
            else:
                series.unconfirmed += 1
            return
        series.detections += 1
        cur_mean = float(sample.mean())
        evidence: dict[str, Any] = {
            "detector": "adwin+ks",
            "feature": name,
            "ks_stat": distance,
            "p_value_raw": p_raw,
            "p_value_adjusted": adjusted,
            "alpha": cfg.alpha,
            "family_size": max(1, self._monitored),
            "confirm_look": series.look + 1,
            "n_after_trigger": size,
            "psi": psi(series.edges, series.ref_frac, sample),
            "reference_mean": series.ref_mean,
            "reference_sd": series.ref_sd,
            "current_mean": cur_mean,
            "current_sd": float(sample.std()),
            "effect_size": abs(cur_mean - series.ref_mean) * series.inv_sd,
            "n_reference": int(series.ref_sorted.size),
            "n_current": int(sample.size),
            "autocorrelation": series.rho,
        }
        emitted.signals.append(
            AlertSignal(
                kind=AlertKind.COVARIATE_DRIFT,
                severity=Severity.MEDIUM,
                scope=AlertScope(
                    strategy_id=d.strategy_id, classification=d.classification, feature=name
                ),
                event_time=d.bar_ts,
                evidence=evidence,
                dedup_key=f"covariate_drift|{d.strategy_id}|{d.classification}|{name}",
                source_id=d.event_id,
                p_value=adjusted,
            )
        )
        # Re-reference on the new regime: the next reference_size values.
        series.ref = array("d")
        series.ref_codes = array("q")
        series.detector = None
        series.cur_n = 0
        series.cur_pos = 0
        self._monitored -= 1

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per strategy / classification / feature the state, PSI and KS of the
        current window against the reference, and counts of triggers and detections."""
        out: dict[str, Any] = {}
        detections = 0
        for (strategy_id, classification), group in self._groups.items():
            rows: dict[str, Any] = {}
            for name, s in group.items():
                detections += s.detections
                row: dict[str, Any] = {
                    "state": "reference",
                    "n_reference": len(s.ref),
                    "triggers": s.triggers,
                    "detections": s.detections,
                    "unconfirmed": s.unconfirmed,
                }
                if s.detector is not None:
                    sample = s.recent(s.cur_n)
                    distance = ks_statistic(s.ref_sorted, sample) if sample.size else 0.0
                    shrink = (1.0 - s.rho) / (1.0 + s.rho)
                    p_value = ks_p_value(distance, s.ref_sorted.size * shrink, sample.size * shrink)
                    row.update(
                        state="confirming" if s.confirming else "monitoring",
                        n_current=int(sample.size),
                        psi=psi(s.edges, s.ref_frac, sample),
                        ks_stat=distance,
                        ks_p_value=p_value,
                        autocorrelation=s.rho,
                    )
                rows[name] = row
            out.setdefault(strategy_id, {})[classification] = rows
        return {
            "strategies": out,
            "family_size": self._monitored,
            "detections": detections,
            "ignored_features": self.ignored_features,
        }

    def metrics(self) -> list[MetricSample]:
        count = sum(len(group) for group in self._groups.values())
        kind = (("kind", AlertKind.COVARIATE_DRIFT.value),)
        return [MetricSample(mn.DRIFT_DETECTORS, kind, float(count))]

    def snapshot(self) -> dict[str, Any]:
        groups = []
        for (strategy_id, classification), group in self._groups.items():
            rows = []
            for name, s in group.items():
                detector = None
                if s.detector is not None:
                    detector = base64.b64encode(pickle.dumps(s.detector)).decode("ascii")
                counters = [s.confirming, s.look, s.triggers, s.detections, s.unconfirmed]
                rows.append(
                    [
                        name,
                        list(s.ref),
                        list(s.ref_codes),
                        s.recent(s.cur_n).tolist(),
                        detector,
                        counters,
                    ]
                )
            groups.append([strategy_id, classification, rows])
        return {
            "version": STATE_VERSION,
            "groups": groups,
            "monitored": self._monitored,
            "ignored_features": self.ignored_features,
            "symbols": list(self._symbols),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state (the detector pickles come from our own snapshots only).
        Raises ``StateVersionError`` for a snapshot of another ``STATE_VERSION``."""
        check_state_version(state, STATE_VERSION, "CovariateDrift")
        cfg = self.config
        self._groups = {}
        for strategy_id, classification, rows in state["groups"]:
            group: dict[str, _Series] = {}
            for name, ref, codes, current, detector, counters in rows:
                s = _Series(cfg.current_size)
                s.ref = array("d", (float(v) for v in ref))
                s.ref_codes = array("q", (int(v) for v in codes))
                for value in current:
                    s.cur[s.cur_pos] = float(value)
                    s.cur_pos = (s.cur_pos + 1) % len(s.cur)
                s.cur_n = len(current)
                if detector is not None:
                    s.detector = pickle.loads(base64.b64decode(detector))
                    s.derive(cfg.psi_bins)
                s.confirming, s.look, s.triggers, s.detections, s.unconfirmed = (
                    int(v) for v in counters
                )
                group[str(name)] = s
            self._groups[(str(strategy_id), str(classification))] = group
        self._monitored = int(state["monitored"])
        self.ignored_features = int(state["ignored_features"])
        self._symbols = {str(name): code for code, name in enumerate(state["symbols"])}
