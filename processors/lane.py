"""A lane: the part of the pipeline that is per strategy, for one strategy_id.

Every stage whose state is per strategy (``scope="lane"`` in processors/stages.py) runs in
one lane per strategy: dedup, the truth join, round trips, performance tables, the drift
detectors, the audits and the replan guard. A lane keeps its own event-id dedup and reorder
buffer, releases its records in the pipeline's release order up to the watermark it is given
(the fleet's, from the pipeline's front: a lane never has a clock of its own), ticks its
stages, and produces *items* for the global stage (processors/global_stage.py): its outputs,
its alert signals, a small row per decision for the policy loop's window (``DecisionRow``),
and, at every point of the loop's cadence grid it crosses after processing something new,
the summary of its drift detectors and performance tables (the loop run's context).

Each item carries a tag that orders it among the items of every lane, and depends on neither
the number of lanes nor the process that ran them:
- caused by a record at event time t: ``(t, RECORD, topic rank, key, strategy_id, sequence
  of the record within its topic and key in this lane, index)``;
- fired by the lane's timers up to u: ``(u, TICK, strategy_id, index)``;
- a summary at grid point g: ``(g, SUMMARY, strategy_id, 0)``;
- at the end of a finite input: ``(end, FINISH_SIGNALS | FINISH_ROWS, strategy_id, index)``.
A lane is a pure function of its own records and the watermarks it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from heapq import heappop
from typing import Any

from models.inputs import DecisionRecord
from models.topics import TOPIC_RANK
from processors.core.alert_router import dump_signal, load_signal
from processors.core.base import EMPTY, Emitted, Envelope, Handler, MetricSample
from processors.core.dedup import EventIdDedup
from processors.core.reorder import ReorderBuffer
from processors.performance import PerformanceTables
from processors.policy.loop_window import decision_row
from processors.stages import LANE_STAGES, FinishPhase, PipelineConfig

NO_WATERMARK = -(2**62)

RECORD = 1
TICK = 2
SUMMARY = 3
FINISH_SIGNALS = 4
FINISH_ROWS = 5

OUTPUT = "output"
SIGNALS = "signals"
DECISION = "decision"
SUMMARY_ITEM = "summary"

Tag = tuple[Any, ...]
Item = tuple[Tag, str, Any]
"""(tag, kind, payload): kind OUTPUT (an Output), SIGNALS (a list of AlertSignal),
DECISION (a DecisionRow) or SUMMARY_ITEM (a lane summary, see ``Lane.summary``)."""

FORWARDED: Mapping[type, Callable[[Any, int], Any]] = {
    DecisionRecord: decision_row,
}
"""Inputs a global stage takes, and the small record a lane sends it for each."""

PERFORMANCE_REPORT = "performance_report"
"""The key of the performance tables' report in a lane summary."""


class Lane:
    """The lane of one strategy; see the module docstring."""

    def __init__(self, strategy_id: str, config: PipelineConfig) -> None:
        self.strategy_id = strategy_id
        self.config = config
        self.dedup = EventIdDedup(config.dedup)
        self.buffer = ReorderBuffer()
        self.stages: dict[str, Any] = {spec.name: spec.build(config) for spec in LANE_STAGES}
        self.performance: PerformanceTables = self.stages["performance"]
        self._routes: dict[type, tuple[Handler, ...]] = {}
        for stage in self.stages.values():
            for record_type, method in type(stage).takes.items():
                handler = getattr(stage, method)
                self._routes[record_type] = (*self._routes.get(record_type, ()), handler)
        self._tickers = tuple(stage.on_tick for stage in self.stages.values() if type(stage).timers)
        self._drift_summaries = tuple(
            (spec.drift_summary, self.stages[spec.name])
            for spec in LANE_STAGES
            if spec.drift_summary is not None
        )
        self._grid_ms = config.policy_loop.interval_ms
        self._grid_offset_ms = config.policy_loop.offset_ms
        self.watermark_ms = NO_WATERMARK
        self._ticked_ms = NO_WATERMARK
        self._dirty = False
        self.counts: dict[tuple[str, str], int] = {}
        self.late: dict[str, int] = {}
        self.items: list[Item] = []
        self._tag: Tag = ()
        self._index = 0

    # -- inputs --------------------------------------------------------------------------

    def accept(self, envelope: Envelope, event_ms: int, broadcast: bool = False) -> None:
        """Take one record that passed the front's checks. ``broadcast``: a copy of a record
        every lane gets (an all-strategy stand-down), deduplicated and counted by the front."""
        topic = envelope.topic
        seq = self.buffer.next_sequence(topic, envelope.key)
        if not broadcast:
            counts = self.counts
            if not self.dedup.first_time(topic, envelope.value.event_id, event_ms):
                slot = (topic, "duplicate")
                counts[slot] = counts.get(slot, 0) + 1
                return
            slot = (topic, "processed")
            counts[slot] = counts.get(slot, 0) + 1
        if event_ms <= self.watermark_ms:
            if not broadcast:
                self.late[topic] = self.late.get(topic, 0) + 1
            self._process_record(envelope, event_ms, seq)
            return
        self.buffer.push(event_ms, seq, envelope)

    def release(self, watermark_ms: int) -> None:
        """Process the held records up to ``watermark_ms`` in release order, ticking the
        stages before each new event time, then tick up to the watermark."""
        if watermark_ms <= self.watermark_ms:
            return
        heap = self.buffer.heap
        while heap and heap[0][0] <= watermark_ms:
            held = heappop(heap)
            event_ms = held[0]
            if event_ms - 1 > self._ticked_ms:
                self._tick(event_ms - 1)
            self._process_record(held[4], event_ms, held[3])
        self.watermark_ms = watermark_ms
        self._tick(watermark_ms)
        self.dedup.advance(watermark_ms)

    def finish(self, phase: FinishPhase, end_ms: int) -> None:
        """What the stages emit at the end of a finite input, in ``phase``."""
        self._tag = (
            end_ms,
            FINISH_SIGNALS if phase == "signals" else FINISH_ROWS,
            self.strategy_id,
        )
        self._index = 0
        self._emit(
            tuple(
                spec.finish(self.stages[spec.name], end_ms)
                for spec in LANE_STAGES
                if spec.finish is not None and spec.finish_phase == phase
            )
        )

    def take(self) -> list[Item]:
        """The items produced since the last call."""
        items, self.items = self.items, []
        return items

    # -- internals -------------------------------------------------------------------------

    def _process_record(self, envelope: Envelope, event_ms: int, seq: int) -> None:
        self._dirty = True
        rank = TOPIC_RANK[envelope.topic]
        self._tag = (event_ms, RECORD, rank, envelope.key or "", self.strategy_id, seq)
        self._index = 0
        value = envelope.value
        self._process(value, event_ms)
        forward = FORWARDED.get(type(value))
        if forward is not None:
            self.items.append(((*self._tag, self._index), DECISION, forward(value, event_ms)))
            self._index += 1

    def _process(self, value: Any, event_ms: int) -> None:
        handlers = self._routes.get(type(value))
        if handlers is None:
            return
        emitted = tuple(handler(value, event_ms) for handler in handlers)
        if all(item is EMPTY for item in emitted):
            return
        self._emit(emitted)
        for item in emitted:
            for record in item.derived:
                self._process(record, event_ms)

    def _emit(self, emitted: tuple[Emitted, ...]) -> None:
        """Items of the outputs of ``emitted`` in order, then one of all their signals."""
        items, tag = self.items, self._tag
        signals = []
        for part in emitted:
            for output in part.outputs:
                items.append(((*tag, self._index), OUTPUT, output))
                self._index += 1
            signals.extend(part.signals)
        if signals:
            items.append(((*tag, self._index), SIGNALS, signals))
            self._index += 1

    def _tick(self, upto_ms: int) -> None:
        """Tick the stages up to ``upto_ms``, stopping at each grid point on the way when
        something was processed since the last summary, to summarise there."""
        while self._dirty:
            grid = self._grid_ms
            point = ((self._ticked_ms - self._grid_offset_ms) // grid + 1) * grid
            point += self._grid_offset_ms
            if point > upto_ms:
                break
            self._tick_stages(point)
            self.items.append(
                ((point, SUMMARY, self.strategy_id, 0), SUMMARY_ITEM, self.summary(point))
            )
            self._dirty = False
        self._tick_stages(upto_ms)

    def _tick_stages(self, upto_ms: int) -> None:
        if upto_ms <= self._ticked_ms:
            return
        self._ticked_ms = upto_ms
        fired = tuple(on_tick(upto_ms) for on_tick in self._tickers)
        if any(emitted is not EMPTY for emitted in fired):
            self._tag = (upto_ms, TICK, self.strategy_id)
            self._index = 0
            self._emit(fired)

    # -- reads -----------------------------------------------------------------------------

    def summary(self, as_of_ms: int) -> dict[str, Any]:
        """The drift detectors' summaries (by their ``drift_summary`` name) and the
        performance tables' report of its strategy (``PERFORMANCE_REPORT``)."""
        report = self.performance.report(max(as_of_ms, 0))
        summary = {name: stage.summary() for name, stage in self._drift_summaries}
        summary[PERFORMANCE_REPORT] = report["strategies"]
        return summary

    def metrics(self) -> list[MetricSample]:
        return [sample for stage in self.stages.values() for sample in stage.metrics()]

    def snapshot(self) -> dict[str, Any]:
        """The lane's whole state (``take`` its items first: they are not part of it)."""
        state: dict[str, Any] = {name: stage.snapshot() for name, stage in self.stages.items()}
        state["dedup"] = self.dedup.snapshot()
        state["buffer"] = self.buffer.snapshot()
        state["clock"] = [self.watermark_ms, self._ticked_ms, self._dirty]
        state["counts"] = [[t, o, n] for (t, o), n in sorted(self.counts.items())]
        state["late"] = sorted(self.late.items())
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for name, stage in self.stages.items():
            stage.restore(state[name])
        self.dedup.restore(state["dedup"])
        self.buffer.restore(state["buffer"])
        watermark, ticked, dirty = state["clock"]
        self.watermark_ms, self._ticked_ms, self._dirty = int(watermark), int(ticked), bool(dirty)
        self.counts = {(str(t), str(o)): int(n) for t, o, n in state["counts"]}
        self.late = {str(t): int(n) for t, n in state["late"]}
        self.items = []


def merge_summaries(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of many lanes' (given in strategy order): mappings are merged key by key,
    numbers (counts: detections, family sizes, labels) added, anything else taken from the
    first lane that has it. Lanes' per-strategy entries never collide."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in merged:
                merged[key] = value
                continue
            have = merged[key]
            if isinstance(have, dict) and isinstance(value, dict):
                merged[key] = merge_summaries([have, value])
            elif _is_number(have) and _is_number(value):
                merged[key] = have + value
    return merged


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def item_json(item: Item) -> list[Any]:
    """An item as JSON-ready data (``item_of`` reads it back): what a lane runner sends the
    global runner, and what a checkpoint keeps of items not yet processed."""
    tag, kind, payload = item
    if kind == SIGNALS:
        payload = [dump_signal(signal) for signal in payload]
    return [list(tag), kind, payload]


def item_of(row: list[Any]) -> Item:
    tag, kind, payload = row
    if kind == SIGNALS:
        payload = [load_signal(signal) for signal in payload]
    elif kind == DECISION:
        names, ts, flags, price, p_hat, vol_hat, features = payload
        payload = (tuple(names), ts, flags, price, p_hat, vol_hat, features)
    return tuple(tag), kind, payload
