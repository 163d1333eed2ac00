"""The policy archive: every version the loop has proposed, its status and lineage.

An entry per version: the PolicyConfig, ``status``, ``parent`` (the champion it was proposed
against; None for the initial policy), ``run_id``, ``created_at`` and ``promoted_at`` (event
time; promoted_at is set when the version became active, and stays set), the source
``window`` and the gate's decision and reasons. Statuses:

- ``active``: the last-good policy (exactly one entry);
- ``superseded``: was active (promoted), replaced by a later promotion;
- ``rejected``: failed the gate, never active;
- ``rolled_back``: was active and was rolled back (automatically or by hand).

``events`` is the audit trail, one record per change, in order: ``{at, action (initial |
promoted | rejected | rolled_back), version, previous (the active version before), run_id,
reason}``.

Rollback semantics: ``rollback(version, at_ms, reason)`` makes ``version`` active again; the
version active until then becomes ``rolled_back``. Only a version that has been active before
(``promoted_at`` set) can be rolled back to. Versions keep their id (no copy is made), so
lineage stays a tree: new candidates name the active version as parent. ``ancestors`` walks
parents up to the root; ``descendants`` lists every version with ``version`` among its
ancestors, in creation order.

Memory: one entry per loop run (a run a day by default); rejected entries beyond
``max_rejected`` are dropped oldest first (they have no descendants). Times in the JSON are
RFC 3339 UTC strings; ``to_json()`` is canonical (sorted keys, indented), ``from_json``
reads it back, and ``snapshot``/``restore`` use the same dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from models.common import format_utc, to_ms, utc_from_ms
from models.outputs import PolicyUpdate
from models.policy import PolicyConfig
from models.taxonomy import Promotion

ACTIVE = "active"
SUPERSEDED = "superseded"
REJECTED = "rejected"
ROLLED_BACK = "rolled_back"
FORMAT_VERSION = 1


def iso(ms: int) -> str:
    """RFC 3339 UTC of an event-time millisecond."""
    return format_utc(utc_from_ms(ms))


def parse_iso(text: str) -> int:
    """Milliseconds of an RFC 3339 time (``Z`` or an offset)."""
    return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass
class ArchiveEntry:
    """One version (module docstring); ``window`` is ``[start_ms, end_ms]`` or None."""

    version: str
    policy: PolicyConfig
    status: str
    parent: str | None
    run_id: str | None
    created_at_ms: int
    promoted_at_ms: int | None = None
    window: tuple[int, int] | None = None
    gate: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "parent": self.parent,
            "run_id": self.run_id,
            "created_at": iso(self.created_at_ms),
            "promoted_at": None if self.promoted_at_ms is None else iso(self.promoted_at_ms),
            "window": None if self.window is None else [iso(t) for t in self.window],
            "gate": self.gate,
            "policy": self.policy.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchiveEntry:
        window = data.get("window")
        promoted = data.get("promoted_at")
        return cls(
            version=str(data["version"]),
            policy=PolicyConfig.model_validate(data["policy"]),
            status=str(data["status"]),
            parent=data.get("parent"),
            run_id=data.get("run_id"),
            created_at_ms=parse_iso(str(data["created_at"])),
            promoted_at_ms=None if promoted is None else parse_iso(str(promoted)),
            window=None if window is None else (parse_iso(window[0]), parse_iso(window[1])),
            gate=dict(data.get("gate") or {}),
        )


class PolicyArchive:
    """All versions, the active one, lineage and the audit trail (module docstring)."""

    def __init__(self, initial: PolicyConfig, max_rejected: int = 1000) -> None:
        self.max_rejected = max_rejected
        at = to_ms(initial.created_at)
        self._entries: dict[str, ArchiveEntry] = {}
        self._events: list[dict[str, Any]] = []
        self.active_version = initial.version
        self._entries[initial.version] = ArchiveEntry(
            initial.version, initial, ACTIVE, None, None, at, promoted_at_ms=at
        )
        self._event(at, "initial", initial.version, None, None, None)

    # -- reads -----------------------------------------------------------------------------

    def __contains__(self, version: object) -> bool:
        return version in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, version: str) -> ArchiveEntry:
        """The entry of ``version`` (KeyError if unknown)."""
        return self._entries[version]

    def entries(self) -> list[ArchiveEntry]:
        """Every entry in creation order."""
        return list(self._entries.values())

    def events(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._events]

    def last_good(self) -> PolicyConfig:
        """The active (last-good) policy."""
        return self._entries[self.active_version].policy

    @property
    def latest_ms(self) -> int:
        """The latest event time recorded (creation, promotion or event)."""
        times = [parse_iso(e["at"]) for e in self._events]
        return max(times) if times else 0

    def ancestors(self, version: str) -> list[str]:
        """Parent, grandparent, ... up to the root (KeyError if ``version`` is unknown)."""
        out: list[str] = []
        parent = self._entries[version].parent
        while parent is not None and parent not in out:
            out.append(parent)
            entry = self._entries.get(parent)
            parent = entry.parent if entry is not None else None
        return out

    def descendants(self, version: str) -> list[str]:
        """Every version with ``version`` among its ancestors, in creation order."""
        if version not in self._entries:
            raise KeyError(version)
        found = {version}
        out: list[str] = []
        for entry in self._entries.values():  # parents are created before their children
            if entry.parent in found:
                found.add(entry.version)
                out.append(entry.version)
        return out

    # -- changes ---------------------------------------------------------------------------

    def add_candidate(
        self,
        policy: PolicyConfig,
        run_id: str,
        window: tuple[int, int],
        gate: dict[str, Any],
        promote: bool,
        at_ms: int,
    ) -> ArchiveEntry:
        """Archive a gated candidate (parent = the active version): promoted (it becomes
        active, the previous active becomes superseded) or rejected."""
        previous = self.active_version
        entry = ArchiveEntry(
            policy.version,
            policy,
            ACTIVE if promote else REJECTED,
            previous,
            run_id,
            to_ms(policy.created_at),
            at_ms if promote else None,
            window,
            gate,
        )
        self._entries[policy.version] = entry
        if promote:
            self._entries[previous].status = SUPERSEDED
            self.active_version = policy.version
            self._event(at_ms, "promoted", policy.version, previous, run_id, None)
        else:
            self._event(at_ms, "rejected", policy.version, previous, run_id, None)
            self._trim_rejected()
        return entry

    def rollback(
        self, version: str, at_ms: int, reason: str, run_id: str | None = None
    ) -> ArchiveEntry:
        """Make ``version`` active again; the active one becomes rolled_back. ValueError if
        ``version`` is unknown, is the active one, or was never active."""
        entry = self._entries.get(version)
        if entry is None:
            raise ValueError(f"unknown version {version!r}")
        if version == self.active_version:
            raise ValueError(f"{version} is already the active version")
        if entry.promoted_at_ms is None:
            raise ValueError(f"{version} was never active (status {entry.status})")
        previous = self.active_version
        self._entries[previous].status = ROLLED_BACK
        entry.status = ACTIVE
        self.active_version = version
        self._event(at_ms, "rolled_back", version, previous, run_id, reason)
        return entry

    def rollback_update(
        self, version: str, at_ms: int, reason: str, run_id: str | None = None
    ) -> PolicyUpdate:
        """``rollback`` and the PolicyUpdate that publishes it (action rolled_back,
        previous_version = the version rolled back, promoted_at = at_ms)."""
        rolled = self.active_version
        restored = self.rollback(version, at_ms, reason, run_id)
        return PolicyUpdate(
            version=version,
            previous_version=rolled,
            promoted_at=utc_from_ms(at_ms),
            policy=restored.policy,
            action=Promotion.ROLLED_BACK,
            reason=reason[:256] or None,
        )

    def _event(
        self,
        at_ms: int,
        action: str,
        version: str,
        previous: str | None,
        run_id: str | None,
        reason: str | None,
    ) -> None:
        self._events.append(
            {
                "at": iso(at_ms),
                "action": action,
                "version": version,
                "previous": previous,
                "run_id": run_id,
                "reason": reason,
            }
        )

    def _trim_rejected(self) -> None:
        rejected = [v for v, e in self._entries.items() if e.status == REJECTED]
        for version in rejected[: max(0, len(rejected) - self.max_rejected)]:
            del self._entries[version]

    # -- export / state --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: format, active, versions (creation order), events."""
        return {
            "format": FORMAT_VERSION,
            "active": self.active_version,
            "max_rejected": self.max_rejected,
            "versions": [e.to_dict() for e in self._entries.values()],
            "events": self.events(),
        }

    def to_json(self) -> bytes:
        """The archive file's bytes: canonical JSON (sorted keys, indented, final newline)."""
        return orjson.dumps(
            self.to_dict(),
            option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyArchive:
        entries = [ArchiveEntry.from_dict(e) for e in data["versions"]]
        archive = cls(entries[0].policy, int(data.get("max_rejected", 1000)))
        archive._entries = {e.version: e for e in entries}
        archive._events = [dict(e) for e in data.get("events", [])]
        archive.active_version = str(data["active"])
        return archive

    @classmethod
    def from_json(cls, raw: bytes | str) -> PolicyArchive:
        return cls.from_dict(orjson.loads(raw))

    def snapshot(self) -> dict[str, Any]:
        return self.to_dict()

    def restore(self, state: dict[str, Any]) -> None:
        other = PolicyArchive.from_dict(state)
        self.max_rejected = other.max_rejected
        self._entries = other._entries
        self._events = other._events
        self.active_version = other.active_version
