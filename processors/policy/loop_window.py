"""The policy loop's window of decisions: compact columnar rows, bounded by event time.

``LoopWindow.add(decision)`` keeps what the loop needs of each DecisionRecord (the fields of
``policy_replay.TapeRow`` plus the numeric features) in typed arrays (``array.array``), with
strategy, symbol, classification and regime interned as integer codes. Rows whose bar_ts is
older than ``retain_ms`` behind the latest bar_ts seen are evicted, oldest arrival first (a
row that arrived late leaves when the rows that arrived before it have left), so memory is
bounded by event time: about ``retain_ms / bar length x (strategy, symbol) pairs`` rows of
``9 + features`` numbers each (~100 bytes a row with 5 features), plus the interned names.

``view(start_ms, end_ms)`` gives a ``WindowView`` of the rows with start <= bar_ts < end: a
``DecisionTape`` for the replay (rows in canonical order: strategy name, symbol name, bar_ts;
of two rows with the same key the later arrival wins, as in ``DecisionTape``), the feature
columns and outcome labels aligned with the tape's rows. The view depends only on the rows in
the window, never on arrival order (except for same-key duplicates) or on the interning order.

Labels: ``label[i] = forward_return[i] > 0`` where the forward return is the one of the tape
(to the next decision of the same strategy and symbol); ``labelled[i]`` is False for each
key's last row (no next price) and wherever a price is not usable.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.inputs import DecisionRecord
from models.taxonomy import BlockEvent, ReasonCode
from processors.core.base import DAY_MS, check_state_version
from processors.core.config_checks import POSITIVE, at_least, check_bounds
from processors.policy.replay import DecisionTape
from processors.policy.tape_index import key_order, unique_times

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

STATE_VERSION = 1
STAND_DOWN_FLAG = 1
EMERGENCY_FLAG = 2
_COMPACT_AT = 4096
_STAND_DOWN_ACTIVE = ReasonCode.STAND_DOWN_ACTIVE
_VETO = BlockEvent.EMERGENCY_EXIT_VETO_SAME_BAR
_NAN = math.nan
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()


DecisionRow = tuple[tuple[str, str, str, str], int, int, float, float, float, Mapping[str, float]]
"""What the window keeps of a decision: ((strategy_id, symbol, classification, regime),
bar_ts ms, flags, price, p_hat, vol_hat, features). A small record: what a lane sends the
global stage for each decision (processors/lane.py)."""


def decision_row(d: DecisionRecord, bar_ms: int | None = None) -> DecisionRow:
    """The ``DecisionRow`` of ``d``; ``bar_ms``: its bar_ts in ms, when the caller has it."""
    if bar_ms is None:
        b = d.bar_ts
        # From the fields: bar_ts is normalised to UTC by the model (UtcDatetime), and
        # any arithmetic through its tzinfo costs ~1.5 us (as much as the rest of add).
        ts = (b.toordinal() - _EPOCH_ORDINAL) * DAY_MS + b.microsecond // 1000
        ts += ((b.hour * 60 + b.minute) * 60 + b.second) * 1000
    else:
        ts = bar_ms
    flags = 0
    if d.stand_down is not None or _STAND_DOWN_ACTIVE in d.reasons:
        flags = STAND_DOWN_FLAG
    intent = d.exit_intent
    if intent is not None and intent.emergency and _VETO not in d.block_events:
        flags |= EMERGENCY_FLAG
    names = (d.strategy_id, d.symbol, d.classification, d.regime)
    return names, ts, flags, d.price, d.p_hat, d.vol_hat, d.features


@dataclass(frozen=True, slots=True)
class LoopWindowConfig:
    """``retain_ms``: event time kept behind the latest bar_ts (default 8 days: a 7-day loop
    window plus a day of slack for lateness and the rollback monitor). ``max_features``:
    distinct feature names kept (default 32; further names are ignored)."""

    retain_ms: int = 8 * DAY_MS
    max_features: int = 32

    def __post_init__(self) -> None:
        check_bounds(
            self,
            {"retain_ms": POSITIVE, "max_features": at_least(1)},
        )


@dataclass(frozen=True, eq=False)
class WindowView:
    """The rows of one window: the tape, ``features`` (name -> column aligned with the tape's
    rows, NaN where a decision lacks the feature), ``label`` / ``labelled`` (module
    docstring) and the window bounds [start_ms, end_ms)."""

    start_ms: int
    end_ms: int
    tape: DecisionTape
    features: dict[str, FloatArray]
    label: BoolArray
    labelled: BoolArray

    def __len__(self) -> int:
        return len(self.tape)


class _Names:
    """Interned names: code -> name and name -> code."""

    __slots__ = ("codes", "names")

    def __init__(self, names: list[str] | None = None) -> None:
        self.names: list[str] = list(names or [])
        self.codes: dict[str, int] = {n: i for i, n in enumerate(self.names)}

    def code(self, name: str) -> int:
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code


_INT_COLUMNS = ("strategy", "symbol", "classification", "regime", "ts", "flags")
_FLOAT_COLUMNS = ("price", "p_hat", "vol_hat")


class LoopWindow:
    """Bounded event-time window of decisions; see the module docstring."""

    def __init__(self, config: LoopWindowConfig | None = None) -> None:
        self.config = config or LoopWindowConfig()
        self._clear()

    def _clear(self) -> None:
        self._strategies, self._symbols = _Names(), _Names()
        self._classes, self._regimes = _Names(), _Names()
        self._codes: dict[tuple[str, str, str, str], tuple[int, int, int, int]] = {}
        self._ints: dict[str, array[int]] = {name: array("q") for name in _INT_COLUMNS}
        self._floats: dict[str, array[float]] = {name: array("d") for name in _FLOAT_COLUMNS}
        self._features: dict[str, array[float]] = {}
        self._feature_names: set[str] = set()
        self._head = 0
        self.latest_ms: int | None = None
        self._bind_columns()

    def _bind_columns(self) -> None:
        """The columns' bound ``append`` in ``_INT_COLUMNS`` / ``_FLOAT_COLUMNS`` order (call
        again whenever a column is replaced; ``del column[:n]`` keeps the same object)."""
        self._int_appends = tuple(self._ints[name].append for name in _INT_COLUMNS)
        self._float_appends = tuple(self._floats[name].append for name in _FLOAT_COLUMNS)
        self._feature_appends = [(name, column.append) for name, column in self._features.items()]

    # -- updates -------------------------------------------------------------------------

    def add(self, d: DecisionRecord, bar_ms: int | None = None) -> None:
        """Keep one decision (never mutates it); evicts rows past ``retain_ms``.
        ``bar_ms``: its bar_ts in ms, when the caller has it already."""
        self.add_row(decision_row(d, bar_ms))

    def add_row(self, row: DecisionRow) -> None:
        """Keep one decision given as its ``decision_row``; evicts rows past ``retain_ms``."""
        names, ts, flags, price, p_hat, vol_hat, values = row
        codes = self._codes.get(names)
        if codes is None:
            codes = self._codes[names] = (
                self._strategies.code(names[0]),
                self._symbols.code(names[1]),
                self._classes.code(names[2]),
                self._regimes.code(names[3]),
            )
        strategy, symbol, classification, regime, ts_column, flag_column = self._int_appends
        strategy(codes[0])
        symbol(codes[1])
        classification(codes[2])
        regime(codes[3])
        ts_column(ts)
        flag_column(flags)
        price_column, p_hat_column, vol_hat_column = self._float_appends
        price_column(price)
        p_hat_column(p_hat)
        vol_hat_column(vol_hat)
        if values.keys() == self._feature_names:  # the usual case: exactly the known names
            for name, append in self._feature_appends:
                append(values[name])
        else:
            self._add_features(values, len(self._ints["ts"]) - 1)
        if self.latest_ms is None or ts > self.latest_ms:
            self.latest_ms = ts
            self._evict(ts - self.config.retain_ms)

    def _add_features(self, values: Mapping[str, float], row: int) -> None:
        features = self._features
        for name in values:
            if name not in features and len(features) < self.config.max_features:
                features[name] = array("d", [_NAN]) * row
        self._feature_names = set(features)
        self._bind_columns()
        for name, column in features.items():
            column.append(values.get(name, _NAN))

    def _evict(self, cutoff_ms: int) -> None:
        ts = self._ints["ts"]
        head, n = self._head, len(ts)
        while head < n and ts[head] < cutoff_ms:
            head += 1
        self._head = head
        if head >= _COMPACT_AT and head * 2 >= n:
            for column in self._columns():
                del column[:head]
            self._head = 0

    def _columns(self) -> list[Any]:
        return [*self._ints.values(), *self._floats.values(), *self._features.values()]

    # -- reads -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Rows held (not yet evicted)."""
        return len(self._ints["ts"]) - self._head

    def count(self, start_ms: int, end_ms: int) -> int:
        """Rows with start <= bar_ts < end (duplicates of a key included)."""
        ts = np.frombuffer(self._ints["ts"], dtype=np.int64)[self._head :]
        return int(np.count_nonzero((ts >= start_ms) & (ts < end_ms)))

    def view(self, start_ms: int, end_ms: int) -> WindowView:
        """The rows with start <= bar_ts < end; see the module docstring."""
        return self.span(start_ms, end_ms).view(start_ms, end_ms)

    def span(self, start_ms: int, end_ms: int) -> WindowSpan:
        """The rows with start <= bar_ts < end, sorted once, for several views inside it
        (``WindowSpan.view``): what a loop run takes (whole window, fit and test spans)."""
        head = self._head
        ints = {k: np.frombuffer(v, dtype=np.int64)[head:] for k, v in self._ints.items()}
        ts = ints["ts"]
        rows = np.flatnonzero((ts >= start_ms) & (ts < end_ms))
        names = (
            self._strategies.names,
            self._symbols.names,
            self._classes.names,
            self._regimes.names,
        )
        raw = tuple(ints[column][rows] for column in _INT_COLUMNS[:4])
        row_ts = ts[rows]
        # canonical (sorted-name) ranks of the span: any sub-span's ranks order alike
        strategy = _canonical(raw[0], names[0])[0]
        symbol = _canonical(raw[1], names[1])[0]
        order = key_order(strategy, symbol, row_ts)  # stable: arrival order within a key
        keep = np.ones(order.shape[0], dtype=np.bool_)  # the last arrival of each key
        s, y, t = strategy[order], symbol[order], row_ts[order]
        keep[:-1] = (s[:-1] != s[1:]) | (y[:-1] != y[1:]) | (t[:-1] != t[1:])
        return WindowSpan(self, head, rows, raw, names, row_ts, order[keep])

    # -- state -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The rows held, column-wise (NaN features as null), and the interned names."""
        head = self._head
        return {
            "version": STATE_VERSION,
            "latest_ms": self.latest_ms,
            "names": [
                list(self._strategies.names),
                list(self._symbols.names),
                list(self._classes.names),
                list(self._regimes.names),
            ],
            "ints": {k: v[head:].tolist() for k, v in self._ints.items()},
            "floats": {k: v[head:].tolist() for k, v in self._floats.items()},
            "features": {
                k: [None if math.isnan(x) else x for x in v[head:]]
                for k, v in self._features.items()
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_state_version(state, STATE_VERSION, "LoopWindow")
        self._clear()
        latest = state.get("latest_ms")
        self.latest_ms = None if latest is None else int(latest)
        names = state.get("names", [[], [], [], []])
        self._strategies, self._symbols = _Names(names[0]), _Names(names[1])
        self._classes, self._regimes = _Names(names[2]), _Names(names[3])
        for key, values in dict(state.get("ints", {})).items():
            if key in self._ints:
                self._ints[key] = array("q", (int(v) for v in values))
        for key, values in dict(state.get("floats", {})).items():
            if key in self._floats:
                self._floats[key] = array("d", (float(v) for v in values))
        for key, values in dict(state.get("features", {})).items():
            self._features[str(key)] = array("d", (_NAN if v is None else v for v in values))
        self._feature_names = set(self._features)
        self._bind_columns()


class WindowSpan:
    """A span of a LoopWindow's rows, sorted by (strategy, symbol, bar_ts) with the last
    arrival of each key kept (``LoopWindow.span``). ``view(start, end)`` of any sub-span
    equals ``LoopWindow.view(start, end)``: a key's rows share a bar_ts, so they are all
    inside or all outside a sub-span, and filtering keeps the order. Valid until the window
    changes (take one, use it, drop it)."""

    def __init__(
        self,
        window: LoopWindow,
        head: int,
        rows: IntArray,
        raw: tuple[IntArray, ...],
        names: tuple[list[str], ...],
        row_ts: IntArray,
        kept: IntArray,
    ) -> None:
        self._window, self._head, self._rows, self._raw = window, head, rows, raw
        self._names, self._row_ts, self._kept = names, row_ts, kept

    @property
    def first_ms(self) -> int | None:
        """The earliest bar_ts of the span, None when it is empty."""
        return int(self._row_ts.min()) if self._row_ts.shape[0] else None

    def view(self, start_ms: int, end_ms: int) -> WindowView:
        """The rows with start <= bar_ts < end (inside the span); see the module docstring."""
        row_ts, kept = self._row_ts, self._kept
        inside = (row_ts >= start_ms) & (row_ts < end_ms)
        position = kept[inside[kept]]
        pairs = zip(self._raw, self._names, strict=True)
        ranks = [_name_ranks(raw[inside], names) for raw, names in pairs]
        codes = [lut[raw[position]] for (lut, _), raw in zip(ranks, self._raw, strict=True)]
        window, head = self._window, self._head
        picked = self._rows[position]
        floats = {k: np.frombuffer(v, dtype=np.float64)[head:] for k, v in window._floats.items()}
        flags = np.frombuffer(window._ints["flags"], dtype=np.int64)[head:][picked]
        tape = DecisionTape.from_columns(
            (ranks[0][1], ranks[1][1], ranks[2][1], ranks[3][1]),
            (codes[0], codes[1], codes[2], codes[3]),
            row_ts[position],
            floats["price"][picked],
            floats["p_hat"][picked],
            floats["vol_hat"][picked],
            (flags & STAND_DOWN_FLAG) != 0,
            (flags & EMERGENCY_FLAG) != 0,
            bar_times=unique_times(row_ts[inside]),  # arrival order: usually sorted already
        )
        features = {
            name: np.frombuffer(column, dtype=np.float64)[head:][picked].copy()
            for name, column in sorted(window._features.items())
        }
        n = len(tape)
        labelled = np.zeros(n, dtype=np.bool_)
        if n > 1:
            price = tape.price
            usable = np.isfinite(price) & (price > 0.0)
            labelled[:-1] = ~tape.group_start[1:] & usable[1:] & usable[:-1]
        label = labelled & (tape.forward_return > 0.0)
        return WindowView(start_ms, end_ms, tape, features, label, labelled)


def _name_ranks(codes: IntArray, names: list[str]) -> tuple[IntArray, tuple[str, ...]]:
    """The sorted tuple of the names present among ``codes`` and a lookup from intern code
    to rank in it (codes of absent names map to 0)."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))  # = np.unique(codes)
    present_names = [names[int(c)] for c in present]
    by_name = sorted(range(len(present_names)), key=present_names.__getitem__)
    rank_of_code = np.zeros(max(1, len(names)), dtype=np.int64)
    rank_of_code[present[np.asarray(by_name, dtype=np.int64)]] = np.arange(
        len(by_name), dtype=np.int64
    )
    return rank_of_code, tuple(present_names[i] for i in by_name)


def _canonical(codes: IntArray, names: list[str]) -> tuple[IntArray, tuple[str, ...]]:
    """Codes re-indexed into the sorted tuple of the names present among them."""
    rank_of_code, present = _name_ranks(codes, names)
    ranked: IntArray = rank_of_code[codes] if codes.shape[0] else codes
    return ranked, present
