"""Deterministic synthetic market generator behind ``policyloop simulate``.

``simulate(SimulationConfig(...), Path("market.jsonl"))`` writes a replay file (CONTRACT.md,
"Replay files") with decisions, fills, plans, stand-downs and late outcomes of a market with
known strategy edges, injected drifts, audit violations and faults, and returns (and writes
beside it as ``market.truth.json``) the GroundTruth of everything injected.
"""

from streams.simulator.config import SimulationConfig
from streams.simulator.faults import MALFORMED_KINDS
from streams.simulator.generate import simulate, truth_path
from streams.simulator.truth import GroundTruth

__all__ = ["MALFORMED_KINDS", "GroundTruth", "SimulationConfig", "simulate", "truth_path"]
