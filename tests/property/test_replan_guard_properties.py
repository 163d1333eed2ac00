"""Properties of the no-change replan guard (hypothesis).

- reordering triggers or param / limit keys, or writing an int as an equal float (or an
  integral float as an int), never changes a verdict;
- changing non-material fields never makes a plan accepted;
- any material change (a param value, a trigger added or removed, a risk limit,
  policy_version) is accepted and lists exactly the right path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from models.inputs import PlanEvent
from models.outputs import ReplanVerdict
from models.taxonomy import ReplanDecision
from processors.audit.plan_fingerprint import fingerprint
from processors.audit.replan_guard import ReplanGuard

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=100, deadline=None)

names = st.sampled_from(["a", "b", "c", "lookback", "z", "pct", "x.y"])
trigger_ids = st.sampled_from(["breakout", "stop", "mean_rev", "t1", "t2"])
ints = st.integers(min_value=-(2**53), max_value=2**53)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
scalars = st.one_of(
    st.booleans(),
    ints,
    floats,
    st.sampled_from(["", "30", "1", "true", "abc"]),
    st.none(),
)
params = st.dictionaries(names, scalars, max_size=4)
limits = st.dictionaries(names, st.one_of(ints.map(float), floats), max_size=4)
versions = st.sampled_from(["v1", "v2", "v3"])


@st.composite
def plan_dicts(draw: st.DrawFn, unique_ids: bool = False) -> dict[str, Any]:
    if unique_ids:
        ids = draw(st.lists(trigger_ids, unique=True, max_size=4))
    else:
        ids = draw(st.lists(trigger_ids, max_size=5))
    return {
        "event_id": "e",
        "plan_id": "p",
        "strategy_id": "momo",
        "ts": T0.isoformat(),
        "triggers": [{"trigger_id": tid, "params": draw(params)} for tid in ids],
        "risk_limits": draw(limits),
        "policy_version": draw(versions),
    }


def swap_number_form(value: Any) -> Any:
    """30 -> 30.0 and 30.0 -> 30 (same value); bools, strings, None and fractions kept."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


@st.composite
def equivalent_variant(draw: st.DrawFn, raw: dict[str, Any]) -> dict[str, Any]:
    """The same material content: triggers and keys shuffled, number forms swapped."""
    swap = draw(st.booleans())

    def remap(mapping: dict[str, Any]) -> dict[str, Any]:
        keys = draw(st.permutations(list(mapping)))
        return {k: swap_number_form(mapping[k]) if swap else mapping[k] for k in keys}

    triggers = [
        {"trigger_id": t["trigger_id"], "params": remap(t["params"])} for t in raw["triggers"]
    ]
    return {
        **raw,
        "triggers": draw(st.permutations(triggers)),
        "risk_limits": remap(raw["risk_limits"]),
    }


def run(plans: list[dict[str, Any]]) -> list[tuple[ReplanDecision, list[str]]]:
    guard = ReplanGuard()
    out = []
    for i, raw in enumerate(plans):
        event = PlanEvent.model_validate({**raw, "event_id": f"e{i}"})
        verdict = guard.on_plan(event).outputs[0].value
        assert isinstance(verdict, ReplanVerdict)
        out.append((verdict.verdict, verdict.changed))
    return out


@SETTINGS
@given(st.lists(plan_dicts(), min_size=1, max_size=5), st.data())
def test_reordering_and_number_forms_never_change_verdicts(
    stream: list[dict[str, Any]], data: st.DataObject
) -> None:
    variants = [data.draw(equivalent_variant(raw)) for raw in stream]
    assert run(variants) == run(stream)
    for raw, variant in zip(stream, variants, strict=True):
        assert fingerprint(PlanEvent.model_validate(raw)) == fingerprint(
            PlanEvent.model_validate(variant)
        )


@SETTINGS
@given(
    plan_dicts(),
    st.text(max_size=50),
    st.dictionaries(names, st.integers() | st.text(min_size=1, max_size=5), max_size=3),
    st.integers(min_value=-10_000, max_value=10_000),
)
def test_non_material_changes_are_suppressed(
    raw: dict[str, Any], narration: str, metadata: dict[str, Any], shift_minutes: int
) -> None:
    changed = {
        **raw,
        "plan_id": "another",
        "ts": (T0 + timedelta(minutes=shift_minutes)).isoformat(),
        "narration": narration,
        "metadata": metadata,
    }
    verdicts = run([raw, changed])
    assert verdicts[0][0] is ReplanDecision.ACCEPTED
    assert verdicts[1] == (ReplanDecision.SUPPRESSED, [])


def different_scalar(old: Any) -> st.SearchStrategy[Any]:
    """A scalar materially different from ``old`` (by value; a bool is not a number)."""

    def differs(new: Any) -> bool:
        if isinstance(old, bool) or isinstance(new, bool):
            return type(old) is not type(new) or old != new
        if isinstance(old, int | float) and isinstance(new, int | float):
            return bool(old != new)
        return type(old) is not type(new) or old != new

    return scalars.filter(differs)


@st.composite
def material_change(draw: st.DrawFn, raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A plan differing from ``raw`` in exactly one material path, and that path."""
    triggers = raw["triggers"]
    kinds = ["policy_version", "limit", "add_trigger"]
    if triggers:
        kinds += ["param", "remove_trigger"]
    kind = draw(st.sampled_from(kinds))
    if kind == "policy_version":
        version = draw(versions.filter(lambda v: v != raw["policy_version"]))
        return {**raw, "policy_version": version}, "policy_version"
    if kind == "limit":
        name = draw(names)
        old = raw["risk_limits"].get(name)
        new = draw(floats.filter(lambda v: old is None or v != old))
        return {**raw, "risk_limits": {**raw["risk_limits"], name: new}}, f"risk_limits.{name}"
    if kind == "add_trigger":
        present = {t["trigger_id"] for t in triggers}
        tid = draw(st.sampled_from(["new_a", "new_b"]).filter(lambda t: t not in present))
        added = {"trigger_id": tid, "params": draw(params)}
        return {**raw, "triggers": [*triggers, added]}, f"triggers.{tid}"
    index = draw(st.integers(min_value=0, max_value=len(triggers) - 1))
    tid = triggers[index]["trigger_id"]
    if kind == "remove_trigger":
        rest = triggers[:index] + triggers[index + 1 :]
        return {**raw, "triggers": rest}, f"triggers.{tid}"
    name = draw(names)
    old_params = triggers[index]["params"]
    new_value = draw(different_scalar(old_params[name]) if name in old_params else scalars)
    edited = {"trigger_id": tid, "params": {**old_params, name: new_value}}
    new_triggers = [*triggers[:index], edited, *triggers[index + 1 :]]
    return {**raw, "triggers": new_triggers}, f"triggers.{tid}.params.{name}"


@SETTINGS
@given(plan_dicts(unique_ids=True), st.data())
def test_any_material_change_is_accepted_with_its_path(
    raw: dict[str, Any], data: st.DataObject
) -> None:
    changed, path = data.draw(material_change(raw))
    verdicts = run([raw, changed])
    assert verdicts[1] == (ReplanDecision.ACCEPTED, [path])
    assert fingerprint(PlanEvent.model_validate(raw)) != fingerprint(
        PlanEvent.model_validate(changed)
    )


@SETTINGS
@given(plan_dicts(), st.data())
def test_material_change_then_equivalent_is_suppressed(
    raw: dict[str, Any], data: st.DataObject
) -> None:
    """After a change is accepted, an equivalent form of the new plan is suppressed."""
    changed, _ = data.draw(material_change(raw))
    variant = data.draw(equivalent_variant(changed))
    assert run([raw, changed, variant])[2] == (ReplanDecision.SUPPRESSED, [])
