"""``policyloop replay INPUT --out DIR``: the pipeline over a JSON Lines file.

Reads the file in order, decodes each line (bad ones become dead letters), feeds the pipeline
in batches (``submit``: with ``--jobs N`` the lane processes work on one batch while this one
decodes the next), writes every output as it comes, and at the end the final performance
rows, the metrics exposition and a summary. Nothing here reads the wall clock: the same input gives
byte-identical output.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.topics import INPUT_TOPICS
from processors.core.base import Envelope
from processors.pipeline import Pipeline, PipelineConfig
from streams.adapter import Rejected, decode_line
from streams.lane_pool import ProcessLanes
from streams.metrics import exposition, pipeline_registry
from streams.output_files import OutputFiles

BATCH = 2048
ProgressFn = Callable[[int], None]
GC_THRESHOLDS = (1_000_000, 100, 100)
"""Cyclic-GC thresholds while a replay runs (CPython's default is (700, 10, 10))."""


@dataclass(frozen=True)
class ReplayResult:
    lines: int
    summary: dict[str, Any]
    out_dir: Path


def run_replay(
    input_path: Path,
    out_dir: Path,
    config: PipelineConfig | None = None,
    progress: ProgressFn | None = None,
    jobs: int = 1,
) -> ReplayResult:
    """Replay ``input_path`` into ``out_dir``; returns the summary also written to disk.
    ``jobs`` > 1 runs the strategy lanes in that many processes (the same output)."""
    with few_gc_pauses():
        if jobs == 1:
            return _run_replay(input_path, out_dir, Pipeline(config), progress)
        cfg = config or PipelineConfig()
        with ProcessLanes(cfg, jobs) as lanes:
            return _run_replay(input_path, out_dir, Pipeline(cfg, lanes), progress)


@contextmanager
def few_gc_pauses() -> Iterator[None]:
    """Collect cycles rarely while replaying; the previous thresholds are restored after.

    A replay allocates millions of short-lived objects (models, envelopes, tuples) and
    almost no reference cycles: reference counting frees them. With the default
    thresholds CPython still ran a young collection every few hundred allocations and a
    full one (~100 ms, traversing every object of the processors' state and the imported
    libraries) every ~10k records: ~20% of a replay's CPU time. A young collection now
    waits for a million net new container objects (the pipeline's state is bounded, so
    that is rare; a replay that did leak cycles would still have them collected).
    Output does not depend on when the collector runs."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _run_replay(
    input_path: Path, out_dir: Path, pipeline: Pipeline, progress: ProgressFn | None
) -> ReplayResult:
    lines = 0
    batch: list[Envelope] = []
    with OutputFiles(out_dir) as files, input_path.open("rb") as handle:
        for lines, raw_line in enumerate(handle, start=1):
            line = raw_line.rstrip(b"\r\n")
            if not line.strip():
                continue
            decoded = decode_line(line, f"line:{lines}")
            if isinstance(decoded, Rejected):
                if batch:
                    files.write(pipeline.submit(batch))
                    batch = []
                files.write(
                    pipeline.reject(
                        decoded.source_topic,
                        decoded.key,
                        decoded.raw,
                        decoded.error,
                        decoded.source,
                    )
                )
                continue
            batch.append(decoded)
            if len(batch) >= BATCH:
                files.write(pipeline.submit(batch))
                batch = []
                if progress is not None:
                    progress(lines)
        files.write(pipeline.submit(batch))
        files.write(pipeline.finish())
        summary = replay_summary(pipeline, lines)
        metrics_text = exposition(pipeline_registry(pipeline.metrics))
        files.finish(pipeline.performance_rows(), metrics_text, summary)
        files.write_json("performance_report.json", pipeline.performance_report())
        (out_dir / "policy_archive.json").write_bytes(pipeline.policy_loop.archive.to_json())
    return ReplayResult(lines, summary, out_dir)


def replay_summary(pipeline: Pipeline, lines: int) -> dict[str, Any]:
    """Records in, out, duplicates and dead letters per topic."""
    inputs: dict[str, dict[str, int]] = {}
    for (topic, outcome), count in sorted(pipeline.counts.items()):
        row = inputs.setdefault(
            topic, {"records": 0, "processed": 0, "duplicate": 0, "dead_letter": 0, "late": 0}
        )
        row[outcome] += count
        row["records"] += count
    for topic, count in sorted(pipeline.late.items()):
        inputs[topic]["late"] = count
    for topic in INPUT_TOPICS:
        inputs.setdefault(
            topic, {"records": 0, "processed": 0, "duplicate": 0, "dead_letter": 0, "late": 0}
        )
    totals = {
        name: sum(row[name] for row in inputs.values())
        for name in ("records", "processed", "duplicate", "dead_letter", "late")
    }
    return {
        "lines": lines,
        "inputs": inputs,
        "input_totals": totals,
        "outputs": dict(sorted(pipeline.outputs_by_topic.items())),
        "watermark_ms": pipeline.watermark_ms,
    }
