"""Golden tests of the rolling performance tables (rows, windows, report, metrics, state)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from builders import at, cancel, decision, fill

from models.codec import encode
from models.inputs import DecisionRecord, ExecutionEvent
from models.outputs import PerformanceRow
from models.taxonomy import GroupBy, PerfWindow
from processors.core import metric_names as mn
from processors.core.base import DAY_MS, HOUR_MS, MINUTE_MS, Output
from processors.performance.tables import ExpectedPerformance, PerformanceConfig, PerformanceTables


def ms_of(offset_ms: int) -> int:
    return int(at(offset_ms).timestamp() * 1000)


def trips_at(
    tables: PerformanceTables, exits: list[int], prices: list[float], **extra: Any
) -> None:
    """One long trip of qty 1 bought at 100 per (exit time, sell price), opened 1 ms before."""
    for i, (t, price) in enumerate(zip(exits, prices, strict=True)):
        tables.on_fill(fill(f"b{t}-{i}", "buy", 1, 100.0, t - 1, **extra))
        tables.on_fill(fill(f"s{t}-{i}", "sell", 1, price, t, **extra))


def row(
    rows: list[PerformanceRow], group_by: str, group: str, window: str, sid: str = "s1"
) -> PerformanceRow:
    found = [
        r
        for r in rows
        if (r.strategy_id, r.group_by.value, r.group, r.window.value)
        == (sid, group_by, group, window)
    ]
    assert len(found) == 1
    return found[0]


def test_rows_of_one_trip() -> None:
    tables = PerformanceTables()
    tables.on_decision(decision("d1", 0))
    assert tables.on_fill(fill("f1", "buy", 10, 100.0, 0, fee=1.0, decision_id="d1")).derived == []
    trips = tables.on_fill(fill("f2", "sell", 10, 110.0, HOUR_MS, fee=1.0)).derived
    assert [t.pnl for t in trips] == [98.0]
    rows = tables.rows(ms_of(2 * HOUR_MS))
    assert [(r.group_by.value, r.group, r.window.value) for r in rows] == [
        ("classification", "large_cap", w) for w in ("1d", "7d", "30d", "all")
    ] + [("regime", "trend", w) for w in ("1d", "7d", "30d", "all")]
    for r in rows:
        assert r.model_dump(exclude={"group_by", "group", "window"}) == {
            "strategy_id": "s1",
            "trade_count": 1,
            "win_count": 1,
            "win_rate": 1.0,
            "avg_return": pytest.approx(0.098),
            "total_return": pytest.approx(0.098),
            "sharpe": None,
            "max_drawdown": 0.0,
            "avg_hold_seconds": 3600.0,
            "turnover": pytest.approx(2.1),
            "fees": pytest.approx(2.0),
            "cancel_count": 0,
            "as_of": at(2 * HOUR_MS),
        }


def test_sharpe_uses_ddof_1() -> None:
    tables = PerformanceTables()
    trips_at(tables, [HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS], [110.0, 95.0, 102.0])
    rows = tables.rows(ms_of(4 * HOUR_MS))
    for window in ("1d", "7d", "30d", "all"):
        r = row(rows, "classification", "large_cap", window)
        assert r.trade_count == 3
        assert r.win_count == 2
        assert r.win_rate == pytest.approx(2 / 3)
        assert r.avg_return == pytest.approx(0.07 / 3)
        assert r.total_return == pytest.approx(0.07)
        assert r.sharpe == pytest.approx(0.31088091417902924)  # mean / stdev(ddof=1)


def test_sharpe_is_none_without_spread() -> None:
    tables = PerformanceTables()
    trips_at(tables, [HOUR_MS, 2 * HOUR_MS], [101.0, 101.0])
    rows = tables.rows(ms_of(3 * HOUR_MS))
    assert {r.sharpe for r in rows} == {None}
    assert {r.trade_count for r in rows} == {2}


def test_max_drawdown_on_a_known_sequence() -> None:
    tables = PerformanceTables()
    # pnl +10, -5, +2, -8, +3 -> cumulative 10, 5, 7, -1, 2: peak 10, trough -1
    trips_at(tables, [h * HOUR_MS for h in range(1, 6)], [110.0, 95.0, 102.0, 92.0, 103.0])
    rows = tables.rows(ms_of(6 * HOUR_MS))
    assert [r.max_drawdown for r in rows] == [11.0] * 8


def test_a_first_losing_trade_is_a_drawdown() -> None:
    tables = PerformanceTables()
    trips_at(tables, [HOUR_MS, 2 * HOUR_MS], [95.0, 102.0])
    assert {r.max_drawdown for r in tables.rows(ms_of(3 * HOUR_MS))} == {5.0}


def test_window_drawdown_starts_at_the_window() -> None:
    tables = PerformanceTables()
    # day 0: +10, -8 (all: cumulative 10, 2); day 2: +1, -2 (window: 1, -1 from 0)
    trips_at(tables, [HOUR_MS, 2 * HOUR_MS], [110.0, 92.0])
    trips_at(tables, [2 * DAY_MS + HOUR_MS, 2 * DAY_MS + 2 * HOUR_MS], [101.0, 98.0])
    rows = tables.rows(ms_of(2 * DAY_MS + 3 * HOUR_MS))
    assert row(rows, "regime", "unknown", "1d").max_drawdown == pytest.approx(2.0)
    assert row(rows, "regime", "unknown", "7d").max_drawdown == pytest.approx(9.0)
    assert row(rows, "regime", "unknown", "all").max_drawdown == pytest.approx(9.0)


def test_window_membership_at_the_edges() -> None:
    tables = PerformanceTables()
    t = 10 * DAY_MS
    exits = [t - 7 * DAY_MS, t - DAY_MS, t - DAY_MS + 1, t]
    trips_at(tables, exits, [110.0, 110.0, 110.0, 110.0], fee=1.0)
    rows = tables.rows(ms_of(t))
    counts = {
        w: row(rows, "classification", "large_cap", w).trade_count
        for w in ("1d", "7d", "30d", "all")
    }
    assert counts == {"1d": 2, "7d": 3, "30d": 4, "all": 4}
    # fills at t-1d (a close and an open) are out of the 1d window; (t-1d, t] holds three
    fees = {w: row(rows, "classification", "large_cap", w).fees for w in ("1d", "7d", "30d")}
    assert fees == {"1d": 3.0, "7d": 6.0, "30d": 8.0}


def test_windows_forget_old_records() -> None:
    tables = PerformanceTables()
    trips_at(tables, [HOUR_MS], [110.0])
    rows = tables.rows(ms_of(31 * DAY_MS + HOUR_MS))
    assert row(rows, "classification", "large_cap", "30d").trade_count == 0
    assert row(rows, "classification", "large_cap", "30d").fees == 0.0
    assert row(rows, "classification", "large_cap", "all").trade_count == 1
    groups = tables.snapshot()["groups"]
    assert all(g[3]["trips"]["ts"] == [] and g[3]["fills"]["ts"] == [] for g in groups)


def test_turnover_with_known_equity() -> None:
    tables = PerformanceTables()
    tables.on_decision(decision("d0", -2 * DAY_MS, equity=10.0))
    tables.on_decision(decision("d1", 0, equity=1000.0))
    tables.on_decision(decision("d2", 0, equity=3000.0, symbol="BBB"))
    tables.on_fill(fill("f1", "buy", 10, 100.0, 1))
    tables.on_fill(fill("f2", "sell", 10, 110.0, 2))
    rows = tables.rows(ms_of(HOUR_MS))
    assert row(rows, "classification", "large_cap", "1d").turnover == pytest.approx(2100 / 2000)
    mean_all = (10.0 + 1000.0 + 3000.0) / 3
    assert row(rows, "classification", "large_cap", "7d").turnover == pytest.approx(2100 / mean_all)
    assert row(rows, "regime", "trend", "all").turnover == pytest.approx(2100 / mean_all)
    report = tables.report(ms_of(HOUR_MS))["strategies"]["s1"]["decision_metrics"]
    assert report["turnover"] == pytest.approx(2100 / mean_all)


def test_turnover_is_zero_without_equity() -> None:
    tables = PerformanceTables()
    trips_at(tables, [HOUR_MS], [110.0])
    assert {r.turnover for r in tables.rows(ms_of(2 * HOUR_MS))} == {0.0}


def test_cancel_counts() -> None:
    tables = PerformanceTables()
    assert tables.on_fill(cancel("c0", -2 * DAY_MS)).derived == []
    tables.on_fill(cancel("c1", 0))
    tables.on_fill(cancel("c2", 1, regime="range"))
    rows = tables.rows(ms_of(HOUR_MS))
    assert row(rows, "classification", "large_cap", "1d").cancel_count == 2
    assert row(rows, "classification", "large_cap", "all").cancel_count == 3
    assert row(rows, "regime", "unknown", "all").cancel_count == 2
    assert row(rows, "regime", "range", "1d").cancel_count == 1
    assert {r.trade_count for r in rows} == {0}
    samples = {(s.name, s.labels): s.value for s in tables.metrics()}
    assert samples[(mn.CANCEL_COUNT, (("strategy_id", "s1"),))] == 3.0


def test_crossing_fill_credits_both_trips() -> None:
    tables = PerformanceTables()
    tables.on_decision(decision("d1", 0, equity=1000.0))
    tables.on_fill(fill("f1", "buy", 10, 100.0, 1, fee=1.0, regime="trend"))
    trips = tables.on_fill(fill("f2", "sell", 15, 110.0, 2, fee=3.0, regime="range")).derived
    assert [t.regime for t in trips] == ["trend"]
    assert trips[0].fees == pytest.approx(3.0)
    rows = tables.rows(ms_of(HOUR_MS))
    trend = row(rows, "regime", "trend", "all")
    open_range = row(rows, "regime", "range", "all")
    assert (trend.trade_count, trend.fees) == (1, 3.0)
    assert trend.turnover == pytest.approx(2.1)
    assert open_range.trade_count == 0
    assert open_range.fees == pytest.approx(1.0)
    assert open_range.turnover == pytest.approx(0.55)
    assert row(rows, "classification", "large_cap", "all").fees == pytest.approx(4.0)


def test_regime_resolution_order_in_the_tables() -> None:
    tables = PerformanceTables()
    tables.on_decision(decision("d1", 0, regime="range"))
    tables.on_decision(decision("d2", 1, regime="high_vol"))
    trips_at(tables, [HOUR_MS], [110.0], regime="own")
    trips_at(tables, [2 * HOUR_MS], [110.0], decision_id="d1")
    trips_at(tables, [3 * HOUR_MS], [110.0])
    trips_at(tables, [4 * HOUR_MS], [110.0], symbol="ZZZ")
    groups = {r.group for r in tables.rows(ms_of(5 * HOUR_MS)) if r.group_by is GroupBy.REGIME}
    assert groups == {"own", "range", "high_vol", "unknown"}


def test_win_rate_by_confidence_bucket() -> None:
    tables = PerformanceTables()
    tables.on_decision(decision("hi", 0, confidence=0.9))
    tables.on_decision(decision("lo", 0, p_hat=0.65))  # confidence |2p - 1| = 0.3
    trips_at(tables, [HOUR_MS, 2 * HOUR_MS], [110.0, 105.0], decision_id="hi")
    trips_at(tables, [3 * HOUR_MS], [90.0], decision_id="lo")
    trips_at(tables, [4 * HOUR_MS], [90.0])
    # a crossing fill opens its trip in the bucket of the decision it names
    tables.on_fill(fill("x1", "buy", 1, 100.0, 5 * HOUR_MS))
    tables.on_fill(fill("x2", "sell", 2, 100.0, 6 * HOUR_MS, decision_id="hi"))
    tables.on_fill(fill("x3", "buy", 1, 95.0, 7 * HOUR_MS))
    report = tables.report(ms_of(8 * HOUR_MS))["strategies"]["s1"]["confidence_buckets"]
    got = [
        (b["lower"], b["upper"], b["trade_count"], b["win_count"], b["win_rate"])
        for b in report["buckets"]
    ]
    assert got == [
        (0.0, 0.2, 0, 0, None),
        (0.2, 0.4, 1, 0, 0.0),
        (0.4, 0.6, 0, 0, None),
        (0.6, 0.8, 0, 0, None),
        (0.8, 1.0, 3, 3, 1.0),
    ]
    assert report["unmatched_trade_count"] == 2  # the plain trip and the one x1 opened
    assert report["unmatched_win_rate"] == 0.0
    assert report["monotonic"] is True
    # slope of win on mid confidence: x = 0.3 (1 loss), 0.9 (3 wins)
    n, sx, sy, sxx, sxy = 4, 0.3 + 2.7, 3.0, 0.09 + 2.43, 2.7
    assert report["slope"] == pytest.approx((n * sxy - sx * sy) / (n * sxx - sx * sx))


def test_report_actual_versus_expected() -> None:
    config = PerformanceConfig(expected={"s1": ExpectedPerformance(win_rate=0.6, avg_return=0.01)})
    tables = PerformanceTables(config)
    trips_at(tables, [HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS], [110.0, 95.0, 102.0])
    trips_at(tables, [HOUR_MS], [90.0], strategy_id="s2")
    tables.on_fill(cancel("c1", 4 * HOUR_MS))
    report = tables.report(ms_of(4 * HOUR_MS))
    assert report["as_of"] == "2024-01-01T04:00:00Z"
    s1 = report["strategies"]["s1"]
    versus = s1["actual_vs_expected"]
    assert versus["trade_count"] == 3
    assert versus["actual"] == {
        "win_rate": pytest.approx(2 / 3),
        "avg_return": pytest.approx(0.07 / 3),
    }
    assert versus["expected"] == {"win_rate": 0.6, "avg_return": 0.01}
    assert versus["difference"]["win_rate"] == pytest.approx(2 / 3 - 0.6)
    assert versus["difference"]["avg_return"] == pytest.approx(0.07 / 3 - 0.01)
    assert versus["z_score"]["win_rate"] == pytest.approx(0.23570226039551578)
    assert versus["z_score"]["avg_return"] == pytest.approx(0.30769230769230765)
    assert s1["decision_metrics"] == {
        "turnover": 0.0,
        "avg_hold_time_seconds": pytest.approx(0.001),
        "trade_count": 3,
        "cancel_count": 1,
    }
    s2 = report["strategies"]["s2"]["actual_vs_expected"]
    assert s2["expected"] == {"win_rate": 0.5, "avg_return": 0.0}
    assert s2["z_score"] == {"win_rate": pytest.approx(-1.0), "avg_return": None}
    orjson.dumps(report)  # JSON-ready


def test_metrics_carry_no_symbol() -> None:
    tables = PerformanceTables()
    tables.on_decision(decision("d1", 0))
    trips_at(tables, [HOUR_MS, 2 * HOUR_MS], [110.0, 95.0])
    samples = {(s.name, s.labels): s.value for s in tables.metrics()}
    sid = (("strategy_id", "s1"),)
    assert samples == {
        (mn.TRADE_COUNT, (*sid, ("group", "all"))): 2.0,
        (mn.TRADE_COUNT, (*sid, ("group", "classification:large_cap"))): 2.0,
        (mn.TRADE_COUNT, (*sid, ("group", "regime:trend"))): 2.0,
        (mn.TURNOVER, sid): pytest.approx(405.0 / 1000.0),
        (mn.AVG_HOLD_TIME_SECONDS, sid): pytest.approx(0.001),
        (mn.CANCEL_COUNT, sid): 0.0,
        (mn.WIN_RATE, sid): 0.5,
    }
    assert all(name in mn.BY_NAME for name, _ in samples)


def test_on_tick_emits_changed_rows_at_the_cadence() -> None:
    tables = PerformanceTables()
    assert tables.on_tick(ms_of(0)).outputs == []  # sets the clock
    tables.on_decision(decision("d1", 0))
    trips_at(tables, [MINUTE_MS], [110.0])
    assert tables.on_tick(ms_of(30 * MINUTE_MS)).outputs == []
    first = tables.on_tick(ms_of(HOUR_MS + 5)).outputs
    assert [o.key for o in first] == [f"s1|large_cap|{w}" for w in ("1d", "7d", "30d", "all")] + [
        f"s1|trend|{w}" for w in ("1d", "7d", "30d", "all")
    ]
    assert {o.topic for o in first} == {"performance"}
    assert all(isinstance(o.value, PerformanceRow) and o.value.as_of == at(HOUR_MS) for o in first)
    assert tables.on_tick(ms_of(2 * HOUR_MS)).outputs == []  # nothing changed
    trips_at(tables, [2 * HOUR_MS + MINUTE_MS], [105.0])
    assert len(tables.on_tick(ms_of(3 * HOUR_MS)).outputs) == 8
    # a day later the trips leave the 1d windows: only those two rows change
    later = tables.on_tick(ms_of(DAY_MS + 3 * HOUR_MS)).outputs
    assert [o.key for o in later] == ["s1|large_cap|1d", "s1|trend|1d"]
    assert all(isinstance(o.value, PerformanceRow) and o.value.trade_count == 0 for o in later)


def _stream() -> list[DecisionRecord | ExecutionEvent | int]:
    """Three days of decisions, fills, cancels and ticks on two symbols (deterministic)."""
    items: list[DecisionRecord | ExecutionEvent | int] = []
    for step in range(72 * 4):
        t = step * 15 * MINUTE_MS
        for k, symbol in enumerate(("AAA", "BBB")):
            d_id = f"d{step}-{symbol}"
            regime = ("trend", "range", "high_vol")[(step // 7 + k) % 3]
            conf = ((step * 37 + k * 11) % 100) / 100.0
            items.append(
                decision(
                    d_id,
                    t,
                    regime=regime,
                    symbol=symbol,
                    confidence=conf,
                    equity=1000.0 + step + 10 * k,
                )
            )
            if (step + k) % 3 == 0:
                side = "buy" if (step // 3 + k) % 2 == 0 else "sell"
                qty = 1.0 + (step % 4)
                price = 100.0 + ((step * 13 + k * 7) % 17) - 8.0
                items.append(
                    fill(
                        f"f{step}-{symbol}",
                        side,
                        qty,
                        price,
                        t + 1,
                        symbol=symbol,
                        fee=0.01 * qty,
                        decision_id=d_id,
                        classification=("small_cap", "etf")[k],
                    )
                )
            if (step + k) % 11 == 0:
                items.append(cancel(f"c{step}-{symbol}", t + 2, symbol=symbol))
        items.append(ms_of(t + 3))
    return items


def _feed(
    tables: PerformanceTables, items: list[DecisionRecord | ExecutionEvent | int]
) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, int):
            out.extend(_encoded(tables.on_tick(item).outputs))
        elif isinstance(item, DecisionRecord):
            tables.on_decision(item)
        else:
            out.extend(trip.pnl for trip in tables.on_fill(item).derived)
    return out


def _encoded(outputs: list[Output]) -> list[tuple[str, str, bytes]]:
    return [(o.topic, o.key, encode(o.value)) for o in outputs]


def test_snapshot_mid_stream_then_restore_continues_identically() -> None:
    items = _stream()
    whole = PerformanceTables()
    expected = _feed(whole, items)
    assert len(expected) > 100
    half = len(items) // 2
    first = PerformanceTables()
    got = _feed(first, items[:half])
    second = PerformanceTables()
    second.restore(orjson.loads(orjson.dumps(first.snapshot())))
    got += _feed(second, items[half:])
    assert got == expected
    end = ms_of(80 * HOUR_MS)
    assert [encode(r) for r in second.rows(end)] == [encode(r) for r in whole.rows(end)]
    assert second.report(end) == whole.report(end)
    assert second.metrics() == whole.metrics()
    assert orjson.dumps(second.snapshot()) == orjson.dumps(whole.snapshot())


def test_rows_are_valid_and_sorted_on_a_longer_stream() -> None:
    tables = PerformanceTables()
    _feed(tables, _stream())
    rows = tables.rows(ms_of(80 * HOUR_MS))
    order = {w: i for i, w in enumerate(PerfWindow)}
    keys = [(r.strategy_id, r.group_by.value, r.group, order[r.window]) for r in rows]
    assert keys == sorted(keys)
    assert len(rows) == 4 * len({k[:3] for k in keys})
    for r in rows:
        assert r.max_drawdown >= 0.0 and r.fees >= 0.0 and r.turnover >= 0.0
        assert r.win_count <= r.trade_count
        if r.window is PerfWindow.ALL:
            assert r.trade_count >= row(rows, r.group_by.value, r.group, "30d").trade_count


def test_inputs_are_not_mutated() -> None:
    items = _stream()[:200]
    before = [item if isinstance(item, int) else item.model_dump() for item in items]
    _feed(PerformanceTables(), items)
    assert [item if isinstance(item, int) else item.model_dump() for item in items] == before


def test_bad_confidence_edges_do_not_raise() -> None:
    tables = PerformanceTables(PerformanceConfig(confidence_edges=(0.5,)))
    tables.on_decision(decision("d1", 0, confidence=0.9))
    trips_at(tables, [HOUR_MS], [110.0], decision_id="d1")
    buckets = tables.report(ms_of(HOUR_MS))["strategies"]["s1"]["confidence_buckets"]
    assert buckets["buckets"] == [] and buckets["slope"] is None
    assert math.isclose(buckets["unmatched_win_rate"], 1.0)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="snapshot_interval_ms"):
        PerformanceConfig(snapshot_interval_ms=0)
    with pytest.raises(ValueError, match="confidence_edges"):
        PerformanceConfig(confidence_edges=(0.0, 0.5, 0.5, 1.0))


def test_float_overflow_does_not_break_a_row() -> None:
    tables = PerformanceTables()
    tables.on_decision(decision("d1", 0, equity=1e-300))
    tables.on_fill(fill("f1", "buy", 1e200, 1e200, 1))
    tables.on_fill(fill("f2", "sell", 1e200, 2e200, 2))
    rows = tables.rows(ms_of(HOUR_MS))
    assert {r.turnover for r in rows} == {0.0}
    assert tables.on_tick(ms_of(0)).outputs == []
