"""The canonical material content of a plan (CONTRACT.md ``plans``): view, fingerprint, diff.

Material = the trigger set (by ``trigger_id``, with params), ``risk_limits`` and
``policy_version``; everything else (ids, ts, narration, metadata, formatting) is not.

Canonical form (``material_view``)::

    {"policy_version": str,
     "risk_limits": {name: number},                        # keys sorted
     "triggers": [{"trigger_id": str, "params": {name: scalar}}, ...]}

- Order of triggers and of keys does not matter: triggers are sorted by ``trigger_id`` (then
  by their canonical params), keys are sorted.
- Numbers compare by value: an integral float within the signed 64-bit range becomes an int
  (``30.0`` -> ``30``, ``-0.0`` -> ``0``); an int outside that range becomes the float of the
  same value when one exists, else ``{"big_int": "<digits>"}`` (so that every view can be
  written by orjson). ``True`` stays a bool and is NOT the number 1; ``"30"`` stays a string.
- Duplicate ``trigger_id``\\ s: the trigger *set* holds distinct (trigger_id, params) members.
  An exact repeat of a member is the same member (it collapses); two different params under
  one ``trigger_id`` are two members, and both are material. This keeps the view independent
  of the order of triggers (a "later wins" rule would not be).

``material_diff`` names the material paths that differ, sorted:
``policy_version``; ``risk_limits.<name>`` (added, removed or changed);
``triggers.<trigger_id>`` (trigger added or removed, or, when an id has several members on
either side, any change of its members); ``triggers.<trigger_id>.params.<name>`` (a param of a
trigger present once on both sides added, removed or changed). Ids and names are written as
they are, so a dot inside an id makes a path ambiguous to parse; paths are for people.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from models.inputs import PlanEvent

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

View = dict[str, Any]


def canonical_scalar(value: Any) -> Any:
    """A param or limit value in canonical form (numbers by value; bools and strings as is)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        if value.is_integer() and _INT64_MIN <= value <= _INT64_MAX:
            return int(value)
        return value
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        try:
            as_float = float(value)
        except OverflowError:
            return {"big_int": str(value)}
        # Python compares int and float exactly, so this keeps 2**70 == 2.0**70 only.
        return as_float if as_float == value else {"big_int": str(value)}
    return value


def _canonical_map(mapping: dict[str, Any]) -> dict[str, Any]:
    return {name: canonical_scalar(mapping[name]) for name in sorted(mapping)}


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def material_view(plan: PlanEvent) -> View:
    """The canonical material content of ``plan`` (a new, JSON-serialisable dict)."""
    members: dict[tuple[str, bytes], dict[str, Any]] = {}
    for trigger in plan.triggers:
        params = _canonical_map(trigger.params)
        members[(trigger.trigger_id, _dumps(params))] = params
    triggers = [
        {"trigger_id": trigger_id, "params": members[(trigger_id, encoded)]}
        for trigger_id, encoded in sorted(members)
    ]
    return {
        "policy_version": plan.policy_version,
        "risk_limits": _canonical_map(plan.risk_limits),
        "triggers": triggers,
    }


def empty_view() -> View:
    """The view "before any plan": diffing against it lists every material path of a plan."""
    return {"policy_version": None, "risk_limits": {}, "triggers": []}


def view_fingerprint(view: View) -> str:
    """sha256 hex of the canonical orjson bytes (sorted keys) of a material view."""
    return hashlib.sha256(_dumps(view)).hexdigest()


def fingerprint(plan: PlanEvent) -> str:
    """sha256 hex of the canonical material content of ``plan``."""
    return view_fingerprint(material_view(plan))


def _same(old: Any, new: Any) -> bool:
    # Type-aware: after canonicalisation an int never equals a float, and True is not 1.
    return type(old) is type(new) and old == new


def _map_diff(prefix: str, old: dict[str, Any], new: dict[str, Any], out: list[str]) -> None:
    missing = object()
    for name in old.keys() | new.keys():
        if not _same(old.get(name, missing), new.get(name, missing)):
            out.append(f"{prefix}{name}")


def _members_by_id(view: View) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for member in view.get("triggers") or ():
        grouped.setdefault(member["trigger_id"], []).append(member.get("params") or {})
    return grouped


def material_diff(old_view: View, new_view: View) -> list[str]:
    """The sorted material paths in which two canonical views differ (empty when equal)."""
    paths: list[str] = []
    if not _same(old_view.get("policy_version"), new_view.get("policy_version")):
        paths.append("policy_version")
    _map_diff(
        "risk_limits.", old_view.get("risk_limits") or {}, new_view.get("risk_limits") or {}, paths
    )
    old_triggers = _members_by_id(old_view)
    new_triggers = _members_by_id(new_view)
    for trigger_id in old_triggers.keys() | new_triggers.keys():
        old_members = old_triggers.get(trigger_id)
        new_members = new_triggers.get(trigger_id)
        if old_members is None or new_members is None:
            paths.append(f"triggers.{trigger_id}")
        elif len(old_members) == 1 and len(new_members) == 1:
            _map_diff(f"triggers.{trigger_id}.params.", old_members[0], new_members[0], paths)
        elif _dumps(old_members) != _dumps(new_members):
            paths.append(f"triggers.{trigger_id}")
    paths.sort()
    return paths
