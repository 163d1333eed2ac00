"""``policyloop policy show | history | rollback VERSION``: the policy archive from the shell.

The commands work on an archive file (``--archive PATH``, default ``policy-archive.json``):
the bytes of ``PolicyLoop.archive.to_json()`` (replay writes ``DIR/policy_archive.json``).

- ``policy show [--version V]``: the active policy (or version V) as JSON, with its status,
  parent, run_id and window;
- ``policy history``: every version with status, parent, run_id, window, gate decision and
  reasons, then the audit trail of events;
- ``policy rollback VERSION [--at TIME] [--reason TEXT]``: make VERSION active in the
  archive file (the active one becomes rolled_back, a rolled_back event is appended) and
  print the PolicyUpdate to publish. ``--at`` is an RFC 3339 time; by default the archive's
  latest event time (never the wall clock: the archive stays a function of event time).

``rollback_update(archive, version, at)`` is the hook that builds the PolicyUpdate (the
driver publishing it to ``policy_updates``, key ``default``, calls it the same way);
``feedback_markdown`` renders a FeedbackSummary (and its candidate) for humans.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from models.codec import encode
from models.common import format_utc
from models.outputs import FeedbackSummary, PolicyCandidate, PolicyUpdate
from processors.policy.archive import ArchiveEntry, PolicyArchive, iso, parse_iso

DEFAULT_ARCHIVE = "policy-archive.json"


def load_archive(path: Path) -> PolicyArchive:
    """The archive in ``path`` (FileNotFoundError / ValueError when missing or invalid)."""
    return PolicyArchive.from_json(path.read_bytes())


def save_archive(archive: PolicyArchive, path: Path) -> None:
    """Write the archive file atomically (temporary file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(archive.to_json())
    tmp.replace(path)


def rollback_update(
    archive: PolicyArchive, version: str, at: str | int | None = None, reason: str = "manual"
) -> PolicyUpdate:
    """Roll ``archive`` back to ``version`` at ``at`` (RFC 3339 text, event-time ms, or None
    for the archive's latest event time) and return the PolicyUpdate that publishes it
    (action rolled_back). ValueError when the archive refuses (unknown version, already
    active, never active)."""
    at_ms = archive.latest_ms if at is None else at if isinstance(at, int) else parse_iso(at)
    return archive.rollback_update(version, at_ms, f"manual_rollback: {reason}", "cli")


def _entry_summary(entry: ArchiveEntry) -> dict[str, Any]:
    window = None if entry.window is None else [iso(t) for t in entry.window]
    return {
        "version": entry.version,
        "status": entry.status,
        "parent": entry.parent,
        "run_id": entry.run_id,
        "window": window,
        "gate": entry.gate,
    }


def _print_json(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def _open(args: argparse.Namespace) -> PolicyArchive | None:
    path = Path(args.archive)
    try:
        return load_archive(path)
    except FileNotFoundError:
        print(f"policyloop policy: no archive at {path}", file=sys.stderr)
    except (ValueError, KeyError, IndexError) as exc:
        print(f"policyloop policy: {path} is not a policy archive: {exc}", file=sys.stderr)
    return None


def _cmd_show(args: argparse.Namespace) -> int:
    archive = _open(args)
    if archive is None:
        return 2
    version = args.version or archive.active_version
    if version not in archive:
        print(f"policyloop policy show: unknown version {version}", file=sys.stderr)
        return 2
    entry = archive.get(version)
    _print_json({**_entry_summary(entry), "policy": entry.policy.model_dump(mode="json")})
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    archive = _open(args)
    if archive is None:
        return 2
    print(f"active: {archive.active_version}")
    print(f"{'version':<8} {'status':<12} {'parent':<8} {'gate':<5} {'window':<43} run_id")
    for entry in archive.entries():
        window = "-" if entry.window is None else " .. ".join(iso(t) for t in entry.window)
        decision = str(entry.gate.get("decision", "-"))
        print(
            f"{entry.version:<8} {entry.status:<12} {entry.parent or '-':<8} {decision:<5} "
            f"{window:<43} {entry.run_id or '-'}"
        )
        for reason in entry.gate.get("reasons", []):
            print(f"{'':<8} - {reason}")
    print("events:")
    for event in archive.events():
        previous = f" (from {event['previous']})" if event.get("previous") else ""
        reason = f": {event['reason']}" if event.get("reason") else ""
        print(f"  {event['at']} {event['action']} {event['version']}{previous}{reason}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    path = Path(args.archive)
    archive = _open(args)
    if archive is None:
        return 2
    try:
        update = rollback_update(archive, args.version, args.at, args.reason)
    except ValueError as exc:
        print(f"policyloop policy rollback: {exc}", file=sys.stderr)
        return 1
    save_archive(archive, path)
    print(encode(update).decode())
    return 0


def add_policy_commands(subparsers: Any) -> None:
    """Add ``policy show | history | rollback VERSION`` to an argparse subparsers object."""
    policy = subparsers.add_parser("policy", help="the policy archive: show, history, rollback")
    policy.add_argument("--archive", default=DEFAULT_ARCHIVE, help="archive JSON file")
    commands = policy.add_subparsers(dest="policy_command", required=True)

    show = commands.add_parser("show", help="the active policy (or --version V)")
    show.add_argument("--version", default=None)
    show.set_defaults(func=_cmd_show)

    history = commands.add_parser("history", help="every version with its gate and lineage")
    history.set_defaults(func=_cmd_history)

    rollback = commands.add_parser("rollback", help="make VERSION active again")
    rollback.add_argument("version")
    rollback.add_argument("--at", default=None, help="RFC 3339 event time (default: latest)")
    rollback.add_argument("--reason", default="manual", help="why (recorded in the archive)")
    rollback.set_defaults(func=_cmd_rollback)


def feedback_markdown(summary: FeedbackSummary, candidate: PolicyCandidate | None = None) -> str:
    """A FeedbackSummary (and its candidate's changes) as a short markdown report."""
    versions = summary.policy_versions
    lines = [
        f"# Feedback run {summary.run_id}",
        "",
        f"- window: {format_utc(summary.window.start)} .. {format_utc(summary.window.end)}",
        f"- promotion: **{summary.promotion.value}**",
        f"- champion: {versions.champion}, candidate: {versions.candidate or '-'}, "
        f"active: {versions.active}",
        f"- gate: **{summary.gate.decision.value}**",
    ]
    lines += [f"  - {reason}" for reason in summary.gate.reasons]
    if candidate is not None:
        lines += ["", "## Proposed changes", "", "| field | key | old | new | n | estimate |"]
        lines.append("|---|---|---|---|---|---|")
        changes = candidate.evidence.get("changes") or []
        for change in changes if isinstance(changes, list) else []:
            if isinstance(change, dict):
                cells = [change.get(k) for k in ("field", "key", "old", "new", "n", "estimate")]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    importance = summary.stats.get("feature_importance")
    if isinstance(importance, dict) and importance:
        lines += ["", "## Feature importance", "", "| feature | r | sign agreement | stable |"]
        lines.append("|---|---|---|---|")
        for name, row in sorted(importance.items()):
            if isinstance(row, dict):
                cells = [name, row.get("r"), row.get("sign_agreement"), row.get("stable")]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Drift", "", "```json", _json_text(summary.drift), "```", ""]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _json_text(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
