"""The worker engine on PostgreSQL when the database goes away: download, heartbeat, submit.

Claims already retry with backoff; these check the other paths. A submit whose answer was
lost after its commit is retried, answered AlreadySubmitted and counted once; a download that
fails is retried while the lease lasts; heartbeats survive a server restart mid-compute, so
the unit is still ours when it is done. The worker keeps its identity throughout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch

from core.cache import ShardCache
from core.store import DatabaseUnavailable, Lease, Store, make_engine
from core.worker import WorkerEngine, WorkerEvent, WorkerOptions
from tests.coordinator.harness import wait_for
from tests.coordinator.test_pg_parity import make_tiny_pg_run
from tests.postgres import ENDS_SESSIONS, PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.integration, *ENDS_SESSIONS]

LEASE_S = 3.0  # heartbeats every second
MICRO_BATCH_S = 0.6  # how long each micro-batch is made to take


class FlakyStore(Store):
    """A store whose connection drops at chosen moments (the operation may have committed)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lose_submit_answers = 0  # submits that commit, then report a lost connection
        self.fail_downloads = 0  # version_weights calls that fail before reaching the server
        self.submits = 0

    def submit(
        self,
        lease: Lease,
        payload: bytes,
        precision: str,
        claimed_samples: int,
        metrics: Mapping[str, float],
        compute_s: float,
    ) -> int:
        self.submits += 1
        result = super().submit(lease, payload, precision, claimed_samples, metrics, compute_s)
        if self.lose_submit_answers > 0:
            self.lose_submit_answers -= 1
            raise DatabaseUnavailable("server closed the connection unexpectedly (test)")
        return result

    def version_weights(self, version: int) -> tuple[bytes, str, dict[str, object]]:
        if self.fail_downloads > 0:
            self.fail_downloads -= 1
            raise DatabaseUnavailable("connection refused (test)")
        return super().version_weights(version)


def engine_on(
    url: str, tmp_path: Path, store: FlakyStore, on_event: Callable[[WorkerEvent], None]
) -> WorkerEngine:
    options = WorkerOptions(
        name="flaky", hostname="h", device=torch.device("cpu"), threads=1, max_units=1
    )
    return WorkerEngine(lambda: store, ShardCache(tmp_path / "shards"), options, on_event)


def test_a_submit_whose_answer_was_lost_counts_once(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    run = make_tiny_pg_run(tmp_path, postgres_server, pg_database)
    store = FlakyStore(make_engine(run.url))
    store.lose_submit_answers = 1
    events: list[WorkerEvent] = []
    try:
        assert engine_on(run.url, tmp_path, store, events.append).run() == 1
        assert store.submits == 2  # the retry was answered AlreadySubmitted
        [result] = store.new_results(10)
        assert len(store.workers()) == 1
    finally:
        store.dispose()
    assert any(e.message.startswith("Upload interrupted") for e in events)
    assert result.unit_index == 0


def test_a_failed_download_is_retried(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    run = make_tiny_pg_run(tmp_path, postgres_server, pg_database)
    store = FlakyStore(make_engine(run.url))
    store.fail_downloads = 2
    events: list[WorkerEvent] = []
    try:
        assert engine_on(run.url, tmp_path, store, events.append).run() == 1
        assert len(store.new_results(10)) == 1
    finally:
        store.dispose()
    assert sum(e.message.startswith("Download interrupted") for e in events) == 2


def test_heartbeats_survive_a_restart_mid_compute(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    if postgres_server.data_dir is None:
        pytest.skip("the server is not ours to restart (GANFRIENDS_TEST_PG_URL)")
    # A slow unit and a short lease: the unit outlives the lease several times over, so it
    # is only still ours at the end if heartbeats went on through the restart.
    run = make_tiny_pg_run(
        tmp_path,
        postgres_server,
        pg_database,
        images_per_work_unit=24,
        batch_size=2,
        lease_s=LEASE_S,
    )
    store = FlakyStore(make_engine(run.url))
    events: list[WorkerEvent] = []

    def slow_compute(event: WorkerEvent) -> None:
        events.append(event)
        # Progress events come from the computing thread between micro-batches (12 here), at
        # most every 0.5 s: sleeping longer than that makes each one come, and slow.
        if event.kind == "progress":
            time.sleep(MICRO_BATCH_S)

    engine = engine_on(run.url, tmp_path, store, slow_compute)
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: engine.state == "computing", timeout_s=60)
        time.sleep(LEASE_S / 2)
        postgres_server.restart("fast")
        thread.join(120)
        assert not thread.is_alive()
        assert engine.units_done == 1
        [result] = store.new_results(10)
        assert len(store.workers()) == 1
    finally:
        engine.stop()
        store.dispose()
    finished = [e for e in events if e.kind == "unit_finished"]
    assert finished and finished[0].compute_s is not None
    assert finished[0].compute_s > 2 * LEASE_S  # it did outlive the lease
    assert result.unit_index == finished[0].unit_index
