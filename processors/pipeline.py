"""The pipeline: routes input envelopes to the processors and collects their outputs.

Both drivers (replay and the Kafka worker) call only this class:
``handle`` / ``handle_batch`` for decoded inputs, ``reject`` for records that failed to
decode, ``advance`` for an external watermark, ``finish`` at the end of a finite input, and
``snapshot`` / ``restore`` / ``metrics``.

Order of work, which is what makes the output deterministic:
1. on arrival a record gets its sequence within (topic, key) and is deduplicated by event_id
   (first one wins);
2. it waits in the reorder buffer until the watermark passes its event time;
3. released records are processed in (event time, topic, key, sequence) order; before a
   record at time t is processed, every processor's timers due before t fire
   (``on_tick(t - 1)``: "all events up to t - 1 are in"); after a release, timers due up to
   the watermark fire;
4. alert signals of every processor go through the alert router.
The watermark is, by default, the largest event time seen minus ``allowed_lateness_ms``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from heapq import heappop
from typing import Any

from models.codec import DecodeError, encode
from models.common import to_ms
from models.outputs import RAW_MAX_BYTES, Alert, DeadLetter, PerformanceRow
from models.topics import DEAD_LETTERS
from processors.core import metric_names as mn
from processors.core.alert_router import AlertRouter
from processors.core.base import (
    EMPTY,
    AlertSignal,
    Emitted,
    Envelope,
    Handler,
    MetricSample,
    Output,
)
from processors.core.dedup import EventIdDedup
from processors.core.reorder import ReorderBuffer
from processors.performance import PerformanceTables
from processors.policy import LoopContext, PolicyLoop
from processors.policy.archive import iso
from processors.stages import STAGES, PipelineConfig

__all__ = ["NO_WATERMARK", "Pipeline", "PipelineConfig"]

NO_WATERMARK = -(2**62)


class Pipeline:
    """All processors behind one deterministic entry point."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.config = config or PipelineConfig()
        cfg = self.config
        self.dedup = EventIdDedup(cfg.dedup)
        self.buffer = ReorderBuffer()
        self.stages: dict[str, Any] = {spec.name: spec.build(cfg) for spec in STAGES}
        self.router: AlertRouter = self.stages["router"]
        self.policy_loop: PolicyLoop = self.stages["policy_loop"]
        self.performance: PerformanceTables = self.stages["performance"]
        fleet_wide = (self.router, self.policy_loop)
        self._routes: dict[type, tuple[Handler, ...]] = {}
        for stage in self.stages.values():
            for record_type, method in type(stage).takes.items():
                handler = getattr(stage, method)
                self._routes[record_type] = (*self._routes.get(record_type, ()), handler)
        self._tickers = tuple(
            stage.on_tick
            for stage in self.stages.values()
            if type(stage).timers and stage not in fleet_wide
        )
        self._drift_summaries = tuple(
            (spec.drift_summary, self.stages[spec.name])
            for spec in STAGES
            if spec.drift_summary is not None
        )
        self.max_event_ms = NO_WATERMARK
        self.watermark_ms = NO_WATERMARK
        self.out_of_bounds_total = 0
        """Records dead-lettered as ``event_time_out_of_bounds`` so far."""
        self._jump_candidate_ms: int | None = None
        self._ticked_ms = NO_WATERMARK
        self.counts: dict[tuple[str, str], int] = {}
        self.late: dict[str, int] = {}
        self.outputs_by_topic: dict[str, int] = {}

    # -- inputs --------------------------------------------------------------------------

    def handle(self, envelope: Envelope) -> list[Output]:
        """Take one decoded input; return whatever became ready."""
        out: list[Output] = []
        self._accept(envelope, out)
        self._release(self.max_event_ms - self.config.allowed_lateness_ms, out)
        return self._count_outputs(out)

    def handle_batch(self, envelopes: Iterable[Envelope]) -> list[Output]:
        """Take many decoded inputs; the same result as calling ``handle`` on each."""
        out: list[Output] = []
        lateness = self.config.allowed_lateness_ms
        accept, release = self._accept, self._release
        for envelope in envelopes:
            accept(envelope, out)
            if self.max_event_ms - lateness > self.watermark_ms:
                release(self.max_event_ms - lateness, out)
        return self._count_outputs(out)

    def reject(
        self,
        source_topic: str,
        key: str | None,
        raw: bytes | str,
        error: DecodeError,
        source: str | None = None,
        raw_cut: bool = False,
    ) -> list[Output]:
        """A record that failed to decode or validate becomes a dead letter (``raw_cut``:
        ``raw`` is already a cut copy of the record, so the letter says truncated)."""
        letter = self._dead_letter(source_topic, key, raw, error, source, raw_cut)
        return self._count_outputs([letter])

    def _bounds_error(self, event_ms: int) -> str | None:
        """Why a record at ``event_ms`` is out of bounds, or None.

        A record far ahead is taken after all when the record before it was far ahead too,
        and close to it: the stream itself moved on (its first record was the bad one),
        and refusing everything after it would stop the stream for one record."""
        cfg = self.config
        ahead = event_ms - self.max_event_ms
        limit = cfg.max_event_time_ahead_ms
        if limit is not None and self.max_event_ms > NO_WATERMARK and ahead > limit:
            candidate = self._jump_candidate_ms
            if candidate is not None and abs(event_ms - candidate) <= limit:
                return None
            return (
                f"event time {iso(event_ms)} is {_days(ahead)} ahead of the latest event "
                f"time seen ({iso(self.max_event_ms)}); at most {_days(limit)}"
            )
        behind = self.watermark_ms - event_ms
        limit = cfg.max_event_time_behind_ms
        if limit is not None and self.watermark_ms > NO_WATERMARK and behind > limit:
            return (
                f"event time {iso(event_ms)} is {_days(behind)} behind the watermark "
                f"({iso(self.watermark_ms)}); at most {_days(limit)}"
            )
        return None

    def _dead_letter(
        self,
        source_topic: str,
        key: str | None,
        raw: bytes | str,
        error: DecodeError,
        source: str | None,
        raw_cut: bool = False,
    ) -> Output:
        if isinstance(raw, bytes):
            # cut before decoding: a 1 MiB record need not become a 1 MiB str first
            raw = raw[: RAW_MAX_BYTES + 4].decode("utf-8", errors="replace")
        letter = DeadLetter.clipped(
            source_topic=source_topic,
            key=key,
            raw=raw,
            error_type=error.type,
            message=error.message,
            field=error.field,
            source_offset=source,
            cut_before=raw_cut,
        )
        self._count(letter.source_topic, "dead_letter")
        return Output(DEAD_LETTERS, letter.key or "", letter)

    def advance(self, watermark_ms: int) -> list[Output]:
        """Move the watermark to ``watermark_ms`` (drivers that compute their own)."""
        out: list[Output] = []
        self._release(watermark_ms, out)
        return self._count_outputs(out)

    def finish(self) -> list[Output]:
        """End of a finite input: release everything and flush what the stages hold (their
        signals first, through the router, then the router's own, then final tables)."""
        out: list[Output] = []
        self._release(self.max_event_ms, out)
        end_ms = max(self.max_event_ms, 0)
        self._route(self._finish("signals", end_ms), out)
        self._alerts(self.router.flush(), out)
        self._route(self._finish("rows", end_ms), out)
        return self._count_outputs(out)

    def _finish(self, phase: str, end_ms: int) -> tuple[Emitted, ...]:
        return tuple(
            spec.finish(self.stages[spec.name], end_ms)
            for spec in STAGES
            if spec.finish is not None and spec.finish_phase == phase
        )

    # -- internals -------------------------------------------------------------------------
    # The hot path: every input passes _accept, the heap and _process, and almost every
    # released input first ticks the processors (distinct event times). Processors hand back
    # the shared EMPTY when nothing happened, so the common case allocates nothing here.

    def _accept(self, envelope: Envelope, out: list[Output]) -> None:
        topic = envelope.topic
        value = envelope.value
        event_ms = to_ms(value.event_time)
        key = envelope.key
        bounds_error = self._bounds_error(event_ms)
        if bounds_error is not None:
            self.out_of_bounds_total += 1
            if event_ms > self.max_event_ms:
                self._jump_candidate_ms = event_ms
            error = DecodeError("event_time_out_of_bounds", bounds_error)
            out.append(self._dead_letter(topic, key, encode(value), error, envelope.source))
            return
        self._jump_candidate_ms = None
        seq = self.buffer.next_sequence(topic, key)
        counts = self.counts
        if not self.dedup.first_time(topic, value.event_id, event_ms):
            slot = (topic, "duplicate")
            counts[slot] = counts.get(slot, 0) + 1
            return
        slot = (topic, "processed")
        counts[slot] = counts.get(slot, 0) + 1
        if event_ms > self.max_event_ms:
            self.max_event_ms = event_ms
        if event_ms <= self.watermark_ms:
            self.late[topic] = self.late.get(topic, 0) + 1
            self._process(value, event_ms, out)
            return
        self.buffer.push(event_ms, seq, envelope)

    def _release(self, watermark_ms: int, out: list[Output]) -> None:
        if watermark_ms <= self.watermark_ms:
            return
        heap = self.buffer.heap
        process, tick = self._process, self._tick
        while heap and heap[0][0] <= watermark_ms:
            item = heappop(heap)
            event_ms = item[0]
            if event_ms - 1 > self._ticked_ms:
                tick(event_ms - 1, out)
            process(item[4].value, event_ms, out)
        self.watermark_ms = watermark_ms
        self._tick(watermark_ms, out)
        self.dedup.advance(watermark_ms)

    def _tick(self, upto_ms: int, out: list[Output]) -> None:
        """Fire timers up to ``upto_ms``. A loop run due at B runs with every other
        processor ticked to exactly B, so its context does not depend on how far past B the
        watermark happened to jump (which differs with arrival interleaving)."""
        if upto_ms <= self._ticked_ms:
            return
        loop = self.policy_loop
        loop.skip_idle_runs(upto_ms)
        due = loop.next_due_ms()
        while due is not None and due <= upto_ms:
            self._tick_processors(due, out)
            self._route((loop.on_tick(due, functools.partial(self._loop_context, due)),), out)
            due = loop.next_due_ms()
        self._tick_processors(upto_ms, out)

    def _tick_processors(self, upto_ms: int, out: list[Output]) -> None:
        if upto_ms <= self._ticked_ms:
            return
        self._ticked_ms = upto_ms
        fired = tuple(on_tick(upto_ms) for on_tick in self._tickers)
        if any(emitted is not EMPTY for emitted in fired):
            self._route(fired, out)
        alerts = self.router.on_tick(upto_ms)
        if alerts:
            self._alerts(alerts, out)

    def _process(self, value: Any, event_ms: int, out: list[Output]) -> None:
        """One released (or late) input, or a record a stage derived; ``event_ms`` is its
        event time in ms. Every stage that takes its type handles it, in table order; the
        records they derive are processed after, one by one."""
        handlers = self._routes.get(type(value))
        if handlers is None:
            return
        emitted = tuple(handler(value, event_ms) for handler in handlers)
        if all(item is EMPTY for item in emitted):
            return
        self._route(emitted, out)
        for item in emitted:
            for record in item.derived:
                self._process(record, event_ms, out)

    def _route(self, emitted: tuple[Emitted, ...], out: list[Output]) -> None:
        """The outputs of ``emitted`` in order, then the alerts of all their signals."""
        signals: list[AlertSignal] = []
        for item in emitted:
            if item.outputs:
                out.extend(item.outputs)
            if item.signals:
                signals.extend(item.signals)
        if signals:
            self._alerts(self.router.route(signals), out)

    def _alerts(self, alerts: list[Output], out: list[Output]) -> None:
        """Router outputs go out and to the policy loop (a high-severity drift may trigger it)."""
        for output in alerts:
            if isinstance(output.value, Alert):
                self.policy_loop.on_alert(output.value)
        out.extend(alerts)

    def _loop_context(self, upto_ms: int) -> LoopContext:
        return LoopContext(
            drift={name: stage.summary() for name, stage in self._drift_summaries},
            performance=self.performance.report(max(upto_ms, 0)),
        )

    def _count(self, topic: str, outcome: str) -> None:
        slot = (topic, outcome)
        self.counts[slot] = self.counts.get(slot, 0) + 1

    def _count_outputs(self, out: list[Output]) -> list[Output]:
        tally = self.outputs_by_topic
        for output in out:
            tally[output.topic] = tally.get(output.topic, 0) + 1
        return out

    # -- reads -----------------------------------------------------------------------------

    def performance_rows(self) -> list[PerformanceRow]:
        """The final PerformanceRows as of the watermark."""
        return self.performance.rows(max(self.max_event_ms, 0))

    def metrics(self) -> list[MetricSample]:
        samples = [
            MetricSample(mn.EVENTS_TOTAL, (("topic", t), ("outcome", o)), float(n))
            for (t, o), n in sorted(self.counts.items())
        ]
        samples.extend(
            MetricSample(mn.LATE_EVENTS_TOTAL, (("topic", t),), float(n))
            for t, n in sorted(self.late.items())
        )
        samples.append(MetricSample(mn.BUFFERED_EVENTS, (), float(len(self.buffer))))
        if self.watermark_ms > NO_WATERMARK:
            samples.append(MetricSample(mn.WATERMARK_SECONDS, (), self.watermark_ms / 1000.0))
        for stage in self.stages.values():
            samples.extend(stage.metrics())
        return samples

    def snapshot(self) -> dict[str, Any]:
        """The whole state, JSON-serialisable."""
        state: dict[str, Any] = {name: stage.snapshot() for name, stage in self.stages.items()}
        state["dedup"] = self.dedup.snapshot()
        state["buffer"] = self.buffer.snapshot()
        state["clock"] = [self.max_event_ms, self.watermark_ms, self._ticked_ms]
        state["event_time_bounds"] = [self.out_of_bounds_total, self._jump_candidate_ms]
        state["counts"] = [[t, o, n] for (t, o), n in sorted(self.counts.items())]
        state["late"] = sorted(self.late.items())
        state["outputs_by_topic"] = sorted(self.outputs_by_topic.items())
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for name, stage in self.stages.items():
            stage.restore(state[name])
        self.dedup.restore(state["dedup"])
        self.buffer.restore(state["buffer"])
        self.max_event_ms, self.watermark_ms, self._ticked_ms = (int(v) for v in state["clock"])
        out_of_bounds, candidate = state.get("event_time_bounds", [0, None])
        self.out_of_bounds_total = int(out_of_bounds)
        self._jump_candidate_ms = None if candidate is None else int(candidate)
        self.counts = {(str(t), str(o)): int(n) for t, o, n in state["counts"]}
        self.late = {str(t): int(n) for t, n in state["late"]}
        self.outputs_by_topic = {str(t): int(n) for t, n in state["outputs_by_topic"]}


def _days(span_ms: int) -> str:
    return f"{span_ms / 86_400_000:.2f} days"
