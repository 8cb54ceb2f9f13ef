"""An idle worker on PostgreSQL waits for the announcement of work instead of polling for it.

PostgreSQL announces every publish, release and expiry (NOTIFY), which ends a worker's wait at
once, so at start-up and after a unit a worker's polls start at `IDLE_POLL_ANNOUNCED_S`: a
class of volunteers waiting for a version's last results no longer sends the server a stream
of empty claims. The announcement still brings the worker at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from core.cache import ShardCache
from core.store import Lease, Store, make_engine
from core.worker import WorkerEngine, WorkerOptions
from tests.coordinator.harness import wait_for
from tests.coordinator.test_pg_parity import make_tiny_pg_run
from tests.postgres import ENDS_SESSIONS, PostgresServer

pytestmark = [pytest.mark.integration, *ENDS_SESSIONS]

IDLE_S = 1.5  # how long the worker waits for work before the test releases a unit


class CountingStore(Store):
    """A store that records when each claim returned and whether it brought a unit."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.claims: list[tuple[float, bool]] = []

    def claim(self, worker_id: int) -> Lease | None:
        lease = super().claim(worker_id)
        self.claims.append((time.monotonic(), lease is not None))
        return lease


def test_an_idle_worker_waits_for_the_announcement_and_comes_at_once(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    run = make_tiny_pg_run(tmp_path, postgres_server, pg_database, num_workunits_per_update=2)
    other = Store(make_engine(run.url))
    store = CountingStore(make_engine(run.url))
    options = WorkerOptions("idle", "h", torch.device("cpu"), threads=1, max_units=2)
    engine = WorkerEngine(lambda: store, ShardCache(tmp_path / "shards"), options)
    try:
        held = other.claim(other.register_worker("other", "h", "cpu"))  # unit 0, held back
        assert held is not None
        thread = threading.Thread(target=engine.run, daemon=True)
        thread.start()
        wait_for(lambda: store.new_results(10), timeout_s=60.0)  # its first unit is in
        time.sleep(IDLE_S)
        released_at = time.monotonic()
        other.release(held)  # NOTIFY: the held unit can be claimed
        thread.join(60.0)
        assert not thread.is_alive() and engine.units_done == 2
    finally:
        engine.stop()
        other.dispose()
        store.dispose()
    empty = [at for at, got in store.claims if not got and at < released_at]
    # A claim during or right after the unit, then polls 0.5 s and 1.25 s after it (one more,
    # 2.4 s after it, if the upload was slow to land); polling from 50 ms
    # (worker.IDLE_POLL_MIN_S, as on SQLite), there would be seven or more.
    assert 1 <= len(empty) <= 4, empty
    taken = next(at for at, got in store.claims if got and at >= released_at)
    # Woken by the announcement: its next poll was due ~0.9 s after the release.
    assert taken - released_at < 0.6


def test_a_worker_that_starts_with_no_work_waits_for_the_announcement_too(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    run = make_tiny_pg_run(tmp_path, postgres_server, pg_database, num_workunits_per_update=2)
    other = Store(make_engine(run.url))
    store = CountingStore(make_engine(run.url))
    options = WorkerOptions("late", "h", torch.device("cpu"), threads=1, max_units=1)
    engine = WorkerEngine(lambda: store, ShardCache(tmp_path / "shards"), options)
    try:
        other_id = other.register_worker("other", "h", "cpu")
        held = [other.claim(other_id), other.claim(other_id)]  # every unit of the version
        assert all(lease is not None for lease in held)
        thread = threading.Thread(target=engine.run, daemon=True)
        thread.start()
        wait_for(lambda: bool(store.claims), timeout_s=60.0)  # connected, and found nothing
        time.sleep(IDLE_S)
        released_at = time.monotonic()
        other.release(held[0])  # type: ignore[arg-type]
        thread.join(60.0)
        assert not thread.is_alive() and engine.units_done == 1
    finally:
        engine.stop()
        other.dispose()
        store.dispose()
    empty = [at for at, got in store.claims if not got and at < released_at]
    # At the start, then 0.5 s and 1.25 s after it; from 50 ms there would be seven.
    assert 1 <= len(empty) <= 3, [round(at - empty[0], 2) for at in empty]
    taken = next(at for at, got in store.claims if got and at >= released_at)
    assert taken - released_at < 0.6
