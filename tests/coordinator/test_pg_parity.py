"""Trajectory parity on PostgreSQL, also through server restarts and terminated sessions.

Mirrors test_parity.py: worker processes (`python -m core.worker_cli --db postgresql://…`) and a
coordinator against the test server; the published weights must equal the reference trainer's
bitwise. Then the same with the server restarted (fast, then immediate) and every session
terminated mid-run: every process reconnects by itself, nothing is lost or counted twice.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from coordinator.loop import Coordinator
from core.store import Store
from tests.coordinator.harness import (
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
    serve_until,
    start_worker,
    stop_processes,
)
from tests.postgres import ENDS_SESSIONS, PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.integration, *ENDS_SESSIONS]

VERSIONS = 4
DISRUPTED_VERSIONS = 6  # a restart (fast), a restart (immediate), sessions terminated, 3 more
STEP_TIMEOUT_S = 90.0  # one version must follow the previous within this, disruption included


def make_tiny_pg_run(
    tmp_path: Path, server: PostgresServer, database: str, **changes: object
) -> TinyRun:
    """make_tiny_run's run, in a PostgreSQL database whose commits survive a crash."""
    server.make_durable(database)
    return make_tiny_run(tmp_path, server.database_url(database), **changes)


def test_distributed_run_on_postgresql_equals_reference(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    run = make_tiny_pg_run(tmp_path, postgres_server, pg_database)
    procs = [start_worker(run, f"w{i}") for i in range(2)]
    store = run.store()
    try:
        serve_until(store, VERSIONS)
        got = published_params(store, VERSIONS)
        done = {w.name: w.units for w in store.workers()}
    finally:
        stop_processes(procs)
        store.dispose()
    assert_bitwise_equal(got, reference_params(run, VERSIONS))
    assert sum(done.values()) == VERSIONS * run.settings.num_workunits_per_update


class ServingThread:
    """`Coordinator.serve` in a thread of this process, as `ganfriends-coordinator serve`."""

    def __init__(self, store: Store) -> None:
        self.coordinator = Coordinator(store)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="coordinator", daemon=True)

    def _serve(self) -> None:
        try:
            self.coordinator.serve(self.stop, 0.01)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def wait_for_version(self, version: int, procs: list[subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while self.coordinator.version < version:
            assert self.thread.is_alive(), f"the coordinator stopped: {self.error!r}"
            exited = [p.returncode for p in procs if p.poll() is not None]
            assert not exited, f"a worker exited ({exited}) instead of reconnecting"
            assert time.monotonic() < deadline, f"version {version} never came"
            time.sleep(0.02)


def test_restarts_and_terminated_sessions_change_nothing(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    if postgres_server.data_dir is None:
        pytest.skip("the server is not ours to restart (GANFRIENDS_TEST_PG_URL)")
    # A short lease bounds the wait for a claim whose answer a restart swallowed.
    run = make_tiny_pg_run(tmp_path, postgres_server, pg_database, lease_s=10.0)
    procs = [start_worker(run, f"w{i}") for i in range(2)]
    store = run.store()
    serving = ServingThread(store)
    serving.thread.start()
    try:
        serving.wait_for_version(1, procs)
        postgres_server.restart("fast")
        serving.wait_for_version(2, procs)
        postgres_server.restart("immediate")
        serving.wait_for_version(3, procs)
        assert postgres_server.terminate_sessions(pg_database) > 0
        serving.wait_for_version(DISRUPTED_VERSIONS, procs)
    finally:
        serving.stop.set()
        serving.thread.join(30)
        stop_processes(procs)
    try:
        got = published_params(store, DISRUPTED_VERSIONS)
        metrics = store.metrics()
        published = Counter(e.version for e in store.events(10_000) if e.kind == "published")
        workers = store.workers()
    finally:
        store.dispose()
    assert_bitwise_equal(got, reference_params(run, DISRUPTED_VERSIONS))
    units = run.settings.num_workunits_per_update
    assert [(m.version, m.units, m.parked_units) for m in metrics] == [
        (v, units, 0) for v in range(DISRUPTED_VERSIONS)
    ]
    assert published == Counter(range(1, DISRUPTED_VERSIONS + 1))  # each exactly once
    assert len(workers) == 2  # both reconnected as themselves, none registered again
    assert sum(w.units for w in workers) >= DISRUPTED_VERSIONS * units
    assert sum(w.rejected for w in workers) == 0
