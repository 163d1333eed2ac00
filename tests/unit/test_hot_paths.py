"""The replay hot path's fast implementations give exactly what the plain ones give.

Each fast path (processors/policy/execute.py, tape_index.py, adwin.py, the ``EMPTY``
sentinel, ``models.common.to_ms``, the drawdown queue, the decision-time order's idle check)
is checked against the straightforward computation it replaces, on random inputs, bit for bit.
"""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from models.common import EPOCH, to_ms
from models.inputs import DecisionRecord
from models.policy import EngineParams, PolicyConfig
from processors.core.base import EMPTY, Emitted
from processors.drift.adwin import ADWIN, FAST_UPDATE, update_adwin
from processors.drift.label_order import DecisionTimeOrder
from processors.drift.truth import Label
from processors.performance.window import DrawdownQueue
from processors.policy.execute import (
    execute_many,
    execute_rows,
    execute_rows_lockstep,
    execute_rows_loop,
)
from processors.policy.loop_window import LoopWindow
from processors.policy.replay import DecisionTape, TapeRow, replay_policies, replay_policy
from processors.policy.tape_index import key_order, unique_times

T0_MS = 1_709_542_800_000
BAR_MS = 15 * 60 * 1000


def _reference_to_ms(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def test_to_ms_matches_timedelta_arithmetic_for_any_offset() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        micros = rng.randrange(-(10**16), 10**16)
        offset = timedelta(microseconds=rng.randrange(-86_399_999_999, 86_399_999_999))
        value = (EPOCH + timedelta(microseconds=micros)).astimezone(timezone(offset))
        assert to_ms(value) == _reference_to_ms(value)
    assert to_ms(datetime(2024, 3, 4, 9, 0, 0, 999_999, tzinfo=UTC)) == T0_MS + 999
    with pytest.raises(TypeError):
        to_ms(datetime(2024, 3, 4))  # noqa: DTZ001 - naive on purpose


def _random_rows(rng: np.random.Generator, groups: int, longest: int) -> tuple[np.ndarray, ...]:
    lengths = rng.integers(1, longest + 1, size=groups)
    n = int(lengths.sum())
    group_start = np.zeros(n, dtype=np.bool_)
    group_start[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True
    target = np.round(rng.normal(0.0, 0.3, size=n), 3)
    target[rng.random(n) < 0.3] = 0.0
    forced = rng.random(n) < 0.15
    target[forced & (rng.random(n) < 0.8)] = 0.0  # forced rows are usually flat, not always
    return group_start, target, forced


@pytest.mark.parametrize("cooldown", [0, 1, 3])
@pytest.mark.parametrize("epsilon", [0.0, 0.02, 0.2])
def test_lockstep_execution_equals_the_row_loop(cooldown: int, epsilon: float) -> None:
    rng = np.random.default_rng(cooldown * 10 + int(epsilon * 100))
    group_start, target, forced = _random_rows(rng, groups=40, longest=60)
    args = (target, forced, epsilon, 100.0, cooldown, 100_000.0)
    expected = execute_rows_loop(group_start, *args)
    starts = np.flatnonzero(group_start)
    lengths = np.diff(np.append(starts, target.shape[0]))
    lockstep = execute_rows_lockstep(starts, lengths, *args)
    assert lockstep.tobytes() == expected.tobytes()
    assert execute_rows(group_start, *args).tobytes() == expected.tobytes()


def test_execute_many_equals_each_job_alone() -> None:
    rng = np.random.default_rng(11)
    jobs = []
    for i, (groups, longest) in enumerate([(30, 40), (8, 90), (25, 20)]):
        group_start, target, forced = _random_rows(rng, groups, longest)
        jobs.append((group_start, target, forced, 0.01 * i, 50.0 * i, i))
    together = execute_many(jobs, 100_000.0)
    for job, got in zip(jobs, together, strict=True):
        assert got.tobytes() == execute_rows(*job, 100_000.0).tobytes()


def _tape(rng: np.random.Generator, symbols: int, bars: int) -> DecisionTape:
    rows = [
        TapeRow(
            strategy,
            f"S{symbol}",
            ("etf", "small_cap")[symbol % 2],
            ("trend", "range")[bar % 2],
            T0_MS + bar * BAR_MS,
            float(100.0 + rng.normal()),
            float(rng.random()),
            float(rng.random() * 0.01),
            bool(rng.random() < 0.05),
            bool(rng.random() < 0.02),
        )
        for strategy in ("momo", "meanrev")
        for symbol in range(symbols)
        for bar in range(bars)
    ]
    rng.shuffle(rows)
    return DecisionTape.from_decisions(rows)


def test_replay_policies_equals_replay_policy_of_each() -> None:
    rng = np.random.default_rng(5)
    full, half = _tape(rng, 12, 40), _tape(rng, 12, 20)
    created = datetime(2024, 3, 4, tzinfo=UTC)
    champion = PolicyConfig(version="v1", created_at=created, engine=EngineParams())
    candidate = PolicyConfig(
        version="v2",
        created_at=created,
        engine=EngineParams(epsilon_w=0.05, cooldown_bars=2),
        trust={"momo|etf": 0.5},
        disabled=["meanrev|small_cap"],
    )
    jobs = [(half, champion), (half, candidate), (full, champion)]
    for (tape, policy), got in zip(jobs, replay_policies(jobs), strict=True):
        alone = replay_policy(tape, policy)
        assert pickle.dumps(got) == pickle.dumps(alone)


def test_key_order_is_a_stable_lexsort_and_unique_times_is_unique() -> None:
    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 50, 2000):
        strategy = rng.integers(0, 3, size=n)
        symbol = rng.integers(0, 7, size=n)
        ts = T0_MS + rng.integers(0, 20, size=n) * BAR_MS
        expected = np.lexsort((ts, symbol, strategy))
        assert key_order(strategy, symbol, ts).tolist() == expected.tolist()
        sorted_ts = np.sort(ts)
        assert key_order(strategy * 0, symbol * 0, sorted_ts).tolist() == list(range(n))
        assert unique_times(ts).tolist() == np.unique(ts).tolist()
        assert unique_times(sorted_ts).tolist() == np.unique(ts).tolist()
    negative = np.array([-1, 0, -1], dtype=np.int64)
    ts = np.array([3, 2, 1], dtype=np.int64)
    expected = np.lexsort((ts, negative, negative))
    assert key_order(negative, negative, ts).tolist() == expected.tolist()


def test_update_adwin_matches_the_public_update() -> None:
    assert FAST_UPDATE  # the pinned river's ADWIN.update is the wrapper adwin.py knows
    rng = random.Random(9)
    values = [rng.gauss(0.0, 1.0) for _ in range(3000)] + [rng.gauss(2.0, 1.0) for _ in range(3000)]
    public, fast = ADWIN(delta=0.002), ADWIN(delta=0.002)
    flags = []
    for x in values:
        public.update(x)
        flags.append(bool(public.drift_detected))
        assert update_adwin(fast, x) == flags[-1]
    assert any(flags)
    assert pickle.dumps(public) == pickle.dumps(fast)


def test_empty_is_shared_and_refuses_mutation() -> None:
    assert Emitted() == EMPTY
    with pytest.raises(TypeError):
        EMPTY.signals.append(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EMPTY.outputs.extend([])
    merged = Emitted()
    merged.extend(EMPTY)
    assert merged == Emitted() and merged is not EMPTY


def _naive_drawdown(values: list[float], base: float) -> float:
    peak, worst = base, 0.0
    for value in values:
        worst = max(worst, peak - value)
        peak = max(peak, value)
    return worst


def test_drawdown_queue_matches_a_naive_scan() -> None:
    rng = random.Random(4)
    queue = DrawdownQueue()
    window: list[float] = []
    base = 0.0
    for _ in range(3000):
        if window and rng.random() < 0.45:
            base = window.pop(0)
            queue.pop()
        else:
            value = round(rng.gauss(0.0, 10.0), 2) + (window[-1] if window else base)
            window.append(value)
            queue.push(value)
        assert queue.drawdown(base) == _naive_drawdown(window, base)


def _label(bar: int, name: str) -> Label:
    return Label(name, "momo", "etf", 0.6, 1, T0_MS + bar * BAR_MS, T0_MS, "prices", name)


def test_idle_is_push_of_nothing() -> None:
    a, b = DecisionTimeOrder(2 * BAR_MS), DecisionTimeOrder(2 * BAR_MS)
    for order in (a, b):
        order.push([_label(3, "x"), _label(1, "y"), _label(2, "z")], T0_MS)
    for bar in range(8):
        watermark = T0_MS + bar * BAR_MS
        released = a.push([], watermark)
        assert b.idle(watermark) == (not released)
        if released:
            assert b.push([], watermark) == released
        assert a.snapshot() == b.snapshot()


def _decision(i: int, rng: random.Random) -> DecisionRecord:
    bar = rng.randrange(0, 30)
    return DecisionRecord.model_validate(
        {
            "event_id": f"d{i}",
            "run_id": "r",
            "mode": "live",
            "strategy_id": rng.choice(["momo", "meanrev", "breakout"]),
            "symbol": rng.choice(["AAA", "BBB", "CCC", "DDD"]),
            "classification": rng.choice(["etf", "small_cap"]),
            "regime": rng.choice(["trend", "range", "high_vol"]),
            "timeframe": "15m",
            "bar_ts": (datetime(2024, 3, 4, tzinfo=UTC) + timedelta(minutes=15 * bar)).isoformat(),
            "price": 100.0 + rng.random(),
            "p_hat": rng.random(),
            "vol_hat": rng.random() * 0.01,
            "features": {"a": rng.random(), "b": rng.random()},
            "current_weight": 0.0,
            "equity": 1e5,
            "target_weight_raw": 0.0,
            "target_weight_final": 0.0,
            "reasons": rng.choice([["hold"], ["stand_down_active"]]),
            "block_events": [],
            "policy_version": "v0",
        }
    )


def test_views_of_a_span_equal_views_of_the_window() -> None:
    """Duplicated keys, arrivals out of order, names present only in part of the span."""
    rng = random.Random(8)
    window = LoopWindow()
    for i in range(600):
        window.add(_decision(i, rng))
    start = to_ms(datetime(2024, 3, 4, tzinfo=UTC))
    span = window.span(start, start + 30 * BAR_MS)
    for lo, hi in ((0, 30), (0, 11), (11, 30), (5, 6), (29, 30), (40, 50)):
        got = span.view(start + lo * BAR_MS, start + hi * BAR_MS)
        want = window.view(start + lo * BAR_MS, start + hi * BAR_MS)
        assert pickle.dumps(got) == pickle.dumps(want), (lo, hi)
