"""The deterministic policy engine: p_hat and context in, target weights and reasons out.

``decide(inputs, policy)`` is the interface that outlives any p_hat model (the Phase-1 proxy,
a later ML model, a strategy's own estimate): a pure function of its arguments, no state, no
clock. It works in three steps, each recorded in ``reasons`` / ``block_events``:

1. **Raw weight** (``target_weight_raw``, before caps and overrides), with
   ``edge = 2 * p_hat - 1``:

   - ``|edge| <= tau``: 0 (``NO_SIGNAL``);
   - otherwise ``sign(edge) * (|edge| - tau) / (1 - tau) * vol_factor * base_weight(strategy)
     * trust(strategy|classification) * regime_multiplier(regime)``, where
     ``vol_factor = vol_target / vol_hat`` when ``vol_hat > 0`` (``VOL_TARGET_SCALED``; a
     vol_hat below ``VOL_FLOOR`` counts as ``VOL_FLOOR``) and 1 otherwise. ``BASE_WEIGHT``,
     ``TRUST_SCALED`` and ``REGIME_MULTIPLIER`` are recorded only when their factor is not 1.
     The product is bounded to +-``MAX_RAW_WEIGHT`` so that it is always finite.

2. **Caps and overrides** (the target): clip to +-``cap`` with ``cap = min(max_abs_weight,
   weight_cap)``; a clip by ``max_abs_weight`` records ``CAPPED_MAX_ABS_WEIGHT`` +
   ``MAX_ABS_WEIGHT_CLIP``, a clip by the tighter external ``weight_cap`` records ``RISK_CAP``
   + ``RISK_CAP_BLOCK``. Then the target is 0 under each active override, each recorded:
   disabled combination (``DISABLED_COMBINATION`` + ``DISABLED_COMBINATION_BLOCK``),
   stand-down (``STAND_DOWN_ACTIVE`` + ``STAND_DOWN_BLOCK``), emergency exit
   (``EMERGENCY_EXIT`` + ``EMERGENCY_EXIT_EXECUTED``). The override codes are recorded
   whenever the override is active, even when the position is already flat, so that the
   audits (stand-down book, emergency-exit audit) find them on every covered decision.

3. **Delta-weight execution** against ``current_weight`` (``target_weight_final``). When the
   target differs from the current weight, a move forced by an override (always to 0) is
   executed unconditionally; any other move keeps the current weight when it is blocked by
   one or more of (every one that applies is recorded):

   - rebalance band: ``|delta| <= epsilon_w`` (``BELOW_REBALANCE_BAND``,
     ``REBALANCE_BAND_BLOCK``);
   - minimum notional: ``|delta| * equity < min_trade_notional``
     (``BELOW_MIN_TRADE_NOTIONAL``, ``MIN_NOTIONAL_BLOCK``);
   - cooldown: ``bars_since_trade is not None and bars_since_trade < cooldown_bars``
     (``COOLDOWN_ACTIVE``, ``COOLDOWN_BLOCK``). ``bars_since_trade`` counts the bars of this
     (strategy, symbol) *between* its last trade and this one: 0 on the bar right after a
     trade. So ``cooldown_bars = N`` blocks the N bars that follow a trade.

   A kept weight never exceeds the cap: if ``|current_weight| > cap`` it is clipped to
   +-cap (a forced de-risking trade, with the cap's reason). Finally exactly one action code:
   ``HOLD`` (final == current), else ``SIGNAL_ENTRY`` (from 0), ``SIGNAL_EXIT`` (to 0, also
   for forced exits, which carry their override code too), ``SIGNAL_FLIP`` (sign change) or
   ``REBALANCE`` (same sign, new size).

Reasons come in that order (raw, cap, overrides, blocks, action); block events likewise.
``decision_record`` turns inputs + decision + identity fields into a complete DecisionRecord.
``processors.policy.replay`` re-implements steps 1-3 vectorised for the evaluation gate; a
change here must be mirrored there (a test checks they agree record by record).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from models.inputs import DecisionRecord, ExitIntent, StandDownInfo
from models.policy import PolicyConfig
from models.taxonomy import BlockEvent, Mode, ReasonCode

VOL_FLOOR = 1e-12
"""A positive vol_hat below this is treated as this (keeps vol_target / vol_hat finite)."""
MAX_RAW_WEIGHT = 1e12
"""Bound on |target_weight_raw| so that a decision record's floats are always finite."""
EMERGENCY_EXIT_REASON = "emergency_exit"
"""Default ``exit_intent.reason`` written by ``decision_record`` on an emergency exit."""


@dataclass(frozen=True, slots=True)
class EngineInputs:
    """Everything one decision depends on besides the policy.

    ``p_hat``: probability that the forward return is positive (clamped to [0, 1]; a
    non-finite value means no signal). ``vol_hat``: per-bar volatility estimate, in the same
    unit as ``EngineParams.vol_target``. ``price`` is carried into the decision record only.
    ``current_weight``: the position before this bar, as a fraction of ``equity``.
    ``bars_since_trade``: bars of this (strategy, symbol) strictly between its last trade and
    this bar (0 = the previous bar traded; None = never traded). Risk overrides:
    ``stand_down_active`` and ``emergency_exit`` force the target to 0; ``weight_cap`` is an
    external cap on |weight| (applies only where tighter than ``max_abs_weight``; a negative
    cap counts as 0).
    """

    p_hat: float
    vol_hat: float
    price: float
    strategy_id: str
    classification: str
    regime: str
    current_weight: float
    equity: float
    bars_since_trade: int | None = None
    stand_down_active: bool = False
    emergency_exit: bool = False
    weight_cap: float | None = None


@dataclass(frozen=True, slots=True)
class EngineDecision:
    """The engine's answer: raw and final target weights (fractions of equity), whether it
    trades (``target_weight_final != current_weight``), and why (see the module docstring)."""

    target_weight_raw: float
    target_weight_final: float
    traded: bool
    reasons: tuple[ReasonCode, ...]
    block_events: tuple[BlockEvent, ...]


def raw_weight(inputs: EngineInputs, policy: PolicyConfig, reasons: list[ReasonCode]) -> float:
    """Step 1 (module docstring): the raw weight; appends its reasons to ``reasons``."""
    engine = policy.engine
    p_hat = inputs.p_hat
    if not math.isfinite(p_hat):
        p_hat = 0.5
    p_hat = min(1.0, max(0.0, p_hat))
    edge = 2.0 * p_hat - 1.0
    magnitude = abs(edge)
    tau = engine.tau
    if magnitude <= tau:
        reasons.append(ReasonCode.NO_SIGNAL)
        return 0.0
    vol_hat = inputs.vol_hat
    vol_factor = 1.0
    if vol_hat > 0.0 and math.isfinite(vol_hat):
        vol_factor = engine.vol_target / max(vol_hat, VOL_FLOOR)
        reasons.append(ReasonCode.VOL_TARGET_SCALED)
    base = policy.base_weight(inputs.strategy_id)
    trust = policy.trust_of(inputs.strategy_id, inputs.classification)
    regime = policy.regime_multiplier(inputs.regime)
    if base != 1.0:
        reasons.append(ReasonCode.BASE_WEIGHT)
    if trust != 1.0:
        reasons.append(ReasonCode.TRUST_SCALED)
    if regime != 1.0:
        reasons.append(ReasonCode.REGIME_MULTIPLIER)
    # Same operation order as policy_replay's vectorised version (bit-identical results).
    weight = (magnitude - tau) / (1.0 - tau) * vol_factor * base * trust * regime
    if edge < 0.0:
        weight = -weight
    if not -MAX_RAW_WEIGHT <= weight <= MAX_RAW_WEIGHT:
        weight = 0.0 if math.isnan(weight) else math.copysign(MAX_RAW_WEIGHT, weight)
    return weight


def effective_cap(max_abs_weight: float, weight_cap: float | None) -> tuple[float, bool]:
    """``(cap, external)``: the cap on |weight| and whether the external cap is the binding
    (strictly tighter) one."""
    if weight_cap is not None and weight_cap < max_abs_weight:
        return max(0.0, weight_cap), True
    return max_abs_weight, False


def _record_cap(external: bool, reasons: list[ReasonCode], blocks: list[BlockEvent]) -> None:
    reason, block = (
        (ReasonCode.RISK_CAP, BlockEvent.RISK_CAP_BLOCK)
        if external
        else (ReasonCode.CAPPED_MAX_ABS_WEIGHT, BlockEvent.MAX_ABS_WEIGHT_CLIP)
    )
    if reason not in reasons:
        reasons.append(reason)
        blocks.append(block)


def decide(inputs: EngineInputs, policy: PolicyConfig) -> EngineDecision:
    """The decision for one (strategy, symbol, bar); see the module docstring. Never raises
    on finite inputs; never mutates them."""
    engine = policy.engine
    reasons: list[ReasonCode] = []
    blocks: list[BlockEvent] = []
    raw = raw_weight(inputs, policy, reasons)

    cap, external = effective_cap(engine.max_abs_weight, inputs.weight_cap)
    target = raw
    if target > cap or target < -cap:
        target = math.copysign(cap, target)
        _record_cap(external, reasons, blocks)
    forced = False
    if policy.is_disabled(inputs.strategy_id, inputs.classification):
        reasons.append(ReasonCode.DISABLED_COMBINATION)
        blocks.append(BlockEvent.DISABLED_COMBINATION_BLOCK)
        forced = True
    if inputs.stand_down_active:
        reasons.append(ReasonCode.STAND_DOWN_ACTIVE)
        blocks.append(BlockEvent.STAND_DOWN_BLOCK)
        forced = True
    if inputs.emergency_exit:
        reasons.append(ReasonCode.EMERGENCY_EXIT)
        blocks.append(BlockEvent.EMERGENCY_EXIT_EXECUTED)
        forced = True
    if forced:
        target = 0.0

    current = inputs.current_weight
    final = target
    if target != current and not forced:
        delta = abs(target - current)
        blocked = False
        if delta <= engine.epsilon_w:
            reasons.append(ReasonCode.BELOW_REBALANCE_BAND)
            blocks.append(BlockEvent.REBALANCE_BAND_BLOCK)
            blocked = True
        if delta * inputs.equity < engine.min_trade_notional:
            reasons.append(ReasonCode.BELOW_MIN_TRADE_NOTIONAL)
            blocks.append(BlockEvent.MIN_NOTIONAL_BLOCK)
            blocked = True
        since = inputs.bars_since_trade
        if since is not None and since < engine.cooldown_bars:
            reasons.append(ReasonCode.COOLDOWN_ACTIVE)
            blocks.append(BlockEvent.COOLDOWN_BLOCK)
            blocked = True
        if blocked:
            final = current
            if current > cap or current < -cap:
                final = math.copysign(cap, current)
                _record_cap(external, reasons, blocks)

    reasons.append(action_code(current, final))
    return EngineDecision(
        target_weight_raw=raw,
        target_weight_final=final,
        traded=final != current,
        reasons=tuple(reasons),
        block_events=tuple(blocks),
    )


def action_code(current: float, final: float) -> ReasonCode:
    """HOLD, SIGNAL_ENTRY, SIGNAL_EXIT, SIGNAL_FLIP or REBALANCE for a move current -> final."""
    if final == current:
        return ReasonCode.HOLD
    if current == 0.0:
        return ReasonCode.SIGNAL_ENTRY
    if final == 0.0:
        return ReasonCode.SIGNAL_EXIT
    if (final > 0.0) != (current > 0.0):
        return ReasonCode.SIGNAL_FLIP
    return ReasonCode.REBALANCE


def decision_record(
    inputs: EngineInputs,
    decision: EngineDecision,
    policy: PolicyConfig,
    *,
    event_id: str,
    run_id: str,
    mode: Mode,
    symbol: str,
    timeframe: str,
    bar_ts: datetime,
    features: Mapping[str, float] | None = None,
    confidence: float | None = None,
    horizon_bars: int | None = None,
    stand_down: StandDownInfo | None = None,
    exit_reason: str = EMERGENCY_EXIT_REASON,
) -> DecisionRecord:
    """The complete `bar_decisions` record of one engine call.

    ``policy_version`` is ``policy.version``. ``stand_down`` (until_ts, reason, source: the
    engine does not know them) is written only when ``inputs.stand_down_active``; pass it then,
    or the stand-down audit reports the record as omitting its stand-down. On an emergency
    exit the record carries ``exit_intent = {emergency: true, reason: exit_reason}`` and
    ``cooldown_recommendation_bars = policy.engine.cooldown_bars`` (what the emergency-exit
    audit requires). Raises ``pydantic.ValidationError`` if a field breaks the contract
    (e.g. an empty id, a naive ``bar_ts``, a non-finite feature, or an input outside its
    range such as a NaN p_hat, which ``decide`` itself tolerates).
    """
    emergency = inputs.emergency_exit
    return DecisionRecord(
        event_id=event_id,
        run_id=run_id,
        mode=mode,
        strategy_id=inputs.strategy_id,
        symbol=symbol,
        classification=inputs.classification,
        regime=inputs.regime,
        timeframe=timeframe,
        bar_ts=bar_ts,
        price=inputs.price,
        p_hat=inputs.p_hat,
        vol_hat=inputs.vol_hat,
        features=dict(features or {}),
        current_weight=inputs.current_weight,
        equity=inputs.equity,
        target_weight_raw=decision.target_weight_raw,
        target_weight_final=decision.target_weight_final,
        reasons=list(decision.reasons),
        block_events=list(decision.block_events),
        policy_version=policy.version,
        confidence=confidence,
        stand_down=stand_down if inputs.stand_down_active else None,
        exit_intent=ExitIntent(emergency=True, reason=exit_reason) if emergency else None,
        cooldown_recommendation_bars=policy.engine.cooldown_bars if emergency else None,
        horizon_bars=horizon_bars,
    )
