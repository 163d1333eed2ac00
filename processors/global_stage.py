"""The global stage: what is fleet-wide, fed by the lanes.

It holds the stages of ``scope="global"`` (processors/stages.py): the alert router (dedup,
rate limit and the fleet's alert budget) and the policy loop (its window of every
strategy's decisions, proposer, gate, archive). Its input is the lanes' items
(processors/lane.py), which it processes in tag order, so its outputs depend on neither the
number of lanes nor the processes that ran them:
- before an item at event time t, its timers fire up to t - 1 (the router's, then every
  loop run due by then, each with the router ticked to exactly its time);
- an output goes out as it is; signals go through the router, and the router's alerts go
  out and to the policy loop (a high-severity drift may trigger a run);
- a decision row goes into the loop's window;
- a lane summary replaces that strategy's previous one: a loop run's context is the latest
  summary of every lane (as of the last grid point each crossed with something new; for a
  scheduled run, exactly its own time).
After the items of a step, the timers fire up to the step's watermark.
"""

from __future__ import annotations

import functools
from typing import Any

from models.outputs import Alert
from processors.core.alert_router import AlertRouter
from processors.core.base import AlertSignal, Emitted, MetricSample, Output
from processors.lane import (
    DECISION,
    FINISH_SIGNALS,
    NO_WATERMARK,
    OUTPUT,
    PERFORMANCE_REPORT,
    SIGNALS,
    Item,
    item_json,
    item_of,
    merge_summaries,
)
from processors.performance.tables import report_of
from processors.policy import LoopContext, PolicyLoop
from processors.stages import GLOBAL_STAGES, PipelineConfig


def _tag(item: Item) -> Any:
    return item[0]


class GlobalStage:
    """The fleet-wide stages over the lanes' items; see the module docstring."""

    def __init__(self, config: PipelineConfig) -> None:
        self.stages: dict[str, Any] = {spec.name: spec.build(config) for spec in GLOBAL_STAGES}
        self.router: AlertRouter = self.stages["router"]
        self.policy_loop: PolicyLoop = self.stages["policy_loop"]
        self._ticked_ms = NO_WATERMARK
        self.summaries: dict[str, dict[str, Any]] = {}
        """The latest summary of every lane, by strategy_id."""

    def apply(self, items: list[Item], upto_ms: int | None, out: list[Output]) -> None:
        """Process ``items`` (one step's, from every lane) in tag order, then fire the timers
        up to ``upto_ms``; outputs are appended to ``out``."""
        items.sort(key=_tag)
        loop = self.policy_loop
        for tag, kind, payload in items:
            t = tag[0]
            if t - 1 > self._ticked_ms:
                self.tick(t - 1, out)
            if tag[1] >= FINISH_SIGNALS and t > self._ticked_ms:
                self.tick(t, out)  # end of input: after everything up to its time, as replay
            if kind == OUTPUT:
                out.append(payload)
            elif kind == DECISION:
                loop.on_decision_row(payload)
            elif kind == SIGNALS:
                self._alerts(self.router.route(payload), out)
            else:
                self.summaries[tag[2]] = payload
        if upto_ms is not None:
            self.tick(upto_ms, out)

    def tick(self, upto_ms: int, out: list[Output]) -> None:
        """Fire timers up to ``upto_ms``. A loop run due at B runs with the router ticked to
        exactly B, so its context does not depend on how far past B the watermark jumped."""
        if upto_ms <= self._ticked_ms:
            return
        loop = self.policy_loop
        loop.skip_idle_runs(upto_ms)
        due = loop.next_due_ms()
        while due is not None and due <= upto_ms:
            self._tick_router(due, out)
            emitted = loop.on_tick(due, functools.partial(self.loop_context, due))
            self._route(emitted, out)
            due = loop.next_due_ms()
        self._tick_router(upto_ms, out)

    def flush(self, out: list[Output]) -> None:
        """End of a finite input: the router's held windows go out."""
        self._alerts(self.router.flush(), out)

    def _tick_router(self, upto_ms: int, out: list[Output]) -> None:
        if upto_ms <= self._ticked_ms:
            return
        self._ticked_ms = upto_ms
        alerts = self.router.on_tick(upto_ms)
        if alerts:
            self._alerts(alerts, out)

    def _route(self, emitted: Emitted, out: list[Output]) -> None:
        out.extend(emitted.outputs)
        signals: list[AlertSignal] = emitted.signals
        if signals:
            self._alerts(self.router.route(signals), out)

    def _alerts(self, alerts: list[Output], out: list[Output]) -> None:
        """Router outputs go out and to the policy loop (a high-severity drift may trigger it)."""
        for output in alerts:
            if isinstance(output.value, Alert):
                self.policy_loop.on_alert(output.value)
        out.extend(alerts)

    def loop_context(self, upto_ms: int) -> LoopContext:
        """The lanes' latest summaries, merged: the drift summaries by detector and the
        performance report as of ``upto_ms``."""
        parts = [self.summaries[sid] for sid in sorted(self.summaries)]
        merged = merge_summaries(parts)
        strategies = merged.pop(PERFORMANCE_REPORT, {})
        return LoopContext(drift=merged, performance=report_of(upto_ms, strategies))

    def metrics(self) -> list[MetricSample]:
        return [sample for stage in self.stages.values() for sample in stage.metrics()]

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: stage.snapshot() for name, stage in self.stages.items()}
        state["ticked_ms"] = self._ticked_ms
        state["summaries"] = [[sid, self.summaries[sid]] for sid in sorted(self.summaries)]
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for name, stage in self.stages.items():
            stage.restore(state[name])
        self._ticked_ms = int(state["ticked_ms"])
        self.summaries = {str(sid): summary for sid, summary in state["summaries"]}


class PartitionedGlobalStage:
    """The global stage fed by ``partitions`` lane partitions that run apart (the worker's
    lane runners): the items of each arrive with the partition's watermark after them, and
    an item is processed once every partition's watermark has passed its event time (or at
    once when it is behind what was processed: a late record's). The order is still the
    items' tag order, so the output is that of one pipeline. After every partition sent a
    flush (an idle flush of the worker), everything pending goes through and the router
    flushes, as at the end of a replay."""

    def __init__(self, config: PipelineConfig, partitions: int) -> None:
        self.stage = GlobalStage(config)
        self.partitions = partitions
        self.watermarks = [NO_WATERMARK] * partitions
        self.flushed = [0] * partitions
        self.flushes = 0
        self.pending: list[Item] = []
        self.done_ms = NO_WATERMARK

    def on_items(self, partition: int, items: list[Item], watermark_ms: int | None) -> list[Output]:
        """Take one frame of lane ``partition``; the outputs that became ready."""
        self.pending.extend(items)
        if watermark_ms is not None and watermark_ms > self.watermarks[partition]:
            self.watermarks[partition] = watermark_ms
        upto = min(self.watermarks)
        ready = [item for item in self.pending if item[0][0] <= upto]
        out: list[Output] = []
        if not ready and upto <= self.done_ms:
            return out
        if ready:
            self.pending = [item for item in self.pending if item[0][0] > upto]
        self.stage.apply(ready, upto if upto > self.done_ms else None, out)
        self.done_ms = max(self.done_ms, upto)
        return out

    def on_flushed(self, partition: int) -> list[Output]:
        """Lane ``partition`` flushed; once all have, the rest goes out and the router
        flushes."""
        self.flushed[partition] += 1
        out: list[Output] = []
        if min(self.flushed) > self.flushes:
            self.flushes = min(self.flushed)
            pending, self.pending = self.pending, []
            self.stage.apply(pending, None, out)
            self.stage.flush(out)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "stage": self.stage.snapshot(),
            "watermarks": list(self.watermarks),
            "flushed": list(self.flushed),
            "flushes": self.flushes,
            "pending": [item_json(item) for item in self.pending],
            "done_ms": self.done_ms,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.stage.restore(state["stage"])
        self.watermarks = [int(w) for w in state["watermarks"]]
        self.flushed = [int(n) for n in state["flushed"]]
        self.flushes = int(state["flushes"])
        self.pending = [item_of(row) for row in state["pending"]]
        self.done_ms = int(state["done_ms"])
