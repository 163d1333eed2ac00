"""Calibration statistics: Brier score and its Murphy decomposition, ECE, a rolling window
of (p_hat, label) pairs, and the bootstrap null that sets the alert thresholds.

Definitions (B equal-width bins on [0, 1]; bin of p is ``min(floor(p B), B - 1)``; over n
pairs, n_k pairs in bin k with mean forecast pbar_k and mean label ybar_k, ybar overall):
- Brier = mean((p - y)^2);
- reliability = sum_k n_k (pbar_k - ybar_k)^2 / n  (0 for a calibrated forecaster);
- resolution  = sum_k n_k (ybar_k - ybar)^2 / n;
- uncertainty = ybar (1 - ybar);
- Brier = reliability - resolution + uncertainty exactly when every forecast in a bin equals
  the bin's mean (otherwise there is a small within-bin term, Stephenson et al. 2008);
- ECE = sum_k n_k |pbar_k - ybar_k| / n.

Thresholds: ECE and reliability of a perfectly calibrated forecaster are not 0 in a finite
window (about 0.07 ECE at n = 100). The null distribution is simulated for the window's own
p_hats (y* ~ Bernoulli(p_hat), a seeded generator), and a gamma distribution is fitted to the
resampled statistics by moments (both are sums of half-normal / scaled chi-square terms,
which a gamma matches well). Quantiles and p-values come from that fit (the regularised
upper incomplete gamma function and its inverse, ``scipy.special.gammaincc`` /
``gammainccinv``), so that the small per-test levels a Bonferroni correction asks for
(0.01 / 200 series) are resolved without tens of thousands of resamples; the empirical
exceedance p-value of the resamples is reported beside it.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import gammaincc, gammainccinv, ndtr

FloatArray = npt.NDArray[np.float64]


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the text of ``parts`` (blake2b; never Python's salted hash())."""
    text = "\x1f".join(str(part) for part in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


@dataclass(frozen=True, slots=True)
class BrierDecomposition:
    """Brier score and its Murphy terms over ``n`` pairs (see the module docstring)."""

    n: int
    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    ece: float


def decompose(p: npt.ArrayLike, y: npt.ArrayLike, bins: int = 10) -> BrierDecomposition:
    """Brier, reliability, resolution, uncertainty and ECE of forecasts ``p`` for 0/1
    labels ``y``."""
    pa = np.asarray(p, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    n = int(pa.size)
    if n == 0:
        return BrierDecomposition(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    index = np.minimum((pa * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    sum_p = np.bincount(index, weights=pa, minlength=bins).astype(np.float64)
    sum_y = np.bincount(index, weights=ya, minlength=bins).astype(np.float64)
    return _from_sums(n, float(np.sum((pa - ya) ** 2)), count, sum_p, sum_y)


def _from_sums(
    n: int, sq_err: float, count: FloatArray, sum_p: FloatArray, sum_y: FloatArray
) -> BrierDecomposition:
    used = count > 0
    c, sp, sy = count[used], sum_p[used], sum_y[used]
    ybar = float(np.sum(sy)) / n
    gap = sp - sy
    reliability = float(np.sum(gap * gap / c)) / n
    resolution = float(np.sum(c * (sy / c - ybar) ** 2)) / n
    ece = float(np.sum(np.abs(gap))) / n
    return BrierDecomposition(n, sq_err / n, reliability, resolution, ybar * (1 - ybar), ece)


class RollingCalibration:
    """The last ``window`` labelled points in a ring: p_hat, label, and for the dependence
    correction the point's price-series code and bar index (-1 when unknown). Adding costs
    four array writes; statistics are computed on demand (O(window), numpy), which the
    owner does only at its periodic checks and for summaries.

    Memory: 8 + 1 + 8 + 8 bytes per entry of ``window``.
    """

    __slots__ = ("bins", "group_ring", "index_ring", "n", "p_ring", "pos", "window", "y_ring")

    def __init__(self, window: int, bins: int) -> None:
        self.window = window
        self.bins = bins
        self.p_ring = array("d", bytes(8 * window))
        self.y_ring = array("b", bytes(window))
        self.group_ring = array("q", bytes(8 * window))
        self.index_ring = array("q", bytes(8 * window))
        self.pos = 0
        self.n = 0

    def add(self, p: float, y: int, group: int = 0, index: int = -1) -> None:
        pos = self.pos
        self.p_ring[pos] = p
        self.y_ring[pos] = y
        self.group_ring[pos] = group
        self.index_ring[pos] = index
        pos += 1
        self.pos = pos if pos < self.window else 0
        if self.n < self.window:
            self.n += 1

    def _order(self) -> npt.NDArray[np.int64] | slice:
        if self.n < self.window:
            return slice(0, self.n)
        rotated: npt.NDArray[np.int64] = np.r_[self.pos : self.window, 0 : self.pos]
        return rotated

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        """(p, y) of the window, oldest first."""
        order = self._order()
        p = np.frombuffer(self.p_ring, dtype=np.float64)[order].copy()
        y = np.frombuffer(self.y_ring, dtype=np.int8)[order].astype(np.float64)
        return p, y

    def positions(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(price-series code, bar index) of the window, oldest first."""
        order = self._order()
        group = np.frombuffer(self.group_ring, dtype=np.int64)[order].copy()
        return group, np.frombuffer(self.index_ring, dtype=np.int64)[order].copy()

    def decomposition(self) -> BrierDecomposition:
        p, y = self.arrays()
        return decompose(p, y, self.bins)

    def snapshot(self) -> dict[str, Any]:
        p, y = self.arrays()
        group, index = self.positions()
        return {
            "p": p.tolist(),
            "y": [int(v) for v in y],
            "group": group.tolist(),
            "index": index.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.p_ring = array("d", bytes(8 * self.window))
        self.y_ring = array("b", bytes(self.window))
        self.group_ring = array("q", bytes(8 * self.window))
        self.index_ring = array("q", bytes(8 * self.window))
        self.pos = self.n = 0
        rows = zip(state["p"], state["y"], state["group"], state["index"], strict=True)
        for p, y, group, index in list(rows)[-self.window :]:
            self.add(float(p), int(y), int(group), int(index))


def design_effect(
    residuals: FloatArray,
    group: npt.NDArray[np.int64],
    index: npt.NDArray[np.int64],
    horizon: int,
) -> float:
    """Variance inflation of a sum of ``residuals`` whose points overlap: two points of the
    same group (price series) whose bar indices are closer than ``horizon`` share part of
    their forward return, so their labels are positively correlated (for 4-bar labels on
    every bar, about 3x the independent variance). Estimated from the centred residuals'
    covariances at bar lags 1..horizon-1 within a group; 1 for independent points. Clamped
    to [1, 2 horizon - 1] (the value for perfectly correlated neighbours). Points with an
    unknown index (-1) pair with nothing."""
    n = int(residuals.size)
    if n < 2 or horizon <= 1:
        return 1.0
    order = np.lexsort((index, group))
    r = residuals[order] - residuals.mean()
    g, b = group[order], index[order]
    total = float(np.dot(r, r))
    if total <= 0.0:
        return 1.0
    cross = 0.0
    for lag in range(1, min(horizon, n)):
        close = (g[lag:] == g[:-lag]) & (b[lag:] - b[:-lag] < horizon) & (b[:-lag] >= 0)
        cross += float(np.dot(r[lag:][close], r[:-lag][close]))
    return min(max(1.0, 1.0 + 2.0 * cross / total), 2.0 * horizon - 1.0)


@dataclass(frozen=True, slots=True)
class GammaNull:
    """A null distribution summarised by a moment-matched gamma, plus the raw resamples'
    exceedance test."""

    mean: float
    var: float
    resamples: FloatArray

    def quantile(self, q: float) -> float:
        """The q quantile of the fitted gamma (shape mean^2 / var, scale var / mean), from
        the inverse of its upper tail (``scipy.special.gammainccinv`` at 1 - q, accurate for
        q near 1); the mean when the fit is degenerate (var ~ 0 or mean <= 0)."""
        if self.var <= 1e-18 or self.mean <= 0.0:
            return self.mean
        shape = self.mean * self.mean / self.var
        return float(gammainccinv(shape, 1.0 - q)) * self.var / self.mean

    def p_value(self, observed: float) -> float:
        """P(X >= observed) under the fitted gamma (``scipy.special.gammaincc``, the
        regularised upper incomplete gamma); 0 or 1 when the fit is degenerate."""
        if self.var <= 1e-18 or self.mean <= 0.0:
            return 0.0 if observed > self.mean + 1e-12 else 1.0
        shape = self.mean * self.mean / self.var
        return float(gammaincc(shape, max(0.0, observed) * self.mean / self.var))

    def empirical_p_value(self, observed: float) -> float:
        """(1 + #{resample >= observed}) / (R + 1)."""
        above = int(np.count_nonzero(self.resamples >= observed))
        return (1 + above) / (int(self.resamples.size) + 1)


@dataclass(frozen=True, slots=True)
class CalibrationNull:
    """Null distributions of ECE and reliability for one window of p_hats."""

    ece: GammaNull
    reliability: GammaNull


def bootstrap_null(
    p: npt.ArrayLike, bins: int, resamples: int, seed: int, inflation: float = 1.0
) -> CalibrationNull:
    """Resample labels y* ~ Bernoulli(p) ``resamples`` times with ``default_rng(seed)`` and
    fit the null of ECE and reliability. ``inflation`` (a design effect >= 1, see
    ``design_effect``) scales the resampled per-bin gaps sum(p) - sum(y*) by its square
    root, so that their variance matches labels that are positively correlated.
    Cost: O(resamples x len(p)), about 0.4 ms for 200 x 500 (float32 uniforms: the
    comparison with p needs no more resolution)."""
    pa = np.asarray(p, dtype=np.float64)
    n = int(pa.size)
    if n == 0:
        empty = GammaNull(0.0, 0.0, np.zeros(0))
        return CalibrationNull(empty, empty)
    rng = np.random.default_rng(seed)
    index = np.minimum((pa * bins).astype(np.int64), bins - 1)
    onehot = np.zeros((n, bins), dtype=np.float32)
    onehot[np.arange(n), index] = 1.0
    draws = (rng.random((resamples, n), dtype=np.float32) < pa.astype(np.float32)).astype(
        np.float32
    )
    sum_y = (draws @ onehot).astype(np.float64)
    gap = np.bincount(index, weights=pa, minlength=bins)[None, :] - sum_y
    if inflation > 1.0:
        gap *= math.sqrt(inflation)
    count = np.maximum(np.bincount(index, minlength=bins), 1).astype(np.float64)
    ece = np.abs(gap).sum(axis=1) / n
    rel = (gap * gap / count[None, :]).sum(axis=1) / n
    return CalibrationNull(_gamma(ece), _gamma(rel))


def _gamma(values: FloatArray) -> GammaNull:
    return GammaNull(
        float(np.mean(values)),
        float(np.var(values, ddof=1)) if values.size > 1 else 0.0,
        values,
    )


def error_rate_rise(
    errors_before: float, n_before: int, errors_after: float, n_after: int, inflation: float
) -> tuple[float, float]:
    """One-sided two-proportion z-test that the error rate rose from the ``before`` sample
    to the ``after`` one (pooled variance scaled by ``inflation``, a design effect).
    Returns (z, p-value), p = 1 - Phi(z) (``scipy.special.ndtr(-z)``); z is 0 and p 1 when
    a sample is empty."""
    if n_before <= 0 or n_after <= 0:
        return 0.0, 1.0
    pooled = (errors_before + errors_after) / (n_before + n_after)
    variance = inflation * max(pooled * (1 - pooled), 1e-12) * (1 / n_before + 1 / n_after)
    z = float(errors_after / n_after - errors_before / n_before) / math.sqrt(variance)
    return z, float(ndtr(-z))
