"""The Faust app of ``policyloop worker``: where its data goes (built, never started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings
from streams.worker.app import WorkerService, build_app, faust_datadir


async def test_faust_app_data_goes_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    data_dir = tmp_path / "state" / "not-yet-there"
    settings = Settings(data_dir=data_dir, topic_prefix="prod.", consumer_group="pl")
    app = build_app(WorkerService(settings))
    assert Path(app.conf.datadir) == data_dir / "prod.pl-app" == faust_datadir(settings)
    assert Path(app.conf.appdir).is_relative_to(data_dir)
    assert Path(app.conf.tabledir).is_relative_to(data_dir)
    await app.on_first_start()  # where Faust creates its directories
    assert Path(app.conf.tabledir).is_dir()
    assert list(workdir.iterdir()) == []


def test_a_data_dir_with_braces_is_taken_literally(tmp_path: Path) -> None:
    """Faust formats its datadir with ``str.format``; the path must come through unchanged."""
    data_dir = tmp_path / "odd{conf}name{"
    app = build_app(WorkerService(Settings(data_dir=data_dir)))
    assert Path(app.conf.datadir) == data_dir / "policyloop-app"
