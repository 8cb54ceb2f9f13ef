"""The run's one clock on SQLite: a worker's store records no lease time, the coordinator's does.

(Real processes with clocks hours off: tests/coordinator/test_clocks.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from core.store import open_store
from core.store.schema import work_units

from .factories import METRICS, UNIT_SIZE, create_test_run

LEASE_S = 30.0


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """An SQLite run of 3 units, made with the true clock (no clock given, as in production)."""
    url = f"sqlite:///{tmp_path / 'run.db'}"
    made = open_store(url, create=True)
    create_test_run(made, units=3, lease_s=LEASE_S, backup_after_s=0.0)
    made.dispose()
    yield url


def test_a_workers_claim_and_heartbeat_record_no_time_the_coordinators_pass_does(
    url: str,
) -> None:
    worker, coordinator = open_store(url), open_store(url).take_run()
    try:
        worker_id = worker.register_worker("w", "host", "cpu")
        lease = worker.claim(worker_id)
        assert lease is not None
        [unit] = [u for u in worker.version_units(0) if u.id == lease.unit_id]
        assert (unit.leased_at, unit.lease_expires_at) == (None, None)

        before = time.time()
        assert coordinator.expire_leases() == 0
        [unit] = [u for u in worker.version_units(0) if u.id == lease.unit_id]
        assert unit.leased_at is not None and unit.lease_expires_at is not None
        assert before <= unit.leased_at <= time.time()
        assert unit.lease_expires_at == pytest.approx(unit.leased_at + LEASE_S, abs=1.0)

        worker.heartbeat(lease)  # renewed: unobserved again, the start kept
        [renewed] = [u for u in worker.version_units(0) if u.id == lease.unit_id]
        assert (renewed.leased_at, renewed.lease_expires_at) == (unit.leased_at, None)
    finally:
        worker.dispose()
        coordinator.dispose()


def test_only_the_coordinator_expires_a_lease_and_an_unobserved_one_never(url: str) -> None:
    worker, coordinator = open_store(url), open_store(url).take_run()
    try:
        first = worker.register_worker("first", "host", "cpu")
        second = worker.register_worker("second", "host", "cpu")
        held = [worker.claim(first) for _ in range(3)]
        assert all(held)
        coordinator.expire_leases()  # observed: stamped
        with worker.session() as conn:  # as if the coordinator saw them long ago
            conn.execute(update(work_units).values(lease_expires_at=1.0))
        # A worker's claim does not expire them (its clock does not count), nor take a backup
        # copy of a unit whose lease ran out.
        assert worker.claim(second) is None
        assert {u.status for u in worker.version_units(0) if u.copy == 0} == {"leased"}

        assert coordinator.expire_leases() == 3
        assert {u.status for u in worker.version_units(0) if u.copy == 0} == {"pending"}
    finally:
        worker.dispose()
        coordinator.dispose()


def test_a_lease_not_yet_observed_is_not_expired_whatever_the_time(url: str) -> None:
    worker, coordinator = open_store(url), open_store(url).take_run()
    try:
        lease = worker.claim(worker.register_worker("w", "host", "cpu"))
        assert lease is not None
        with worker.session() as conn:  # a stamp long past, then a heartbeat clears it
            conn.execute(update(work_units).values(lease_expires_at=1.0))
        worker.heartbeat(lease)
        assert coordinator.expire_leases() == 0
        assert worker.submit(lease, b"x" * 10, "fp32", UNIT_SIZE, METRICS, 0.1) > 0
    finally:
        worker.dispose()
        coordinator.dispose()
