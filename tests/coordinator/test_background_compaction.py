"""Compaction (PostgreSQL's VACUUM, SQLite's WAL checkpoint) runs beside the coordinator's loop:
closes go on while one runs, at most one runs at a time, and a failed one is logged, not raised
into the loop."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from coordinator import loop
from coordinator.compaction import BackgroundCompaction
from coordinator.loop import Coordinator
from core.store import DatabaseUnavailable, Store
from tests.coordinator.harness import make_tiny_run
from tests.coordinator.simulate import LocalWorker

BLOCKED_S = 30.0  # how long a compaction here blocks unless released


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))


def test_closes_go_on_while_a_compaction_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, release = threading.Event(), threading.Event()
    calls: list[float] = []

    def slow_compaction(self: Store) -> None:
        calls.append(time.monotonic())
        running.set()
        release.wait(BLOCKED_S)

    monkeypatch.setattr(Store, "compact", slow_compaction)
    monkeypatch.setattr(loop, "TIDY_EVERY_S", 0.0)  # tidy after every close
    run = make_tiny_run(tmp_path)
    coordinator = Coordinator(run.store())
    worker = LocalWorker(run, run.store(), "w")
    started = time.monotonic()
    try:
        coordinator.step()  # the first idle pass tidies what an earlier run left
        assert running.wait(10)
        while coordinator.version < 3:  # three closes, each followed by a tidy
            assert time.monotonic() - started < BLOCKED_S / 2, "the loop waited for the compaction"
            worker.work_one()
            coordinator.step()
            coordinator.step()  # an idle pass: tidies
        assert len(calls) == 1  # the first still runs: none started beside it
    finally:
        release.set()
    coordinator._compaction.wait()
    closed = coordinator.version
    while coordinator.version == closed:  # the next close; its tidy compacts again
        worker.work_one()
        coordinator.step()
    coordinator.step()
    assert len(calls) == 2


def test_a_failed_compaction_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def lost() -> None:
        raise DatabaseUnavailable("the database went away")

    compaction = BackgroundCompaction(lost)
    with caplog.at_level(logging.WARNING, logger="coordinator.compaction"):
        assert compaction.start()
        compaction.wait()
    assert "the database went away" in caplog.text
    assert not compaction.running()
    assert compaction.start()  # and the next one starts
    compaction.wait()
