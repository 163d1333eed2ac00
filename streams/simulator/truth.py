"""GroundTruth: everything the simulator injected, written beside the replay file.

Times are RFC 3339 UTC strings; line numbers are 1-based lines of the replay file; combos are
``"strategy|classification"`` and edge keys ``"strategy|classification|regime"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import orjson


@dataclass(frozen=True)
class GroundTruth:
    """What the replay file contains by construction.

    - config: the SimulationConfig as JSON.
    - symbols: symbol -> classification; strategy_symbols: strategy -> symbols it trades.
    - regime_segments: symbol -> [[start_ts, regime], ...] (each runs to the next start).
    - edges / claimed_edges: key -> [[from_ts, value], ...]: the true edge (probability - 0.5
      that the forward-return sign agrees with the signal direction sign(p_hat - 0.5), over
      all decisions of the combo, whatever their sharpness) and the edge the strategy's p_hat
      states (|p_hat - 0.5| averages to it). Oracle policy: enable a combo where
      its edge is > 0. good_combos / bad_combos: combos clearly good (edge >= 0.12) and clearly
      bad (edge <= -0.12) at the start, in every regime.
    - concept_drifts, calibration_drifts: {strategy_id, classification, ts, bar_index,
      edge_before/after and claimed_before/after by regime}; covariate_drifts: {strategy_id,
      feature, ts, bar_index, shift, shift_sd, baseline_mean, baseline_sd, scale}.
    - plans: [{event_id, strategy_id, ts, verdict, change, burst}] in per-strategy time order;
      replan_churn: [{strategy_id, day_start, day_end, event_ids, material_count}].
    - stand_downs: the episodes; stand_down_violations: decision ids with a non-zero final
      weight under an active stand-down; stand_down_data_quality: decision ids under an active
      stand-down that omit ``stand_down``; stand_down_late_events: stand-down event ids that
      arrive after decisions whose bar_ts is later than their ts.
    - emergency_exits: {"executed": [...], "vetoed": [...]} decision ids;
      emergency_violations: [{event_id, kind}] with kind ``missing_cooldown`` (executed without
      cooldown_recommendation_bars) or ``weight_without_veto`` (position kept, no veto).
    - execution: counts of orders, fills, cancels, partial-fill orders, crossing-zero fills,
      round trips closed, short entries; crossing_zero_examples: some crossing fill ids.
    - malformed: [{line, kind}]; duplicates: [{line, kind (exact_now | exact_later |
      conflicting), topic, event_id, first_line}] (the first line wins);
      counts: good unique records per topic; lines: lines in the file.
    """

    config: dict[str, Any]
    symbols: dict[str, str]
    strategy_symbols: dict[str, list[str]]
    regime_segments: dict[str, list[list[Any]]]
    edges: dict[str, list[list[Any]]]
    claimed_edges: dict[str, list[list[Any]]]
    good_combos: list[str]
    bad_combos: list[str]
    concept_drifts: list[dict[str, Any]]
    calibration_drifts: list[dict[str, Any]]
    covariate_drifts: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    replan_churn: list[dict[str, Any]]
    stand_downs: list[dict[str, Any]]
    stand_down_violations: list[str]
    stand_down_data_quality: list[str]
    stand_down_late_events: list[str]
    emergency_exits: dict[str, list[str]]
    emergency_violations: list[dict[str, str]]
    execution: dict[str, int]
    crossing_zero_examples: list[str]
    malformed: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    counts: dict[str, int]
    lines: int

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys)."""
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes | str) -> GroundTruth:
        data = orjson.loads(raw)
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def edge_at(self, strategy: str, classification: str, regime: str, ts: str) -> float:
        """The true edge of a combo in a regime at a time."""
        return float(_value_at(self.edges[f"{strategy}|{classification}|{regime}"], ts))

    def claimed_edge_at(self, strategy: str, classification: str, regime: str, ts: str) -> float:
        """The edge the strategy's p_hat states for a combo in a regime at a time."""
        return float(_value_at(self.claimed_edges[f"{strategy}|{classification}|{regime}"], ts))

    def regime_at(self, symbol: str, ts: str) -> str:
        """The regime of a symbol at a time."""
        return str(_value_at(self.regime_segments[symbol], ts))


def _value_at(changes: list[list[Any]], ts: str) -> Any:
    moment = _parse(ts)
    value = changes[0][1]
    for start, candidate in changes:
        if _parse(start) <= moment:
            value = candidate
        else:
            break
    return value


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
