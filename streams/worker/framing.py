"""Records of the internal sequenced log: input records with their coordinates, progress
markers, idleness markers and flush markers.

An idleness marker says that an input partition was caught up at a position and delivered
nothing new for ``POLICYLOOP_IDLE_TIMEOUT_S`` (the sequencer's wall-clock decision, written
down so that the runner, reading it back, stays a pure function of its log).

A frame is a one-line JSON header, a newline, then (for an input record) the record's value
bytes exactly as they were on the input topic, so the runner decodes them as the direct path
would. Headers carry contract topic names (without the deployment prefix).

An input record over ``max_record_bytes`` is framed cut (``cut_record_frame``): its first
``KEEP_BYTES`` of key and value and its original size, so the sequenced log never holds a
record the internal topic could refuse, and the runner dead-letters it as ``too_large``.
A frame of a record within the limit is at most ``frame_limit(max_record_bytes)`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

KEEP_BYTES = 64 * 1024
HEADER_BYTES = 1024
RECORD = "r"
PROGRESS = "p"
IDLE = "i"
FLUSH = "f"


@dataclass(frozen=True, slots=True)
class Frame:
    """A parsed frame. For RECORD: topic, partition, offset, key, timestamp_ms, value.
    For PROGRESS: topic, partition, offset = next position, end = end offset, timestamp_ms
    = the latest event time of the partition's records (from the sequencer). For IDLE:
    topic, partition, offset = the position it was idle at. For FLUSH:
    nothing else (the runner releases everything buffered, as replay does at the end)."""

    kind: str
    topic: str = ""
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp_ms: int | None = None
    value: bytes = b""
    end: int = 0
    original_size: int | None = None
    """Set on a cut record: the size of its key and value on the input topic."""


BATCH_BYTES = 1024 * 1024
"""The sequencer's record batches: frames are appended in batches of up to this size."""


def frame_limit(max_record_bytes: int) -> int:
    """The largest frame of an input record of at most ``max_record_bytes`` (key and value;
    the key is written in hex in the header, so it may count twice)."""
    return 2 * max_record_bytes + HEADER_BYTES


def sequenced_message_limit(max_record_bytes: int) -> int:
    """``max.message.bytes`` of the sequenced topic: a full batch, or one batch holding the
    largest frame, fits (Kafka bounds record batches, not records)."""
    return max(frame_limit(max_record_bytes), BATCH_BYTES) + HEADER_BYTES


def record_frame(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    timestamp_ms: int | None,
    value: bytes | None,
) -> bytes:
    header = _record_header(topic, partition, offset, key, timestamp_ms)
    return orjson.dumps(header) + b"\n" + (value or b"")


def cut_record_frame(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    timestamp_ms: int | None,
    value: bytes | None,
) -> bytes:
    """The frame of a record over the size limit: key and value cut to ``KEEP_BYTES``."""
    size = len(key or b"") + len(value or b"")
    cut_key = None if key is None else key[:KEEP_BYTES]
    header = _record_header(topic, partition, offset, cut_key, timestamp_ms)
    header["n"] = size
    return orjson.dumps(header) + b"\n" + (value or b"")[:KEEP_BYTES]


def _record_header(
    topic: str, partition: int, offset: int, key: bytes | None, timestamp_ms: int | None
) -> dict[str, object]:
    return {
        "k": RECORD,
        "t": topic,
        "p": partition,
        "o": offset,
        "ts": timestamp_ms,
        "key": None if key is None else key.hex(),
    }


def progress_frame(
    topic: str, partition: int, position: int, end: int, max_event_ms: int | None = None
) -> bytes:
    """Progress of an input partition: its next position, end offset and the latest event
    time of its records so far (None: none seen yet)."""
    frame = {"k": PROGRESS, "t": topic, "p": partition, "o": position, "e": end}
    if max_event_ms is not None:
        frame["m"] = max_event_ms
    return orjson.dumps(frame)


def idle_frame(topic: str, partition: int, position: int) -> bytes:
    return orjson.dumps({"k": IDLE, "t": topic, "p": partition, "o": position})


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
            original_size=header.get("n"),
        )
    if kind == PROGRESS:
        seen = header.get("m")
        return Frame(
            PROGRESS,
            header["t"],
            int(header["p"]),
            int(header["o"]),
            end=int(header["e"]),
            timestamp_ms=None if seen is None else int(seen),
        )
    if kind == IDLE:
        return Frame(IDLE, header["t"], int(header["p"]), int(header["o"]))
    return Frame(FLUSH)
