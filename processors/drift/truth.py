"""Truth assignment: joins late labels to the decisions they judge.

A decision (``bar_decisions``) gets its label (1 when the forward return over its horizon
is positive) from one of two sources:
- an ``outcomes`` record naming it by ``decision_id``;
- its own symbol's later prices: ``horizon_bars`` bars after the decision's bar (counted in
  distinct later bar_ts of the same (symbol, timeframe), so overnight and weekend gaps count
  as one bar), label = 1 when that bar's price > the decision's price. The horizon is the
  decision's ``horizon_bars``, else ``TruthConfig.horizon_bars[timeframe]``, else
  ``default_horizon_bars``. The price of a bar is the first one seen for it.

Which source wins (each decision is labelled once; later labels are counted, never applied):
- timeframes listed as self-labelled (``self_label`` for all, or ``self_label_timeframes``:
  "there is no outcomes topic for these"): the price label is applied as soon as the bar at
  the horizon arrives; an outcome that comes first still wins (first one wins).
- other timeframes: an outcome wins if it arrives before the price label's due time
  (horizon bar ts + ``outcome_grace_ms``); otherwise, with ``auto_self_label``, the price
  label is applied at the due time (event time; its label time is the due time). Without
  ``auto_self_label`` only outcomes label.
A label that arrives for an already labelled decision is a duplicate; when it disagrees with
the applied one it is also counted as a disagreement. An outcome for an unknown (or already
evicted) decision is an orphan.

Bounded state (event time): decisions are kept until ``bar_ts < watermark -
max_label_delay_ms`` (unlabelled ones are then counted as such); each (symbol, timeframe)
keeps its last ``history_bars`` bars (for decisions arriving late) and the ids waiting for
a future bar; a (symbol, timeframe) quiet for ``max_label_delay_ms`` is dropped. The
watermark is the largest event time seen (decision bar_ts, outcome label_ts, ticks).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from models.common import to_ms
from models.inputs import DecisionRecord, Outcome
from processors.core.base import DAY_MS, HOUR_MS, check_state_version
from processors.core.config_checks import NON_NEGATIVE, above, at_least, check_bounds

STATE_VERSION = 1
PENDING, HELD, LABELLED = 0, 1, 2
OUTCOME, PRICES = "outcome", "prices"
# decision entry: [strategy_id, classification, timeframe, bar_ms, p_hat, price, status, label,
#                  price series (symbol|timeframe), bar index (-1 unknown), horizon]
_TIMEFRAME, _BAR_MS, _P_HAT, _PRICE, _STATUS, _LABEL = 2, 3, 4, 5, 6, 7
# held price label: (due_ms, seq, decision_id, label, source_id)
Held = tuple[int, int, str, int, str]
COUNTERS = (
    "decisions",
    "duplicate_decisions",
    "too_old_decisions",
    "unlabellable",
    "outcome_labels",
    "price_labels",
    "duplicate_labels",
    "disagreements",
    "orphan_outcomes",
    "unlabelled_evicted",
)


@dataclass(frozen=True, slots=True)
class TruthConfig:
    """How truth is assigned (see the module docstring).

    ``horizon_bars``: per timeframe, when a decision carries none (default {"15m": 4});
    ``max_label_delay_ms`` must exceed the longest horizon plus the grace (default 3 days);
    ``outcome_grace_ms``: how long an outcome may lag the horizon bar and still win
    (default 6 hours); ``history_bars``: bars kept per (symbol, timeframe) to settle late
    decisions (default 64).
    """

    horizon_bars: dict[str, int] = field(default_factory=lambda: {"15m": 4})
    default_horizon_bars: int = 1
    self_label: bool = False
    self_label_timeframes: tuple[str, ...] = ()
    auto_self_label: bool = True
    outcome_grace_ms: int = 6 * HOUR_MS
    max_label_delay_ms: int = 3 * DAY_MS
    history_bars: int = 64

    def __post_init__(self) -> None:
        """Raise ValueError naming the first field outside its range."""
        for timeframe, bars in self.horizon_bars.items():
            if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
                raise ValueError(
                    f"TruthConfig.horizon_bars[{timeframe!r}] must be >= 1, got {bars!r}"
                )
        check_bounds(
            self,
            {
                "default_horizon_bars": at_least(1),
                "outcome_grace_ms": NON_NEGATIVE,
                "max_label_delay_ms": above(self.outcome_grace_ms),
                "history_bars": at_least(1),
            },
        )


class Label(NamedTuple):
    """A decision's truth, ready for the drift statistics.

    ``label_ms`` is when it became known (outcome label_ts, the horizon bar's ts, or the due
    time of a held price label); ``source_id`` is the outcome's event_id or the event_id of
    the decision whose price settled it. ``price_series`` ("symbol|timeframe"), ``bar_index``
    (the bar's position in that series, -1 when unknown) and ``horizon`` tell which labels
    overlap (same series, bars closer than the horizon), for the dependence correction.
    """

    decision_id: str
    strategy_id: str
    classification: str
    p_hat: float
    label: int
    bar_ms: int
    label_ms: int
    source: str
    source_id: str
    price_series: str = ""
    bar_index: int = -1
    horizon: int = 1


_new_tuple = tuple.__new__


class _Track:
    """Bars seen for one (symbol, timeframe): index of the last bar, the last bars as
    (bar_ms, price, event_id), and decision ids waiting for a bar index."""

    __slots__ = ("bars", "index", "name", "waiting")

    def __init__(self, history: int, name: str) -> None:
        self.name = name
        self.index = -1
        self.bars: deque[tuple[int, float, str]] = deque(maxlen=history)
        self.waiting: dict[int, list[str]] = {}

    def position(self, bar_ms: int) -> int | None:
        """Index of a bar still in the history, else None."""
        for back, bar in enumerate(reversed(self.bars)):
            if bar[0] == bar_ms:
                return self.index - back
            if bar[0] < bar_ms:
                return None
        return None

    def bar_at(self, index: int) -> tuple[int, float, str] | None:
        back = self.index - index
        return self.bars[-1 - back] if 0 <= back < len(self.bars) else None


class TruthJoin:
    """Labels for decisions from outcomes or later prices (see the module docstring)."""

    def __init__(self, config: TruthConfig | None = None) -> None:
        self.config = config or TruthConfig()
        self._immediate = frozenset(self.config.self_label_timeframes)
        self._decisions: dict[str, list[Any]] = {}
        self._order: deque[tuple[int, str]] = deque()
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._held: list[Held] = []
        self._seq = 0
        self._watermark = -(2**62)
        self._next_sweep_ms = -(2**62)
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    @property
    def watermark(self) -> int:
        """The largest event time seen (ms)."""
        return self._watermark

    @property
    def pending(self) -> int:
        """Decisions kept (labelled or not) within the label horizon."""
        return len(self._decisions)

    def advance_if_quiet(self, watermark_ms: int) -> bool:
        """When ``advance(watermark_ms)`` would only move the watermark (no held label due,
        no decision to evict, no sweep), move it and return True; else change nothing and
        return False (then call ``advance``)."""
        held, order = self._held, self._order
        if (
            (not held or held[0][0] > watermark_ms)
            and (not order or order[0][0] >= watermark_ms - self.config.max_label_delay_ms)
            and watermark_ms < self._next_sweep_ms
        ):
            if watermark_ms > self._watermark:
                self._watermark = watermark_ms
            return True
        return False

    def add_decision(self, d: DecisionRecord, bar_ms: int | None = None) -> list[Label]:
        """Join a decision (``bar_ms``: its bar_ts in ms, when the caller has it already);
        returns the labels this settled."""
        if bar_ms is None:
            bar_ms = to_ms(d.bar_ts)
        labels: list[Label] = []
        if bar_ms > self._watermark and not self.advance_if_quiet(bar_ms):
            labels = self.advance(bar_ms)
        event_id, timeframe, price = d.event_id, d.timeframe, d.price
        counts = self.counts
        cfg = self.config
        if event_id in self._decisions:
            counts["duplicate_decisions"] += 1
            return labels
        track_key = (d.symbol, timeframe)
        track = self._tracks.get(track_key)
        if track is None:
            track = self._tracks[track_key] = _Track(cfg.history_bars, f"{d.symbol}|{timeframe}")
        index: int | None
        if not track.bars or bar_ms > track.bars[-1][0]:
            track.index += 1
            index = track.index
            track.bars.append((bar_ms, price, event_id))
            waiting_ids = track.waiting.pop(index, None)
            if waiting_ids is not None:
                self._settle_all(waiting_ids, price, bar_ms, event_id, labels)
        elif bar_ms == track.bars[-1][0]:  # another decision of the latest bar
            index = track.index
        else:
            index = track.position(bar_ms)
        if bar_ms < self._watermark - cfg.max_label_delay_ms:
            counts["too_old_decisions"] += 1
            return labels
        counts["decisions"] += 1
        horizon = max(
            1, d.horizon_bars or cfg.horizon_bars.get(timeframe, cfg.default_horizon_bars)
        )
        entry = [
            d.strategy_id,
            d.classification,
            timeframe,
            bar_ms,
            d.p_hat,
            price,
            PENDING,
            -1,
            track.name,
            -1 if index is None else index,
            horizon,
        ]
        self._decisions[event_id] = entry
        self._order.append((bar_ms, event_id))
        if index is None:
            counts["unlabellable"] += 1
            return labels
        target = index + horizon
        if target > track.index:
            waiting = track.waiting.get(target)
            if waiting is None:
                track.waiting[target] = [event_id]
            else:
                waiting.append(event_id)
            return labels
        bar = track.bar_at(target)
        if bar is None:
            counts["unlabellable"] += 1
        else:
            self._settle(event_id, bar[1], bar[0], bar[2], labels)
        return labels

    def add_outcome(self, o: Outcome, label_ms: int | None = None) -> list[Label]:
        """Join an outcome (``label_ms``: its label_ts in ms, when the caller has it
        already); returns the labels this settled."""
        if label_ms is None:
            label_ms = to_ms(o.label_ts)
        labels: list[Label] = []
        if label_ms > self._watermark and not self.advance_if_quiet(label_ms):
            labels = self.advance(label_ms)
        entry = self._decisions.get(o.decision_id)
        if entry is None:
            self.counts["orphan_outcomes"] += 1
        elif entry[_STATUS] == LABELLED:
            self._duplicate(entry, o.label)
        else:
            labels.append(self._apply(o.decision_id, entry, o.label, label_ms, OUTCOME, o.event_id))
        return labels

    def advance(self, watermark_ms: int) -> list[Label]:
        """Move the watermark: apply held price labels now due, evict old decisions."""
        labels: list[Label] = []
        if watermark_ms <= self._watermark:
            return labels
        self._watermark = watermark_ms
        held = self._held
        decisions = self._decisions
        if held and held[0][0] <= watermark_ms:
            pop = heapq.heappop
            while held and held[0][0] <= watermark_ms:
                due_ms, _, decision_id, label, source_id = pop(held)
                entry = decisions.get(decision_id)
                if entry is None:
                    continue
                status = entry[_STATUS]
                if status == LABELLED:  # the usual case: an outcome came first (_duplicate)
                    counts = self.counts
                    counts["duplicate_labels"] += 1
                    if entry[_LABEL] != label:
                        counts["disagreements"] += 1
                elif status == HELD:
                    labels.append(self._apply(decision_id, entry, label, due_ms, PRICES, source_id))
        cutoff = watermark_ms - self.config.max_label_delay_ms
        order = self._order
        while order and order[0][0] < cutoff:
            _, decision_id = order.popleft()
            entry = decisions.pop(decision_id, None)
            if entry is not None and entry[_STATUS] != LABELLED:
                self.counts["unlabelled_evicted"] += 1
        if watermark_ms >= self._next_sweep_ms:
            self._next_sweep_ms = watermark_ms + HOUR_MS
            quiet = [key for key, t in self._tracks.items() if not t.bars or t.bars[-1][0] < cutoff]
            for key in quiet:
                del self._tracks[key]
        return labels

    def _settle(
        self, decision_id: str, price: float, bar_ms: int, source_id: str, labels: list[Label]
    ) -> None:
        entry = self._decisions.get(decision_id)
        if entry is None:
            return
        label = 1 if price > entry[_PRICE] else 0
        if entry[_STATUS] == LABELLED:
            self._duplicate(entry, label)
        elif entry[_STATUS] == PENDING:
            cfg = self.config
            if cfg.self_label or entry[_TIMEFRAME] in self._immediate:
                labels.append(self._apply(decision_id, entry, label, bar_ms, PRICES, source_id))
            elif cfg.auto_self_label:
                entry[_STATUS] = HELD
                self._seq += 1
                due = bar_ms + cfg.outcome_grace_ms
                heapq.heappush(self._held, (due, self._seq, decision_id, label, source_id))

    def _settle_all(
        self,
        decision_ids: list[str],
        price: float,
        bar_ms: int,
        source_id: str,
        labels: list[Label],
    ) -> None:
        """``_settle`` of each id in turn (the decisions waiting for one bar)."""
        decisions = self._decisions
        cfg = self.config
        hold = not cfg.self_label and cfg.auto_self_label and not self._immediate
        due = bar_ms + cfg.outcome_grace_ms
        held = self._held
        for decision_id in decision_ids:
            entry = decisions.get(decision_id)
            if hold and entry is not None and entry[_STATUS] == PENDING:
                # the common case of _settle, inlined
                entry[_STATUS] = HELD
                self._seq += 1
                label = 1 if price > entry[_PRICE] else 0
                heapq.heappush(held, (due, self._seq, decision_id, label, source_id))
            else:
                self._settle(decision_id, price, bar_ms, source_id, labels)

    def _duplicate(self, entry: list[Any], label: int) -> None:
        self.counts["duplicate_labels"] += 1
        if entry[_LABEL] != label:
            self.counts["disagreements"] += 1

    def _apply(
        self,
        decision_id: str,
        entry: list[Any],
        label: int,
        label_ms: int,
        source: str,
        source_id: str,
    ) -> Label:
        entry[_STATUS] = LABELLED
        entry[_LABEL] = label
        self.counts["outcome_labels" if source == OUTCOME else "price_labels"] += 1
        # tuple.__new__ is what Label(...) ends in, without the generated __new__'s frame
        return _new_tuple(
            Label,
            (
                decision_id,
                entry[0],
                entry[1],
                entry[_P_HAT],
                label,
                entry[_BAR_MS],
                label_ms,
                source,
                source_id,
                entry[8],
                entry[9],
                entry[10],
            ),
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "watermark": self._watermark,
            "next_sweep": self._next_sweep_ms,
            "seq": self._seq,
            "decisions": [[key, *entry] for key, entry in self._decisions.items()],
            "order": [list(item) for item in self._order],
            "tracks": [
                [
                    symbol,
                    timeframe,
                    t.index,
                    [list(b) for b in t.bars],
                    [[target, list(ids)] for target, ids in t.waiting.items()],
                ]
                for (symbol, timeframe), t in self._tracks.items()
            ],
            "held": [list(item) for item in self._held],
            "counts": dict(self.counts),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with one taken by ``snapshot``. Raises ``StateVersionError``
        for a snapshot of another ``STATE_VERSION``."""
        check_state_version(state, STATE_VERSION, "TruthJoin")
        self._watermark = int(state["watermark"])
        self._next_sweep_ms = int(state["next_sweep"])
        self._seq = int(state["seq"])
        self._decisions = {str(row[0]): list(row[1:]) for row in state["decisions"]}
        self._order = deque((int(b), str(i)) for b, i in state["order"])
        self._tracks = {}
        for symbol, timeframe, index, bars, waiting in state["tracks"]:
            track = _Track(self.config.history_bars, f"{symbol}|{timeframe}")
            track.index = int(index)
            track.bars.extend((int(b), float(p), str(e)) for b, p, e in bars)
            track.waiting = {int(target): [str(i) for i in ids] for target, ids in waiting}
            self._tracks[(str(symbol), str(timeframe))] = track
        self._held = [(int(a), int(b), str(c), int(d), str(e)) for a, b, c, d, e in state["held"]]
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.counts.update({str(k): int(v) for k, v in state["counts"].items()})
