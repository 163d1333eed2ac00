"""What every processor shares: envelopes in, outputs and alert signals out, metric samples.

A processor is a state machine with explicit state. It is fed models by the pipeline through
its own typed ``on_*`` methods, returns what it produces as data, and exposes
``snapshot() -> dict`` (JSON-serialisable with orjson; the state survives the codec) and
``restore(dict)``. It never reads the wall clock, the environment or unseeded randomness,
and never mutates its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from models.common import OutputModel
from models.inputs import InputModel
from models.outputs import AlertScope
from models.taxonomy import AlertKind, Severity

LabelPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded input record.

    ``source`` names where it came from (``line:17`` in a replay file, ``topic:partition:offset``
    on Kafka); it is what dead letters and derived ids point back to.
    """

    topic: str
    key: str | None
    value: InputModel
    source: str
    timestamp_ms: int | None = None
    line: bytes | None = None
    """The replay-file line it was decoded from, when it was (a driver that hands the record
    to another process sends the line, which is cheaper to send and decode than the model
    is to pickle)."""

    @property
    def event_time(self) -> datetime:
        return self.value.event_time


@dataclass(frozen=True, slots=True)
class Output:
    """A record to publish: output topic, key and payload."""

    topic: str
    key: str
    value: OutputModel


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """What a detector or audit found, before the alert router applies severity policy,
    dedup, rate limit and folding.

    ``dedup_key`` identifies "the same problem" (e.g. ``concept_drift|momo|small_cap``);
    ``severity`` is the detector's suggestion, which the router may raise or lower;
    ``source_id`` is the id of the input that triggered it (for a deterministic alert id).
    """

    kind: AlertKind
    severity: Severity
    scope: AlertScope
    event_time: datetime
    evidence: dict[str, Any]
    dedup_key: str
    source_id: str
    p_value: float | None = None


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One value of a catalogued metric (see processors/core/metric_names.py)."""

    name: str
    labels: LabelPairs
    value: float


@dataclass(slots=True)
class Emitted:
    """What one call into a processor produced.

    A processor with nothing to report may return the shared ``EMPTY``: callers read what
    they get and never mutate it (``EMPTY`` refuses mutation)."""

    outputs: list[Output] = field(default_factory=list)
    signals: list[AlertSignal] = field(default_factory=list)
    derived: list[Any] = field(default_factory=list)
    """Records for other stages (e.g. the round trips a fill closed), routed by their type
    like inputs, after this call's outputs and signals."""

    def extend(self, other: Emitted) -> None:
        if other.outputs:
            self.outputs.extend(other.outputs)
        if other.signals:
            self.signals.extend(other.signals)
        if other.derived:
            self.derived.extend(other.derived)


class _ReadOnlyList(list):  # type: ignore[type-arg]
    """An always-empty list: the lists of the shared ``EMPTY``."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("EMPTY is shared: build a new Emitted instead of mutating it")

    append = extend = insert = __iadd__ = __setitem__ = __delitem__ = _refuse  # type: ignore[assignment]
    pop = remove = clear = sort = reverse = __imul__ = _refuse  # type: ignore[assignment]


EMPTY = Emitted(_ReadOnlyList(), _ReadOnlyList(), _ReadOnlyList())
"""The shared "nothing happened" result: the per-event fast paths return it instead of
allocating; compare with ``is EMPTY`` to skip routing."""


Handler = Callable[[Any, int], Emitted]
"""A stage's handler of one record type: ``(record, event_ms) -> Emitted``."""


class Processor(Protocol):
    """What every stage of the pipeline has (``processors.stages`` lists them).

    ``takes`` maps each record type the stage consumes (an input model, or a record another
    stage derives, such as ``RoundTrip``) to the name of its handler, a method
    ``(record, event_ms) -> Emitted``; the pipeline routes by this map. ``timers`` says
    whether ``on_tick`` has anything to do; the pipeline calls ``on_tick(upto_ms)`` ("every
    record up to ``upto_ms`` is in") only on stages with timers.
    """

    takes: ClassVar[Mapping[type, str]]
    timers: ClassVar[bool]

    def on_tick(self, watermark_ms: int) -> Any:
        """Fire the timers due up to ``watermark_ms``."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the whole state."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with one taken by ``snapshot``."""
        ...

    def metrics(self) -> list[MetricSample]:
        """Current values of the metrics this processor owns."""
        ...


class StateVersionError(ValueError):
    """A snapshot was written by another version of a processor's state layout."""


class WithoutTimers:
    """The base of a stage that has no timers: ``timers`` is False, so the pipeline never
    ticks it, and ``on_tick`` (which the protocol asks for) fires nothing."""

    timers: ClassVar[bool] = False

    def on_tick(self, watermark_ms: int) -> Emitted:
        """No timers: nothing to fire."""
        return EMPTY


def check_state_version(state: Mapping[str, Any], expected: int, owner: str) -> None:
    """Raise ``StateVersionError`` unless ``state["version"] == expected``.

    Every processor writes ``"version": STATE_VERSION`` into its snapshot and calls this first
    in ``restore``, so a checkpoint of an older layout fails loudly instead of restoring
    garbage (a worker then starts from an earlier checkpoint or from the beginning)."""
    found = state.get("version")
    if found != expected:
        raise StateVersionError(
            f"{owner}: snapshot has state version {found!r}, this build reads {expected}"
        )


DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
