"""The replay output layout (CONTRACT.md "Replay files"), shared by replay and ``dump``.

DIR/<topic>.jsonl for alerts, replan_verdicts, policy_candidates, policy_updates,
feedback_summaries and dead_letters (one canonical JSON object a line, sorted keys), plus
performance.jsonl (the stream of PerformanceRow snapshots), DIR/performance.json (the final
rows), DIR/metrics.prom and DIR/summary.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from models.codec import encode, encode_obj
from models.outputs import FeedbackSummary, PerformanceRow, PolicyCandidate
from models.topics import OUTPUT_FILES, PERFORMANCE
from processors.core.base import Output

STREAM_FILES: tuple[str, ...] = (*OUTPUT_FILES, PERFORMANCE)


class OutputFiles:
    """Appends outputs to their topic's JSON Lines file; writes the end-of-run files."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self._candidate: PolicyCandidate | None = None
        self._files: dict[str, IO[bytes]] = {
            topic: (out_dir / f"{topic}.jsonl").open("wb", buffering=1 << 20)
            for topic in STREAM_FILES
        }

    def write(self, outputs: Iterable[Output]) -> None:
        files = self._files
        for output in outputs:
            files[output.topic].write(encode(output.value) + b"\n")
            if isinstance(output.value, PolicyCandidate):
                self._candidate = output.value
            elif isinstance(output.value, FeedbackSummary):
                self._write_markdown(output.value)

    def _write_markdown(self, summary: FeedbackSummary) -> None:
        """DIR/feedback/<run_id>.md, a person's view of one loop run."""
        from streams.policy_cli import feedback_markdown

        candidate = self._candidate
        if candidate is not None and candidate.version != summary.policy_versions.candidate:
            candidate = None
        folder = self.out_dir / "feedback"
        folder.mkdir(exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in summary.run_id)
        (folder / f"{name}.md").write_text(feedback_markdown(summary, candidate))

    def write_raw(self, topic: str, lines: Iterable[bytes]) -> None:
        """Write already canonical JSON lines (``dump`` re-encodes them first)."""
        handle = self._files[topic]
        for line in lines:
            handle.write(line + b"\n")

    def finish(
        self, performance: list[PerformanceRow], metrics_text: bytes, summary: dict[str, Any]
    ) -> None:
        self.close()
        rows = [row.model_dump(mode="json") for row in performance]
        (self.out_dir / "performance.json").write_bytes(
            orjson.dumps(rows, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
        )
        (self.out_dir / "metrics.prom").write_bytes(metrics_text)
        (self.out_dir / "summary.json").write_bytes(
            orjson.dumps(summary, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
        )

    def write_json(self, name: str, data: Any) -> None:
        (self.out_dir / name).write_bytes(encode_obj(data) + b"\n")

    def close(self) -> None:
        for handle in self._files.values():
            if not handle.closed:
                handle.close()

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
