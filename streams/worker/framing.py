"""Records of the internal sequenced log: input records with their coordinates, progress
markers and flush markers.

A frame is a one-line JSON header, a newline, then (for an input record) the record's value
bytes exactly as they were on the input topic, so the runner decodes them as the direct path
would. Headers carry contract topic names (without the deployment prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

RECORD = "r"
PROGRESS = "p"
FLUSH = "f"


@dataclass(frozen=True, slots=True)
class Frame:
    """A parsed frame. For RECORD: topic, partition, offset, key, timestamp_ms, value.
    For PROGRESS: topic, partition, offset = next position, end = end offset. For FLUSH:
    nothing else (the runner releases everything buffered, as replay does at the end)."""

    kind: str
    topic: str = ""
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp_ms: int | None = None
    value: bytes = b""
    end: int = 0


def record_frame(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    timestamp_ms: int | None,
    value: bytes | None,
) -> bytes:
    header = {
        "k": RECORD,
        "t": topic,
        "p": partition,
        "o": offset,
        "ts": timestamp_ms,
        "key": None if key is None else key.hex(),
    }
    return orjson.dumps(header) + b"\n" + (value or b"")


def progress_frame(topic: str, partition: int, position: int, end: int) -> bytes:
    return orjson.dumps({"k": PROGRESS, "t": topic, "p": partition, "o": position, "e": end})


def flush_frame() -> bytes:
    return orjson.dumps({"k": FLUSH})


def parse_frame(raw: bytes) -> Frame:
    head, _, value = raw.partition(b"\n")
    header = orjson.loads(head)
    kind = header["k"]
    if kind == RECORD:
        key_hex = header["key"]
        return Frame(
            RECORD,
            header["t"],
            int(header["p"]),
            int(header["o"]),
            None if key_hex is None else bytes.fromhex(key_hex),
            header["ts"],
            value,
        )
    if kind == PROGRESS:
        return Frame(
            PROGRESS, header["t"], int(header["p"]), int(header["o"]), end=int(header["e"])
        )
    return Frame(FLUSH)
