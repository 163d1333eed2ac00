"""The sizing rule of the simulated trading system (policy ``v0``), one decision at a time.

raw weight = (p_hat - 0.5) * vol_target / vol_hat beyond the dead zone, else 0 (no_signal);
final = raw capped at +-max_abs_weight; a change smaller than the rebalance band, or one that
rounds to zero whole shares, is not traded (final = current weight). Flat target with an open
position closes it whatever its size, so positions do return to zero. A position that changed
less than min_hold_bars ago is held (min_hold_block) unless an override forces it flat.
"""

from __future__ import annotations

from typing import NamedTuple


class Sized(NamedTuple):
    """final weight, reasons, block events, signed share delta, exit reason of reducing fills."""

    final: float
    reasons: list[str]
    blocks: list[str]
    delta_qty: float
    exit_reason: str


def size_position(
    raw: float,
    current: float,
    qty: float,
    equity: float,
    price: float,
    max_abs_weight: float,
    band: float,
) -> Sized:
    """The v0 decision for one bar (``current`` is the rounded weight of ``qty`` shares)."""
    blocks: list[str] = []
    if raw == 0.0:
        target = 0.0
        reasons = ["no_signal"]
    else:
        reasons = ["base_weight", "vol_target_scaled"]
        target = raw
        if abs(raw) > max_abs_weight:
            target = max_abs_weight if raw > 0 else -max_abs_weight
            reasons.append("capped_max_abs_weight")
            blocks.append("max_abs_weight_clip")
    if target == 0.0:
        if qty == 0.0:
            return Sized(0.0, reasons, blocks, 0.0, "signal")
        reasons.append("signal_exit")
        return Sized(0.0, reasons, blocks, -qty, "signal")
    if qty == 0.0:
        action = "signal_entry"
    elif (qty > 0) != (target > 0):
        action = "signal_flip"
    elif abs(target - current) < band:
        reasons += ["below_rebalance_band", "hold"]
        blocks.append("rebalance_band_block")
        return Sized(current, reasons, blocks, 0.0, "rebalance")
    else:
        action = "rebalance"
    delta = float(round(target * equity / price)) - qty
    if delta == 0.0:
        reasons.append("below_min_trade_notional")
        blocks.append("min_notional_block")
        return Sized(current, reasons, blocks, 0.0, "rebalance")
    reasons.append(action)
    return Sized(target, reasons, blocks, delta, "signal" if action != "rebalance" else "rebalance")


def hold_for_min_hold(sized: Sized, current: float) -> Sized:
    """A trade blocked because the position changed less than min_hold_bars ago: keep the
    current weight; the sizing reasons stay, the action (always last) becomes ``hold``."""
    return Sized(
        current, [*sized.reasons[:-1], "hold"], [*sized.blocks, "min_hold_block"], 0.0, "other"
    )


def flatten(qty: float, reason: str, block: str, exit_reason: str) -> Sized:
    """Target zero by override (stand-down, cooldown, emergency exit)."""
    return Sized(0.0, [reason], [block], -qty, exit_reason)
