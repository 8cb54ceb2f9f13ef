"""An idle worker on PostgreSQL waits for the announcement of work instead of polling for it.

PostgreSQL announces every publish, release and expiry (NOTIFY), which ends a worker's wait at
once, so at start-up and after a unit a worker's polls start at `IDLE_POLL_ANNOUNCED_S`: a
class of volunteers waiting for a version's last results no longer sends the server a stream
of empty claims. The announcement still brings the worker at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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


def idle_until_released(
    tmp_path: Path,
    server: PostgresServer,
    database: str,
    *,
    held: int,
    units: int,
    idle_from: Callable[[CountingStore], object],
) -> tuple[list[float], float]:
    """A worker computes `units` units of a 2-unit version while another worker holds `held`
    of them; IDLE_S after `idle_from(store)` first holds, the first held unit is released.
    Returns when each empty claim before the release came, and how long after the release the
    worker had the released unit."""
    run = make_tiny_pg_run(tmp_path, server, database, num_workunits_per_update=2)
    other = Store(make_engine(run.url))
    store = CountingStore(make_engine(run.url))
    options = WorkerOptions("idle", "h", torch.device("cpu"), threads=1, max_units=units)
    engine = WorkerEngine(lambda: store, ShardCache(tmp_path / "shards"), options)
    try:
        other_id = other.register_worker("other", "h", "cpu")
        leases = [other.claim(other_id) for _ in range(held)]
        assert all(lease is not None for lease in leases)
        thread = threading.Thread(target=engine.run, daemon=True)
        thread.start()
        wait_for(lambda: idle_from(store), timeout_s=60.0)
        time.sleep(IDLE_S)
        released_at = time.monotonic()
        other.release(leases[0])  # type: ignore[arg-type]  # NOTIFY: it can be claimed
        thread.join(60.0)
        assert not thread.is_alive() and engine.units_done == units
    finally:
        engine.stop()
        other.dispose()
        store.dispose()
    empty = [at for at, got in store.claims if not got and at < released_at]
    taken = next(at for at, got in store.claims if got and at >= released_at)
    return empty, taken - released_at


def first_unit_in(store: CountingStore) -> object:
    return store.new_results(10)


def claimed_in_vain(store: CountingStore) -> object:
    return store.claims


def test_an_idle_worker_waits_for_the_announcement_and_comes_at_once(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    # Unit 0 is held back; the worker goes idle once its first unit is in.
    where = (tmp_path, postgres_server, pg_database)
    empty, woken_s = idle_until_released(*where, held=1, units=2, idle_from=first_unit_in)
    # A claim during or right after the unit, then polls 0.5 s and 1.25 s after it (one more,
    # 2.4 s after it, if the upload was slow to land); polling from 50 ms
    # (worker.IDLE_POLL_MIN_S, as on SQLite), there would be seven or more.
    assert 1 <= len(empty) <= 4, empty
    # Woken by the announcement: its next poll was due ~0.9 s after the release.
    assert woken_s < 0.6


def test_a_worker_that_starts_with_no_work_waits_for_the_announcement_too(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    # Every unit of the version is held; the worker is idle once it has claimed in vain.
    where = (tmp_path, postgres_server, pg_database)
    empty, woken_s = idle_until_released(*where, held=2, units=1, idle_from=claimed_in_vain)
    # At the start, then 0.5 s and 1.25 s after it; from 50 ms there would be seven.
    assert 1 <= len(empty) <= 3, [round(at - empty[0], 2) for at in empty]
    assert woken_s < 0.6
