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
from processors.base import Envelope, Output
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
    """Records of different topics shuffled within the allowed lateness give the same
    output: only the order within each (topic, key) matters."""
    baseline = Pipeline()
    expected = sorted(_bytes(_run(baseline, envelopes) + baseline.finish()))
    by_slot: dict[tuple[str, str | None], list[Envelope]] = {}
    for envelope in envelopes:
        by_slot.setdefault((envelope.topic, envelope.key), []).append(envelope)
    # merge the per-(topic, key) streams in a different but still time-ordered way:
    # round-robin over slots, never more than a few minutes behind
    merged = sorted(
        envelopes,
        key=lambda e: (
            e.event_time.replace(second=0, microsecond=0),
            e.topic != "outcomes",
            e.topic,
        ),
    )
    slot_order = {}
    for envelope in merged:
        slot = (envelope.topic, envelope.key)
        slot_order.setdefault(slot, []).append(envelope)
    # keep each slot's own order as in the original
    for slot, items in slot_order.items():
        assert len(items) == len(by_slot[slot])
    positions = dict.fromkeys(by_slot, 0)
    reordered = []
    for envelope in merged:
        slot = (envelope.topic, envelope.key)
        reordered.append(by_slot[slot][positions[slot]])
        positions[slot] += 1
    shuffled = Pipeline()
    assert sorted(_bytes(_run(shuffled, reordered) + shuffled.finish())) == expected
