"""Wake-ups for idle workers: `wait_for_work` ends early when units become claimable.

A hint; workers still poll. On PostgreSQL a version close, a release, an expiry or a resume
sends NOTIFY; on an SQLite file the waiter sees the commit (change counter) and a pending unit.
Either way the wait ends within milliseconds, writes that leave nothing to claim do not end it,
and `interrupt_wait` ends it from another thread. A lost LISTEN connection is reopened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from core.store import Store, make_engine, notify, open_store
from tests.postgres import ENDS_SESSIONS, PostgresServer

from .factories import FakeClock, close, create_test_run

pytestmark = ENDS_SESSIONS

WAIT_S = 10.0  # a wait that only a wake-up can end in time
PROMPT_S = 2.0  # a wake-up ends the wait well within this (typically milliseconds)


@pytest.fixture
def pg_pair(postgres_server: PostgresServer, pg_database: str) -> Iterator[tuple[Store, Store]]:
    """(a worker's store, the coordinator's store) on one fresh PostgreSQL run."""
    yield from _pair(postgres_server.database_url(pg_database))


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[Store, Store]]:
    """(a worker's store, the coordinator's store) on one fresh run, on each backend."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_pair")
    else:
        yield from _pair(f"sqlite:///{tmp_path / 'run.db'}")


def _pair(url: str) -> Iterator[tuple[Store, Store]]:
    coordinator = open_store(url, create=True, clock=FakeClock())
    create_test_run(coordinator, units=3)
    worker = Store(make_engine(url), clock=coordinator.clock)
    yield worker, coordinator
    worker.dispose()
    coordinator.dispose()


def timed_wait(store: Store, action: Callable[[], object], timeout_s: float = WAIT_S) -> float:
    """Seconds `wait_for_work` lasted while another thread ran `action` 0.2 s into it.

    The store's LISTEN connection is opened by a first, short wait, so that the action cannot
    happen before anybody listens.
    """
    store.wait_for_work(0.01)
    timer = threading.Timer(0.2, action)
    started = time.monotonic()
    timer.start()
    try:
        notified = store.wait_for_work(timeout_s)
    finally:
        timer.join()
    elapsed = time.monotonic() - started
    assert notified or elapsed < PROMPT_S, "the wait was neither notified nor interrupted"
    return elapsed


def test_a_closed_version_wakes_waiting_workers(pair: tuple[Store, Store]) -> None:
    worker, coordinator = pair
    assert timed_wait(worker, lambda: close(coordinator, 0)) < PROMPT_S


def test_a_released_lease_wakes_waiting_workers(pair: tuple[Store, Store]) -> None:
    worker, coordinator = pair
    worker_id = coordinator.register_worker("w", "h", "cpu")
    lease = coordinator.claim(worker_id)
    assert lease is not None
    assert timed_wait(worker, lambda: coordinator.release(lease)) < PROMPT_S


def test_an_expired_lease_wakes_waiting_workers(pair: tuple[Store, Store]) -> None:
    worker, coordinator = pair
    worker_id = coordinator.register_worker("w", "h", "cpu")
    assert coordinator.claim(worker_id) is not None
    clock = coordinator.clock
    assert isinstance(clock, FakeClock)
    clock.advance(3600)

    def expire() -> None:
        assert coordinator.expire_leases() == 1

    assert timed_wait(worker, expire) < PROMPT_S


def test_resuming_the_run_wakes_waiting_workers(pair: tuple[Store, Store]) -> None:
    worker, coordinator = pair
    coordinator.set_status("paused")
    assert timed_wait(worker, lambda: coordinator.set_status("active")) < PROMPT_S


def test_without_announcements_the_wait_lasts_its_timeout(pair: tuple[Store, Store]) -> None:
    worker, coordinator = pair
    worker_id = coordinator.register_worker("w", "h", "cpu")
    while coordinator.claim(worker_id) is not None:  # nothing left to claim
        pass
    worker.wait_for_work(0.01)  # watching / listening from here on
    coordinator.add_event("note", "not work")  # writes that leave nothing to claim
    started = time.monotonic()
    assert worker.wait_for_work(0.3) is False
    assert 0.25 < time.monotonic() - started < PROMPT_S


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_interrupt_ends_a_wait_from_another_thread(
    backend: str, request: pytest.FixtureRequest, tmp_path
) -> None:
    if backend == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'run.db'}", create=True)
    else:
        store = request.getfixturevalue("pg_pair")[0]
    try:
        elapsed = timed_wait(store, store.interrupt_wait)
        assert elapsed < PROMPT_S
        store.interrupt_wait()  # before a wait: that wait returns at once
        started = time.monotonic()
        assert store.wait_for_work(WAIT_S) is False
        assert time.monotonic() - started < PROMPT_S
    finally:
        store.dispose()


def test_sqlite_without_a_run_waits_its_timeout(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'run.db'}", create=True)
    try:
        started = time.monotonic()
        assert store.wait_for_work(0.2) is False
        assert 0.15 < time.monotonic() - started < PROMPT_S
    finally:
        store.dispose()


def test_listening_resumes_after_the_session_is_terminated(
    pg_pair: tuple[Store, Store], postgres_server: PostgresServer, pg_database: str
) -> None:
    worker, coordinator = pg_pair
    worker.wait_for_work(0.01)  # LISTENing now
    assert postgres_server.terminate_sessions(pg_database) >= 1
    worker.wait_for_work(0.5)  # sees the loss and listens again on a new connection
    assert timed_wait(worker, lambda: close(coordinator, 0)) < PROMPT_S


def test_a_flood_of_notifications_wakes_a_worker_at_most_twice_a_second(
    pg_pair: tuple[Store, Store], postgres_server: PostgresServer, pg_database: str
) -> None:
    """Any login may NOTIFY: a flood must not turn waiting workers into a claim loop."""
    worker, _ = pg_pair
    worker.wait_for_work(0.01)  # listening
    stop = threading.Event()

    def flood() -> None:
        conn = postgres_server.connect(pg_database)
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("NOTIFY ganfriends_work")
        finally:
            conn.close()

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        wakes, started = 0, time.monotonic()
        while time.monotonic() - started < 2.0:
            assert worker.wait_for_work(WAIT_S)  # each wait is ended by the flood
            wakes += 1
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    assert 2 <= wakes <= elapsed / notify.NOTIFIED_GAP_S + 1, wakes
