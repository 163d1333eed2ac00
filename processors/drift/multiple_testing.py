"""Multiple-testing corrections for families of drift tests.

The drift detectors run one test per series (strategy x classification x feature for
covariate drift, strategy x classification for calibration): with hundreds of series, a
per-test level of 1% would fire several times a day on data that never changes. These
helpers turn a family-wise level into a per-test level (Bonferroni, valid under any
dependence) or pick the rejections of a batch of p-values at a false-discovery rate
(Benjamini-Hochberg, valid under independence or positive dependence).

Pure functions on plain floats; no numpy, so they can run on a hot path.
"""

from __future__ import annotations

from collections.abc import Sequence


def bonferroni_alpha(alpha: float, family_size: int) -> float:
    """The per-test level that keeps the family-wise error rate at ``alpha``:
    ``alpha / family_size`` (a family of 0 or 1 tests keeps ``alpha``)."""
    return alpha / max(1, family_size)


def bonferroni_adjust(p_value: float, family_size: int) -> float:
    """The Bonferroni-adjusted p-value ``min(1, p * family_size)``: compare it with the
    family-wise level directly."""
    return min(1.0, p_value * max(1, family_size))


def benjamini_hochberg(p_values: Sequence[float], q: float) -> list[bool]:
    """Which hypotheses of a batch are rejected at false-discovery rate ``q``.

    Step-up rule: sort the m p-values, find the largest rank k with ``p_(k) <= k q / m`` and
    reject the k smallest. Ties are all rejected or all kept. Returns one flag per input, in
    input order; an empty batch gives an empty list.
    """
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    cutoff = -1.0
    for rank, index in enumerate(order, start=1):
        if p_values[index] <= rank * q / m:
            cutoff = p_values[index]
    return [p <= cutoff for p in p_values]


def benjamini_hochberg_adjust(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values), in input order: reject at FDR q where the value is
    <= q. ``min over j >= rank of p_(j) m / j``, capped at 1."""
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = min(1.0, running)
    return adjusted
