"""Closing a version: one transaction that publishes the next, and retention."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import event, func, select

from core.codec import sha256_hex
from core.store import Store, StoreError

from .factories import (
    METRICS,
    UNIT_SIZE,
    FakeClock,
    close,
    close_metrics,
    create_test_run,
    make_units,
    work_one,
)


def finish_version(store: Store, worker: int, version: int) -> None:
    """Accept one result for every pending unit of `version`."""
    for _ in range(store.unit_counts(version).pending):
        store.resolve_result(work_one(store, worker), "accepted")


def table_count(store: Store, table: str, **where: object) -> int:
    from core.store.schema import metadata

    t = metadata.tables[table]
    query = select(func.count()).select_from(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    with store.session() as conn:
        return int(conn.execute(query).scalar_one())


def test_accepted_payloads_come_in_unit_order(store: Store) -> None:
    create_test_run(store, units=5)
    worker = store.register_worker("w", "h", "cpu")
    leases = [store.claim(worker) for _ in range(5)]
    for lease in reversed(leases):  # submitted and accepted in reverse order
        assert lease is not None
        result_id = store.submit(lease, f"u{lease.unit_index}".encode(), "fp32", 4, METRICS, 1.0)
        store.resolve_result(result_id, "accepted")
    payloads = store.accepted_payloads(0)
    assert next(payloads) == (0, UNIT_SIZE, b"u0")  # lazily, one payload at a time
    assert list(payloads) == [(i, UNIT_SIZE, f"u{i}".encode()) for i in range(1, 5)]


def test_close_publishes_the_next_version(store: Store, clock: FakeClock) -> None:
    create_test_run(store, units=3)
    worker = store.register_worker("w", "h", "cpu")
    finish_version(store, worker, 0)
    straggler = store.claim(store.register_worker("late", "h", "cpu"))
    assert straggler is None  # nothing left (no backups of done units)
    clock.advance(10)
    close(store, 0, next_units=4)
    run = store.get_run()
    assert (run.version, run.cursor, run.updated_at) == (1, 7, clock())
    assert store.version_weights(1) == (b"w1", sha256_hex(b"w1"), {"image_size": 32})
    assert store.optimizer_state() == (1, b"adam1")
    assert store.version_results(0) == []
    (row,) = store.metrics()
    assert (row.version, row.units, row.images, row.parked_units, row.swd) == (0, 3, 12, 0, None)
    assert row.d_loss == METRICS["d_loss"]
    store.set_metric_swd(0, 0.125)
    assert store.metrics(since_version=0)[0].swd == 0.125
    assert store.metrics(since_version=1) == []
    assert store.unit_counts(1).pending == 4
    lease = store.claim(worker)
    assert lease is not None and (lease.version, lease.unit_index) == (1, 3)
    assert store.events(1)[0].kind == "published"


def test_close_records_the_units_with_the_weights_and_never_rewrites_a_version_row(
    store: Store,
) -> None:
    # SQLite carries out an UPDATE of a version's row by rewriting all of it, weights too (24
    # MiB at 64×64): the close writes the new version's unit range in the row it inserts.
    create_test_run(store, units=3)
    finish_version(store, store.register_worker("w", "h", "cpu"), 0)
    statements: list[str] = []

    def record(conn, cursor, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        close(store, 0, next_units=4)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert any("model_versions" in s for s in statements)  # the listener saw the close
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE MODEL_VERSIONS")]
    published = store.versions()[-1]
    assert (published.version, published.unit_start, published.unit_count) == (1, 3, 4)


def test_close_cancels_leftovers_and_refuses_a_second_close(store: Store) -> None:
    create_test_run(store, units=3)
    worker = store.register_worker("w", "h", "cpu")
    store.resolve_result(work_one(store, worker), "accepted")
    leased = store.claim(worker)
    close(store, 0)
    statuses = [u.status for u in store.version_units(0)]
    assert statuses == ["done", "cancelled", "cancelled"]
    with pytest.raises(StoreError, match="already closed"):
        close(store, 0)
    assert store.get_run().version == 1
    assert leased is not None


def test_failed_close_changes_nothing(store: Store) -> None:
    create_test_run(store, units=3)
    worker = store.register_worker("w", "h", "cpu")
    finish_version(store, worker, 0)
    before = (store.get_run(), store.optimizer_state(), store.version_results(0))
    duplicate = make_units(3, 2) + make_units(3, 1)  # unit 3 twice: violates the unique key
    with pytest.raises(StoreError, match="refused a write"):
        store.close_version(
            0,
            weights=b"w1",
            weights_sha256=sha256_hex(b"w1"),
            model_config={"image_size": 32},
            optimizer_state=b"adam1",
            metrics=close_metrics(3),
            next_units=duplicate,
            new_cursor=6,
        )
    assert (store.get_run(), store.optimizer_state(), store.version_results(0)) == before
    assert [v.version for v in store.versions()] == [0]
    assert store.metrics() == []
    assert store.unit_counts(0).done == 3
    assert store.unit_counts(1).total == 0
    close(store, 0)  # and a correct close still works afterwards
    assert store.get_run().version == 1


def test_close_needs_every_metric(store: Store) -> None:
    create_test_run(store)
    metrics = close_metrics(3)
    del metrics["close_s"]
    with pytest.raises(StoreError, match="missing"):
        store.close_version(
            0,
            weights=b"w1",
            weights_sha256=sha256_hex(b"w1"),
            model_config={},
            optimizer_state=b"",
            metrics=metrics,
            next_units=[],
            new_cursor=3,
        )
    assert store.get_run().version == 0


def test_retention_waits_for_the_optimizer_state_write(store: Store, clock: FakeClock) -> None:
    # Workers wait for the publishing transaction: deleting old versions, finished units and
    # day-old credits is left to the second write, which the coordinator makes while they
    # compute.
    create_test_run(store, units=3, keep_versions=2, checkpoint_every=1000)  # 0: a checkpoint
    worker = store.register_worker("w", "h", "cpu")
    for version in range(2):
        finish_version(store, worker, version)
        close(store, version)
    assert [v.version for v in store.versions()] == [0, 1, 2]
    finish_version(store, worker, 2)
    clock.advance(2 * 86_400)  # every credit so far is more than a day old
    store.publish_version(
        2,
        weights=b"w3",
        weights_sha256=sha256_hex(b"w3"),
        model_config={"image_size": 32},
        metrics=close_metrics(3),
        next_units=make_units(9, 3),
        new_cursor=12,
    )
    assert [v.version for v in store.versions()] == [0, 1, 2, 3]  # 1 is stale, still there
    assert table_count(store, "work_units", version=1) == 3
    assert store.recent_credits(3 * 86_400).run_units == 9
    store.store_optimizer_state(3, b"adam3")
    assert [v.version for v in store.versions()] == [0, 2, 3]
    assert table_count(store, "work_units", version=1) == 0
    assert store.recent_credits(3 * 86_400).run_units == 0


def test_nan_metrics_survive_as_nan(store: Store) -> None:
    create_test_run(store)
    store.close_version(
        0,
        weights=b"w1",
        weights_sha256=sha256_hex(b"w1"),
        model_config={},
        optimizer_state=b"",
        metrics={**close_metrics(3), "d_loss": math.nan},
        next_units=[],
        new_cursor=3,
    )
    assert math.isnan(store.metrics()[0].d_loss)


def test_retention_keeps_the_database_small(store: Store) -> None:
    create_test_run(store, units=3, keep_versions=3, checkpoint_every=7, keep_checkpoints=2)
    worker = store.register_worker("w", "h", "cpu")
    for version in range(30):
        finish_version(store, worker, version)
        store.add_sample(version, b"png", None)
        close(store, version)
    kept = store.versions()
    # The newest 3 versions, plus the newest 2 checkpoints (28 is both).
    assert [v.version for v in kept] == [21, 28, 29, 30]
    assert [v.is_checkpoint for v in kept] == [True, True, False, False]
    assert table_count(store, "results") == 0
    # Only the last two versions' units remain (the one just closed and the open one).
    with store.session() as conn:
        from core.store.schema import work_units

        versions = set(conn.execute(select(work_units.c.version).distinct()).scalars())
    assert versions == {29, 30}
    assert len(store.metrics()) == 30
    store.update_settings({"keep_samples": 5})
    finish_version(store, worker, 30)
    close(store, 30)
    assert [s.version for s in store.samples(100)] == [29, 28, 27, 26, 25]


def test_retention_keeps_the_best_version_for_a_rollback_after_a_collapse(store: Store) -> None:
    # A GAN's figure can fall and then collapse (benchmarks/README.md, "Time to quality"):
    # the version with the lowest figure so far keeps its weights, Adam state and grid.
    create_test_run(store, units=3, keep_versions=2, checkpoint_every=1000, keep_samples=2)
    worker = store.register_worker("w", "h", "cpu")
    figures = {5: 300.0, 10: 55.0, 15: 400.0, 20: math.nan, 25: 700.0}  # the best: version 10
    for version in range(30):
        finish_version(store, worker, version)
        close(store, version)
        if version + 1 in figures:  # the sampler grades the version a close published
            store.add_sample(version + 1, b"png%d" % (version + 1), figures[version + 1])
            store.set_metric_swd(version, figures[version + 1])
    assert store.best_quality() == (10, 55.0)
    assert [v.version for v in store.versions()] == [0, 10, 29, 30]  # 0: the first checkpoint
    assert store.optimizer_state_of(10) == b"adam10"
    assert [s.version for s in store.samples(10)] == [25, 20, 10]


def test_without_a_quality_figure_there_is_no_best_version(store: Store) -> None:
    create_test_run(store, units=3)
    worker = store.register_worker("w", "h", "cpu")
    finish_version(store, worker, 0)
    close(store, 0)
    assert store.best_quality() is None
    store.set_metric_swd(0, math.nan)  # a figure that is not a number is none
    assert store.best_quality() is None
