"""The contract every processor keeps, checked on all of them through the pipeline.

- restoring a snapshot mid-stream gives exactly the outputs of an uninterrupted run;
- every processor's state survives the codec (orjson) and restores to the same state;
- inputs are never mutated;
- the same input gives the same output.
New processors wired into the pipeline are covered automatically (``Pipeline._STATE_NAMES``).
"""

from __future__ import annotations

import orjson
import pytest

from models.codec import encode
from processors.core.base import Envelope, Output, ms
from processors.pipeline import Pipeline
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


def test_every_processor_state_survives_the_codec(envelopes: list[Envelope]) -> None:
    pipeline = Pipeline()
    _run(pipeline, envelopes[: len(envelopes) // 2])
    for name in Pipeline._STATE_NAMES:
        state = orjson.loads(orjson.dumps(getattr(pipeline, name).snapshot()))
        fresh = getattr(Pipeline(), name)
        fresh.restore(state)
        assert orjson.loads(orjson.dumps(fresh.snapshot())) == state, name


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
            key=lambda t: (ms(queues[t][heads[t]].event_time) + skew_ms[t], t),
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
