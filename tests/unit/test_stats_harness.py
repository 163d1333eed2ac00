"""The loop window (eviction by event time, canonical views, labels) and the stats harness
(feature importance, stability across sub-windows, per-regime performance, drift)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from builders import BACKTEST, flat_decision

from models.inputs import DecisionRecord
from models.policy import EngineParams, PolicyConfig
from processors.policy.loop_window import LoopWindow, LoopWindowConfig
from processors.policy.replay import replay_policy
from processors.policy.stats_harness import StatsHarnessConfig, json_ready, run_stats

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MS = 1_704_067_200_000
BAR = timedelta(minutes=15)
BAR_MS = 900_000
POLICY = PolicyConfig(
    version="v0", created_at=T0, engine=EngineParams(tau=0.05, vol_target=0.002, cooldown_bars=0)
)


def record(
    symbol: str, bar: int, price: float, p_hat: float = 0.6, regime: str = "trend", **kw: float
) -> DecisionRecord:
    return flat_decision(
        f"{symbol}-{bar}-{price}",
        T0 + bar * BAR,
        **BACKTEST,
        classification="etf",
        symbol=symbol,
        regime=regime,
        price=price,
        p_hat=p_hat,
        features=kw,
    )


def market(bars: int, seed: int) -> list[DecisionRecord]:
    """Two symbols; ``signal`` is the next return plus noise, ``noise`` is noise; p_hat
    follows the next return in ``trend`` and is uninformative in ``range``."""
    rng = np.random.default_rng(seed)
    out: list[DecisionRecord] = []
    for symbol in ("A", "B"):
        returns = rng.normal(0.0, 0.002, bars)
        price = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
        for t in range(bars):
            regime = "trend" if (t // 50) % 2 == 0 else "range"
            direction = np.sign(returns[t]) if regime == "trend" else rng.choice([-1.0, 1.0])
            out.append(
                record(
                    symbol,
                    t,
                    float(price[t]),
                    0.5 + 0.1 * float(direction),
                    regime,
                    signal=float(returns[t] * 500 + rng.normal()),
                    noise=float(rng.normal()),
                )
            )
    return out


def test_window_evicts_by_event_time_and_views_are_canonical() -> None:
    window = LoopWindow(LoopWindowConfig(retain_ms=10 * BAR_MS))
    records = [record(s, bar, 100.0 + bar) for bar in range(30) for s in ("B", "A")]
    for r in records:
        window.add(r)
    assert len(window) == 22  # bars 19..29 of both symbols: older than 10 bars are gone
    view = window.view(T0_MS + 20 * BAR_MS, T0_MS + 25 * BAR_MS)
    assert len(view) == 10 and view.tape.symbols == ("A", "B")
    assert view.tape.bar_ts_ms.tolist()[:5] == [T0_MS + b * BAR_MS for b in range(20, 25)]
    assert view.labelled.tolist() == [True] * 4 + [False] + [True] * 4 + [False]
    assert view.label.tolist() == view.labelled.tolist()  # prices rise
    assert window.count(T0_MS + 20 * BAR_MS, T0_MS + 25 * BAR_MS) == 10
    # The same rows in another arrival order give the same view.
    other = LoopWindow(LoopWindowConfig(retain_ms=10 * BAR_MS))
    for r in sorted(records, key=lambda r: (r.bar_ts, r.symbol)):
        other.add(r)
    again = other.view(T0_MS + 20 * BAR_MS, T0_MS + 25 * BAR_MS)
    assert again.tape.price.tolist() == view.tape.price.tolist()


def test_window_keeps_features_aligned_and_survives_snapshot() -> None:
    window = LoopWindow()
    window.add(record("A", 0, 100.0, x=1.0))
    window.add(record("A", 1, 101.0, y=2.0))
    window.add(record("A", 2, 99.0, x=3.0, y=4.0))
    view = window.view(0, 2**62)
    assert view.features["x"].tolist()[::2] == [1.0, 3.0] and math.isnan(view.features["x"][1])
    assert math.isnan(view.features["y"][0]) and view.features["y"].tolist()[1:] == [2.0, 4.0]
    restored = LoopWindow()
    restored.restore(orjson.loads(orjson.dumps(window.snapshot())))
    assert orjson.dumps(restored.snapshot()) == orjson.dumps(window.snapshot())
    restored.add(record("A", 3, 98.0, x=5.0))
    assert len(restored) == 4


def test_feature_importance_and_stability() -> None:
    view = LoopWindow()
    for r in market(400, seed=1):
        view.add(r)
    window = view.view(0, 2**62)
    champion = replay_policy(window.tape, POLICY)
    stats = run_stats(window, champion, {"covariate": {"s": 1}}, StatsHarnessConfig(sub_windows=4))
    signal, noise = stats["feature_importance"]["signal"], stats["feature_importance"]["noise"]
    assert signal["r"] > 0.3 and signal["t"] > 5 and signal["mi"] > 0.05
    assert signal["sign_agreement"] == 1.0 and signal["stable"] is True
    assert len(signal["sub_windows"]) == 4 and signal["std"] < 0.2
    assert abs(noise["r"]) < 0.1 and noise["mi"] < 0.02
    assert stats["drift"] == {"covariate": {"s": 1}}
    assert stats["decisions"] == 800 and stats["labelled"] == 798


def test_performance_per_regime() -> None:
    window = LoopWindow()
    for r in market(400, seed=2):
        window.add(r)
    view = window.view(0, 2**62)
    stats = run_stats(view, replay_policy(view.tape, POLICY))
    trend, ranging = stats["regimes"]["trend"], stats["regimes"]["range"]
    assert trend["hit_rate"] > 0.95 and 0.4 < ranging["hit_rate"] < 0.6
    assert trend["pnl"] > 0.0 > ranging["pnl"]
    assert trend["decisions"] + ranging["decisions"] == 800
    assert set(stats["combos"]) == {"s|etf"}
    assert stats["combos"]["s|etf"]["trades"] == trend["trades"] + ranging["trades"]


def test_too_few_rows_give_nulls_and_the_report_is_json_ready() -> None:
    window = LoopWindow()
    for bar in range(5):
        window.add(record("A", bar, 100.0 + bar, x=float(bar)))
    view = window.view(0, 2**62)
    stats = run_stats(view, replay_policy(view.tape, POLICY))
    assert stats["feature_importance"]["x"]["r"] is None
    assert stats["feature_importance"]["x"]["stable"] is False
    orjson.dumps(stats)  # no NaN or numpy scalars
    assert json_ready({"a": [math.nan, 1.0], "b": math.inf}) == {"a": [None, 1.0], "b": None}


def test_config_rejects_an_agreement_above_one() -> None:
    message = r"StatsHarnessConfig\.stable_agreement must be >= 0 and <= 1"
    with pytest.raises(ValueError, match=message):
        StatsHarnessConfig(stable_agreement=1.5)
