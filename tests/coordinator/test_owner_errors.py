"""Failures outside the program (a full disk, an unwritable path, a read-only or someone else's
database file) reach the owner as one line with a remedy, never as a traceback."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator import cli
from tests.coordinator.harness import TinyRun, make_tiny_run
from tests.coordinator.test_cli import one_line_error, succeeds
from tests.mounts import fill, make_read_only, small_disk

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def quiet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Logs and caches under tmp_path; no database from the environment; handlers removed."""
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFRIENDS_DB", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def tiny_run(tmp_path: Path) -> TinyRun:
    return make_tiny_run(tmp_path)


# export and samples to a path that cannot be written -------------------------------------------


@pytest.mark.parametrize("command", ["export", "samples"])
def test_writing_under_a_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, tmp_path: Path, command: str
) -> None:
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "out"
    line = one_line_error(capsys, cli.main, [command, "--db", tiny_run.url, "--out", str(out)])
    assert line.startswith(f"ganfriends-coordinator {command}: cannot write {out}: ")
    assert line.endswith("give a path in a folder you can write to")


@pytest.mark.parametrize("command", ["export", "samples"])
def test_writing_to_a_read_only_filesystem_is_one_line(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, tmp_path: Path, command: str
) -> None:
    with small_disk(tmp_path / "ro", 1) as folder:
        make_read_only(folder)
        out = folder / "out"
        argv = [command, "--db", tiny_run.url, "--out", str(out)]
        line = one_line_error(capsys, cli.main, argv)
    assert line == (
        f"ganfriends-coordinator {command}: cannot write {out}: Read-only file system; "
        "give a path in a folder you can write to"
    )


def test_export_to_a_full_disk_says_to_free_space(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "full", 1) as folder:
        fill(folder)
        out = folder / "m.safetensors"
        line = one_line_error(capsys, cli.main, ["export", "--db", tiny_run.url, "--out", str(out)])
        assert not (folder / "m.safetensors.tmp").exists()
    assert line == (
        f"ganfriends-coordinator export: cannot write {out}: No space left on device; "
        f"free space on {folder}"
    )
