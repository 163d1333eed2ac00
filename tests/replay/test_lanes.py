"""The lanes and the global stage (issue 10): ``replay --jobs N`` gives byte-identical output
for every N; a checkpoint taken with lanes in N processes restores with lanes in this one; a
strategy's lane does not depend on the other strategies.

Each strategy_id has a lane of its own (processors/lane.py), so "the number of lanes" is the
number of strategies in the data; what ``--jobs`` changes is which process runs each lane.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from models.codec import encode
from models.inputs import StandDownEvent
from processors.core.base import Envelope, Output
from processors.lane import merge_summaries
from processors.pipeline import Pipeline, PipelineConfig
from streams.adapter import Rejected, decode_line
from streams.lane_pool import ProcessLanes, process_of
from streams.replay import run_replay
from streams.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lanes") / "market.jsonl"
    simulate(SimulationConfig(seed=7, days=3, symbols=6), path)
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _envelopes(path: Path) -> list[Envelope]:
    decoded = [
        decode_line(line, f"line:{n}")
        for n, line in enumerate(path.read_bytes().splitlines(), start=1)
        if line
    ]
    return [d for d in decoded if not isinstance(d, Rejected)]


def _strategy_of(envelope: Envelope) -> str | None:
    value = envelope.value
    if isinstance(value, StandDownEvent):
        return value.scope.strategy_id
    return value.strategy_id


def _bytes(outputs: list[Output]) -> list[tuple[str, str, bytes]]:
    return [(o.topic, o.key, encode(o.value)) for o in outputs]


def test_replay_output_is_byte_identical_for_any_number_of_jobs(
    market: Path, tmp_path: Path
) -> None:
    one = run_replay(market, tmp_path / "jobs1")
    strategies = {_strategy_of(e) for e in _envelopes(market)} - {None}
    assert len(strategies) >= 3  # lanes spread over the processes below
    assert len({process_of(s, 3) for s in strategies}) >= 2
    expected = _digests(tmp_path / "jobs1")
    assert one.summary["outputs"]["alerts"] > 0
    for jobs in (2, 3):
        run_replay(market, tmp_path / f"jobs{jobs}", jobs=jobs)
        assert _digests(tmp_path / f"jobs{jobs}") == expected, f"--jobs {jobs} differs"


def test_a_checkpoint_of_lanes_in_processes_restores_in_one(market: Path) -> None:
    envelopes = _envelopes(market)
    whole = Pipeline()
    expected = _bytes(whole.handle_batch(envelopes) + whole.finish())
    cut = len(envelopes) // 2
    config = PipelineConfig()
    with ProcessLanes(config, 2) as lanes:
        first = Pipeline(config, lanes)
        got = first.handle_batch(envelopes[:cut])
        state = orjson.loads(orjson.dumps(first.snapshot()))
    second = Pipeline()
    second.restore(state)
    got += second.handle_batch(envelopes[cut:]) + second.finish()
    assert _bytes(got) == expected


def test_submit_then_collect_gives_what_handle_batch_gives(market: Path) -> None:
    envelopes = _envelopes(market)
    direct = Pipeline()
    expected = _bytes(direct.handle_batch(envelopes) + direct.finish())
    piped = Pipeline()
    got: list[Output] = []
    for start in range(0, len(envelopes), 500):
        got += piped.submit(envelopes[start : start + 500])
    got_bytes = _bytes(got + piped.finish())
    per_topic = {topic for topic, _, _ in expected}
    for topic in per_topic:  # per output topic, the same records in the same order
        assert [o for o in got_bytes if o[0] == topic] == [o for o in expected if o[0] == topic]
    with pytest.raises(RuntimeError, match="collect"):
        piped.submit(envelopes[:10])
        piped.snapshot()


def test_a_strategy_lane_does_not_depend_on_the_other_strategies(market: Path) -> None:
    """One strategy's performance rows and replan verdicts are the same whether the other
    strategies are in the input or not (before lanes, the drift detectors' multiple-testing
    families were fleet-wide: one strategy's alerts depended on how many series the others
    had)."""
    envelopes = _envelopes(market)
    strategy = "breakout"
    alone = [e for e in envelopes if _strategy_of(e) in (strategy, None)]
    assert 0 < len(alone) < len(envelopes)

    def own(outputs: list[Output]) -> list[tuple[str, str, bytes]]:
        return [
            row
            for row in _bytes(outputs)
            if row[0] in ("performance", "replan_verdicts") and row[1].startswith(strategy)
        ]

    # (not the end-of-input flush: its rows are as of the input's last event time)
    expected = own(Pipeline().handle_batch(envelopes))
    assert expected
    assert own(Pipeline().handle_batch(alone)) == expected


def test_merged_summaries_add_counts_and_keep_every_strategy() -> None:
    parts = [
        {"strategies": {"a": {"trades": 3}}, "family_size": 2, "labels": {"joined": 5}},
        {"strategies": {"b": {"trades": 1}}, "family_size": 4, "labels": {"joined": 1}},
    ]
    assert merge_summaries(parts) == {
        "strategies": {"a": {"trades": 3}, "b": {"trades": 1}},
        "family_size": 6,
        "labels": {"joined": 6},
    }
