"""The policy archive: statuses, lineage after promotions and a rollback, JSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from models.common import to_ms
from models.policy import EngineParams, PolicyConfig
from models.taxonomy import Promotion
from processors.policy.archive import PolicyArchive

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def policy(version: str, day: int) -> PolicyConfig:
    return PolicyConfig(
        version=version,
        created_at=T0 + day * DAY,
        engine=EngineParams(),
        trust={"s|x": 1.0 + day / 10},
    )


def add(archive: PolicyArchive, version: str, day: int, promote: bool) -> None:
    at = to_ms(T0 + day * DAY)
    gate = {"decision": "PASS" if promote else "FAIL", "reasons": [] if promote else ["x"]}
    archive.add_candidate(
        policy(version, day), f"run-{day}", (at - 7 * 86_400_000, at), gate, promote, at
    )


def build() -> PolicyArchive:
    """v0 -> v1 (promoted) -> v2 (rejected), v3 (promoted) -> v4 (promoted), rolled back to
    v3 -> v5 (promoted, parent v3)."""
    archive = PolicyArchive(policy("v0", 0))
    add(archive, "v1", 1, True)
    add(archive, "v2", 2, False)
    add(archive, "v3", 3, True)
    add(archive, "v4", 4, True)
    archive.rollback("v3", to_ms(T0 + 4.5 * DAY), "realised_pnl: worse")
    add(archive, "v5", 5, True)
    return archive


def test_statuses_and_last_good() -> None:
    archive = build()
    status = {e.version: e.status for e in archive.entries()}
    assert status == {
        "v0": "superseded",
        "v1": "superseded",
        "v2": "rejected",
        "v3": "superseded",
        "v4": "rolled_back",
        "v5": "active",
    }
    assert archive.active_version == "v5" and archive.last_good().version == "v5"
    assert archive.get("v2").promoted_at_ms is None
    assert archive.get("v4").promoted_at_ms == to_ms(T0 + 4 * DAY)
    actions = [(e["action"], e["version"], e["previous"]) for e in archive.events()]
    assert actions == [
        ("initial", "v0", None),
        ("promoted", "v1", "v0"),
        ("rejected", "v2", "v1"),
        ("promoted", "v3", "v1"),
        ("promoted", "v4", "v3"),
        ("rolled_back", "v3", "v4"),
        ("promoted", "v5", "v3"),
    ]


def test_lineage_after_promotions_and_a_rollback() -> None:
    archive = build()
    assert archive.ancestors("v5") == ["v3", "v1", "v0"]
    assert archive.ancestors("v4") == ["v3", "v1", "v0"]
    assert archive.ancestors("v2") == ["v1", "v0"]
    assert archive.ancestors("v0") == []
    assert archive.descendants("v1") == ["v2", "v3", "v4", "v5"]
    assert archive.descendants("v3") == ["v4", "v5"]
    assert archive.descendants("v5") == []
    with pytest.raises(KeyError):
        archive.descendants("v9")


def test_rollback_rules() -> None:
    archive = build()
    at = to_ms(T0 + 6 * DAY)
    with pytest.raises(ValueError, match="never active"):
        archive.rollback("v2", at, "no")
    with pytest.raises(ValueError, match="already"):
        archive.rollback("v5", at, "no")
    with pytest.raises(ValueError, match="unknown"):
        archive.rollback("v42", at, "no")
    update = archive.rollback_update("v1", at, "manual: ops", "cli")
    assert update.action is Promotion.ROLLED_BACK and update.reason == "manual: ops"
    assert (update.version, update.previous_version) == ("v1", "v5")
    assert update.policy == archive.get("v1").policy
    assert archive.get("v5").status == "rolled_back" and archive.active_version == "v1"


def test_json_export_round_trips_and_is_canonical() -> None:
    archive = build()
    raw = archive.to_json()
    assert raw == archive.to_json() and raw.endswith(b"\n")
    again = PolicyArchive.from_json(raw)
    assert again.to_json() == raw
    assert again.ancestors("v5") == ["v3", "v1", "v0"]
    data = orjson.loads(raw)
    assert data["active"] == "v5"
    v4 = next(v for v in data["versions"] if v["version"] == "v4")
    assert v4["window"] == ["2023-12-29T00:00:00Z", "2024-01-05T00:00:00Z"]
    assert v4["parent"] == "v3" and v4["run_id"] == "run-4"
    assert archive.latest_ms == to_ms(T0 + 5 * DAY)


def test_snapshot_restore() -> None:
    archive = build()
    state = orjson.loads(orjson.dumps(archive.snapshot()))
    other = PolicyArchive(policy("v0", 0))
    other.restore(state)
    assert other.to_json() == archive.to_json()


def test_rejected_entries_are_bounded() -> None:
    archive = PolicyArchive(policy("v0", 0), max_rejected=2)
    for day in range(1, 6):
        add(archive, f"v{day}", day, False)
    assert [e.version for e in archive.entries()] == ["v0", "v4", "v5"]


def run_cli(argv: list[str]) -> int:
    import argparse

    from streams.policy_cli import add_policy_commands

    parser = argparse.ArgumentParser(prog="policyloop")
    add_policy_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_show_history_and_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "archive.json"
    path.write_bytes(build().to_json())
    base = ["policy", "--archive", str(path)]

    assert run_cli([*base, "show"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["version"] == "v5" and shown["status"] == "active"
    assert shown["policy"]["version"] == "v5" and shown["parent"] == "v3"
    assert run_cli([*base, "show", "--version", "v2"]) == 0
    assert orjson.loads(capsys.readouterr().out)["gate"]["reasons"] == ["x"]

    assert run_cli([*base, "history"]) == 0
    history = capsys.readouterr().out
    assert "active: v5" in history and "rolled_back" in history and "run-4" in history
    assert "realised_pnl: worse" in history

    assert run_cli([*base, "rollback", "v1", "--reason", "ops"]) == 0
    update = orjson.loads(capsys.readouterr().out)
    assert update["action"] == "rolled_back" and update["version"] == "v1"
    assert update["previous_version"] == "v5" and update["reason"] == "manual_rollback: ops"
    assert update["promoted_at"] == "2024-01-06T00:00:00Z"  # the archive's latest event time
    saved = PolicyArchive.from_json(path.read_bytes())
    assert saved.active_version == "v1" and saved.get("v5").status == "rolled_back"

    assert run_cli([*base, "rollback", "v2", "--at", "2024-02-01T00:00:00Z"]) == 1
    assert "never active" in capsys.readouterr().err
    assert run_cli(["policy", "--archive", str(tmp_path / "none.json"), "show"]) == 2


def test_feedback_markdown() -> None:
    from models.outputs import FeedbackSummary, Gate, PolicyVersions, TimeWindow
    from models.taxonomy import GateDecision
    from streams.policy_cli import feedback_markdown

    summary = FeedbackSummary(
        run_id="run-x",
        window=TimeWindow(start=T0, end=T0 + DAY),
        drift={"a": 1},
        stats={"feature_importance": {"f": {"r": 0.12345, "sign_agreement": 1.0, "stable": True}}},
        gate=Gate(decision=GateDecision.FAIL, reasons=["turnover: 2 > 1"], tests={}),
        promotion=Promotion.KEPT_LAST_GOOD,
        policy_versions=PolicyVersions(champion="v0", candidate="v1", active="v0"),
    )
    text = feedback_markdown(summary)
    assert "# Feedback run run-x" in text and "kept_last_good" in text
    assert "turnover: 2 > 1" in text and "| f | 0.1235 | 1 | True |" in text
