"""Bonferroni and Benjamini-Hochberg helpers: golden values."""

from __future__ import annotations

import pytest

from processors.drift.multiple_testing import (
    benjamini_hochberg,
    benjamini_hochberg_adjust,
    bonferroni_adjust,
    bonferroni_alpha,
)


def test_bonferroni_level_and_adjusted_p() -> None:
    assert bonferroni_alpha(0.05, 10) == pytest.approx(0.005)
    assert bonferroni_alpha(0.05, 0) == 0.05
    assert bonferroni_adjust(0.001, 20) == pytest.approx(0.02)
    assert bonferroni_adjust(0.2, 20) == 1.0


def test_benjamini_hochberg_step_up() -> None:
    # sorted p: 0.001 (<= 0.01), 0.008 (<= 0.02), 0.039 (> 0.03), 0.041 (> 0.04), 0.042,
    # 0.06 (<= 0.06) -> the step-up rule rejects everything up to rank 6 but not 0.074 etc.
    p = [0.039, 0.001, 0.06, 0.008, 0.041, 0.042, 0.074, 0.205, 0.212, 0.216]
    rejected = benjamini_hochberg(p, 0.1)
    assert rejected == [True, True, True, True, True, True, False, False, False, False]
    assert benjamini_hochberg(p, 0.01) == [p_ <= 0.001 for p_ in p]
    assert benjamini_hochberg([], 0.1) == []


def test_benjamini_hochberg_adjusted_matches_rejections() -> None:
    p = [0.039, 0.001, 0.06, 0.008, 0.041, 0.042, 0.074, 0.205, 0.212, 0.216]
    q = benjamini_hochberg_adjust(p)
    assert q[1] == pytest.approx(0.01)
    assert q[3] == pytest.approx(0.04)
    assert q[2] == pytest.approx(0.1)
    for level in (0.01, 0.05, 0.1, 0.2):
        assert [v <= level for v in q] == benjamini_hochberg(p, level)
