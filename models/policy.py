"""PolicyConfig: what the feedback loop proposes, gates, promotes and archives."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from models.common import MAX_ENTRIES, ContractModel, FloatMap, Name, UtcDatetime


class EngineParams(ContractModel):
    """Parameters of the policy engine.

    - ``k``: steepness of the proxy p_hat = 0.5 * (tanh(k * zscore(momentum)) + 1);
    - ``tau``: dead zone on the edge 2 * p_hat - 1 below which no position is taken;
    - ``vol_target``: per-bar volatility the position is scaled to (weight * vol_hat);
    - ``max_abs_weight``: cap on |target_weight_final|;
    - ``epsilon_w``: rebalance band, |delta weight| <= epsilon_w is not traded;
    - ``min_trade_notional``: smallest |delta weight| * equity that is traded;
    - ``cooldown_bars``: bars after a trade during which no new trade is opened.
    """

    k: Annotated[float, Field(gt=0.0)] = 1.0
    tau: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    vol_target: Annotated[float, Field(gt=0.0)] = 0.01
    max_abs_weight: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    epsilon_w: Annotated[float, Field(ge=0.0)] = 0.02
    min_trade_notional: Annotated[float, Field(ge=0.0)] = 100.0
    cooldown_bars: Annotated[int, Field(ge=0)] = 1


class PolicyConfig(ContractModel):
    """A versioned policy. Keys of ``trust`` and entries of ``disabled`` are
    ``"strategy_id|classification"``; a strategy missing from ``base_weights`` has weight 1,
    a combination missing from ``trust`` has trust 1, a regime missing from
    ``regime_multipliers`` has multiplier 1."""

    version: Name
    created_at: UtcDatetime
    engine: EngineParams
    base_weights: FloatMap = Field(default_factory=dict)
    trust: FloatMap = Field(default_factory=dict)
    regime_multipliers: FloatMap = Field(default_factory=dict)
    disabled: Annotated[list[Name], Field(max_length=MAX_ENTRIES)] = Field(default_factory=list)

    def base_weight(self, strategy_id: str) -> float:
        return self.base_weights.get(strategy_id, 1.0)

    def trust_of(self, strategy_id: str, classification: str) -> float:
        return self.trust.get(combo_key(strategy_id, classification), 1.0)

    def regime_multiplier(self, regime: str) -> float:
        return self.regime_multipliers.get(regime, 1.0)

    def is_disabled(self, strategy_id: str, classification: str) -> bool:
        return combo_key(strategy_id, classification) in self.disabled


def combo_key(strategy_id: str, classification: str) -> str:
    """The ``strategy_id|classification`` key of trust and disabled combinations."""
    return f"{strategy_id}|{classification}"
