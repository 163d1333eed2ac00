"""``policyloop worker``: which options the stages run with (environment, flags, defaults)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import pytest

from streams.cli import build_parser, main, worker_options
from streams.settings import Settings
from streams.worker import app
from streams.worker.runner import RunnerOptions


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``policyloop worker`` with ``run_worker`` replaced: records what it would run with."""
    for name in list(os.environ):
        if name.startswith("POLICYLOOP_"):
            monkeypatch.delenv(name)
    seen: dict[str, Any] = {}

    def fake_run_worker(settings: Any, **kwargs: Any) -> None:
        seen.update(kwargs, settings=settings)

    monkeypatch.setattr(app, "run_worker", fake_run_worker)
    return seen


def test_environment_tuning_is_kept_when_no_flag_is_given(
    captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYLOOP_IDLE_FLUSH_S", "7")
    monkeypatch.setenv("POLICYLOOP_CHECKPOINT_INTERVAL_S", "12.5")
    monkeypatch.setenv("POLICYLOOP_PIPELINE_BATCH_RECORDS", "800")
    assert main(["worker"]) == 0
    options = captured["options"]
    assert options.idle_flush_s == 7.0
    assert options.checkpoint_interval_s == 12.5
    assert options.max_records == 800


def test_a_flag_overrides_the_environment(
    captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYLOOP_IDLE_FLUSH_S", "7")
    assert main(["worker", "--idle-flush", "1.5"]) == 0
    assert captured["options"].idle_flush_s == 1.5


def test_defaults_when_neither_flag_nor_environment_sets_them(captured: dict[str, Any]) -> None:
    assert main(["worker"]) == 0
    assert captured["options"] == RunnerOptions()
    assert captured["roles"] == ("sequencer", "pipeline")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], (12.5, 7.0, 800)),
        (["--idle-flush", "1.5"], (12.5, 1.5, 800)),
        (["--checkpoint-interval", "0.5", "--max-records", "300"], (0.5, 7.0, 300)),
    ],
)
def test_worker_options_take_a_flag_only_when_given(
    flags: list[str], expected: tuple[float, float, int]
) -> None:
    settings = Settings.from_env(
        {
            "POLICYLOOP_CHECKPOINT_INTERVAL_S": "12.5",
            "POLICYLOOP_IDLE_FLUSH_S": "7",
            "POLICYLOOP_PIPELINE_BATCH_RECORDS": "800",
            "POLICYLOOP_WATERMARK_LATENESS_MS": "60000",
        }
    )
    options = worker_options(build_parser().parse_args(["worker", *flags]), settings)
    assert (options.checkpoint_interval_s, options.idle_flush_s, options.max_records) == expected
    assert options.allowed_lateness_ms == 60_000


def test_an_out_of_range_flag_is_a_usage_error(
    captured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--idle-flush", "0"]) == 2
    assert "IDLE_FLUSH_S" in capsys.readouterr().err
    assert captured == {}


def test_every_worker_option_has_help_and_the_help_lists_the_settings() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    worker = commands.choices["worker"]
    for action in worker._actions:
        assert action.help and action.help != argparse.SUPPRESS, action.dest
    text = worker.format_help()
    for name in Settings.model_fields:
        assert f"POLICYLOOP_{name.upper()} " in text
