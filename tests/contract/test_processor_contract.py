"""The contract every stage keeps, checked on each of them automatically (as river's
``checks`` do for estimators): a stage added to ``processors.stages.STAGES`` is covered.

Per stage: it satisfies the ``Processor`` protocol (its declared handlers and timers exist);
its snapshot survives the codec (orjson) and restores to the same state; it pickles; a
snapshot of another state version is refused; the same input gives the same state; it never
reads the wall clock. Through the pipeline: restoring a snapshot mid-stream gives exactly the
outputs of an uninterrupted run; inputs are never mutated; batching and topic interleaving
do not change the output.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pickle
import pkgutil
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

import processors
from models.codec import encode
from models.common import to_ms
from processors.core.base import Envelope, Output, StateVersionError
from processors.lane_host import LocalLanes
from processors.pipeline import Pipeline, PipelineConfig
from processors.stages import STAGES
from streams.adapter import Rejected, decode_line
from streams.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def envelopes(tmp_path_factory: pytest.TempPathFactory) -> list[Envelope]:
    path = tmp_path_factory.mktemp("contract") / "market.jsonl"
    simulate(SimulationConfig(seed=5, days=2, symbols=6), path)
    decoded = [
        decode_line(line, f"line:{n}")
        for n, line in enumerate(path.read_bytes().splitlines(), start=1)
    ]
    return [d for d in decoded if not isinstance(d, Rejected)]


def _bytes(outputs: list[Output]) -> list[tuple[str, str, bytes]]:
    return [(o.topic, o.key, encode(o.value)) for o in outputs]


def _run(pipeline: Pipeline, envelopes: list[Envelope]) -> list[Output]:
    return pipeline.handle_batch(envelopes)


def test_restore_mid_stream_gives_identical_outputs(envelopes: list[Envelope]) -> None:
    whole = Pipeline()
    expected = _bytes(_run(whole, envelopes) + whole.finish())
    for cut in (len(envelopes) // 3, (2 * len(envelopes)) // 3):
        first = Pipeline()
        got = _run(first, envelopes[:cut])
        state = orjson.loads(orjson.dumps(first.snapshot()))
        second = Pipeline()
        second.restore(state)
        got += _run(second, envelopes[cut:]) + second.finish()
        assert _bytes(got) == expected, f"diverged after restore at {cut}"
    assert [m for m in whole.metrics() if m.name.endswith("events_total")]


STAGE_NAMES = [spec.name for spec in STAGES]


@pytest.fixture(scope="module")
def half_run(envelopes: list[Envelope]) -> Pipeline:
    """A pipeline that has seen the first half of the market: every stage has state."""
    pipeline = Pipeline()
    _run(pipeline, envelopes[: len(envelopes) // 2])
    return pipeline


def _fresh(name: str) -> Any:
    """A new stage ``name`` built as the pipeline builds it."""
    return next(spec for spec in STAGES if spec.name == name).build(PipelineConfig())


def _stage(pipeline: Pipeline, name: str) -> Any:
    """Stage ``name`` of ``pipeline``: the global one, or the first lane's (by strategy)."""
    if name in pipeline.global_stage.stages:
        return pipeline.global_stage.stages[name]
    lanes = pipeline.lanes
    assert isinstance(lanes, LocalLanes)
    return lanes.lanes[min(lanes.lanes)].stages[name]


def _state(stage: Any) -> Any:
    return orjson.loads(orjson.dumps(stage.snapshot()))


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_stage_satisfies_the_processor_protocol(name: str) -> None:
    stage = _fresh(name)
    for record_type, method in type(stage).takes.items():
        assert isinstance(record_type, type), (name, record_type)
        assert callable(getattr(stage, method)), (name, method)
    assert isinstance(type(stage).timers, bool)
    for method in ("on_tick", "snapshot", "restore", "metrics"):
        assert callable(getattr(stage, method)), (name, method)


def test_every_input_topic_reaches_a_stage() -> None:
    from models.topics import INPUT_TOPICS

    taken = {t for spec in STAGES for t in type(_fresh(spec.name)).takes}
    assert {spec.model for spec in INPUT_TOPICS.values()} <= taken


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_stage_state_survives_the_codec(half_run: Pipeline, name: str) -> None:
    state = _state(_stage(half_run, name))
    fresh = _fresh(name)
    fresh.restore(state)
    assert _state(fresh) == state


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_stage_pickles(half_run: Pipeline, name: str) -> None:
    stage = _stage(half_run, name)
    assert _state(pickle.loads(pickle.dumps(stage))) == _state(stage)


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_stage_refuses_another_state_version(half_run: Pipeline, name: str) -> None:
    state = _state(_stage(half_run, name))
    state["version"] = 999
    with pytest.raises(StateVersionError, match="999"):
        _fresh(name).restore(state)


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_stage_is_deterministic(envelopes: list[Envelope], name: str) -> None:
    a, b = Pipeline(), Pipeline()
    _run(a, envelopes)
    _run(b, envelopes)
    assert _state(_stage(a, name)) == _state(_stage(b, name))


class _NoWallClock(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _NoWallClock:
        raise AssertionError("a processor read the wall clock (datetime.now)")

    @classmethod
    def utcnow(cls) -> _NoWallClock:
        raise AssertionError("a processor read the wall clock (datetime.utcnow)")

    @classmethod
    def today(cls) -> _NoWallClock:
        raise AssertionError("a processor read the wall clock (datetime.today)")


def _processor_modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages(processors.__path__, "processors."):
        yield importlib.import_module(info.name)


def test_no_stage_reads_the_wall_clock(
    envelopes: list[Envelope], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole run with the clocks of ``time`` and every processor module's ``datetime``
    made to fail (the AST check in tests/unit/test_architecture.py bans the imports)."""

    def refuse(*args: object) -> float:
        raise AssertionError("a processor read the wall clock (time)")

    expected = _bytes(_run(Pipeline(), envelopes))
    for name in ("time", "time_ns", "monotonic", "perf_counter", "process_time"):
        monkeypatch.setattr(time, name, refuse)
    for module in _processor_modules():
        if getattr(module, "datetime", None) is dt.datetime:
            monkeypatch.setattr(module, "datetime", _NoWallClock)
    pipeline = Pipeline()
    assert _bytes(_run(pipeline, envelopes) + pipeline.finish())[: len(expected)] == expected


def test_inputs_are_not_mutated(envelopes: list[Envelope]) -> None:
    before = [encode(e.value) for e in envelopes]
    pipeline = Pipeline()
    _run(pipeline, envelopes)
    pipeline.finish()
    assert [encode(e.value) for e in envelopes] == before


def test_same_input_same_output(envelopes: list[Envelope]) -> None:
    a, b = Pipeline(), Pipeline()
    assert _bytes(_run(a, envelopes) + a.finish()) == _bytes(_run(b, envelopes) + b.finish())


def test_batching_does_not_change_the_result(envelopes: list[Envelope]) -> None:
    batched = Pipeline()
    one_by_one = Pipeline()
    expected = _bytes(_run(batched, envelopes) + batched.finish())
    got: list[Output] = []
    for envelope in envelopes:
        got.extend(one_by_one.handle(envelope))
    assert _bytes(got + one_by_one.finish()) == expected


def test_stream_output_is_interleaving_independent(envelopes: list[Envelope]) -> None:
    """The same records, with topics interleaved differently (each topic's own order kept,
    skew within the allowed lateness), give the same multiset of outputs and the same
    order per key: what a Kafka consumer merging partitions at its own pace sees."""
    baseline = Pipeline()
    expected = _bytes(_run(baseline, envelopes) + baseline.finish())
    skew_ms = {
        "bar_decisions": 0,
        "fills": -4 * 60_000,
        "outcomes": 4 * 60_000,
        "plans": 3 * 60_000,
        "stand_down": -2 * 60_000,
    }
    queues: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        queues.setdefault(envelope.topic, []).append(envelope)
    heads = dict.fromkeys(queues, 0)
    interleaved: list[Envelope] = []
    while len(interleaved) < len(envelopes):
        topic = min(
            (t for t in queues if heads[t] < len(queues[t])),
            key=lambda t: (to_ms(queues[t][heads[t]].event_time) + skew_ms[t], t),
        )
        interleaved.append(queues[topic][heads[topic]])
        heads[topic] += 1
    assert interleaved != envelopes
    shuffled = Pipeline()
    got = _bytes(_run(shuffled, interleaved) + shuffled.finish())
    assert baseline.late == shuffled.late == {}
    assert sorted(got) == sorted(expected)
    for topic_key in {(t, k) for t, k, _ in expected}:
        assert [b for t, k, b in got if (t, k) == topic_key] == [
            b for t, k, b in expected if (t, k) == topic_key
        ]


def test_input_topic_ranks_are_unique_and_every_topic_has_a_key() -> None:
    """The release order at equal event time is total: no two input topics share a rank
    (``InputTopicSpec`` has no default rank, so a new topic must choose one)."""
    from models.topics import INPUT_TOPICS, TOPIC_RANK

    assert len(set(TOPIC_RANK.values())) == len(TOPIC_RANK)
    assert all(spec.key_path for spec in INPUT_TOPICS.values())
