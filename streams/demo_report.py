"""The demo's readable sections: audits and drift against the simulator's ground truth, and
the performance tables. Reads only the replay output directory and the truth file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

Say = Callable[[str], None]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def _ids(items: list[Any]) -> set[str]:
    return {item if isinstance(item, str) else str(item["event_id"]) for item in items}


def _alerted(alerts: list[dict[str, Any]], kind: str) -> set[str]:
    return {str(a["evidence"].get("decision_event_id")) for a in alerts if a["kind"] == kind}


def audits_vs_truth(alerts: list[dict[str, Any]], truth: dict[str, Any], say: Say) -> None:
    """Injected audit cases against the alerts that name them."""
    say("Audits against the injected ground truth     injected  alerted  matched")
    checks = (
        ("stand-down violations", truth["stand_down_violations"], "stand_down_violation"),
        ("stand-down omitted (data quality)", truth["stand_down_data_quality"], "data_quality"),
        ("emergency-exit violations", truth["emergency_violations"], "emergency_exit_violation"),
    )
    for label, injected, kind in checks:
        expected = _ids(injected)
        got = _alerted(alerts, kind)
        if kind == "data_quality":
            got &= expected | {g for g in got if g.startswith("d-")}
        say(f"  {label:<40} {len(expected):>8}  {len(got):>7}  {len(expected & got):>7}")


def replans_vs_truth(verdicts: list[dict[str, Any]], truth: dict[str, Any], say: Say) -> None:
    expected = {p["event_id"]: p["verdict"] for p in truth["plans"]}
    agree = sum(1 for v in verdicts if expected.get(v["event_id"]) == v["verdict"])
    say(f"  replan verdicts matching the truth: {agree} of {len(verdicts)}")


def _hours(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 3600


def drift_vs_truth(alerts: list[dict[str, Any]], truth: dict[str, Any], say: Say) -> None:
    """For each injected drift, the first matching alert after it and the delay."""
    say("Drift injected -> first alert after it (event time)")
    cases = [
        ("covariate", d, "covariate_drift", d.get("feature")) for d in truth["covariate_drifts"]
    ]
    cases += [("concept", d, "concept_drift", None) for d in truth["concept_drifts"]]
    cases += [("calibration", d, "calibration_drift", None) for d in truth["calibration_drifts"]]
    for label, drift, kind, feature in cases:
        start = str(drift["ts"]).replace("Z", "+00:00")
        matches = sorted(
            a["event_time"]
            for a in alerts
            if a["kind"] in (kind, "concept_drift", "calibration_drift")
            and (kind == "covariate_drift") == (a["kind"] == "covariate_drift")
            and a["scope"].get("strategy_id") == drift["strategy_id"]
            and (feature is None or a["scope"].get("feature") == feature)
            and (
                drift.get("classification") is None
                or a["scope"].get("classification") == drift["classification"]
            )
            and a["event_time"].replace("Z", "+00:00") >= start
        )
        where = f"{drift['strategy_id']}|{drift.get('classification') or feature}"
        if matches:
            delay = _hours(start, matches[0].replace("Z", "+00:00"))
            say(
                f"  {label:<12} {where:<24} at {drift['ts']}: first alert {matches[0]} "
                f"(+{delay:.1f} h)"
            )
        else:
            say(f"  {label:<12} {where:<24} at {drift['ts']}: not alerted")


def performance_table(rows: list[dict[str, Any]], say: Say) -> None:
    """Window `all`, strategy x classification."""
    say("Performance (window all, by classification)  trades  win%   total_ret  sharpe  max_dd")
    for row in rows:
        if row["window"] != "all" or row["group_by"] != "classification":
            continue
        sharpe = "   -  " if row["sharpe"] is None else f"{row['sharpe']:6.2f}"
        say(
            f"  {row['strategy_id']:<10} {row['group']:<32} {row['trade_count']:>6}  "
            f"{100 * row['win_rate']:4.0f}  {row['total_return']:10.4f}  {sharpe}  "
            f"{row['max_drawdown']:8.1f}"
        )


def policy_loop_section(
    candidates: list[dict[str, Any]], updates: list[dict[str, Any]], say: Say
) -> None:
    """Loop runs, promotions and rejections with their reasons."""
    promoted = [c for c in candidates if c["status"] == "promoted"]
    rejected = [c for c in candidates if c["status"] == "rejected"]
    say(
        f"Policy loop: {len(candidates)} candidates, {len(promoted)} promoted, "
        f"{len(rejected)} rejected, {len(updates)} policy updates"
    )
    for update in updates:
        say(
            f"  {update['promoted_at']}  {update.get('action', 'promoted'):<12} "
            f"{update['previous_version']} -> {update['version']}"
            + (f"  ({update['reason']})" if update.get("reason") else "")
        )
    if promoted:
        first = promoted[0]
        say(f"  e.g. promoted {first['version']} (run {first['candidate_id']}): gate PASS")
        for name in ("changes",):
            for change in (first["evidence"].get(name) or [])[:6]:
                say(
                    f"      {change.get('field')} {change.get('key')}: "
                    f"{change.get('old')} -> {change.get('new')}"
                )
    if rejected:
        last = rejected[-1]
        say(f"  e.g. rejected {last['version']} (run {last['candidate_id']}): gate FAIL")
        for reason in last["gate"]["reasons"][:6]:
            say(f"      - {reason}")
