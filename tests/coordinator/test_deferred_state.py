"""A new version's optimizer state is written after the version is published, once workers
have had STATE_WRITE_AFTER_S to claim its units, and at the latest before the next close or
when the loop finishes (coordinator/optimizer_state.py). What a kill in between leaves is rebuilt from the
closed version's results: tests/coordinator/test_parity.py, test_coordinator_killed_mid_close."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from coordinator import optimizer_state
from coordinator.loop import Coordinator
from tests.coordinator.harness import make_tiny_run
from tests.coordinator.simulate import LocalWorker


def _close_one(coordinator: Coordinator, worker: LocalWorker) -> None:
    closed = coordinator.version
    while coordinator.version == closed:
        worker.work_one()
        coordinator.step()


def test_the_state_waits_for_the_claims_then_the_next_close_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optimizer_state, "STATE_WRITE_AFTER_S", 3600.0)  # no pass writes it
    run = make_tiny_run(tmp_path)
    coordinator = Coordinator(run.store())
    worker = LocalWorker(run, run.store(), "w")
    store = run.store()
    _close_one(coordinator, worker)
    coordinator.step()
    assert (coordinator.version, store.newest_optimizer_state()[0]) == (1, 0)
    _close_one(coordinator, worker)  # written before the close publishes version 2
    assert (coordinator.version, store.newest_optimizer_state()[0]) == (2, 1)
    coordinator.finish()
    assert store.newest_optimizer_state()[0] == 2


def test_a_pass_writes_the_state_once_its_time_has_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optimizer_state, "STATE_WRITE_AFTER_S", 0.2)
    run = make_tiny_run(tmp_path)
    coordinator = Coordinator(run.store())
    worker = LocalWorker(run, run.store(), "w")
    store = run.store()
    _close_one(coordinator, worker)
    published = time.monotonic()
    coordinator.step()
    if time.monotonic() - published < 0.2:
        assert store.newest_optimizer_state()[0] == 0
    time.sleep(0.2)
    coordinator.step()  # an idle pass
    assert store.newest_optimizer_state()[0] == 1
