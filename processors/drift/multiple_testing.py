"""The multiple-testing correction of the drift detectors' test families.

The drift detectors run one test per series (strategy x classification x feature for
covariate drift, strategy x classification for concept and calibration drift, strategy for
performance drift): with hundreds of series, a per-test level of 1% would fire several times
a day on data that never changes. Each detector compares the Bonferroni-adjusted p-value of
a test with its family-wise level (valid under any dependence between the tests).

A pure function on plain floats, for the per-check paths.
"""

from __future__ import annotations


def bonferroni_adjust(p_value: float, family_size: int) -> float:
    """The Bonferroni-adjusted p-value ``min(1, p * family_size)`` (a family of 0 or 1 tests
    keeps ``p``): compare it with the family-wise level directly."""
    return min(1.0, p_value * max(1, family_size))
