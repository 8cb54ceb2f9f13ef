"""configure_logging: console and rotating file, and no duplicate lines when called twice."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.logs import configure_logging


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
