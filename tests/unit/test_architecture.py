"""processors/ and models/ stay pure: no Kafka, Faust or Prometheus, no env, no wall clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = sorted((ROOT / "models").rglob("*.py")) + sorted((ROOT / "processors").rglob("*.py"))
BANNED_MODULES = ("faust", "aiokafka", "prometheus_client", "mode", "kafka")
BANNED_CALLS = {
    ("os", "environ"),
    ("os", "getenv"),
    ("time", "time"),
    ("time", "time_ns"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
            found += [a.name for a in node.names if a.name == "random"]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in BANNED_MODULES or node.module == "random":
                found.append(node.module)
            if node.module == "os" and any(a.name in ("environ", "getenv") for a in node.names):
                found.append("os.environ")
            if node.module == "time" and any(a.name != "struct_time" for a in node.names):
                found.append("from time import ...")
        elif isinstance(node, ast.Attribute):
            owner = node.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (owner_name, node.attr) in BANNED_CALLS:
                found.append(f"{owner_name}.{node.attr}")
    return found


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module(path: Path) -> None:
    assert _violations(path) == []


def test_the_check_itself_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nimport faust\nfrom datetime import datetime\n"
        "x = os.environ['A']\ny = datetime.now()\nimport time\nz = time.time()\n"
    )
    assert set(_violations(bad)) == {"faust", "os.environ", "datetime.now", "time.time"}
