"""Golden tests of the position book: round trips exactly as CONTRACT.md defines them."""

from __future__ import annotations

import orjson
import pytest
from builders import T0_MS, cancel, decision, fill

from models.inputs import ExecutionEvent
from processors.core.base import DAY_MS, HOUR_MS, MINUTE_MS
from processors.performance.round_trips import (
    UNKNOWN_REGIME,
    RoundTripBook,
    RoundTripBookConfig,
    decision_confidence,
)
from processors.performance.trades import RoundTrip


def run(book: RoundTripBook, fills: list[ExecutionEvent]) -> list[RoundTrip]:
    trips: list[RoundTrip] = []
    for f in fills:
        trips.extend(book.on_fill(f))
    return trips


def test_simple_long_trip() -> None:
    book = RoundTripBook()
    assert book.on_fill(fill("f1", "buy", 10, 100.0, 0, fee=1.0, decision_id="d1")) == []
    assert book.position("s1", "AAA") == 10.0
    trips = book.on_fill(fill("f2", "sell", 10, 110.0, HOUR_MS, fee=1.0, exit_reason="signal"))
    assert trips == [
        RoundTrip(
            strategy_id="s1",
            symbol="AAA",
            classification="large_cap",
            regime=UNKNOWN_REGIME,
            direction=1,
            qty=10.0,
            entry_ts_ms=T0_MS,
            exit_ts_ms=T0_MS + HOUR_MS,
            entry_notional=1000.0,
            exit_notional=1100.0,
            fees=2.0,
            pnl=98.0,
            pnl_pct=0.098,
            close_event_id="f2",
            exit_reason="signal",
            decision_id="d1",
        )
    ]
    assert trips[0].hold_seconds == 3600.0
    assert trips[0].is_win
    assert book.position("s1", "AAA") == 0.0
    assert book.open_positions == 0


def test_partial_fills_make_one_trip() -> None:
    book = RoundTripBook()
    trips = run(
        book,
        [
            fill("f1", "buy", 4, 100.0, 0, fee=0.5),
            fill("f2", "buy", 6, 101.0, MINUTE_MS, fee=0.5),
            fill("f3", "sell", 5, 105.0, 2 * MINUTE_MS, fee=0.3),
            fill("f4", "sell", 5, 103.0, 3 * MINUTE_MS, fee=0.2),
        ],
    )
    assert len(trips) == 1
    trip = trips[0]
    # cash = -400 - 606 + 525 + 515 = 34; fees 1.5
    assert trip.qty == 10.0
    assert trip.entry_notional == pytest.approx(1006.0)
    assert trip.exit_notional == pytest.approx(1040.0)
    assert trip.fees == pytest.approx(1.5)
    assert trip.pnl == pytest.approx(32.5)
    assert trip.pnl_pct == pytest.approx(32.5 / 1006.0)
    assert trip.entry_ts_ms == T0_MS
    assert trip.exit_ts_ms == T0_MS + 3 * MINUTE_MS


def test_short_trip_is_symmetric() -> None:
    book = RoundTripBook()
    trips = run(
        book,
        [
            fill("f1", "sell", 10, 50.0, 0, fee=0.5),
            fill("f2", "buy", 4, 45.0, MINUTE_MS, fee=0.25),
            fill("f3", "buy", 6, 45.0, 2 * MINUTE_MS, fee=0.25),
        ],
    )
    assert len(trips) == 1
    trip = trips[0]
    assert trip.direction == -1
    assert trip.qty == 10.0
    assert trip.entry_notional == 500.0
    assert trip.exit_notional == 450.0
    assert trip.pnl == pytest.approx(49.0)
    assert trip.pnl_pct == pytest.approx(0.098)


def test_fill_crossing_zero_closes_one_trip_and_opens_the_next() -> None:
    book = RoundTripBook()
    assert run(book, [fill("f1", "buy", 10, 100.0, 0, fee=1.0)]) == []
    crossed = book.on_fill(fill("f2", "sell", 15, 110.0, HOUR_MS, fee=3.0, decision_id="d2"))
    assert len(crossed) == 1
    first = crossed[0]
    # The crossing fill's fee is split 10:5 -> 2.0 closes, 1.0 opens.
    assert first.fees == pytest.approx(3.0)
    assert first.pnl == pytest.approx(1100.0 - 1000.0 - 3.0)
    assert first.exit_notional == pytest.approx(1100.0)
    assert book.position("s1", "AAA") == -5.0
    second = book.on_fill(fill("f3", "buy", 5, 100.0, 2 * HOUR_MS, fee=0.5))[0]
    assert second.direction == -1
    assert second.entry_ts_ms == T0_MS + HOUR_MS
    assert second.entry_notional == pytest.approx(550.0)
    assert second.fees == pytest.approx(1.5)
    assert second.pnl == pytest.approx(550.0 - 500.0 - 1.5)
    assert second.pnl_pct == pytest.approx(48.5 / 550.0)
    assert second.decision_id == "d2"
    assert book.open_positions == 0


def test_fees_can_make_a_flat_trade_a_loss() -> None:
    book = RoundTripBook()
    trips = run(book, [fill("f1", "buy", 1, 100.0, 0, fee=0.1), fill("f2", "sell", 1, 100.0, 1)])
    assert trips[0].pnl == pytest.approx(-0.1)
    assert trips[0].pnl_pct == pytest.approx(-0.001)
    assert not trips[0].is_win


def test_float_dust_counts_as_flat() -> None:
    book = RoundTripBook()
    trips = run(
        book,
        [
            fill("f1", "buy", 0.1, 10.0, 0),
            fill("f2", "buy", 0.2, 10.0, 1),
            fill("f3", "sell", 0.3, 11.0, 2),
        ],
    )
    assert len(trips) == 1
    assert book.open_positions == 0


def test_cancels_do_not_move_the_position() -> None:
    book = RoundTripBook()
    book.on_fill(fill("f1", "buy", 2, 100.0, 0))
    assert book.on_fill(cancel("c1", 1)) == []
    assert book.position("s1", "AAA") == 2.0
    assert book.on_fill(fill("f2", "sell", 2, 100.0, 2))[0].qty == 2.0


def test_keys_are_strategy_and_symbol() -> None:
    book = RoundTripBook()
    book.on_fill(fill("f1", "buy", 1, 100.0, 0))
    assert book.on_fill(fill("f2", "sell", 1, 100.0, 1, symbol="BBB")) == []
    assert book.on_fill(fill("f3", "sell", 1, 100.0, 2, strategy_id="s2")) == []
    assert book.position("s1", "AAA") == 1.0
    assert book.position("s1", "BBB") == -1.0
    assert book.position("s2", "AAA") == -1.0


def test_regime_resolution_order() -> None:
    book = RoundTripBook()
    assert book.resolve_regime(fill("f0", "buy", 1, 1.0, 0)) == UNKNOWN_REGIME
    book.on_decision(decision("d1", 0, regime="range"))
    book.on_decision(decision("d2", HOUR_MS, regime="high_vol"))
    book.on_decision(decision("d0", -HOUR_MS, regime="trend"))  # older: not the latest
    # 1. the fill's own regime
    assert book.resolve_regime(fill("f1", "buy", 1, 1.0, 0, regime="x", decision_id="d1")) == "x"
    # 2. the named decision's regime
    assert book.resolve_regime(fill("f2", "buy", 1, 1.0, 0, decision_id="d1")) == "range"
    # 3. the latest decision of (strategy, symbol) by event time
    assert book.resolve_regime(fill("f3", "buy", 1, 1.0, 0, decision_id="nope")) == "high_vol"
    assert book.resolve_regime(fill("f4", "buy", 1, 1.0, 0)) == "high_vol"
    # 4. unknown, for a (strategy, symbol) without decisions
    assert book.resolve_regime(fill("f5", "buy", 1, 1.0, 0, symbol="ZZZ")) == UNKNOWN_REGIME


def test_trip_regime_is_resolved_when_it_opens() -> None:
    book = RoundTripBook()
    book.on_decision(decision("d1", 0, regime="range"))
    book.on_fill(fill("f1", "buy", 1, 100.0, 0, decision_id="d1"))
    book.on_decision(decision("d2", HOUR_MS, regime="trend"))
    trip = book.on_fill(fill("f2", "sell", 1, 100.0, HOUR_MS, decision_id="d2"))[0]
    assert trip.regime == "range"
    assert book.open_labels("s1", "AAA") is None


def test_decision_memory_is_bounded_by_event_time() -> None:
    book = RoundTripBook(RoundTripBookConfig(decision_memory_ms=DAY_MS))
    book.on_decision(decision("d1", 0, regime="range", confidence=0.9))
    assert book.decision_confidence("d1") == 0.9
    book.on_decision(decision("d2", DAY_MS + 1, regime="trend"))
    assert book.remembered_decisions == 1
    assert book.decision_confidence("d1") is None
    # d1 forgotten: falls back to the latest regime of (strategy, symbol)
    assert book.resolve_regime(fill("f1", "buy", 1, 1.0, 0, decision_id="d1")) == "trend"
    book.on_decision(decision("d0", 0, regime="old"))  # behind the memory: not stored
    assert book.remembered_decisions == 1


def test_decision_confidence_falls_back_to_p_hat() -> None:
    assert decision_confidence(decision("d1", 0, confidence=0.3)) == 0.3
    assert decision_confidence(decision("d2", 0, p_hat=0.8)) == pytest.approx(0.6)
    assert decision_confidence(decision("d3", 0, p_hat=0.1)) == pytest.approx(0.8)


def test_snapshot_restore_continues_identically() -> None:
    stream = [
        fill("f1", "buy", 3, 100.0, 0, fee=0.3, decision_id="d1"),
        fill("f2", "sell", 5, 104.0, 1, fee=0.5),
        fill("f3", "buy", 1, 103.0, 2, fee=0.1),
        fill("f4", "buy", 1, 101.0, 3, fee=0.1),
    ]
    whole = RoundTripBook()
    whole.on_decision(decision("d1", 0))
    expected = run(whole, stream)
    first = RoundTripBook()
    first.on_decision(decision("d1", 0))
    got = run(first, stream[:2])
    second = RoundTripBook()
    second.restore(orjson.loads(orjson.dumps(first.snapshot())))
    got += run(second, stream[2:])
    assert got == expected
    assert second.snapshot() == whole.snapshot()


def test_inputs_are_not_mutated() -> None:
    d1 = decision("d1", 0)
    fills = [fill("f1", "buy", 1, 1.0, 0), fill("f2", "sell", 2, 2.0, 1)]
    before = [d1.model_dump(), *(f.model_dump() for f in fills)]
    book = RoundTripBook()
    book.on_decision(d1)
    run(book, fills)
    assert [d1.model_dump(), *(f.model_dump() for f in fills)] == before
