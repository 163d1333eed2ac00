"""Statistics of the evaluation gate: paired tests on per-bar PnL and calibration scores.

The gate replays a window under the champion and the candidate (``policy_replay``) and asks
whether the candidate's mean per-bar PnL is higher. With d_t = candidate_t - champion_t on
the same bars (``paired_differences``), H0: E[d] <= 0 against H1: E[d] > 0. Two tests:

- ``msprt``: an always-valid test (mixture sequential probability ratio test, Johari,
  Koomen, Pekelis & Walsh 2017), whose p-value may be looked at after every bar, or every
  loop run, without inflating the false-positive rate: reject at the first n with
  p_n <= alpha.
- ``newey_west_test``: a fixed-horizon test, valid when run once per window on the whole
  window (looking repeatedly and stopping at the first success would inflate its error
  rate); reported beside the mSPRT.

Guardrail figures of a PnL series: ``sharpe_ratio``, ``max_drawdown`` (used by the replay).
Calibration (for a change of the p_hat source): ``brier``, ``ece``.
Everything is a pure function of its inputs. The normal CDF is ``scipy.special.ndtr``
(accurate in both tails; its upper tail is ``ndtr(-x)``). Non-finite values are dropped where
noted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from processors.core.config_checks import NON_NEGATIVE, OPEN_UNIT, POSITIVE, check_bounds

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def paired_differences(champion_series: ArrayLike, candidate_series: ArrayLike) -> FloatArray:
    """``candidate - champion`` per bar, in bar order, dropping bars where either is not
    finite. The two series must be aligned (same ``bar_times``, as two replays of one tape
    are); different lengths raise ValueError."""
    champion = np.asarray(champion_series, dtype=np.float64).reshape(-1)
    candidate = np.asarray(candidate_series, dtype=np.float64).reshape(-1)
    if champion.shape != candidate.shape:
        raise ValueError(f"series differ in length: {champion.shape[0]} != {candidate.shape[0]}")
    difference = candidate - champion
    return difference[np.isfinite(difference)]


def _finite(values: ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


@dataclass(frozen=True, slots=True)
class MsprtConfig:
    """``alpha``: level, in (0, 1) (default 0.05). ``mixture_sd`` (> 0): sd of the normal
    mixing distribution of the effect, in units of the data's sd (default 0.1: suited to
    per-bar effects of a few hundredths of a sd over a few thousand bars; larger detects big
    effects sooner and small ones later). ``burn_in``: observations before the first look
    (default 30; the plug-in variance is too noisy before). ``one_sided``: test E[d] > 0
    (default) or E[d] != 0."""

    alpha: float = 0.05
    mixture_sd: float = 0.1
    burn_in: int = 30
    one_sided: bool = True

    def __post_init__(self) -> None:
        """Raise ValueError naming the first field outside its range."""
        check_bounds(self, {"alpha": OPEN_UNIT, "mixture_sd": POSITIVE, "burn_in": NON_NEGATIVE})


@dataclass(frozen=True, slots=True)
class MsprtResult:
    """Outcome of the mSPRT over a sequence. ``p_value`` is the always-valid p-value after
    the last observation (the running minimum of 1/Lambda_k, capped at 1), ``p_values`` its
    whole non-increasing path (one per observation), ``e_value`` Lambda_n (an e-value: a
    nonnegative supermartingale under H0), ``first_rejection`` the 1-based n at which p first
    fell to alpha (None if never), ``cs_lower``/``cs_upper`` the running intersection of the
    two-sided normal-mixture confidence sequence for the mean at level alpha (None before
    the burn-in)."""

    n: int
    mean: float
    sd: float
    p_value: float
    p_values: FloatArray
    e_value: float
    rejected: bool
    first_rejection: int | None
    cs_lower: float | None
    cs_upper: float | None


def msprt(differences: ArrayLike, config: MsprtConfig | None = None) -> MsprtResult:
    """Always-valid test of H0: E[d] <= 0 (two-sided: E[d] = 0) on a sequence of differences.

    After n observations with sum S_n, mean x_n and plug-in sample variance s_n^2 (ddof=1),
    mixing variance tau^2 = (mixture_sd * s_n)^2, r = tau^2 / s_n^2 and z_n = S_n / (s_n sqrt n):

        two-sided: Lambda_n = (1 + n r)^(-1/2) * exp(z_n^2 n r / (2 (1 + n r)))
        one-sided: Lambda_n = 2 Phi(z_n sqrt(n r / (1 + n r))) * two-sided Lambda_n

    (the one-sided form mixes over a half-normal on theta > 0 and is a supermartingale under
    every theta <= 0). p_n = min(1, min_{k <= n} 1 / Lambda_k), p = 1 before ``burn_in`` and
    while s_n = 0. Confidence sequence (two-sided, level alpha):
    x_n +- s_n sqrt((1 + n r) / (n^2 r) * (2 ln(1/alpha) + ln(1 + n r))).
    With the variance estimated from the data the guarantee is asymptotic (as in Johari et
    al.); the differences are assumed roughly independent across bars (positions held over
    several bars make PnL differences martingale-like as long as returns are unpredictable).
    Non-finite values are dropped.
    """
    cfg = config or MsprtConfig()
    x = _finite(differences)
    n_total = int(x.shape[0])
    p_path = np.ones(n_total, dtype=np.float64)
    if n_total == 0:
        return MsprtResult(0, 0.0, 0.0, 1.0, p_path, 1.0, False, None, None, None)
    shift = float(x[0])  # centre the running sums on a causal constant (stable variance)
    centred = x - shift
    counts = np.arange(1, n_total + 1, dtype=np.float64)
    sums = np.cumsum(centred)
    squares = np.cumsum(centred * centred)
    means = sums / counts + shift
    with np.errstate(divide="ignore", invalid="ignore"):
        variances = np.where(counts > 1, (squares - sums * sums / counts) / (counts - 1), 0.0)
    sds = np.sqrt(np.maximum(variances, 0.0))
    r = max(cfg.mixture_sd, 1e-6) ** 2
    start = max(2, cfg.burn_in) - 1
    looks = np.zeros(n_total, dtype=np.bool_)
    looks[start:] = sds[start:] > 1e-12 * np.maximum(1.0, np.abs(means[start:]))
    log_lambda = np.full(n_total, -math.inf)
    lower = np.full(n_total, -math.inf)
    upper = np.full(n_total, math.inf)
    n, mean, sd = counts[looks], means[looks], sds[looks]
    z = mean * np.sqrt(n) / sd
    nr = n * r
    value = -0.5 * np.log1p(nr) + z * z * nr / (2.0 * (1.0 + nr))
    if cfg.one_sided:
        tail = 2.0 * ndtr(z * np.sqrt(nr / (1.0 + nr)))
        with np.errstate(divide="ignore"):
            value = value + np.log(tail)
    log_lambda[looks] = value
    radius = sd * np.sqrt(
        (1.0 + nr) / (n * n * r) * (2.0 * math.log(1.0 / cfg.alpha) + np.log1p(nr))
    )
    lower[looks] = mean - radius
    upper[looks] = mean + radius
    with np.errstate(over="ignore"):
        inverse = np.minimum(1.0, np.exp(-log_lambda))
    p_path = np.minimum.accumulate(inverse)
    hits = np.flatnonzero(p_path <= cfg.alpha)
    looked = bool(looks.any())
    running_lower = float(np.maximum.accumulate(lower)[-1])
    running_upper = float(np.minimum.accumulate(upper)[-1])
    return MsprtResult(
        n=n_total,
        mean=float(means[-1]),
        sd=float(sds[-1]),
        p_value=float(p_path[-1]),
        p_values=p_path,
        e_value=float(math.exp(min(700.0, float(log_lambda[-1])))),
        rejected=bool(hits.shape[0] > 0),
        first_rejection=int(hits[0]) + 1 if hits.shape[0] else None,
        cs_lower=running_lower if looked and math.isfinite(running_lower) else None,
        cs_upper=running_upper if looked and math.isfinite(running_upper) else None,
    )


@dataclass(frozen=True, slots=True)
class FixedHorizonResult:
    """A one-sided test of H0: E[d] <= 0 run once on a whole window. ``method`` names the
    test ("newey_west"); ``statistic`` is its t-statistic, ``std_error`` the standard error
    of the mean and ``bandwidth`` the lags of the long-run variance."""

    method: str
    n: int
    mean: float
    std_error: float | None
    statistic: float | None
    p_value: float
    bandwidth: int


def newey_west_lags(n: int) -> int:
    """The Newey-West (1994) rule of thumb floor(4 (n / 100)^(2/9)), at most n - 1."""
    if n < 2:
        return 0
    return max(0, min(n - 1, int(4.0 * (n / 100.0) ** (2.0 / 9.0))))


def newey_west_test(differences: ArrayLike, lags: int | None = None) -> FixedHorizonResult:
    """One-sided paired t-test with a Newey-West (Bartlett kernel) long-run variance.

    With e_t = d_t - mean, gamma_l = (1/n) sum_{t >= l} e_t e_{t-l} and L lags
    (default ``newey_west_lags(n)``): LRV = gamma_0 + 2 sum_{l=1..L} (1 - l/(L+1)) gamma_l,
    t = mean / sqrt(LRV / n), p = 1 - Phi(t). The reference is the normal distribution, not
    Student's t (the HAC t-statistic is only asymptotically normal, with no exact t law), so
    p is slightly too small for n below ~30. p = 1 under 2 values or with LRV = 0.
    """
    x = _finite(differences)
    n = int(x.shape[0])
    bandwidth = newey_west_lags(n) if lags is None else max(0, min(int(lags), max(0, n - 1)))
    mean = float(x.mean()) if n else 0.0
    if n < 2:
        return FixedHorizonResult("newey_west", n, mean, None, None, 1.0, bandwidth)
    e = x - mean
    lrv = float(e @ e) / n
    for lag in range(1, bandwidth + 1):
        weight = 1.0 - lag / (bandwidth + 1.0)
        lrv += 2.0 * weight * float(e[lag:] @ e[:-lag]) / n
    if not lrv > 0.0:
        return FixedHorizonResult("newey_west", n, mean, 0.0, None, 1.0, bandwidth)
    std_error = math.sqrt(lrv / n)
    t = mean / std_error
    p_value = float(ndtr(-t))
    return FixedHorizonResult("newey_west", n, mean, std_error, t, p_value, bandwidth)


def sharpe_ratio(series: FloatArray) -> float | None:
    """mean / std (ddof=1) of ``series``; None under 2 values or with zero spread."""
    if series.shape[0] < 2:
        return None
    std = float(series.std(ddof=1))
    if not std > 0.0 or not math.isfinite(std):
        return None
    return float(series.mean()) / std


def max_drawdown(series: FloatArray) -> float:
    """Largest fall of the cumulative sum of ``series`` from its running peak (peak starts
    at 0); 0 for an empty or never-falling series."""
    if series.shape[0] == 0:
        return 0.0
    cumulative = np.cumsum(series)
    peak = np.maximum(np.maximum.accumulate(cumulative), 0.0)
    return float(max(0.0, float((peak - cumulative).max())))


def _calibration_inputs(p: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    probs = np.asarray(p, dtype=np.float64).reshape(-1)
    labels = np.asarray(y, dtype=np.float64).reshape(-1)
    if probs.shape != labels.shape:
        raise ValueError(f"p and y differ in length: {probs.shape[0]} != {labels.shape[0]}")
    keep = np.isfinite(probs) & np.isfinite(labels)
    return np.clip(probs[keep], 0.0, 1.0), labels[keep]


def brier(p: ArrayLike, y: ArrayLike) -> float:
    """Brier score mean((p - y)^2) of probabilities p against 0/1 labels y; NaN when empty.
    Pairs with a non-finite value are dropped; p is clipped to [0, 1]."""
    probs, labels = _calibration_inputs(p, y)
    if probs.shape[0] == 0:
        return math.nan
    return float(np.mean((probs - labels) ** 2))


def _bins(probs: FloatArray, bins: int) -> npt.NDArray[np.int64]:
    return np.minimum((probs * bins).astype(np.int64), bins - 1)


def ece(p: ArrayLike, y: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width bins of [0, 1] (p = 1 in the
    last): sum_b (n_b / n) |mean(y in b) - mean(p in b)|, empty bins skipped; NaN when empty.
    Noisy with few labels (a calibrated model shows ~0.07 at n = 100): compare with a
    bootstrap null, not a fixed cut-off."""
    probs, labels = _calibration_inputs(p, y)
    n = probs.shape[0]
    if n == 0:
        return math.nan
    bins = max(1, int(bins))
    index = _bins(probs, bins)
    gap = np.bincount(index, weights=labels, minlength=bins) - np.bincount(
        index, weights=probs, minlength=bins
    )
    return float(np.abs(gap).sum() / n)
