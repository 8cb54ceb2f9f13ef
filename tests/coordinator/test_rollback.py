"""Going back to a kept version: by the owner (`rollback --to`), and to repair damaged state.

The run replays from there deterministically, so it ends bitwise where it would have.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Table

from coordinator.cli import EXIT_RUN_HELD, main
from coordinator.loop import Coordinator
from core.store import RunLock
from core.store.schema import model_versions, optimizer_states
from tests.coordinator.harness import (
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
)
from tests.coordinator.simulate import LocalWorker, run_to
from tests.coordinator.test_damage import flip_byte
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))


@pytest.fixture(params=["sqlite", "postgresql"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> TinyRun:
    if request.param == "sqlite":
        return make_tiny_run(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return make_tiny_run(tmp_path, server.database_url(request.getfixturevalue("pg_database")))


def test_the_owner_rolls_back_and_the_run_replays_bitwise(
    run: TinyRun, capsys: pytest.CaptureFixture[str]
) -> None:
    store = run.store()
    worker = LocalWorker(run, store, "w")
    coordinator = Coordinator(store)
    run_to(coordinator, [worker], 4)
    coordinator.store.tidy()  # retention as in a serving coordinator
    assert main(["rollback", "--to", "2", "--db", run.url]) == 0
    said = capsys.readouterr().out
    assert said.startswith("rolled back from version 4 to version 2")
    assert store.get_run().version == 2
    assert max(v.version for v in store.versions()) == 2
    assert [m.version for m in store.metrics()] == [0, 1]
    resumed = Coordinator(store)
    run_to(resumed, [worker], 5)
    assert_bitwise_equal(published_params(store, 5), reference_params(run, 5))
    assert any(e.kind == "rollback" for e in store.events(100))
    store.dispose()


def test_rollback_refuses_a_version_without_a_full_state(
    run: TinyRun, capsys: pytest.CaptureFixture[str]
) -> None:
    store = run.store()
    coordinator = Coordinator(store)
    run_to(coordinator, [LocalWorker(run, store, "w")], 5)
    # Its watchdog's check in flight (PostgreSQL) would log the rollback's takeover to stderr.
    coordinator.watchdog.stop()
    if coordinator.watchdog._thread is not None:
        coordinator.watchdog._thread.join(30)
    store.tidy()
    assert main(["rollback", "--to", "1", "--db", run.url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "version 1 has no full state" in err[0]
    assert "versions you can roll back to: 5, 4, 3, 0" in err[0]
    assert store.get_run().version == 5
    store.dispose()


def test_rollback_is_refused_while_a_coordinator_serves(
    run: TinyRun, capsys: pytest.CaptureFixture[str]
) -> None:
    store = run.store()
    lock = RunLock(store.engine)
    Coordinator(store, lock=lock)
    try:
        assert main(["rollback", "--to", "0", "--db", run.url]) == EXIT_RUN_HELD
    finally:
        lock.release()
    assert "another coordinator serves this run" in capsys.readouterr().err
    store.dispose()


@pytest.mark.parametrize(
    ("table", "blob"),
    [(model_versions, "weights"), (optimizer_states, "state")],
    ids=["weights", "optimizer-state"],
)
def test_damaged_latest_state_is_rebuilt_from_a_kept_version(
    run: TinyRun, table: Table, blob: str
) -> None:
    store = run.store()
    worker = LocalWorker(run, store, "w")
    run_to(Coordinator(store), [worker], 3)
    flip_byte(store, table, blob, "version", 3)
    restarted = Coordinator(store)  # finds the damage, goes back to version 2, replays
    assert restarted.version == 2
    run_to(restarted, [worker], 4)
    assert_bitwise_equal(published_params(store, 4), reference_params(run, 4))
    (event,) = [e for e in store.events(100) if e.kind == "rollback"]
    assert "repairing damage" in event.message and "fails its sha256 check" in event.message
    store.dispose()
