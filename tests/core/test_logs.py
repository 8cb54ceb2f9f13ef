"""configure_logging: console and rotating file, and no duplicate lines when called twice."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.logs import configure_logging
from tests.mounts import fill, small_disk


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """Leave the root logger as the test found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def test_a_second_call_replaces_the_first_calls_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_handlers: None
) -> None:
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path))
    before = len(logging.getLogger().handlers)
    configure_logging("first")
    configure_logging("second")
    logging.getLogger("ganfriends.test").warning("once")
    assert len(logging.getLogger().handlers) == before + 2  # one console, one file
    assert (tmp_path / "second.log").read_text().count("once") == 1
    assert "once" not in (tmp_path / "first.log").read_text()


def test_without_console_only_the_file_gets_the_lines(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_handlers: None,
) -> None:
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path))
    configure_logging("quiet", console=False)
    logging.getLogger("ganfriends.test").warning("to the file")
    assert "to the file" in (tmp_path / "quiet.log").read_text()
    assert "to the file" not in capsys.readouterr().err


@pytest.fixture
def without_pytest_log_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the test's records out of pytest's own log capture: a lone surrogate there goes into
    the test's report, which pytest-xdist cannot send from its worker (strict UTF-8)."""
    for handler in logging.getLogger().handlers:
        if type(handler).__module__ == "_pytest.logging":
            monkeypatch.setattr(handler, "level", logging.CRITICAL + 1)


def test_a_name_that_is_not_utf8_is_logged_safely(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_handlers: None,
    without_pytest_log_capture: None,
) -> None:
    """os.listdir gives undecodable name bytes as lone surrogates; strict UTF-8 cannot write them."""
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path))
    configure_logging("names")
    name = os.fsdecode(b"caf\xe9.png")
    logging.getLogger("ganfriends.test").warning("skipping %s", name)
    assert "skipping caf\\udce9.png" in (tmp_path / "names.log").read_text(encoding="utf-8")
    err = capsys.readouterr().err
    assert "Logging error" not in err and "skipping caf" in err


def test_a_full_disk_under_the_log_file_is_said_once_not_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_disk(tmp_path / "logs", 1) as folder:
        monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(folder))
        configure_logging("full")
        filler = fill(folder)
        for i in range(3):
            logging.getLogger("x").warning("line %d", i)
        err = capsys.readouterr().err
        filler.unlink()  # so that closing the handler can flush
    assert "Traceback" not in err and "Logging error" not in err
    lines = err.splitlines()
    assert lines[0] == "WARNING: line 0"
    assert lines[1].startswith(f"cannot write the log file {folder / 'full.log'} (")
    assert lines[1].endswith("until then lines go only to the console")
    assert lines[2:] == ["WARNING: line 1", "WARNING: line 2"]
