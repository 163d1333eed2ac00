"""Event-time sanity (issue 9, defect 5): one far-off timestamp neither makes the stream late
nor costs one timer firing per skipped day.

A record further than ``max_event_time_ahead_ms`` ahead of the latest event time, or further
than ``max_event_time_behind_ms`` behind the watermark, is a dead letter
(``event_time_out_of_bounds``) and changes nothing else. When the very first record is the
far-off one, the record after it is refused too (it is the one that looks far off), and the
stream goes on from the second: exactly one good record is lost to a dead letter. A
legitimate gap in event time (bounds off) costs one step of the policy loop, not one run per
skipped day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from processors.pipeline import PipelineConfig
from processors.policy.loop import PolicyLoop
from streams.replay import run_replay
from streams.simulator import SimulationConfig, simulate

OUTPUTS = ("alerts", "replan_verdicts", "policy_candidates", "policy_updates", "performance")


@pytest.fixture(scope="module")
def market_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = tmp_path_factory.mktemp("bounds") / "market.jsonl"
    simulate(SimulationConfig(seed=5, days=3, symbols=6), path)
    return [line for line in path.read_bytes().splitlines() if line]


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The end times of every policy-loop run asked for (a run that skips included)."""
    asked: list[int] = []
    original = PolicyLoop.run

    def counted(self: PolicyLoop, end_ms: int, *args: Any, **kwargs: Any) -> Any:
        asked.append(end_ms)
        return original(self, end_ms, *args, **kwargs)

    monkeypatch.setattr(PolicyLoop, "run", counted)
    return asked


def _decision_line(lines: list[bytes], bar_ts: str, event_id: str) -> bytes:
    record = next(
        orjson.loads(line)
        for line in lines
        if b'"topic":"bar_decisions"' in line and b'"event_id":"d-' in line
    )
    record["value"].update(bar_ts=bar_ts, event_id=event_id)
    return orjson.dumps(record)


def _replay(tmp_path: Path, name: str, lines: list[bytes], **config: Any) -> dict[str, Any]:
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / name
    summary = run_replay(path, out, PipelineConfig(**config)).summary
    files = {topic: (out / f"{topic}.jsonl").read_bytes() for topic in OUTPUTS}
    letters = [orjson.loads(x) for x in (out / "dead_letters.jsonl").read_bytes().splitlines()]
    return {"summary": summary, "files": files, "letters": letters}


def _bounds_letters(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in result["letters"] if d["error"]["type"] == "event_time_out_of_bounds"]


@pytest.mark.parametrize(
    "bar_ts", ["2027-01-07T00:00:00Z", "9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z"]
)
def test_one_far_off_record_mid_stream_is_a_dead_letter_and_changes_nothing_else(
    market_lines: list[bytes], tmp_path: Path, bar_ts: str
) -> None:
    clean = _replay(tmp_path, "clean", market_lines)
    middle = len(market_lines) // 2
    bad = _decision_line(market_lines, bar_ts, "far-off")
    faulty = _replay(tmp_path, "faulty", [*market_lines[:middle], bad, *market_lines[middle:]])
    assert faulty["files"] == clean["files"]
    (letter,) = _bounds_letters(faulty)
    assert letter["source_offset"] == f"line:{middle + 1}"
    assert bar_ts[:4] in letter["error"]["message"]
    assert faulty["summary"]["input_totals"]["late"] == 0


def test_a_far_off_first_record_costs_one_good_record_not_the_stream(
    market_lines: list[bytes], tmp_path: Path, runs: list[int]
) -> None:
    clean = _replay(tmp_path, "clean", market_lines)
    clean_runs = len(runs)
    runs.clear()
    first = _decision_line(market_lines, "0001-01-01T00:00:00Z", "far-off-first")
    faulty = _replay(tmp_path, "faulty", [first, *market_lines])
    (letter,) = _bounds_letters(faulty)
    assert letter["source_offset"] == "line:2"  # the first good record, refused
    totals = faulty["summary"]["input_totals"]
    assert totals["processed"] == clean["summary"]["input_totals"]["processed"]  # -1 +1
    assert totals["late"] == 0
    # the jump of 2,000 years costs one step: beside the clean file's runs, only the daily
    # runs whose 7-day window still holds the far-off record are asked (and skip at once)
    assert len(runs) <= clean_runs + 8, (len(runs), clean_runs)


def test_a_legitimate_gap_costs_one_step_not_one_run_per_day(
    market_lines: list[bytes], tmp_path: Path, runs: list[int]
) -> None:
    later = [
        line.replace(b'"2026-01-', b'"2028-01-').replace(b'"event_id":"', b'"event_id":"L')
        for line in market_lines
    ]
    result = _replay(
        tmp_path,
        "gap",
        [*market_lines, *later],
        max_event_time_ahead_ms=None,
        max_event_time_behind_ms=None,
    )
    assert _bounds_letters(result) == []
    assert result["summary"]["input_totals"]["late"] == 0
    # two 3-day stretches two years apart: a handful of runs, not ~730
    assert len(runs) <= 20, len(runs)
