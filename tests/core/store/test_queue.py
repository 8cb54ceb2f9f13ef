"""The work queue: claims, leases, submits, backups and verdicts."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import pytest
from sqlalchemy import event, update

from core.store import (
    AlreadySubmitted,
    LeaseLost,
    RunPaused,
    Store,
    StoreError,
    UnknownWorker,
)
from core.store.queue import claim_statement
from core.store.schema import results

from .factories import (
    METRICS,
    UNIT_SIZE,
    FakeClock,
    add_finished_units,
    close,
    create_test_run,
    work_one,
)


@pytest.fixture
def run(store: Store) -> Store:
    """A run of 3 units with a 60 s lease, 3 attempts and backups after 30 s (the defaults)."""
    create_test_run(store)
    return store


def submit(store: Store, lease, payload: bytes = b"x" * 10) -> int:
    return store.submit(lease, payload, "fp32", UNIT_SIZE, METRICS, 0.5)


def test_claims_follow_unit_order_with_lease_fields(run: Store, clock: FakeClock) -> None:
    worker = run.register_worker("w", "h", "cpu")
    leases = [run.claim(worker) for _ in range(3)]
    assert [lease.unit_index for lease in leases if lease] == [0, 1, 2]
    first = leases[0]
    assert first is not None
    assert (first.version, first.copy, first.seed, first.worker_id) == (0, 0, 1000, worker)
    assert first.sample_indices == (0, 1, 2, 3)
    assert first.expires_at == clock() + 60.0
    assert len(first.token) == 32 and len({lease.token for lease in leases if lease}) == 3
    assert run.claim(worker) is None  # everything is leased to this worker: no backup either
    assert run.unit_counts(0).leased == 3


def test_claim_by_unknown_worker_is_refused(run: Store) -> None:
    with pytest.raises(UnknownWorker, match="register the worker again"):
        run.claim(99)


def test_paused_run_hands_out_nothing(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    run.set_status("paused")
    with pytest.raises(RunPaused, match="paused"):
        run.claim(worker)
    run.set_status("active")
    assert run.claim(worker) is not None


def test_expired_lease_is_reissued(run: Store, clock: FakeClock) -> None:
    slow, fast = run.register_worker("slow", "h", "cpu"), run.register_worker("fast", "h", "cpu")
    held = [run.claim(slow) for _ in range(3)]
    assert run.claim(fast) is None
    clock.advance(61)
    assert run.expire_leases() == 3
    assert [e.kind for e in run.events(3)] == ["expired"] * 3
    again = run.claim(fast)
    assert again is not None and (again.unit_index, again.copy) == (0, 0)
    assert again.token != held[0].token  # type: ignore[union-attr]
    assert run.version_units(0)[0].attempts == 2


def test_claim_itself_recovers_expired_leases(run: Store, clock: FakeClock) -> None:
    """Work goes on even while no coordinator is expiring leases."""
    slow, fast = run.register_worker("slow", "h", "cpu"), run.register_worker("fast", "h", "cpu")
    for _ in range(3):
        run.claim(slow)
    clock.advance(61)
    again = run.claim(fast)
    assert again is not None and again.unit_index == 0
    assert run.unit_counts(0).pending == 2


def test_poison_unit_is_parked_after_max_attempts(store: Store, clock: FakeClock) -> None:
    create_test_run(store, units=1, max_attempts=2)
    worker = store.register_worker("w", "h", "cpu")
    for _ in range(2):
        lease = store.claim(worker)
        assert lease is not None and lease.unit_index == 0
        clock.advance(61)  # the worker crashed: its lease runs out
        assert store.expire_leases() == 1
    (unit,) = store.version_units(0)
    assert (unit.status, unit.attempts) == ("parked", 2)
    assert store.events(1)[0].kind == "parked"
    assert store.claim(worker) is None
    assert store.unit_counts(0).parked == 1


def test_release_returns_the_unit_at_once(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    lease = run.claim(worker)
    assert lease is not None
    run.release(lease)
    (unit, *_) = run.version_units(0)
    assert (unit.status, unit.attempts, unit.worker_id) == ("pending", 0, None)
    run.release(lease)  # already gone: no error
    again = run.claim(worker)
    assert again is not None and again.unit_index == 0
    with pytest.raises(LeaseLost):
        submit(run, lease)


def test_submit_with_wrong_token_is_lease_lost(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    lease = run.claim(worker)
    assert lease is not None
    with pytest.raises(LeaseLost, match="re-issued"):
        submit(run, replace(lease, token="0" * 32))
    intruder = run.register_worker("intruder", "h", "cpu")
    with pytest.raises(LeaseLost):
        submit(run, replace(lease, worker_id=intruder))
    assert run.new_results(10) == []
    submit(run, lease)  # the real holder still can


def test_submit_after_expiry_is_lease_lost(run: Store, clock: FakeClock) -> None:
    worker = run.register_worker("w", "h", "cpu")
    lease = run.claim(worker)
    assert lease is not None
    clock.advance(60.5)
    with pytest.raises(LeaseLost, match="expired"):
        submit(run, lease)
    with pytest.raises(LeaseLost, match="expired"):
        run.heartbeat(lease)
    assert run.new_results(10) == []


def test_heartbeat_extends_the_lease(run: Store, clock: FakeClock) -> None:
    worker = run.register_worker("w", "h", "cpu")
    lease = run.claim(worker)
    assert lease is not None
    for _ in range(3):
        clock.advance(50)
        lease = run.heartbeat(lease)
        assert lease.expires_at == clock() + 60
    assert run.expire_leases() == 0
    submit(run, lease)


def test_second_submit_of_one_lease_is_refused(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    lease = run.claim(worker)
    assert lease is not None
    submit(run, lease)
    with pytest.raises(AlreadySubmitted, match="never counted twice"):
        submit(run, lease)
    (result,) = run.new_results(10)
    run.resolve_result(result.id, "accepted")
    with pytest.raises(AlreadySubmitted):
        submit(run, lease)
    with pytest.raises(LeaseLost):
        run.heartbeat(lease)
    assert len(run.version_results(0)) == 1


def test_submit_after_close_is_lease_lost(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    leases = [run.claim(worker) for _ in range(3)]
    for lease in leases[:2]:
        run.resolve_result(submit(run, lease), "accepted")
    close(run, 0)  # unit 2 is still leased when the version closes
    with pytest.raises(LeaseLost, match="was cancelled"):
        submit(run, leases[2])


def test_submit_records_the_result(run: Store, clock: FakeClock) -> None:
    worker = run.register_worker("w", "h", "gpu")
    lease = run.claim(worker)
    assert lease is not None
    clock.advance(3)
    result_id = run.submit(
        lease, b"payload", "bf16", 999, {**METRICS, "g_loss": math.nan}, compute_s=2.5
    )
    (result,) = run.new_results(10)
    assert result.id == result_id
    assert (result.unit_id, result.version, result.unit_index, result.worker_id) == (
        lease.unit_id,
        0,
        0,
        worker,
    )
    assert (result.precision, result.claimed_samples, result.sample_count) == ("bf16", 999, 4)
    assert (result.d_loss, result.compute_s, result.status) == (0.7, 2.5, "new")
    assert math.isnan(result.g_loss)
    assert result.submitted_at == clock()
    assert run.result_payload(result_id) == b"payload"
    assert run.unit_counts(0).submitted == 1
    with pytest.raises(StoreError, match="missing"):
        run.submit(run.claim(worker), b"p", "fp32", 4, {"d_loss": 1.0}, 1.0)  # type: ignore[arg-type]


def test_accepted_credits_the_units_count_not_the_workers_word(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    lease = run.claim(worker)
    assert lease is not None
    result_id = run.submit(lease, b"p", "fp32", 10_000, METRICS, compute_s=4.0)
    assert run.resolve_result(result_id, "accepted") == "accepted"
    (row,) = run.workers()
    assert (row.units, row.images, row.compute_s) == (1, UNIT_SIZE, 4.0)
    accepted = run.accepted_result(0, 0)
    assert accepted is not None and accepted.id == result_id
    assert run.unit_counts(0).done == 1
    with pytest.raises(StoreError, match="already resolved"):
        run.resolve_result(result_id, "rejected")


def test_rejected_result_returns_the_unit(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    result_id = work_one(run, worker)
    run.resolve_result(result_id, "rejected", "norm 1000x the bound")
    unit = run.version_units(0)[0]
    assert (unit.status, unit.worker_id) == ("pending", None)
    (row,) = run.workers()
    assert (row.rejected, row.units) == (1, 0)
    event = run.events(1)[0]
    assert (event.kind, event.worker_id) == ("rejected", worker)
    assert "norm 1000x the bound" in event.message
    with pytest.raises(StoreError, match="no payload"):
        run.result_payload(result_id)
    again = run.claim(worker)
    assert again is not None and again.unit_index == 0


def test_rejected_too_often_is_parked(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    run.update_settings({"max_attempts": 2})
    for _ in range(2):
        lease = run.claim(worker)
        assert lease is not None and lease.unit_index == 0
        run.resolve_result(submit(run, lease), "rejected", "NaN")
    assert run.version_units(0)[0].status == "parked"
    assert [e.kind for e in run.events(2)] == ["parked", "rejected"]


def test_backup_copy_for_a_straggler(run: Store, clock: FakeClock) -> None:
    slow, idle = run.register_worker("slow", "h", "cpu"), run.register_worker("idle", "h", "cpu")
    originals = [run.claim(slow) for _ in range(3)]
    assert run.claim(idle) is None  # leases are young: no backup yet
    clock.advance(31)
    backup = run.claim(idle)
    assert backup is not None
    assert (backup.unit_index, backup.copy, backup.worker_id) == (0, 1, idle)
    assert backup.seed == originals[0].seed  # type: ignore[union-attr]
    assert backup.sample_indices == originals[0].sample_indices  # type: ignore[union-attr]
    assert run.events(1)[0].kind == "backup"
    second = run.claim(idle)  # unit 0 now has 2 live copies: the next straggler is unit 1
    assert second is not None and (second.unit_index, second.copy) == (1, 1)
    # The backup finishes first and wins; the original's result is only a cross-check.
    first_id = submit(run, backup)
    assert run.resolve_result(first_id, "accepted") == "accepted"
    late_id = submit(run, originals[0])
    assert run.resolve_result(late_id, "accepted") == "crosscheck"
    accepted = run.accepted_result(0, 0)
    assert accepted is not None and accepted.id == first_id
    statuses = {r.id: r.status for r in run.version_results(0)}
    assert statuses == {first_id: "accepted", late_id: "crosscheck"}
    with pytest.raises(StoreError, match="no payload"):
        run.result_payload(late_id)
    assert [u.units for u in run.workers()] == [1, 1]  # both are credited
    counts = run.unit_counts(0)
    assert (counts.done, counts.leased, counts.total) == (1, 2, 3)


def test_a_passs_results_are_accepted_together_the_first_copy_of_each_unit(
    run: Store, clock: FakeClock
) -> None:
    # What the coordinator does with all the valid results of one pass (`accept_results`):
    # one transaction, the same verdicts and credits as accepting them one by one.
    ada, bob = run.register_worker("ada", "h", "cpu"), run.register_worker("bob", "h", "cpu")
    originals = [run.claim(ada) for _ in range(3)]
    clock.advance(31)
    backups = [run.claim(bob) for _ in range(2)]  # copies 1 of units 0 and 1
    assert [(b.unit_index, b.copy) for b in backups if b] == [(0, 1), (1, 1)]

    def result(lease, compute_s: float) -> int:
        return run.submit(lease, b"p", "fp32", 10_000, METRICS, compute_s)

    bob_0, ada_0 = result(backups[0], 1.0), result(originals[0], 2.0)
    ada_1, bob_1 = result(originals[1], 3.0), result(backups[1], 4.0)
    ada_2 = result(originals[2], 5.0)
    assert run.resolve_result(ada_1, "accepted") == "accepted"  # unit 1: an earlier pass
    assert run.accept_results([bob_0, ada_0, bob_1, ada_2]) == [bob_0, ada_2]
    statuses = {r.id: r.status for r in run.version_results(0)}
    assert statuses == {
        bob_0: "accepted",
        ada_0: "new",  # a second copy of unit 0: left for a cross-check
        ada_1: "accepted",
        bob_1: "new",  # unit 1 had an accepted result already
        ada_2: "accepted",
    }
    totals = {w.name: (w.units, w.images, w.compute_s) for w in run.workers()}
    assert totals == {"ada": (2, 2 * UNIT_SIZE, 8.0), "bob": (1, UNIT_SIZE, 1.0)}
    recent = run.recent_credits(60)  # ada's minute row is added to, bob's is new
    assert [(c.worker_id, c.units, c.images) for c in recent.workers] == [
        (ada, 2, 2 * UNIT_SIZE),
        (bob, 1, UNIT_SIZE),
    ]
    counts = run.unit_counts(0)
    assert (counts.done, counts.leased) == (3, 0)  # bob_1's copy was submitted: not cancelled
    assert run.resolve_result(ada_0, "accepted") == "crosscheck"
    with pytest.raises(StoreError, match="already resolved"):
        run.accept_results([bob_1, ada_2])
    assert run.version_results(0)[3].status == "new"  # the refused call changed nothing
    assert run.accept_results([]) == []


def test_accepting_a_passs_results_takes_as_many_statements_for_12_as_for_2(store: Store) -> None:
    # 32 results end a class's version together; accepted one by one, each took a set of
    # statements and they held the close off (benchmarks/README.md, "What the verdicts were").
    create_test_run(store, units=14)
    workers = [store.register_worker(f"w{i}", "h", "cpu") for i in range(14)]
    ids = [work_one(store, worker) for worker in workers]
    statements: list[str] = []

    def record(conn, cursor, statement: str, *args: object) -> None:
        statements.append(statement)

    counts = []
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        for batch in (ids[:2], ids[2:]):
            statements.clear()
            assert store.accept_results(batch) == batch
            counts.append(len(statements))
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert counts[0] == counts[1] and counts[0] > 0
    assert store.unit_counts(0).done == 14
    assert [w.units for w in store.workers()] == [1] * 14
    assert store.recent_credits(60).run_units == 14


def test_no_backup_of_a_done_unit_or_for_its_own_holder(run: Store, clock: FakeClock) -> None:
    worker = run.register_worker("only", "h", "cpu")
    leases = [run.claim(worker) for _ in range(3)]
    run.resolve_result(submit(run, leases[0]), "accepted")
    clock.advance(31)
    assert run.claim(worker) is None  # its own stragglers are never backed up to itself


def test_crosscheck_needs_an_accepted_result(run: Store) -> None:
    worker = run.register_worker("w", "h", "cpu")
    result_id = work_one(run, worker)
    with pytest.raises(StoreError, match="accept it instead"):
        run.resolve_result(result_id, "crosscheck")


def test_expired_backup_copy_is_cancelled_not_queued_twice(run: Store, clock: FakeClock) -> None:
    slow, idle = run.register_worker("slow", "h", "cpu"), run.register_worker("idle", "h", "cpu")
    first = [run.claim(slow) for _ in range(3)]
    clock.advance(31)
    backup = run.claim(idle)  # expires at +91
    assert backup is not None
    clock.advance(28)
    for lease in first:
        run.heartbeat(lease)  # type: ignore[arg-type]  # now expire at +119
    clock.advance(33)
    assert run.expire_leases() == 1
    copies = [u for u in run.version_units(0) if u.unit_index == 0]
    assert [(u.copy, u.status) for u in copies] == [(0, "leased"), (1, "cancelled")]
    assert run.unit_counts(0).pending == 0  # the unit is not queued a second time


def test_the_database_itself_refuses_a_second_accepted_result(run: Store, clock: FakeClock) -> None:
    """The partial unique index is a safety net under the store's own check."""
    slow, idle = run.register_worker("slow", "h", "cpu"), run.register_worker("idle", "h", "cpu")
    original, *_ = [run.claim(slow) for _ in range(3)]
    clock.advance(31)
    backup = run.claim(idle)
    assert backup is not None and backup.copy == 1
    run.resolve_result(submit(run, original), "accepted")
    second = submit(run, backup)
    run.resolve_result(second, "crosscheck")
    with pytest.raises(StoreError, match="refused a write"), run.session() as conn:
        conn.execute(update(results).where(results.c.id == second).values(status="accepted"))
    assert [r.status for r in run.version_results(0)] == ["accepted", "crosscheck"]


def test_claim_stays_fast_with_100k_finished_units(run: Store) -> None:
    add_finished_units(run, 100_000)
    worker = run.register_worker("w", "h", "cpu")
    started = time.perf_counter()
    for _ in range(3):
        assert run.claim(worker) is not None
    assert run.claim(worker) is None  # the idle path (expiry and backup queries) too
    assert (time.perf_counter() - started) / 4 < 0.05  # seconds per claim; ~2 ms when indexed
    if run.dialect == "sqlite":  # timing alone is too noisy to catch a lost index: ask SQLite
        statement = claim_statement("sqlite", 0, worker, "token", 0.0, 60.0).compile(
            dialect=run.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with run.session() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}").all()
        assert any("ix_work_units_claim" in row[-1] for row in plan), plan
