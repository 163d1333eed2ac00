"""Lanes in N worker processes: the lane host of ``policyloop replay --jobs N``.

Strategy s lives in process ``crc32(s) % N`` (a stable hash: the same process every run); a
record for every lane goes to every process. Each process runs a ``LocalLanes`` over its
share and answers the pipeline's calls in order over a pipe. A record decoded from a replay
line travels as that line and is decoded again in its process (cheaper than pickling the
model, and in parallel); any other travels pickled. The items a lane makes do not depend on
the process it runs in, and the global stage orders them by tag, so the output of ``replay
--jobs N`` is byte-identical for every N.

``send`` returns once the arrivals are written to the pipes: the processes work while the
caller decodes its next batch.
"""

from __future__ import annotations

import multiprocessing
import zlib
from multiprocessing.connection import Connection
from typing import Any

from processors.core.base import Envelope
from processors.lane import Item
from processors.lane_host import Arrival, LaneReads, LocalLanes
from processors.stages import FinishPhase, PipelineConfig
from streams.adapter import decode_line

Shipped = tuple[str | None, Envelope | tuple[bytes, str], int, int]
"""An arrival as sent: the envelope, or (line, source) when it came from a line."""


def process_of(strategy_id: str, jobs: int) -> int:
    """The process that holds ``strategy_id``'s lane."""
    return zlib.crc32(strategy_id.encode()) % jobs


def _ship(arrival: Arrival) -> Shipped:
    strategy_id, envelope, event_ms, before = arrival
    if envelope.line is None:
        return arrival
    return strategy_id, (envelope.line, envelope.source), event_ms, before


def _unship(shipped: Shipped) -> Arrival:
    strategy_id, sent, event_ms, before = shipped
    if isinstance(sent, Envelope):
        return strategy_id, sent, event_ms, before
    line, source = sent
    envelope = decode_line(line, source)
    if not isinstance(envelope, Envelope):  # the front decoded it: it cannot fail here
        raise RuntimeError(f"{source}: decoded in the front, not in its lane process")
    return strategy_id, envelope, event_ms, before


def _serve(config: PipelineConfig, connection: Connection) -> None:
    """A lane process: run calls from the pipe until it closes."""
    lanes = LocalLanes(config)
    while True:
        try:
            call, args = connection.recv()
        except EOFError:
            return
        if call == "step":
            shipped, watermark_ms = args
            result: Any = lanes.step([_unship(s) for s in shipped], watermark_ms)
        elif call == "finish":
            result = lanes.finish(*args)
        elif call == "reads":
            result = lanes.reads(*args)
        elif call == "snapshot":
            result = lanes.snapshot()
        elif call == "restore":
            lanes.restore(*args)
            result = None
        else:
            raise ValueError(f"unknown call {call!r}")
        connection.send(result)


class ProcessLanes:
    """The lane host over ``jobs`` processes; use it as a context manager (or ``close``)."""

    def __init__(self, config: PipelineConfig, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        context = multiprocessing.get_context("spawn")
        self._connections: list[Connection] = []
        self._processes = []
        for _ in range(jobs):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(config, child), daemon=True)
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)

    def _call_all(self, call: str, args: tuple[Any, ...] = ()) -> list[Any]:
        for connection in self._connections:
            connection.send((call, args))
        return [connection.recv() for connection in self._connections]

    def send(self, arrivals: list[Arrival], watermark_ms: int) -> None:
        shares: list[list[Shipped]] = [[] for _ in range(self.jobs)]
        for arrival in arrivals:
            shipped = _ship(arrival)
            strategy_id = arrival[0]
            if strategy_id is None:
                for share in shares:
                    share.append(shipped)
            else:
                shares[process_of(strategy_id, self.jobs)].append(shipped)
        for connection, share in zip(self._connections, shares, strict=True):
            connection.send(("step", (share, watermark_ms)))

    def receive(self) -> list[Item]:
        items: list[Item] = []
        for connection in self._connections:
            items.extend(connection.recv())
        return items

    def finish(self, phase: FinishPhase, end_ms: int) -> list[Item]:
        return [item for part in self._call_all("finish", (phase, end_ms)) for item in part]

    def reads(self, tables_as_of_ms: int | None = None) -> LaneReads:
        reads = LaneReads()
        for part in self._call_all("reads", (tables_as_of_ms,)):
            reads.add(part)
        return reads

    def snapshot(self) -> dict[str, Any]:
        """The same layout as ``LocalLanes.snapshot`` (a checkpoint restores with any N)."""
        parts = self._call_all("snapshot")
        lanes = sorted((row for part in parts for row in part["lanes"]), key=lambda r: r[0])
        return {"lanes": lanes, "broadcasts": parts[0]["broadcasts"]}

    def restore(self, state: dict[str, Any]) -> None:
        for index, connection in enumerate(self._connections):
            share = [row for row in state["lanes"] if process_of(str(row[0]), self.jobs) == index]
            connection.send(("restore", ({"lanes": share, "broadcasts": state["broadcasts"]},)))
        for connection in self._connections:
            connection.recv()

    def close(self) -> None:
        for connection in self._connections:
            connection.close()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()

    def __enter__(self) -> ProcessLanes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
