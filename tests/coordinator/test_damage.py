"""Damaged storage is reported as damage and recovered from; the run stays bitwise right.

One byte of a stored blob is flipped behind the coordinator's back (as a failing disk or a
hand edit would), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from pathlib import Path

import pytest
import torch
from sqlalchemy import Table, select, update

from coordinator import stall
from coordinator.loop import Coordinator
from core import worker as worker_module
from core.cache import ShardCache
from core.store import DamagedData, Store
from core.store.schema import (
    dataset_shards,
    model_versions,
    optimizer_states,
    result_payloads,
    work_units,
)
from core.worker import WorkerEngine, WorkerEvent, WorkerOptions
from tests.coordinator.harness import (
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
    wait_for,
)
from tests.coordinator.simulate import LocalWorker, encode_payload, run_to
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(params=["sqlite", "postgresql"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> TinyRun:
    if request.param == "sqlite":
        return make_tiny_run(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return make_tiny_run(tmp_path, server.database_url(request.getfixturevalue("pg_database")))


def flip_byte(store: Store, table: Table, blob: str, key: str, value: int) -> None:
    """Flip one bit of the middle byte of a stored blob, leaving its checksum as it was."""
    where = table.c[key] == value
    with store.session() as conn:
        data = bytearray(conn.execute(select(table.c[blob]).where(where)).scalar_one())
        data[len(data) // 2] ^= 0x01
        conn.execute(update(table).where(where).values({blob: bytes(data)}))


def test_a_damaged_new_result_is_rejected_and_its_unit_computed_again(run: TinyRun) -> None:
    store = run.store()
    worker = LocalWorker(run, store, "w")
    coordinator = Coordinator(store)
    lease = worker.claim()
    result_id = worker.submit_honest(lease)
    flip_byte(store, result_payloads, "payload", "result_id", result_id)
    coordinator.step()
    (rejected,) = [r for r in store.version_results(0) if r.id == result_id]
    assert rejected.status == "rejected"
    assert f"row {result_id} of result_payloads" in (rejected.reason or "")
    assert "fails its sha256 check" in (rejected.reason or "")
    run_to(coordinator, [worker], 2)
    assert_bitwise_equal(published_params(store, 2), reference_params(run, 2))
    store.dispose()


def _accept_out_of_order(run: TinyRun, store: Store, worker: LocalWorker) -> int:
    """Accept units 0 and 2 of version 0 (2 waits for 1, unsummed); the result id of unit 2."""
    coordinator = Coordinator(store)
    leases = [worker.claim() for _ in range(3)]
    worker.submit_honest(leases[0])
    second = worker.submit_honest(leases[2])
    coordinator.step()
    assert {r.id for r in store.version_results(0) if r.status == "accepted"} >= {second}
    store.release(leases[1])
    return second


def test_a_damaged_accepted_result_is_withdrawn_and_recomputed(run: TinyRun) -> None:
    store = run.store()
    worker = LocalWorker(run, store, "w")
    damaged = _accept_out_of_order(run, store, worker)
    flip_byte(store, result_payloads, "payload", "result_id", damaged)
    restarted = Coordinator(store)  # reads the accepted results back from the database
    run_to(restarted, [worker], 2)
    assert_bitwise_equal(published_params(store, 2), reference_params(run, 2))
    events = [e.message for e in store.events(200) if e.kind == "damage"]
    assert any(f"accepted result {damaged} " in m and "withdrawn" in m for m in events), events
    store.dispose()


def test_a_non_finite_accepted_payload_does_not_stop_the_coordinator(run: TinyRun) -> None:
    """A NaN stored in an accepted payload (checksum and all) is withdrawn, not a crash loop."""
    store = run.store()
    worker = LocalWorker(run, store, "w")
    damaged = _accept_out_of_order(run, store, worker)
    lease = worker.claim()  # any unit: only its gradients' names and shapes are needed
    grads = {n: torch.full_like(g, math.nan) for n, g in worker.gradients(lease).grads.items()}
    store.release(lease)
    payload = encode_payload(grads, run.settings.precision)
    with store.session() as conn:
        conn.execute(
            update(result_payloads)
            .where(result_payloads.c.result_id == damaged)
            .values(payload=payload, sha256=hashlib.sha256(payload).hexdigest())
        )
    restarted = Coordinator(store)
    run_to(restarted, [worker], 2)
    assert_bitwise_equal(published_params(store, 2), reference_params(run, 2))
    store.dispose()


@pytest.mark.parametrize(
    ("table", "blob", "key", "what"),
    [
        (model_versions, "weights", "version", "the weights of version 0"),
        (optimizer_states, "state", "version", "the optimizer state of version 0"),
        (dataset_shards, "data", "idx", "dataset shard 0"),
    ],
    ids=["weights", "optimizer-state", "shard"],
)
def test_damaged_stored_state_is_named_on_read(
    run: TinyRun, table: Table, blob: str, key: str, what: str
) -> None:
    store = run.store()
    flip_byte(store, table, blob, key, 0)
    read = {
        "weights": lambda: store.version_weights(0),
        "state": lambda: store.optimizer_state(),
        "data": lambda: store.shard(0),
    }[blob]
    with pytest.raises(DamagedData, match=f"{what} \\(row 0 of {table.name}\\) fails its sha256"):
        read()
    store.dispose()


def test_a_worker_reports_damaged_weights_as_damage(run: TinyRun, tmp_path: Path) -> None:
    store = run.store()
    flip_byte(store, model_versions, "weights", "version", 0)
    events: list[WorkerEvent] = []
    options = WorkerOptions(name="w", hostname="h", device=torch.device("cpu"), threads=1)
    engine = WorkerEngine(run.store, ShardCache(tmp_path / "shards"), options, events.append)
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        wait_for(lambda: any(e.kind == "error" for e in events), timeout_s=60)
        shown = "error: damaged data (model_versions row 0)"  # to the owner, in `workers`
        wait_for(lambda: [w.state for w in store.workers()] == [shown], timeout_s=10)
    finally:
        engine.stop()
        thread.join(30)
    (said,) = [e.message for e in events if e.kind == "error"]
    assert said.startswith("The run's database holds damaged data: the weights of version 0")
    assert "Lost the database" not in said
    assert {u.status for u in store.version_units(0)} == {"pending"}  # the unit was given back
    store.dispose()


def test_a_damaged_work_unit_is_reported_and_rewritten_from_the_plan(
    run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stall, "STALL_S", 0.3)
    monkeypatch.setattr(stall, "CHECK_EVERY_S", 0.1)
    monkeypatch.setattr(worker_module, "DAMAGE_RETRY_S", 0.5)
    store = run.store()
    coordinator = Coordinator(store)
    (unit,) = [u for u in store.version_units(0) if u.unit_index == 0]
    flip_byte(store, work_units, "sample_indices", "id", unit.id)
    events: list[WorkerEvent] = []
    options = WorkerOptions(name="w", hostname="h", device=torch.device("cpu"), threads=1)
    engine = WorkerEngine(run.store, ShardCache(tmp_path / "shards"), options, events.append)
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while coordinator.version < 1:
            assert time.monotonic() < deadline, [e.message for e in events]
            if not coordinator.step():
                time.sleep(0.02)
    finally:
        engine.stop()
        thread.join(30)
    said = [e.message for e in events if e.kind == "error"]
    assert said and said[0].startswith(
        f"The run's database holds damaged data: work unit 0 (row {unit.id} of work_units)"
    )
    assert any("rewritten from the run's plan" in e.message for e in store.events(100))
    assert_bitwise_equal(published_params(store, 1), reference_params(run, 1))
    store.dispose()


SHARD_REMEDY_END = (
    "restores the database from a backup, or creates the run again (ganfriends-coordinator init)"
)


def test_a_worker_reports_a_damaged_shard_row_as_damage(
    run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard whose bytes pass their checksum but not its row's declared shape: damage to the
    row, which no fetching again repairs. The worker says so, keeps running, and the stall
    check shows it to the owner with the remedy that fits a shard."""
    monkeypatch.setattr(stall, "STALL_S", 0.3)
    monkeypatch.setattr(worker_module, "DAMAGE_RETRY_S", 0.2)
    store = run.store()
    coordinator = Coordinator(store)
    with store.session() as conn:
        conn.execute(update(dataset_shards).values(image_size=dataset_shards.c.image_size + 1))
    events: list[WorkerEvent] = []
    options = WorkerOptions(name="w", hostname="h", device=torch.device("cpu"), threads=1)
    engine = WorkerEngine(run.store, ShardCache(tmp_path / "shards"), options, events.append)
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        wait_for(lambda: sum(e.kind == "error" for e in events) >= 2, timeout_s=60)
        assert thread.is_alive()  # it waits and tries again; it did not die
        (state,) = [w.state for w in store.workers()]
        problem = stall.diagnose(store, 0, run.settings.lease_s, 60.0)
    finally:
        engine.stop()
        thread.join(30)
    said = next(e.message for e in events if e.kind == "error")
    assert said.startswith("The run's database holds damaged data: dataset shard ")
    assert "(row " in said and " of dataset_shards) does not hold what its row declares" in said
    assert said.endswith(SHARD_REMEDY_END)
    assert "delete the cached copy" not in said
    assert state.startswith("error: damaged data (dataset_shards row ")
    assert problem is not None and problem.kind == "damage"
    assert problem.remedy.startswith("the coordinator cannot rebuild a dataset shard")
    assert problem.remedy.endswith(SHARD_REMEDY_END)
    assert {u.status for u in store.version_units(0)} == {"pending"}  # units given back
    coordinator.watchdog.stop()
    store.dispose()
