"""Known edges of every (strategy, classification, regime), and the drifts injected into them.

``edge`` is the probability, minus 0.5, that the sign of the forward return over horizon_bars
agrees with the strategy's signal direction. ``claimed`` is the edge the strategy believes it
has (what its p_hat states). Each strategy has one clearly good classification (edge 0.12 to
0.16 in every regime), one clearly bad one (-0.16 to -0.12; it still claims a small positive
edge, i.e. it is overconfident there from the start) and mediocre others (-0.02 to 0.05 plus a
regime offset). Where the edge is >= 0 the claim equals it (at least MIN_CLAIM, so that
p_hat always shows a direction): the strategy is calibrated.

Injections change the tables at known bars:
- concept drift: the first strategy's good classification flips its edge sign, claim kept;
- calibration drift: one mediocre (strategy, classification) claims more than it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.simulator.config import CLASSIFICATIONS, REGIMES, SimulationConfig, rng_for

FloatArray = npt.NDArray[np.float64]
MIN_CLAIM = 0.005


@dataclass(frozen=True)
class Change:
    """From ``bar`` on, the (strategy, classification) uses ``edge`` / ``claimed`` tables."""

    bar: int
    kind: str
    strategy: int
    classification: int
    edge_before: tuple[float, ...]
    edge_after: tuple[float, ...]
    claimed_before: tuple[float, ...]
    claimed_after: tuple[float, ...]


@dataclass(frozen=True)
class EdgeModel:
    """Base tables [strategy, classification, regime] and the changes applied over time."""

    edge: FloatArray
    claimed: FloatArray
    good: tuple[int, ...]
    bad: tuple[int, ...]
    changes: tuple[Change, ...]


def build_edges(config: SimulationConfig, present: list[set[int]]) -> EdgeModel:
    """Edge tables for the strategies of ``config``; ``present[s]`` holds the classification
    indices strategy s trades (good and bad classifications are chosen among them)."""
    rng = rng_for(config.seed, 2)
    n_s, n_c, n_r = len(config.strategies), len(CLASSIFICATIONS), len(REGIMES)
    edge = rng.uniform(-0.02, 0.05, (n_s, n_c, 1)) + rng.uniform(-0.02, 0.02, (n_s, 1, n_r))
    good: list[int] = []
    bad: list[int] = []
    shared_order = [int(c) for c in rng.permutation(n_c)]
    for s in range(n_s):
        # One shuffled order for all, rotated by two per strategy: strategies get different
        # good and bad classifications where their symbols allow it.
        order = [c for c in shared_order if c in present[s]]
        shift = (2 * s) % len(order)
        order = order[shift:] + order[:shift]
        good.append(order[0])
        edge[s, order[0], :] = rng.uniform(0.12, 0.16, n_r)
        if len(order) > 1:
            bad.append(order[1])
            edge[s, order[1], :] = rng.uniform(-0.16, -0.12, n_r)
        else:
            bad.append(-1)
    edge = np.round(edge, 4)
    overclaim = np.round(rng.uniform(0.03, 0.06, edge.shape), 4)
    claimed = np.where(edge >= 0.0, np.maximum(edge, MIN_CLAIM), overclaim)

    changes: list[Change] = []
    if config.concept_drift_at is not None:
        s, c = 0, good[0]
        after = tuple(-float(e) for e in edge[s, c])
        changes.append(
            _change(config, config.concept_drift_at, "concept", s, c, edge, claimed, after, None)
        )
    if config.calibration_drift_at is not None:
        s = min(1, n_s - 1)
        mediocre = [c for c in sorted(present[s]) if c not in (good[s], bad[s])]
        if mediocre:
            c = mediocre[0]
            claims = tuple(float(e) + config.calibration_drift_size for e in edge[s, c])
            changes.append(
                _change(
                    config,
                    config.calibration_drift_at,
                    "calibration",
                    s,
                    c,
                    edge,
                    claimed,
                    None,
                    claims,
                )
            )
    return EdgeModel(edge, claimed, tuple(good), tuple(bad), tuple(changes))


def _change(
    config: SimulationConfig,
    at: float,
    kind: str,
    s: int,
    c: int,
    edge: FloatArray,
    claimed: FloatArray,
    edge_after: tuple[float, ...] | None,
    claimed_after: tuple[float, ...] | None,
) -> Change:
    before_e = tuple(float(e) for e in edge[s, c])
    before_c = tuple(float(e) for e in claimed[s, c])
    return Change(
        bar=int(at * config.n_bars),
        kind=kind,
        strategy=s,
        classification=c,
        edge_before=before_e,
        edge_after=tuple(round(e, 4) for e in edge_after) if edge_after else before_e,
        claimed_before=before_c,
        claimed_after=tuple(round(e, 4) for e in claimed_after) if claimed_after else before_c,
    )


def pair_tables(
    model: EdgeModel, strategy: int, classification: int, regimes: npt.NDArray[np.int64]
) -> tuple[FloatArray, FloatArray]:
    """Edge and claimed edge per bar for one (strategy, symbol) given the symbol's regimes."""
    edge = model.edge[strategy, classification][regimes]
    claimed = model.claimed[strategy, classification][regimes]
    for change in model.changes:
        if change.strategy == strategy and change.classification == classification:
            edge[change.bar :] = np.asarray(change.edge_after)[regimes[change.bar :]]
            claimed[change.bar :] = np.asarray(change.claimed_after)[regimes[change.bar :]]
    return edge, claimed


def truth_tables(model: EdgeModel, config: SimulationConfig, bar_ts: list[str]) -> dict[str, Any]:
    """Edges over time for the ground truth: ``"s|c|r" -> [[from_ts, edge], ...]``."""
    edges: dict[str, list[list[Any]]] = {}
    claims: dict[str, list[list[Any]]] = {}
    start = bar_ts[0]
    for s, strategy in enumerate(config.strategies):
        for c, classification in enumerate(CLASSIFICATIONS):
            for r, regime in enumerate(REGIMES):
                key = f"{strategy}|{classification}|{regime}"
                edges[key] = [[start, float(model.edge[s, c, r])]]
                claims[key] = [[start, float(model.claimed[s, c, r])]]
                for ch in model.changes:
                    if ch.strategy == s and ch.classification == c:
                        edges[key].append([bar_ts[ch.bar], ch.edge_after[r]])
                        claims[key].append([bar_ts[ch.bar], ch.claimed_after[r]])
    return {"edges": edges, "claimed_edges": claims}
