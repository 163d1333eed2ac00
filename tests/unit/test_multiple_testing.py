"""The Bonferroni adjustment: golden values."""

from __future__ import annotations

import pytest

from processors.drift.multiple_testing import bonferroni_adjust


def test_bonferroni_adjusted_p() -> None:
    assert bonferroni_adjust(0.001, 20) == pytest.approx(0.02)
    assert bonferroni_adjust(0.2, 20) == 1.0
    assert bonferroni_adjust(0.03, 0) == 0.03
    assert bonferroni_adjust(0.03, 1) == 0.03
