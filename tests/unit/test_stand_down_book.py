"""Golden tests of the stand-down book: timelines, scopes, lateness and the audit signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from models.common import to_ms
from models.inputs import DecisionRecord, StandDownEvent
from models.outputs import AlertScope
from models.taxonomy import AlertKind, Severity
from processors.audit.stand_down_book import StandDownBook, StandDownConfig
from processors.core import metric_names as mn
from processors.core.base import AlertSignal, MetricSample

DAY = datetime(2024, 3, 4, tzinfo=UTC)


def at(hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return DAY + timedelta(hours=int(hours), minutes=int(minutes))


def sd(
    event_id: str,
    ts: str,
    action: str = "start",
    until: str | None = "11:00",
    strategy: str | None = "momo",
    symbol: str | None = "AAPL",
    reason: str = "drawdown",
    source: str = "judge",
) -> StandDownEvent:
    scope: dict[str, Any] = {}
    if strategy is not None:
        scope["strategy_id"] = strategy
    if symbol is not None:
        scope["symbol"] = symbol
    raw: dict[str, Any] = {
        "event_id": event_id,
        "ts": at(ts).isoformat(),
        "action": action,
        "scope": scope,
        "reason": reason,
        "source": source,
    }
    if action != "clear" and until is not None:
        raw["until_ts"] = at(until).isoformat()
    return StandDownEvent.model_validate(raw)


def decision(
    event_id: str,
    bar: str,
    weight: float = 0.0,
    strategy: str = "momo",
    symbol: str = "AAPL",
    reported: tuple[str, str, str] | None = None,
) -> DecisionRecord:
    raw: dict[str, Any] = {
        "event_id": event_id,
        "run_id": "r1",
        "mode": "live",
        "strategy_id": strategy,
        "symbol": symbol,
        "classification": "large_cap",
        "regime": "trend",
        "timeframe": "15m",
        "bar_ts": at(bar).isoformat(),
        "price": 100.0,
        "p_hat": 0.6,
        "vol_hat": 0.2,
        "features": {"f": 1.0},
        "current_weight": 0.0,
        "equity": 1e6,
        "target_weight_raw": weight,
        "target_weight_final": weight,
        "reasons": ["hold"],
        "block_events": [],
        "policy_version": "v1",
    }
    if reported is not None:
        until, reason, source = reported
        raw["stand_down"] = {"until_ts": at(until).isoformat(), "reason": reason, "source": source}
    return DecisionRecord.model_validate(raw)


def covered(book: StandDownBook, bar: str, strategy: str = "momo", symbol: str = "AAPL") -> Any:
    """(scope, since, until, reason, source) in force, as text, or None."""
    found = book.in_force(strategy, symbol, to_ms(at(bar)))
    if found is None:
        return None
    scope, (since, until, reason, source, _) = found
    return (
        scope,
        (DAY + timedelta(milliseconds=since - to_ms(DAY))).strftime("%H:%M"),
        (DAY + timedelta(milliseconds=until - to_ms(DAY))).strftime("%H:%M"),
        reason,
        source,
    )


def book_of(*events: StandDownEvent, **config: Any) -> StandDownBook:
    book = StandDownBook(StandDownConfig(**config))
    for event in events:
        book.on_stand_down(event)
    return book


# -- timelines --------------------------------------------------------------------------------

SCOPE = ("momo", "AAPL")


def test_start_covers_ts_inclusive_until_exclusive() -> None:
    book = book_of(sd("s1", "10:00", until="11:00"))
    assert covered(book, "09:45") is None
    assert covered(book, "10:00") == (SCOPE, "10:00", "11:00", "drawdown", "judge")
    assert covered(book, "10:59") is not None
    assert covered(book, "11:00") is None


def test_extend_moves_until_and_takes_its_reason_and_source() -> None:
    book = book_of(
        sd("s1", "10:00", until="11:00"),
        sd("x1", "10:30", "extend", until="12:00", reason="still volatile", source="ops"),
    )
    # the fold runs to bar_ts: before the extend, the stand-down known then applies
    assert covered(book, "10:15") == (SCOPE, "10:00", "11:00", "drawdown", "judge")
    assert covered(book, "10:30") == (SCOPE, "10:00", "12:00", "still volatile", "ops")
    assert covered(book, "11:30") == (SCOPE, "10:00", "12:00", "still volatile", "ops")
    assert covered(book, "12:00") is None
    shortened = book_of(
        sd("s1", "10:00", until="12:00"), sd("x1", "10:30", "extend", until="10:45")
    )
    assert covered(shortened, "10:40") is not None
    assert covered(shortened, "10:45") is None


def test_clear_ends_it_at_c() -> None:
    book = book_of(sd("s1", "10:00", until="12:00"), sd("c1", "10:30", "clear"))
    assert covered(book, "10:15") is not None
    assert covered(book, "10:30") is None
    assert covered(book, "11:00") is None


def test_extend_after_expiry_restarts_at_the_extend() -> None:
    book = book_of(
        sd("s1", "10:00", until="10:30"), sd("x1", "11:00", "extend", until="12:00", source="ops")
    )
    assert covered(book, "10:15") == (SCOPE, "10:00", "10:30", "drawdown", "judge")
    assert covered(book, "10:45") is None  # the gap is not covered
    assert covered(book, "11:00") == (SCOPE, "11:00", "12:00", "drawdown", "ops")
    after_clear = book_of(
        sd("s1", "10:00", until="12:00"),
        sd("c1", "10:30", "clear"),
        sd("x1", "11:00", "extend", until="11:30"),
    )
    assert covered(after_clear, "10:45") is None
    assert covered(after_clear, "11:15") == (SCOPE, "11:00", "11:30", "drawdown", "judge")


def test_same_ts_orders_start_extend_clear_regardless_of_arrival() -> None:
    book = book_of(sd("c1", "10:00", "clear"), sd("s1", "10:00", until="11:00"))
    assert covered(book, "10:00") is None
    book = book_of(sd("x1", "10:00", "extend", until="12:00"), sd("s1", "10:00", until="11:00"))
    assert covered(book, "11:30") is not None  # start, then the extend moves it to 12:00


def test_event_time_decides_not_arrival_order() -> None:
    forward = book_of(sd("s1", "10:00", until="11:00"), sd("c1", "10:30", "clear"))
    backward = book_of(sd("c1", "10:30", "clear"), sd("s1", "10:00", until="11:00"))
    for bar in ("09:59", "10:00", "10:29", "10:30", "10:59"):
        assert covered(forward, bar) == covered(backward, bar)


def test_overlapping_scopes_report_the_one_ending_last() -> None:
    book = book_of(
        sd("all", "10:00", until="10:30", strategy=None, symbol=None, source="risk_engine"),
        sd("strat", "10:00", until="11:00", symbol=None, source="ops"),
        sd("pair", "10:00", until="12:00"),
        sd("sym", "10:00", until="10:45", strategy=None, symbol="TSLA"),
    )
    assert covered(book, "10:15") == (SCOPE, "10:00", "12:00", "drawdown", "judge")
    assert covered(book, "10:15", symbol="MSFT") == (
        ("momo", None),
        "10:00",
        "11:00",
        "drawdown",
        "ops",
    )
    assert covered(book, "10:15", strategy="carry") == (
        (None, None),
        "10:00",
        "10:30",
        "drawdown",
        "risk_engine",
    )
    assert covered(book, "10:45", strategy="carry") is None
    assert covered(book, "10:40", strategy="carry", symbol="TSLA") == (
        (None, "TSLA"),
        "10:00",
        "10:45",
        "drawdown",
        "judge",
    )
    # equal until_ts: the most specific scope wins
    tie = book_of(
        sd("all", "10:00", until="11:00", strategy=None, symbol=None),
        sd("strat", "10:00", until="11:00", symbol=None, reason="strategy-wide"),
    )
    assert covered(tie, "10:15")[0] == ("momo", None)


# -- audit ------------------------------------------------------------------------------------

SD_EVIDENCE = {
    "scope": {"strategy_id": "momo", "symbol": "AAPL"},
    "since_ts": "2024-03-04T10:00:00Z",
    "until_ts": "2024-03-04T11:00:00Z",
    "reason": "drawdown",
    "source": "judge",
    "event_id": "s1",
}


def decision_evidence(event_id: str, bar: str, weight: float) -> dict[str, Any]:
    return {
        "decision_event_id": event_id,
        "strategy_id": "momo",
        "symbol": "AAPL",
        "bar_ts": f"2024-03-04T{bar}:00Z",
        "target_weight_final": weight,
    }


def test_violation_and_missing_signals_exact() -> None:
    book = book_of(sd("s1", "10:00", until="11:00"))
    book.on_decision(decision("d1", "10:15", weight=0.25))
    signals = book.flush().signals
    scope = AlertScope(strategy_id="momo", symbol="AAPL")
    assert signals == [
        AlertSignal(
            kind=AlertKind.STAND_DOWN_VIOLATION,
            severity=Severity.HIGH,
            scope=scope,
            event_time=at("10:15"),
            evidence={**decision_evidence("d1", "10:15", 0.25), "stand_down": SD_EVIDENCE},
            dedup_key="stand_down_violation|momo|AAPL",
            source_id="d1",
        ),
        AlertSignal(
            kind=AlertKind.DATA_QUALITY,
            severity=Severity.MEDIUM,
            scope=scope,
            event_time=at("10:15"),
            evidence={
                "problem": "decision omits the active stand-down",
                **decision_evidence("d1", "10:15", 0.25),
                "stand_down": SD_EVIDENCE,
            },
            dedup_key="data_quality|stand_down_missing|momo|AAPL",
            source_id="d1",
        ),
    ]


def test_compliant_and_partial_decisions() -> None:
    book = book_of(sd("s1", "10:00", until="11:00"))
    book.on_decision(decision("ok", "10:15", reported=("11:00", "drawdown", "judge")))
    book.on_decision(decision("flat_silent", "10:30"))
    book.on_decision(decision("trades", "10:45", weight=-0.1, reported=("11:00", "x", "ops")))
    book.on_decision(decision("after", "11:00", weight=0.3))  # at until_ts: not covered
    kinds = [(s.source_id, s.kind, s.severity) for s in book.flush().signals]
    assert kinds == [
        ("flat_silent", AlertKind.DATA_QUALITY, Severity.MEDIUM),
        ("trades", AlertKind.STAND_DOWN_VIOLATION, Severity.HIGH),
    ]


def test_decision_reporting_unknown_stand_down() -> None:
    book = book_of(sd("s1", "10:00", until="11:00"), sd("c1", "10:30", "clear"))
    book.on_decision(decision("d1", "10:45", reported=("11:00", "drawdown", "judge")))
    assert book.flush().signals == [
        AlertSignal(
            kind=AlertKind.DATA_QUALITY,
            severity=Severity.LOW,
            scope=AlertScope(strategy_id="momo", symbol="AAPL"),
            event_time=at("10:45"),
            evidence={
                "problem": "decision reports a stand-down the book does not know",
                **decision_evidence("d1", "10:45", 0.0),
                "reported_stand_down": {
                    "until_ts": "2024-03-04T11:00:00Z",
                    "reason": "drawdown",
                    "source": "judge",
                },
            },
            dedup_key="data_quality|stand_down_unknown|momo|AAPL",
            source_id="d1",
        )
    ]


def test_audit_waits_for_allowed_lateness_and_runs_in_bar_order() -> None:
    book = book_of()  # default lateness: 15 minutes
    for event_id, bar in (("d3", "10:30"), ("d2", "10:15"), ("d1", "10:15"), ("d0", "10:00")):
        book.on_decision(decision(event_id, bar, weight=0.1))
    assert book.on_tick(to_ms(at("10:10"))).signals == []  # audits bar_ts <= 09:55: none yet
    # the stand-down arrives late (after decisions with later bar_ts), within the lateness
    book.on_stand_down(sd("s1", "10:00", until="11:00"))
    emitted = book.on_tick(to_ms(at("10:30")))
    assert [(s.source_id, s.kind) for s in emitted.signals] == [
        ("d0", AlertKind.STAND_DOWN_VIOLATION),
        ("d0", AlertKind.DATA_QUALITY),
        ("d1", AlertKind.STAND_DOWN_VIOLATION),
        ("d1", AlertKind.DATA_QUALITY),
        ("d2", AlertKind.STAND_DOWN_VIOLATION),
        ("d2", AlertKind.DATA_QUALITY),
    ]
    assert book.pending_count == 1
    assert [s.source_id for s in book.flush().signals] == ["d3", "d3"]
    assert book.pending_count == 0


def test_stand_down_later_than_allowed_lateness_misses_audited_decisions() -> None:
    book = book_of(allowed_lateness_ms=0)
    book.on_decision(decision("d1", "10:15", weight=0.1))
    assert book.on_tick(to_ms(at("10:15"))).signals == []
    book.on_stand_down(sd("s1", "10:00", until="11:00"))
    book.on_decision(decision("d2", "10:30", weight=0.1))
    assert [s.source_id for s in book.on_tick(to_ms(at("10:30"))).signals] == ["d2", "d2"]


def test_compaction_keeps_what_is_in_force_and_bounds_state() -> None:
    hour = 3_600_000
    book = book_of(allowed_lateness_ms=0, history_ms=hour)
    book.on_stand_down(sd("s1", "01:00", until="23:00", strategy=None, symbol=None))
    book.on_stand_down(sd("x1", "02:00", "extend", until="23:30", strategy=None, symbol=None))
    for i in range(20):  # short stand-downs that expire long before the watermark
        book.on_stand_down(sd(f"p{i}", f"0{i % 3}:{i:02d}", until="05:00", symbol=f"S{i}"))
    assert len(book.snapshot()["scopes"]) == 21
    book.on_tick(to_ms(at("08:00")))
    scopes = book.snapshot()["scopes"]
    assert scopes == [
        [None, None, [[to_ms(at("01:00")), 0, "x1", to_ms(at("23:30")), "drawdown", "judge"]]],
    ]
    assert covered(book, "09:00", symbol="S1") == (
        (None, None),
        "01:00",
        "23:30",
        "drawdown",
        "judge",
    )
    assert book.metrics() == [MetricSample(mn.STAND_DOWNS_ACTIVE, (), 1.0)]
    book.on_tick(to_ms(at("25:00")))
    assert book.snapshot()["scopes"] == []
    assert book.metrics() == [MetricSample(mn.STAND_DOWNS_ACTIVE, (), 0.0)]


def test_metrics_count_scopes_in_force_at_watermark() -> None:
    book = book_of(
        sd("a", "10:00", until="11:00"),
        sd("b", "10:00", until="10:30", symbol=None),
        sd("c", "12:00", until="13:00", strategy="carry"),
    )
    assert book.metrics() == [MetricSample(mn.STAND_DOWNS_ACTIVE, (), 0.0)]  # no watermark yet
    book.on_tick(to_ms(at("10:15")))
    assert book.metrics() == [MetricSample(mn.STAND_DOWNS_ACTIVE, (), 2.0)]
    book.on_tick(to_ms(at("10:45")))
    assert book.metrics() == [MetricSample(mn.STAND_DOWNS_ACTIVE, (), 1.0)]


def test_repeated_stand_down_event_is_ignored() -> None:
    book = book_of(sd("s1", "10:00"), sd("s1", "10:00"))
    assert len(book.snapshot()["scopes"][0][2]) == 1


def test_restore_mid_stream_gives_identical_outputs() -> None:
    def feed(book: StandDownBook, steps: list[Any]) -> list[Any]:
        out: list[Any] = []
        for step in steps:
            if isinstance(step, StandDownEvent):
                out.append(book.on_stand_down(step))
            elif isinstance(step, DecisionRecord):
                out.append(book.on_decision(step))
            else:
                out.append(book.on_tick(step))
        out.append(book.flush())
        return out

    steps: list[Any] = [
        sd("s1", "10:00", until="11:00", symbol=None),
        decision("d1", "10:00", weight=0.2),
        decision("d2", "10:15", reported=("11:00", "drawdown", "judge")),
        to_ms(at("10:20")),
        sd("x1", "10:20", "extend", until="12:00", symbol=None),
        decision("d3", "11:15", weight=0.1, symbol="MSFT"),
        to_ms(at("11:20")),
        sd("c1", "11:30", "clear", symbol=None),
        decision("d4", "11:45", reported=("12:00", "drawdown", "judge")),
        decision("d5", "11:15", weight=0.5),
        to_ms(at("12:30")),
    ]
    whole = feed(StandDownBook(), steps)
    for cut in range(len(steps)):
        first = StandDownBook()
        head = [
            first.on_stand_down(s)
            if isinstance(s, StandDownEvent)
            else first.on_decision(s)
            if isinstance(s, DecisionRecord)
            else first.on_tick(s)
            for s in steps[:cut]
        ]
        second = StandDownBook()
        second.restore(orjson.loads(orjson.dumps(first.snapshot())))
        assert head + feed(second, steps[cut:]) == whole
    signals = [s for e in whole for s in e.signals]
    assert [(s.source_id, s.kind.value) for s in signals] == [
        ("d1", "stand_down_violation"),
        ("d1", "data_quality"),
        ("d3", "stand_down_violation"),
        ("d3", "data_quality"),
        ("d5", "stand_down_violation"),
        ("d5", "data_quality"),
        ("d4", "data_quality"),
    ]


def test_input_not_mutated() -> None:
    event = sd("s1", "10:00")
    dec = decision("d1", "10:15", weight=0.2)
    before = (event.model_dump(), dec.model_dump())
    book = StandDownBook()
    book.on_stand_down(event)
    book.on_decision(dec)
    book.flush()
    assert (event.model_dump(), dec.model_dump()) == before


def test_quiet_decisions_are_snapshotted_and_requeued_by_a_stand_down() -> None:
    """A decision with nothing in force waits outside the audit heap; it is still in the
    snapshot, and a stand-down event that arrives before its audit still counts."""
    book = book_of()
    book.on_decision(decision("d1", "10:00", weight=0.1))
    book.on_decision(decision("d2", "10:15", weight=0.1))
    state = orjson.loads(orjson.dumps(book.snapshot()))
    assert [row[1] for row in state["pending"]] == ["d1", "d2"] and book.pending_count == 2
    restored = StandDownBook()
    restored.restore(state)
    assert restored.snapshot() == state
    for each in (book, restored):
        each.on_stand_down(sd("s1", "10:00", until="11:00"))
        assert [s.source_id for s in each.on_tick(to_ms(at("10:15"))).signals] == ["d1", "d1"]
        assert [s.source_id for s in each.flush().signals] == ["d2", "d2"]
    quiet = book_of(allowed_lateness_ms=0)
    quiet.on_decision(decision("d3", "10:00", weight=0.1))
    assert quiet.on_tick(to_ms(at("10:00"))).signals == [] and quiet.pending_count == 0
