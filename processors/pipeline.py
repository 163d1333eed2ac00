"""The pipeline: the front, the strategy lanes and the global stage, behind one entry point.

Both drivers (replay and the Kafka worker) call only this class:
``handle`` / ``handle_batch`` for decoded inputs, ``reject`` for records that failed to
decode, ``advance`` for an external watermark, ``finish`` at the end of a finite input, and
``snapshot`` / ``restore`` / ``metrics``.

The topology (README "How the worker works"):
1. the *front* keeps the fleet's clock: the largest event time seen and the watermark (by
   default that minus ``allowed_lateness_ms``), dead-letters records out of event-time
   bounds, and sends each record to the lane of its strategy_id (a stand-down for every
   strategy to every lane, deduplicated here once);
2. each *lane* (processors/lane.py) deduplicates by event_id, holds its records in a reorder
   buffer until the watermark passes them, and processes them in (event time, topic, key,
   sequence) order with the per-strategy stages, ticking their timers before each new event
   time and at the watermark; a record already behind the watermark on arrival is late:
   processed at once and counted;
3. the *global stage* (processors/global_stage.py) takes every lane's items in tag order:
   outputs go out, signals go through the alert router, decisions feed the policy loop.
Lanes run in this process (``LocalLanes``) or in others (streams/lane_pool.py, ``replay
--jobs N``); the output is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from models.codec import DecodeError, encode
from models.common import to_ms
from models.outputs import RAW_MAX_BYTES, DeadLetter, PerformanceRow
from models.topics import DEAD_LETTERS, INPUT_TOPICS
from processors.core import metric_names as mn
from processors.core.alert_router import AlertRouter
from processors.core.base import Envelope, MetricSample, Output
from processors.core.dedup import EventIdDedup
from processors.global_stage import GlobalStage
from processors.lane import NO_WATERMARK, OUTPUT, Item
from processors.lane_host import Arrival, LaneHost, LaneReads, LocalLanes, add_counts
from processors.performance.tables import report_of
from processors.policy import PolicyLoop
from processors.policy.archive import iso
from processors.stages import PipelineConfig

__all__ = ["NO_WATERMARK", "Pipeline", "PipelineConfig"]


class Pipeline:
    """The front, the lanes (in ``lanes``, default in this process) and the global stage."""

    def __init__(
        self,
        config: PipelineConfig | None = None,
        lanes: LaneHost | None = None,
        *,
        with_global_stage: bool = True,
    ) -> None:
        self.config = config or PipelineConfig()
        cfg = self.config
        self.lanes: LaneHost = lanes if lanes is not None else LocalLanes(cfg)
        self.global_stage = GlobalStage(cfg)
        self.with_global_stage = with_global_stage
        """False: the lanes' outputs go out, every other item is kept in ``global_items``
        for a global stage elsewhere (the worker's lane runners)."""
        self.global_items: list[Item] = []
        self.router: AlertRouter = self.global_stage.router
        self.policy_loop: PolicyLoop = self.global_stage.policy_loop
        self.broadcast_dedup = EventIdDedup(cfg.dedup)
        """Event ids of the records for every lane (deduplicated once, here)."""
        self.max_event_ms = NO_WATERMARK
        self.watermark_ms = NO_WATERMARK
        self.out_of_bounds_total = 0
        """Records dead-lettered as ``event_time_out_of_bounds`` so far."""
        self._jump_candidate_ms: int | None = None
        self.front_counts: dict[tuple[str, str], int] = {}
        """Dead letters, and the records for every lane (processed, duplicate)."""
        self.front_late: dict[str, int] = {}
        self.outputs_by_topic: dict[str, int] = {}
        self._pending: int | None = None
        """The watermark of the step submitted and not yet collected."""

    # -- inputs --------------------------------------------------------------------------

    def handle(self, envelope: Envelope) -> list[Output]:
        """Take one decoded input; return whatever became ready."""
        return self.handle_batch((envelope,))

    def handle_batch(self, envelopes: Iterable[Envelope]) -> list[Output]:
        """Take many decoded inputs; the same result as calling ``handle`` on each."""
        out = self.submit(envelopes)
        out.extend(self.collect())
        return out

    def submit(self, envelopes: Iterable[Envelope]) -> list[Output]:
        """``handle_batch`` without waiting for the lanes: the step starts (in other
        processes, with such a host) and the caller may read its next batch meanwhile.
        Returns the front's outputs (dead letters) and the outputs of the step submitted
        before, if any; ``collect`` returns this step's. Per output topic the order is that
        of ``handle_batch`` (dead letters come only from the front)."""
        out: list[Output] = []
        arrivals: list[Arrival] = []
        lateness = self.config.allowed_lateness_ms
        for envelope in envelopes:
            event_ms = to_ms(envelope.value.event_time)
            bounds_error = self._bounds_error(event_ms)
            if bounds_error is not None:
                self._out_of_bounds(envelope, event_ms, bounds_error, out)
                continue
            self._jump_candidate_ms = None
            strategy_id = INPUT_TOPICS[envelope.topic].lane_of(envelope.value)
            if strategy_id is None and not self._first_broadcast(envelope, event_ms):
                continue
            arrivals.append((strategy_id, envelope, event_ms, self.watermark_ms))
            if event_ms > self.max_event_ms:
                self.max_event_ms = event_ms
                if event_ms - lateness > self.watermark_ms:
                    self.watermark_ms = event_ms - lateness
        self._count_outputs(out)
        previous = self.collect()
        self.lanes.send(arrivals, self.watermark_ms)
        self._pending = self.watermark_ms
        return out + previous

    def collect(self) -> list[Output]:
        """The outputs of the step submitted last (none if it was collected already)."""
        if self._pending is None:
            return []
        watermark_ms, self._pending = self._pending, None
        out: list[Output] = []
        self._to_global(self.lanes.receive(), watermark_ms, out)
        self.broadcast_dedup.advance(watermark_ms)
        return self._count_outputs(out)

    def _to_global(self, items: list[Item], watermark_ms: int | None, out: list[Output]) -> None:
        if self.with_global_stage:
            self.global_stage.apply(items, watermark_ms, out)
            return
        for item in items:
            if item[1] == OUTPUT:
                out.append(item[2])
            else:
                self.global_items.append(item)

    def take_global_items(self) -> list[Item]:
        """The items for the global stage since the last call (``with_global_stage=False``)."""
        items, self.global_items = self.global_items, []
        return items

    def _first_broadcast(self, envelope: Envelope, event_ms: int) -> bool:
        """Count a record for every lane here (once, not per lane); False if a duplicate."""
        topic = envelope.topic
        if not self.broadcast_dedup.first_time(topic, envelope.value.event_id, event_ms):
            self._count(topic, "duplicate")
            return False
        self._count(topic, "processed")
        if event_ms <= self.watermark_ms:
            self.front_late[topic] = self.front_late.get(topic, 0) + 1
        return True

    def _step(self, arrivals: list[Arrival], watermark_ms: int, out: list[Output]) -> None:
        out.extend(self.collect())
        self.lanes.send(arrivals, watermark_ms)
        self._pending = watermark_ms
        out.extend(self.collect())

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

    def _out_of_bounds(
        self, envelope: Envelope, event_ms: int, reason: str, out: list[Output]
    ) -> None:
        self.out_of_bounds_total += 1
        if event_ms > self.max_event_ms:
            self._jump_candidate_ms = event_ms
        error = DecodeError("event_time_out_of_bounds", reason)
        raw = encode(envelope.value)
        out.append(self._dead_letter(envelope.topic, envelope.key, raw, error, envelope.source))

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

    def advance(self, watermark_ms: int, seen_ms: int | None = None) -> list[Output]:
        """Move the watermark to ``watermark_ms`` (drivers that compute their own);
        ``seen_ms``: the latest event time the driver knows of (beyond this pipeline's own
        records: the fleet's, for a pipeline that holds some lanes), for ``finish``."""
        out = self.collect()
        if seen_ms is not None and seen_ms > self.max_event_ms:
            self.max_event_ms = seen_ms
        if watermark_ms > self.watermark_ms:
            self.watermark_ms = watermark_ms
            self._step([], watermark_ms, out)
        return out

    def finish(self) -> list[Output]:
        """End of a finite input: release everything and flush what the stages hold (their
        signals first, through the router, then the router's own, then final tables)."""
        out = self.collect()
        if self.max_event_ms > self.watermark_ms:
            self.watermark_ms = self.max_event_ms
        self._step([], self.watermark_ms, out)
        end_ms = max(self.max_event_ms, 0)
        tail: list[Output] = []
        self._to_global(self.lanes.finish("signals", end_ms), None, tail)
        if self.with_global_stage:
            self.global_stage.flush(tail)
        self._to_global(self.lanes.finish("rows", end_ms), None, tail)
        return out + self._count_outputs(tail)

    # -- counts ----------------------------------------------------------------------------

    def _count(self, topic: str, outcome: str) -> None:
        slot = (topic, outcome)
        self.front_counts[slot] = self.front_counts.get(slot, 0) + 1

    def _count_outputs(self, out: list[Output]) -> list[Output]:
        tally = self.outputs_by_topic
        for output in out:
            tally[output.topic] = tally.get(output.topic, 0) + 1
        return out

    # -- reads -----------------------------------------------------------------------------

    def reads(self) -> LaneReads:
        """What the lanes report: counts and metrics."""
        self._not_pending()
        return self.lanes.reads()

    def _not_pending(self) -> None:
        if self._pending is not None:
            raise RuntimeError("a submitted step is not collected yet: call collect() first")

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        """Input records by (topic, outcome): processed, duplicate, dead_letter."""
        return self._with_front(self.reads())[0]

    @property
    def late(self) -> dict[str, int]:
        """Records processed late (behind the watermark on arrival), by topic."""
        return self._with_front(self.reads())[1]

    def _with_front(self, reads: LaneReads) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """The lanes' counts and late counts with the front's added."""
        counts, late = dict(self.front_counts), dict(self.front_late)
        add_counts(counts, reads.counts)
        add_counts(late, reads.late)
        return counts, late

    def buffered(self) -> int:
        """Records held in the lanes' reorder buffers."""
        return self.reads().buffered

    def performance_rows(self) -> list[PerformanceRow]:
        """The final PerformanceRows as of the latest event time (at the end of an input:
        it moves the tables' windows there)."""
        self._not_pending()
        return self.lanes.reads(max(self.max_event_ms, 0)).performance_rows()

    def performance_report(self) -> dict[str, Any]:
        """The performance tables' report of every strategy as of the latest event time."""
        self._not_pending()
        as_of = max(self.max_event_ms, 0)
        return report_of(as_of, self.lanes.reads(as_of).report_strategies())

    def metrics(self) -> list[MetricSample]:
        reads = self.reads()
        counts, late = self._with_front(reads)
        samples = [
            MetricSample(mn.EVENTS_TOTAL, (("topic", t), ("outcome", o)), float(n))
            for (t, o), n in sorted(counts.items())
        ]
        samples.extend(
            MetricSample(mn.LATE_EVENTS_TOTAL, (("topic", t),), float(n))
            for t, n in sorted(late.items())
        )
        samples.append(MetricSample(mn.BUFFERED_EVENTS, (), float(reads.buffered)))
        if self.watermark_ms > NO_WATERMARK:
            samples.append(MetricSample(mn.WATERMARK_SECONDS, (), self.watermark_ms / 1000.0))
        samples.extend(reads.metric_samples())
        if self.with_global_stage:
            samples.extend(self.global_stage.metrics())
        return samples

    def snapshot(self) -> dict[str, Any]:
        """The whole state, JSON-serialisable."""
        self._not_pending()
        return {
            "lanes": self.lanes.snapshot(),
            "global": self.global_stage.snapshot(),
            "broadcast_dedup": self.broadcast_dedup.snapshot(),
            "clock": [self.max_event_ms, self.watermark_ms],
            "event_time_bounds": [self.out_of_bounds_total, self._jump_candidate_ms],
            "counts": [[t, o, n] for (t, o), n in sorted(self.front_counts.items())],
            "late": sorted(self.front_late.items()),
            "outputs_by_topic": sorted(self.outputs_by_topic.items()),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._not_pending()
        self.lanes.restore(state["lanes"])
        self.global_stage.restore(state["global"])
        self.broadcast_dedup.restore(state["broadcast_dedup"])
        self.max_event_ms, self.watermark_ms = (int(v) for v in state["clock"])
        out_of_bounds, candidate = state["event_time_bounds"]
        self.out_of_bounds_total = int(out_of_bounds)
        self._jump_candidate_ms = None if candidate is None else int(candidate)
        self.front_counts = {(str(t), str(o)): int(n) for t, o, n in state["counts"]}
        self.front_late = {str(t): int(n) for t, n in state["late"]}
        self.outputs_by_topic = {str(t): int(n) for t, n in state["outputs_by_topic"]}


def _days(span_ms: int) -> str:
    return f"{span_ms / 86_400_000:.2f} days"
