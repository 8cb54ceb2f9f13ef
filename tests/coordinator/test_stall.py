"""No silent stall: a unit parked on any path lets the version close, and whatever keeps a
version from closing is shown (`status`, the run's alert) with its reason and remedy.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from coordinator import stall
from coordinator.cli import main
from coordinator.loop import Coordinator
from core.store import Store, open_store
from tests.coordinator.harness import TinyRun, make_tiny_run
from tests.coordinator.simulate import LocalWorker
from tests.core.store.factories import FakeClock
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.integration]

LEASE_S = 10.0


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def tiny_run(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, **changes: object
) -> TinyRun:
    url = None
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.database_url(request.getfixturevalue("pg_database"))
    return make_tiny_run(tmp_path, url, **changes)


def steps_until(coordinator: Coordinator, version: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while coordinator.version < version:
        assert time.monotonic() < deadline, f"version {version} never closed (a silent stall)"
        if not coordinator.step():
            time.sleep(0.02)


@pytest.mark.parametrize("path", ["claim", "expiry-pass", "refusal", "backup"])
def test_a_version_closes_without_a_unit_parked_on_any_path(
    backend: str, path: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run = tiny_run(
        backend,
        request,
        tmp_path,
        max_attempts=1,
        lease_s=LEASE_S,
        backup_after_s=5.0 if path == "backup" else 1000.0,
    )
    clock = FakeClock()
    store = open_store(run.url, clock=clock)
    coordinator = Coordinator(store)
    slow, fast = LocalWorker(run, store, "slow"), LocalWorker(run, store, "fast")
    first = slow.claim()  # unit 0: never finished by its worker
    if path == "refusal":
        slow.submit(first, b"not a payload")  # refused: its one attempt is used up
    for _ in range(2):
        fast.submit_honest(fast.claim())
    steps_until(coordinator, 0)
    coordinator.step()  # units 1 and 2 accepted; unit 0 keeps the version open
    if path == "backup":
        clock.advance(6.0)
        backup = fast.claim()  # a backup copy of the straggling unit 0
        assert (backup.unit_index, backup.copy) == (first.unit_index, 1)
    if path != "refusal":
        clock.advance(LEASE_S + 1)
    if path in ("claim", "backup"):
        # The worker's claim returns the expired leases and parks the unit (one attempt).
        assert store.claim(fast.id) is None
        copies = {u.status for u in store.version_units(0) if u.unit_index == 0}
        assert "parked" in copies and copies <= {"parked", "cancelled"}, copies
    steps_until(coordinator, 1)
    (closed,) = store.metrics()
    assert (closed.units, closed.parked_units) == (2, 1)
    store.dispose()


def _alert(store: Store) -> dict[str, object] | None:
    return store.get_run().alert


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stall, "STALL_S", 0.3)
    monkeypatch.setattr(stall, "CHECK_EVERY_S", 0.05)


def _step_for(coordinator: Coordinator, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        coordinator.step()
        time.sleep(0.02)


def test_no_workers_is_shown_with_a_remedy_and_cleared_by_progress(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    quick_checks: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tiny_run(backend, request, tmp_path)
    store = run.store()
    coordinator = Coordinator(store)
    _step_for(coordinator, 0.6)
    alert = _alert(store)
    assert alert is not None and alert["kind"] == "no_workers"
    assert "no worker has been seen" in str(alert["message"])
    assert "start workers" in str(alert["remedy"])
    assert main(["status", "--db", run.url]) == 0
    assert "PROBLEM" in capsys.readouterr().out
    assert any(e.kind == "alert" for e in store.events(20))
    worker = LocalWorker(run, store, "w")
    worker.work_one()
    _step_for(coordinator, 0.2)
    assert _alert(store) is None  # a result was accepted: nothing stops the run now
    store.dispose()


def test_every_result_refused_is_shown(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, quick_checks: None
) -> None:
    run = tiny_run(backend, request, tmp_path, max_attempts=1000)
    store = run.store()
    coordinator = Coordinator(store)
    broken = LocalWorker(run, store, "broken")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        lease = store.claim(broken.id)
        if lease is not None:
            broken.submit(lease, b"garbage")
        coordinator.step()
    alert = _alert(store)
    assert alert is not None and alert["kind"] == "rejected", alert
    assert "every result since was rejected" in str(alert["message"])
    store.dispose()


def test_workers_reporting_damage_are_shown(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, quick_checks: None
) -> None:
    run = tiny_run(backend, request, tmp_path)
    store = run.store()
    coordinator = Coordinator(store)
    worker = LocalWorker(run, store, "w")
    store.touch_worker(worker.id, "error: damaged data (dataset_shards row 3)")
    _step_for(coordinator, 0.6)
    alert = _alert(store)
    assert alert is not None and alert["kind"] == "damage", alert
    assert "dataset_shards row 3" in str(alert["message"])
    store.dispose()
