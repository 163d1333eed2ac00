"""Every processor configuration refuses a value outside its range, naming the field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from processors.audit import EmergencyExitConfig, ReplanGuardConfig, StandDownConfig
from processors.core import AlertRouterConfig, DedupConfig
from processors.core.config_checks import OPEN_UNIT, POSITIVE, Bound, at_least, check_bounds
from processors.performance import PerformanceConfig
from processors.performance.round_trips import RoundTripBookConfig
from processors.pipeline import PipelineConfig
from processors.policy import PolicyLoopConfig
from processors.policy.gate import EvaluationGateConfig
from processors.policy.loop_window import LoopWindowConfig
from processors.policy.proposer import ProposerConfig

BAD_VALUES: list[tuple[type[Any], str, Any]] = [
    (DedupConfig, "ttl_ms", 0),
    (AlertRouterConfig, "max_alerts_per_hour", 0),
    (AlertRouterConfig, "high_p_value", 1.0),
    (RoundTripBookConfig, "zero_tolerance", -1e-9),
    (PerformanceConfig, "snapshot_interval_ms", 0),
    (ReplanGuardConfig, "churn_limit_per_day", 0),
    (StandDownConfig, "allowed_lateness_ms", -1),
    (EmergencyExitConfig, "zero_weight_tolerance", math.nan),
    (PolicyLoopConfig, "holdout_fraction", 0.0),
    (PolicyLoopConfig, "window_ms", -5),
    (LoopWindowConfig, "max_features", 0),
    (EvaluationGateConfig, "alpha", 1.5),
    (EvaluationGateConfig, "equity", 0.0),
    (ProposerConfig, "disable_win_rate", 1.2),
    (PipelineConfig, "allowed_lateness_ms", -1),
]


@pytest.mark.parametrize(("config", "field", "value"), BAD_VALUES)
def test_a_value_out_of_range_is_a_value_error_naming_the_field(
    config: type[Any], field: str, value: Any
) -> None:
    with pytest.raises(ValueError, match=field):
        config(**{field: value})


@pytest.mark.parametrize("config", sorted({c for c, _, _ in BAD_VALUES}, key=str))
def test_the_defaults_are_valid(config: type[Any]) -> None:
    config()


def test_inverted_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="trust_min"):
        ProposerConfig(trust_min=3.0, trust_max=2.0)
    with pytest.raises(ValueError, match="trade_count_lo"):
        EvaluationGateConfig(trade_count_lo=2.0, trade_count_hi=1.5)


class _Probe:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def test_bounds() -> None:
    assert POSITIVE.holds(1e-12) and not POSITIVE.holds(0.0)
    assert at_least(1).holds(1) and not at_least(1).holds(0.5)
    assert OPEN_UNIT.holds(0.5) and not OPEN_UNIT.holds(0.0) and not OPEN_UNIT.holds(1.0)
    assert not Bound().holds(math.nan) and Bound().holds(-1e300)
    check_bounds(_Probe(x=None), {"x": POSITIVE})
    with pytest.raises(ValueError, match=r"_Probe.x must be > 0, got -2"):
        check_bounds(_Probe(x=-2), {"x": POSITIVE})
    with pytest.raises(ValueError, match="must be a number, got True"):
        check_bounds(_Probe(x=True), {"x": POSITIVE})
    with pytest.raises(ValueError, match=r"must be > 0 and < 1, got 1"):
        check_bounds(_Probe(x=1), {"x": OPEN_UNIT})
