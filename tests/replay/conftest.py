"""A small simulated market shared by the replay tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.simulator import SimulationConfig, simulate


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("market") / "market.jsonl"
    simulate(SimulationConfig(seed=11, days=3, symbols=8), path)
    return path
