"""Frames of the internal ``policyloop-lane-items`` topic: what the lane runners send the
global runner.

A lane runner (one per partition of the sequenced log) sends, in the transaction of each
batch, the batch's items for the global stage (alert signals, decision rows, lane summaries:
processors/lane.py) in ``items`` frames of at most ``ITEMS_PER_FRAME`` items, the last one
carrying the partition's watermark after the batch; and after an idle flush a ``flushed``
frame. JSON (orjson), one frame a record, on the topic's single partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from processors.lane import Item, item_json, item_of

ITEMS = "items"
FLUSHED = "flushed"
ITEMS_PER_FRAME = 2000


@dataclass(frozen=True, slots=True)
class LaneFrame:
    """A parsed frame: ``kind`` ITEMS (``items``, and ``watermark_ms`` on a batch's last
    frame) or FLUSHED, from lane partition ``partition``."""

    kind: str
    partition: int
    items: list[Item]
    watermark_ms: int | None = None


def items_frames(partition: int, items: list[Item], watermark_ms: int) -> Iterator[bytes]:
    """The frames of one batch of a lane partition (at least one: the watermark)."""
    for start in range(0, max(len(items), 1), ITEMS_PER_FRAME):
        chunk = items[start : start + ITEMS_PER_FRAME]
        last = start + ITEMS_PER_FRAME >= len(items)
        frame: dict[str, Any] = {
            "k": ITEMS,
            "p": partition,
            "i": [item_json(item) for item in chunk],
        }
        if last:
            frame["w"] = watermark_ms
        yield orjson.dumps(frame, option=orjson.OPT_SERIALIZE_NUMPY)


def flushed_frame(partition: int) -> bytes:
    return orjson.dumps({"k": FLUSHED, "p": partition})


def parse_lane_frame(raw: bytes) -> LaneFrame:
    frame = orjson.loads(raw)
    partition = int(frame["p"])
    if frame["k"] == FLUSHED:
        return LaneFrame(FLUSHED, partition, [])
    items = [item_of(row) for row in frame["i"]]
    watermark = frame.get("w")
    return LaneFrame(ITEMS, partition, items, None if watermark is None else int(watermark))
