"""Lanes held in this process: one ``Lane`` per strategy_id, created at its first record.

The pipeline's front hands a host each step's arrivals, ``(strategy_id or None, envelope,
event_ms, watermark before it)``, and the step's final watermark. A record of a strategy
goes to that strategy's lane, which first releases up to the watermark the record found on
arrival (so what is late is decided exactly as in one pipeline); a record without a strategy
(a stand-down for all strategies, or for a symbol of every strategy) goes to every lane, and
is kept, so a lane created later takes those first. After the arrivals every lane releases
up to the step's watermark and the host returns every lane's items.

A host may hold any subset of the strategies: a driver that spreads lanes over processes
(streams/lane_pool.py) runs one host per process with the same interface. Which host holds a
lane changes nothing in its items.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from models.outputs import PerformanceRow
from models.topics import INPUT_TOPICS
from processors.core import metric_names as mn
from processors.core.base import Envelope, MetricSample
from processors.lane import Item, Lane, merge_summaries
from processors.stages import FinishPhase, PipelineConfig

Arrival = tuple[str | None, Envelope, int, int]
"""(strategy_id, or None for a record for every lane; envelope; event ms; watermark ms the
record found on arrival)."""


class LaneHost(Protocol):
    """What the pipeline asks of the lanes, wherever they run."""

    def send(self, arrivals: list[Arrival], watermark_ms: int) -> None:
        """Start a step: take the arrivals, release every lane up to ``watermark_ms``. A host
        in other processes returns at once; ``receive`` waits for the step's items."""
        ...

    def receive(self) -> list[Item]:
        """The items of the step ``send`` started (one ``receive`` per ``send``)."""
        ...

    def finish(self, phase: FinishPhase, end_ms: int) -> list[Item]:
        """Every lane's end-of-input items of ``phase``."""
        ...

    def reads(self, tables_as_of_ms: int | None = None) -> LaneReads:
        """The lanes' counts and metrics, and with ``tables_as_of_ms`` their performance rows
        and reports as of then (that moves the tables' windows to it: only at the end)."""
        ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


class LaneReads:
    """What the pipeline reads of the lanes between steps, gathered in one call (a host in
    other processes answers it in one round trip)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.late: dict[str, int] = {}
        self.buffered = 0
        self.metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.active_stand_downs: set[tuple[str | None, str | None]] = set()
        self.rows: dict[str, list[PerformanceRow]] = {}
        self.reports: dict[str, dict[str, Any]] = {}

    def add(self, other: LaneReads) -> None:
        """Add the reads of another set of lanes (disjoint strategies)."""
        add_counts(self.counts, other.counts)
        add_counts(self.late, other.late)
        self.buffered += other.buffered
        add_counts(self.metrics, other.metrics)
        self.active_stand_downs |= other.active_stand_downs
        self.rows.update(other.rows)
        self.reports.update(other.reports)

    def metric_samples(self) -> list[MetricSample]:
        """The lanes' metrics: samples of the same name and labels added (per-strategy
        labels never collide); stand-downs in force counted once per scope (an all-strategy
        stand-down is in every lane's book)."""
        samples = [
            MetricSample(name, labels, value)
            for (name, labels), value in sorted(self.metrics.items())
            if name != mn.STAND_DOWNS_ACTIVE
        ]
        if any(name == mn.STAND_DOWNS_ACTIVE for name, _ in self.metrics):
            count = float(len(self.active_stand_downs))
            samples.append(MetricSample(mn.STAND_DOWNS_ACTIVE, (), count))
        return samples

    def performance_rows(self) -> list[PerformanceRow]:
        """Every lane's rows, in strategy order (each lane's are in the documented order)."""
        return [row for sid in sorted(self.rows) for row in self.rows[sid]]

    def report_strategies(self) -> dict[str, Any]:
        return merge_summaries([self.reports[sid] for sid in sorted(self.reports)])


def add_counts(into: dict[Any, Any], more: Mapping[Any, Any]) -> None:
    """Add ``more``'s numbers into ``into``, key by key."""
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


class LocalLanes:
    """Lanes in this process; see the module docstring."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.lanes: dict[str, Lane] = {}
        self.broadcasts: list[tuple[Envelope, int]] = []
        """Every record for all lanes so far, in arrival order, for lanes created later."""
        self._items: list[Item] = []

    def lane(self, strategy_id: str, watermark_ms: int) -> Lane:
        lane = self.lanes.get(strategy_id)
        if lane is None:
            lane = self.lanes[strategy_id] = Lane(strategy_id, self.config)
            lane.release(watermark_ms)
            for envelope, event_ms in self.broadcasts:
                lane.accept(envelope, event_ms, broadcast=True)
        return lane

    def send(self, arrivals: list[Arrival], watermark_ms: int) -> None:
        self._items = self.step(arrivals, watermark_ms)

    def receive(self) -> list[Item]:
        items, self._items = self._items, []
        return items

    def step(self, arrivals: list[Arrival], watermark_ms: int) -> list[Item]:
        """Take the arrivals, release every lane up to ``watermark_ms``; the items made."""
        lane_of = self.lane
        for strategy_id, envelope, event_ms, before in arrivals:
            if strategy_id is None:
                self.broadcasts.append((envelope, event_ms))
                for lane in self.lanes.values():
                    lane.release(before)
                    lane.accept(envelope, event_ms, broadcast=True)
                continue
            lane = lane_of(strategy_id, before)
            lane.release(before)
            lane.accept(envelope, event_ms)
        items: list[Item] = []
        for lane in self.lanes.values():
            lane.release(watermark_ms)
            items.extend(lane.take())
        return items

    def finish(self, phase: FinishPhase, end_ms: int) -> list[Item]:
        items: list[Item] = []
        for lane in self.lanes.values():
            lane.finish(phase, end_ms)
            items.extend(lane.take())
        return items

    def reads(self, tables_as_of_ms: int | None = None) -> LaneReads:
        reads = LaneReads()
        for sid, lane in self.lanes.items():
            add_counts(reads.counts, lane.counts)
            add_counts(reads.late, lane.late)
            reads.buffered += len(lane.buffer)
            add_counts(reads.metrics, {(m.name, m.labels): m.value for m in lane.metrics()})
            reads.active_stand_downs |= lane.stages["stand_downs"].active_scopes()
            if tables_as_of_ms is not None:
                reads.rows[sid] = lane.performance.rows(tables_as_of_ms)
                reads.reports[sid] = lane.performance.report(tables_as_of_ms)["strategies"]
        return reads

    def snapshot(self) -> dict[str, Any]:
        return {
            "lanes": [[sid, self.lanes[sid].snapshot()] for sid in sorted(self.lanes)],
            "broadcasts": [_envelope_state(env, ms) for env, ms in self.broadcasts],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.lanes = {}
        for sid, lane_state in state["lanes"]:
            lane = self.lanes[str(sid)] = Lane(str(sid), self.config)
            lane.restore(lane_state)
        self.broadcasts = [_envelope_of(row) for row in state["broadcasts"]]


def _envelope_state(envelope: Envelope, event_ms: int) -> list[Any]:
    value = envelope.value.model_dump(mode="json")
    return [envelope.topic, envelope.key, envelope.source, envelope.timestamp_ms, event_ms, value]


def _envelope_of(row: list[Any]) -> tuple[Envelope, int]:
    topic, key, source, timestamp_ms, event_ms, value = row
    model = INPUT_TOPICS[topic].model.model_validate(value)
    return Envelope(topic, key, model, source, timestamp_ms), int(event_ms)  # type: ignore[arg-type]
