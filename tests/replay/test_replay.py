"""Replay end to end: the output layout, determinism, dead letters and duplicates."""

from __future__ import annotations

from pathlib import Path

import orjson

from streams.replay import run_replay

FILES = (
    "alerts.jsonl",
    "replan_verdicts.jsonl",
    "policy_candidates.jsonl",
    "policy_updates.jsonl",
    "feedback_summaries.jsonl",
    "dead_letters.jsonl",
    "performance.jsonl",
    "performance.json",
    "metrics.prom",
    "summary.json",
)


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def test_replay_twice_is_byte_identical(market: Path, tmp_path: Path) -> None:
    run_replay(market, tmp_path / "a")
    run_replay(market, tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_output_lines_are_canonical(market: Path, tmp_path: Path) -> None:
    run_replay(market, tmp_path)
    for name in FILES:
        if not name.endswith(".jsonl"):
            continue
        for line in (tmp_path / name).read_bytes().splitlines():
            assert line == orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)


def test_every_malformed_line_is_a_dead_letter_and_the_rest_is_processed(
    market: Path, tmp_path: Path
) -> None:
    result = run_replay(market, tmp_path)
    truth = orjson.loads(market.with_suffix(".truth.json").read_bytes())
    malformed = {int(item["line"]): item["kind"] for item in truth["malformed"]}
    letters = _read_jsonl(tmp_path / "dead_letters.jsonl")
    lettered = {int(str(d["source_offset"]).removeprefix("line:")) for d in letters}
    assert set(malformed) == lettered
    for letter in letters:
        error = letter["error"]
        assert isinstance(error, dict) and error["type"] and error["message"]
    kinds = set(malformed.values())
    assert len(kinds) >= 8, kinds
    totals = result.summary["input_totals"]
    lines = len([ln for ln in market.read_bytes().splitlines() if ln.strip()])
    assert totals["records"] == lines
    assert totals["dead_letter"] == len(malformed)
    assert totals["duplicate"] == len(truth["duplicates"])
    assert totals["processed"] == lines - len(malformed) - len(truth["duplicates"])


def test_duplicates_change_nothing(market: Path, tmp_path: Path) -> None:
    truth = orjson.loads(market.with_suffix(".truth.json").read_bytes())
    duplicate_lines = {int(d["line"]) for d in truth["duplicates"]}
    assert duplicate_lines
    lines = market.read_bytes().splitlines(keepends=True)
    deduped = tmp_path / "deduped.jsonl"
    deduped.write_bytes(
        b"".join(line for n, line in enumerate(lines, start=1) if n not in duplicate_lines)
    )
    run_replay(market, tmp_path / "with")
    run_replay(deduped, tmp_path / "without")
    for name in FILES:
        if name in ("summary.json", "metrics.prom", "dead_letters.jsonl"):
            continue
        assert (tmp_path / "with" / name).read_bytes() == (
            tmp_path / "without" / name
        ).read_bytes(), name
    # dead letters keep the same content; only their line numbers move
    strip = [
        {k: v for k, v in d.items() if k != "source_offset"}
        for d in _read_jsonl(tmp_path / "with" / "dead_letters.jsonl")
    ]
    assert strip == [
        {k: v for k, v in d.items() if k != "source_offset"}
        for d in _read_jsonl(tmp_path / "without" / "dead_letters.jsonl")
    ]


def test_metrics_carry_the_contract_names(market: Path, tmp_path: Path) -> None:
    run_replay(market, tmp_path)
    text = (tmp_path / "metrics.prom").read_text()
    for name in (
        "policyloop_events_total",
        "policyloop_no_change_replan_suppressed_total",
        "policyloop_replan_rate_per_day",
        "policyloop_trade_count",
        "policyloop_turnover",
        "policyloop_avg_hold_time_seconds",
        "policyloop_cancel_count",
        "policyloop_alerts_total",
    ):
        assert f"# TYPE {name}" in text or f"# TYPE {name.removesuffix('_total')}" in text, name
    assert (
        'policyloop_events_total{outcome="duplicate",topic="bar_decisions"}' in text
        or 'policyloop_events_total{topic="bar_decisions",outcome="duplicate"}' in text
    )
    assert "symbol=" not in text
