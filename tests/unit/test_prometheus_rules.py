"""The alerting rules in deploy/prometheus/rules pass ``promtool check rules`` and their unit
tests (``promtool test rules``), and name only metrics the worker serves.

promtool comes from Debian's prometheus package, which ``make test`` installs when missing
(deploy/tools.sh). Where it cannot be had the tests skip, except under ``CI=true``, where a
missing promtool is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from processors.core import metric_names as mn
from streams.worker.stats import WorkerStats

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.test.yml"))


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (make test installs Debian's prometheus package)")
        pytest.skip("promtool is missing: install Debian's prometheus package")
    return found


def test_there_are_rules_and_rule_tests() -> None:
    assert RULES and RULE_TESTS


@pytest.mark.parametrize("rules", RULES, ids=lambda p: p.name)
def test_rules_pass_promtool_check(rules: Path) -> None:
    done = subprocess.run(
        [_promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("tests", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(tests: Path) -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", tests.name],
        cwd=tests.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_name_only_metrics_policyloop_serves() -> None:
    registry = CollectorRegistry()
    WorkerStats(registry)
    served = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in registry.collect()
    }
    served |= {spec.name for spec in mn.CATALOGUE}
    for rules in RULES:
        for name in set(re.findall(r"\bpolicyloop_[a-z_]+", rules.read_text())):
            assert name in served or f"{name}_total" in served, (rules.name, name)
