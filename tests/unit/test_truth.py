"""Truth assignment: outcomes joined to decisions, labels from later prices, precedence,
orphans, eviction and snapshot/restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from builders import flat_decision

from models.common import to_ms
from models.inputs import DecisionRecord, Outcome
from processors.core.base import HOUR_MS
from processors.drift.truth import OUTCOME, PRICES, Label, TruthConfig, TruthJoin

T0 = datetime(2024, 3, 1, 14, 0, tzinfo=UTC)
BAR = timedelta(minutes=15)


def decision(
    bar: int,
    price: float,
    *,
    strategy: str = "momo",
    symbol: str = "AAA",
    p_hat: float = 0.6,
    horizon: int | None = None,
) -> DecisionRecord:
    return flat_decision(
        f"{strategy}-{symbol}-{bar}",
        T0 + bar * BAR,
        strategy_id=strategy,
        symbol=symbol,
        price=price,
        p_hat=p_hat,
        horizon_bars=horizon,
    )


def outcome(decision_id: str, bar: int, label: int, at: datetime) -> Outcome:
    return Outcome(
        event_id=f"out-{decision_id}-{label}",
        decision_id=decision_id,
        strategy_id="momo",
        symbol="AAA",
        bar_ts=T0 + bar * BAR,
        horizon_bars=4,
        label=label,
        realized_return=0.01 if label else -0.01,
        label_ts=at,
        label_definition="fwd_return_4_bars",
    )


PRICES_PATH = [100.0, 101.0, 99.0, 102.0, 103.0, 98.0]


def feed(join: TruthJoin, decisions: list[DecisionRecord]) -> list[Label]:
    labels: list[Label] = []
    for d in decisions:
        labels.extend(join.add_decision(d))
    return labels


def test_self_label_after_horizon_bars_from_later_prices() -> None:
    join = TruthJoin(TruthConfig(self_label=True))
    decisions = [decision(i, px) for i, px in enumerate(PRICES_PATH)]
    decisions.insert(1, decision(0, 100.5, strategy="meanrev"))  # same bar, other strategy
    labels = feed(join, decisions)
    assert [(x.decision_id, x.label) for x in labels] == [
        ("momo-AAA-0", 1),  # bar 4: 103 > 100
        ("meanrev-AAA-0", 1),  # 103 > 100.5 (its own price)
        ("momo-AAA-1", 0),  # bar 5: 98 < 101
    ]
    first = labels[0]
    assert first.source == PRICES
    assert first.source_id == "momo-AAA-4"
    assert first.bar_ms == to_ms(T0)
    assert first.label_ms == to_ms(T0 + 4 * BAR)
    assert (first.price_series, first.bar_index, first.horizon) == ("AAA|15m", 0, 4)
    assert (labels[2].bar_index, labels[2].horizon) == (1, 4)
    assert join.counts["price_labels"] == 3


def test_horizon_from_the_decision_wins_and_ties_are_label_zero() -> None:
    join = TruthJoin(TruthConfig(self_label=True))
    labels = feed(join, [decision(0, 100.0, horizon=1), decision(1, 100.0), decision(2, 101.0)])
    assert [(x.decision_id, x.label) for x in labels] == [("momo-AAA-0", 0)]


def test_bars_are_counted_not_clock_time() -> None:
    join = TruthJoin(TruthConfig(self_label=True))
    gapped = [decision(0, 100.0, horizon=2), decision(1, 100.0), decision(40, 105.0)]
    labels = feed(join, gapped)
    assert [(x.decision_id, x.label, x.source_id) for x in labels] == [
        ("momo-AAA-0", 1, "momo-AAA-40")
    ]


def test_outcome_within_grace_wins_over_the_price_label() -> None:
    join = TruthJoin(TruthConfig())  # auto self-label after a 6 h grace
    labels = feed(join, [decision(i, px) for i, px in enumerate(PRICES_PATH)])
    assert labels == []  # the price labels are held for the grace period
    due = T0 + 4 * BAR + timedelta(hours=6)
    got = join.add_outcome(outcome("momo-AAA-0", 0, 0, due - timedelta(minutes=1)))
    assert [(x.decision_id, x.label, x.source) for x in got] == [("momo-AAA-0", 0, OUTCOME)]
    released = join.advance(to_ms(T0 + 5 * BAR) + 6 * HOUR_MS)
    # momo-AAA-0's held price label (1) is now a duplicate that disagrees with the outcome
    assert [(x.decision_id, x.label, x.source) for x in released] == [("momo-AAA-1", 0, PRICES)]
    assert released[0].label_ms == to_ms(T0 + 5 * BAR) + 6 * HOUR_MS
    assert join.counts["duplicate_labels"] == 1
    assert join.counts["disagreements"] == 1


def test_outcome_after_the_grace_is_a_duplicate() -> None:
    join = TruthJoin(TruthConfig())
    feed(join, [decision(i, px) for i, px in enumerate(PRICES_PATH)])
    late = T0 + 4 * BAR + timedelta(hours=6)
    got = join.add_outcome(outcome("momo-AAA-0", 0, 1, late))
    assert [(x.decision_id, x.label, x.source) for x in got] == [("momo-AAA-0", 1, PRICES)]
    assert join.counts["duplicate_labels"] == 1
    assert join.counts["disagreements"] == 0


def test_orphans_unlabelled_eviction_and_outcome_only_mode() -> None:
    join = TruthJoin(TruthConfig(auto_self_label=False))
    feed(join, [decision(i, px) for i, px in enumerate(PRICES_PATH)])
    assert join.add_outcome(outcome("nope", 0, 1, T0 + BAR)) == []
    assert join.counts["orphan_outcomes"] == 1
    assert join.advance(to_ms(T0) + 10 * HOUR_MS) == []  # no price labels without auto
    assert join.pending == 6
    join.advance(to_ms(T0 + 5 * BAR) + 3 * 24 * HOUR_MS + 1)
    assert join.pending == 0
    assert join.counts["unlabelled_evicted"] == 6
    assert join.add_outcome(outcome("momo-AAA-0", 0, 1, T0 + 4 * 24 * BAR)) == []
    assert join.counts["orphan_outcomes"] == 2


def test_late_decision_is_settled_from_the_bar_history() -> None:
    join = TruthJoin(TruthConfig(self_label=True))
    feed(join, [decision(i, px) for i, px in enumerate(PRICES_PATH)])
    late = join.add_decision(decision(1, 97.0, strategy="late"))
    assert [(x.decision_id, x.label) for x in late] == [("late-AAA-1", 1)]  # 98 > 97


def test_snapshot_restore_mid_stream_gives_identical_labels() -> None:
    stream = [decision(i, 100.0 + (i * 7) % 5, symbol=s) for i in range(30) for s in ("A", "B")]
    outcomes = {10: outcome("momo-A-3", 3, 1, T0 + 10 * BAR)}

    def run(split: int | None) -> list[Label]:
        join = TruthJoin(TruthConfig())
        labels: list[Label] = []
        for n, d in enumerate(stream):
            if n == split:
                state = orjson.loads(orjson.dumps(join.snapshot()))
                join = TruthJoin(TruthConfig())
                join.restore(state)
            labels.extend(join.add_decision(d))
            if n in outcomes:
                labels.extend(join.add_outcome(outcomes[n]))
        labels.extend(join.advance(to_ms(T0) + 48 * HOUR_MS))
        return labels

    baseline = run(None)
    assert len(baseline) == 2 * 26
    assert run(17) == baseline
    assert run(41) == baseline


def test_config_rejects_a_horizon_of_zero_bars() -> None:
    with pytest.raises(ValueError, match=r"TruthConfig\.horizon_bars\['15m'\] must be >= 1"):
        TruthConfig(horizon_bars={"15m": 0})
