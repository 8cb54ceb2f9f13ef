"""On SQLite, transactions that only read take no write lock, and a coordinator pass with
nothing to write takes none either: a write that holds the lock (another worker's upload,
the coordinator's close) never holds the workers' reads or an idle pass off."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.store import StoreError, engine, open_store

from .factories import create_test_run

LOCK_HELD_S = 3.0  # how long the other writer holds the lock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "run.db"
    made = open_store(f"sqlite:///{path}", create=True)
    create_test_run(made, units=2)
    made.dispose()
    return path


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process's writer holding the database's write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def seconds_taken(call: Callable[[], object]) -> float:
    """How long `call` took; LOCK_HELD_S or more when it waited for the lock to be let go."""
    started = time.monotonic()
    done = threading.Thread(target=call)
    done.start()
    done.join(LOCK_HELD_S * 2)
    return time.monotonic() - started


def test_reads_do_not_wait_for_a_writer(path: Path) -> None:
    store = open_store(f"sqlite:///{path}")
    store.get_run()  # connected and migrated-checked before the lock is taken
    with write_lock_held(path):
        assert seconds_taken(store.get_run) < 1.0
        assert seconds_taken(lambda: store.version_weights(0)) < 1.0
        assert seconds_taken(store.shard_index) < 1.0
        assert seconds_taken(store.workers) < 1.0


def test_a_write_still_waits_for_the_writer(path: Path) -> None:
    """The check above can fail: a write in the same situation waits until the lock is free."""
    store = open_store(f"sqlite:///{path}")
    store.get_run()
    lock_gone = threading.Event()

    def hold() -> None:
        with write_lock_held(path):
            lock_gone.wait(LOCK_HELD_S)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)  # the holder has the lock
    threading.Timer(LOCK_HELD_S / 2, lock_gone.set).start()
    assert seconds_taken(lambda: store.add_event("note", "written")) >= LOCK_HELD_S / 2 - 0.1
    holder.join()


def test_an_idle_coordinator_pass_takes_no_write_lock(path: Path) -> None:
    coordinator = open_store(f"sqlite:///{path}").take_run()
    coordinator.expire_leases()  # publishes its clock: the next second's passes write nothing
    with write_lock_held(path):
        assert seconds_taken(coordinator.expire_leases) < 1.0


def test_a_pass_with_a_lease_to_stamp_writes_it(path: Path) -> None:
    url = f"sqlite:///{path}"
    worker, coordinator = open_store(url), open_store(url).take_run()
    coordinator.expire_leases()
    lease = worker.claim(worker.register_worker("w", "host", "cpu"))
    assert lease is not None
    coordinator.expire_leases()  # within the clock's second: only the new lease makes it write
    (unit,) = [u for u in coordinator.version_units(0) if u.id == lease.unit_id]
    assert unit.lease_expires_at is not None


def test_a_writer_that_never_gets_the_lock_fails_with_a_store_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    store = open_store(f"sqlite:///{path}")
    store.get_run()
    with write_lock_held(path):
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            store.add_event("note", "written")
        assert 0.3 <= time.monotonic() - started < 5
    assert "stayed locked by another process" in str(raised.value)
    store.add_event("note", "written")  # the lock is free: it works again
