"""Exactly-once on PostgreSQL: 32 concurrent workers (threads, one connection pool each).

Mirrors test_exactly_once.py (8 processes on SQLite). Every designated unit gets exactly one
accepted result and no unit copy is ever handed out twice. The same run with the real claim
statement minus its row lock (no FOR UPDATE SKIP LOCKED) must break that, which proves the
check can fail.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from core.store import (
    AlreadySubmitted,
    DatabaseUnavailable,
    LeaseLost,
    RunPaused,
    Store,
    make_engine,
    open_store,
)
from core.store.queue import claim_statement
from tests.postgres import PostgresServer

from .factories import (
    METRICS,
    Tally,
    add_finished_units,
    coordinate,
    create_queue_run,
    create_test_run,
)

WORKERS = 32
DEADLINE_S = 90.0  # nothing in this test may run longer
IDLE_WAIT_S = 1.0  # idle wait; NOTIFY (a closed version) ends it sooner


class NoRowLockStore(Store):
    """The real claim statement without its row lock: PostgreSQL gets SQLite's statement.

    Two claims read the same first pending id; the second waits for the first's row lock and
    then, its WHERE being `id = <that id>`, updates the row again: one unit, two holders.
    """

    @property
    def dialect(self) -> str:
        return "sqlite"


@dataclass
class Outcome:
    tally: Tally = field(default_factory=Tally)  # what the coordinator accepted
    claims: list[tuple[int, int]] = field(default_factory=list)  # (unit id, worker id)
    refused: int = 0
    errors: list[BaseException] = field(default_factory=list)


def worker_thread(
    store: Store, outcome: Outcome, lock: threading.Lock, stop: threading.Event
) -> None:
    """Claim → submit until stopped; catches no database error (a crash is a failure)."""
    try:
        worker_id = store.register_worker(threading.current_thread().name, "test", "cpu")
        while not stop.is_set():
            try:
                lease = store.claim(worker_id)
            except RunPaused:
                return
            if lease is None:
                store.wait_for_work(IDLE_WAIT_S)
                continue
            with lock:
                outcome.claims.append((lease.unit_id, worker_id))
            try:
                store.submit(lease, b"r", "fp32", len(lease.sample_indices), METRICS, 0.0)
            except (LeaseLost, AlreadySubmitted):
                with lock:
                    outcome.refused += 1  # only a broken claim gets here
    except Exception as error:  # recorded: the test reports it among the problems
        with lock:
            outcome.errors.append(error)
    finally:
        store.dispose()


def run_queue(url: str, store_class: type[Store], units_per_version: int, total: int) -> Outcome:
    """32 worker threads; this thread resolves every result and closes each full version."""
    coordinator = open_store(url, create=True)
    create_queue_run(coordinator, units_per_version)
    outcome, lock, stop = Outcome(), threading.Lock(), threading.Event()
    threads = [
        threading.Thread(
            target=worker_thread,
            args=(store_class(make_engine(url)), outcome, lock, stop),
            name=f"w{i}",
            daemon=True,
        )
        for i in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while outcome.tally.done < total and time.monotonic() < deadline and not outcome.errors:
            try:
                busy = coordinate(coordinator, outcome.tally, units_per_version)
            except DatabaseUnavailable as error:
                # A deadlock (two holders of one unit lock rows in opposite orders, only
                # with a broken claim) is one more way the run broke: recorded, not raised.
                with lock:
                    outcome.errors.append(error)
                break
            if not busy:
                time.sleep(0.005)
    finally:
        stop.set()
        coordinator.set_status("paused")
        for thread in threads:
            thread.join(30)
        coordinator.dispose()
    return outcome


def held_twice(outcome: Outcome) -> list[int]:
    """Unit copies (ids) handed out more than once."""
    return [unit for unit, n in Counter(c[0] for c in outcome.claims).items() if n > 1]


def problems(outcome: Outcome, units_per_version: int, total: int) -> list[str]:
    """Every way the run broke the exactly-once invariant (empty when it held)."""
    found = [f"a worker or the coordinator crashed: {error!r}" for error in outcome.errors[:3]]
    tally = outcome.tally
    if tally.done < total:
        found.append(f"only {tally.done} of {total} units done in time")
    designated = {(i // units_per_version, i) for i in range(tally.done)}
    if missing := designated - set(tally.accepted):
        found.append(f"{len(missing)} designated units without an accepted result")
    if repeated := [unit for unit, n in tally.accepted.items() if n > 1]:
        found.append(f"units accepted more than once: {repeated[:5]}")
    if twice := held_twice(outcome):
        found.append(f"{len(twice)} unit copies handed out twice, e.g. {twice[:5]}")
    if outcome.refused or tally.crosschecks:
        found.append(f"{outcome.refused} submits refused, {tally.crosschecks} cross-checks")
    return found


@pytest.mark.slow
def test_32_workers_complete_every_unit_exactly_once(
    postgres_server: PostgresServer, pg_database: str
) -> None:
    url = postgres_server.database_url(pg_database)
    outcome = run_queue(url, Store, units_per_version=100, total=2000)
    assert problems(outcome, 100, 2000) == []
    assert len({worker for _, worker in outcome.claims}) > WORKERS // 2  # really shared


@pytest.mark.slow
def test_the_check_catches_a_claim_without_a_row_lock(
    postgres_server: PostgresServer, pg_database: str
) -> None:
    url = postgres_server.database_url(pg_database)
    outcome = run_queue(url, NoRowLockStore, units_per_version=300, total=300)
    assert problems(outcome, 300, 300) != []


def test_claim_reads_the_claim_index_with_100k_finished_units(
    postgres_server: PostgresServer, pg_database: str
) -> None:
    """The contract test times it on both backends; here PostgreSQL's plan names the index."""
    store = open_store(postgres_server.database_url(pg_database), create=True)
    try:
        create_test_run(store, units=3)
        add_finished_units(store, 100_000)
        with store.session() as conn:
            conn.exec_driver_sql("ANALYZE work_units")
        statement = claim_statement("postgresql", 0, 1, "token", 0.0, 60.0).compile(
            dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with store.session() as conn:
            plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}").scalars())
        assert "ix_work_units_claim" in plan, plan
        assert "Seq Scan" not in plan, plan
    finally:
        store.dispose()


def test_concurrent_expiries_return_each_lease_once(
    postgres_server: PostgresServer, pg_database: str
) -> None:
    """Two transactions expiring the same leases at once: each row is returned by one only."""
    url = postgres_server.database_url(pg_database)
    store = open_store(url, create=True)
    # A regression (waiting for the locks) fails after 2 s instead of hanging this thread.
    other = Store(make_engine(url + "?options=-c%20lock_timeout%3D2000"))
    try:
        create_test_run(store, units=3, lease_s=1.0)
        worker = store.register_worker("w", "h", "cpu")
        for _ in range(3):
            assert store.claim(worker) is not None
        time.sleep(1.1)
        with store.session():
            first = store.expire_leases()  # holds its row locks until this block ends
            second = other.expire_leases()  # skips the locked rows instead of waiting
        assert (first, second) == (3, 0)
        events = [e.kind for e in store.events(50)]
        assert events.count("expired") == 3
    finally:
        other.dispose()
        store.dispose()
