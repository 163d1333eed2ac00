"""The machinery every stage runs on: envelopes, outputs and signals (``base``), the event-time
reorder buffer, event-id dedup, the metric catalogue and the alert router that every stage's
signals pass through."""

from processors.core.alert_router import AlertRouter, AlertRouterConfig
from processors.core.base import (
    EMPTY,
    AlertSignal,
    Emitted,
    Envelope,
    MetricSample,
    Output,
    Processor,
)
from processors.core.dedup import DedupConfig, EventIdDedup
from processors.core.reorder import ReorderBuffer

__all__ = [
    "EMPTY",
    "AlertRouter",
    "AlertRouterConfig",
    "AlertSignal",
    "DedupConfig",
    "Emitted",
    "Envelope",
    "EventIdDedup",
    "MetricSample",
    "Output",
    "Processor",
    "ReorderBuffer",
]
