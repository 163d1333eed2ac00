"""The dead-letter path cannot fail: whatever a rejected record holds becomes a dead letter.

Each case of the fault campaign (issue 9: a 1,100-character topic, a key over 1,024
characters with an invalid value, a 300-character ``features`` key with a bad value, values
nested 300 and 1,000 levels deep) goes through replay (a file, as a user runs it) and
through the worker's record path (``decode_record`` then ``Pipeline.reject``), and a
property test throws arbitrary bytes, keys and topic names at both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from builders import decision
from hypothesis import given, settings
from hypothesis import strategies as st

from models.codec import encode
from models.outputs import DeadLetter
from processors.pipeline import Pipeline
from streams.adapter import Rejected, decode_line, decode_record
from streams.replay import run_replay


def _decision_value(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = decision("d1", 0).model_dump(mode="json")
    value.update(changes)
    return value


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _line(topic: str, key: str | None, value: Any) -> bytes:
    return orjson.dumps({"topic": topic, "key": key, "timestamp_ms": None, "value": value})


def _deep_line(depth: int) -> bytes:
    # built as text: orjson cannot write more than ~254 levels, which is the point
    value = orjson.dumps(_decision_value(metadata={"deep": "HOLE"}))
    nested = b"[" * depth + b"1" + b"]" * depth
    return (
        b'{"topic":"bar_decisions","key":"AAA","value":' + value.replace(b'"HOLE"', nested) + b"}"
    )


CASES: dict[str, bytes] = {
    "long_topic": _line("t" * 1100, "AAA", {"x": 1}),
    "long_key_invalid_value": _line("bar_decisions", "k" * 1500, {"symbol": 5}),
    "long_feature_key_bad_value": _line(
        "bar_decisions", "AAA", _decision_value(features={"f" * 300: "not a number"})
    ),
    "nested_300": _deep_line(300),
    "nested_1000": _deep_line(1000),
    "nested_2000": _deep_line(2000),
    "nested_100_in_an_unknown_topic": _line("nope", None, {"a": _nested(100)}),
}


def test_replay_dead_letters_every_fault_case_and_goes_on(tmp_path: Path) -> None:
    good = _line("bar_decisions", "AAA", _decision_value())
    market = tmp_path / "faults.jsonl"
    market.write_bytes(b"\n".join([*CASES.values(), good]) + b"\n")
    result = run_replay(market, tmp_path / "out")
    letters = [
        orjson.loads(line)
        for line in (tmp_path / "out" / "dead_letters.jsonl").read_bytes().splitlines()
    ]
    assert len(letters) == len(CASES)
    assert result.summary["input_totals"]["processed"] == 1
    by_line = {int(letter["source_offset"].removeprefix("line:")): letter for letter in letters}
    for number, name in enumerate(CASES, start=1):
        letter = DeadLetter.model_validate(by_line[number])
        assert letter.error.message, name
        if name.startswith("nested_") and name != "nested_2000":
            assert letter.error.type == "too_deep", (name, letter.error)
    assert by_line[1]["source_topic"].startswith("ttt") and len(by_line[1]["source_topic"]) <= 1024
    assert len(by_line[2]["key"]) == 1024
    assert by_line[3]["error"]["field"].startswith("features.fff")


def test_the_worker_record_path_dead_letters_every_fault_case() -> None:
    pipeline = Pipeline()
    for name, line in CASES.items():
        record = orjson.loads(line) if not name.startswith("nested") else None
        topic = record["topic"] if record else "bar_decisions"
        key = record["key"] if record else "AAA"
        value = orjson.dumps(record["value"]) if record else line[line.index(b'"value":') + 8 : -1]
        decoded = decode_record(topic, key.encode() if key else None, value, "t:0:1")
        assert isinstance(decoded, Rejected), name
        (output,) = pipeline.reject(
            decoded.source_topic, decoded.key, decoded.raw, decoded.error, decoded.source
        )
        assert isinstance(output.value, DeadLetter), name
        encode(output.value)  # and it can be published


@settings(max_examples=300, deadline=None)
@given(
    topic=st.one_of(st.text(max_size=40), st.text(min_size=1000, max_size=1500)),
    key=st.one_of(st.none(), st.text(max_size=40), st.text(min_size=1000, max_size=1500)),
    raw=st.binary(max_size=3000),
)
def test_arbitrary_records_never_break_the_dead_letter_path(
    topic: str, key: str | None, raw: bytes
) -> None:
    pipeline = Pipeline()
    decoded = decode_record(topic, None if key is None else key.encode(), raw, "t:0:1")
    if isinstance(decoded, Rejected):
        (output,) = pipeline.reject(
            decoded.source_topic, decoded.key, decoded.raw, decoded.error, decoded.source
        )
        encode(output.value)
    line = orjson.dumps({"topic": topic, "key": key, "value": raw.decode("latin-1")})
    for candidate in (raw, line):
        parsed = decode_line(candidate, "line:1")
        if isinstance(parsed, Rejected):
            (output,) = pipeline.reject(
                parsed.source_topic, parsed.key, parsed.raw, parsed.error, parsed.source
            )
            encode(output.value)
