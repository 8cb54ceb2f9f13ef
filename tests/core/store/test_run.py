"""Creating a run, its settings and status, and what it publishes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.codec import sha256_hex
from core.store import NoRun, RunExists, Store, StoreError, UnitSpec
from core.store.rows import ShardData

from .factories import create_test_run, make_shards, make_units


class IngestFailed(Exception):
    pass


def failing_shards() -> Iterator[ShardData]:
    """Two shards, then the ingest dies (a corrupt zip, a full disk…)."""
    yield from make_shards(2)
    raise IngestFailed("disk full")


def test_create_run_is_atomic(store: Store) -> None:
    with pytest.raises(IngestFailed):
        store.create_run(
            name="broken",
            model_config={"image_size": 32},
            settings={},
            shards=failing_shards(),
            weights=b"w0",
            weights_sha256="0" * 64,
            optimizer_state=b"adam0",
            first_units=make_units(0, 3),
        )
    with pytest.raises(NoRun, match="no run in this database"):
        store.get_run()
    assert store.shard_index() == []
    create_test_run(store)  # the failed attempt left nothing that blocks a new one
    assert store.get_run().name == "test"


def test_first_units_may_depend_on_the_dataset_size(store: Store) -> None:
    sizes: list[int] = []

    def first_units(dataset_size: int) -> list[UnitSpec]:
        sizes.append(dataset_size)
        return make_units(0, dataset_size // 4)

    store.create_run("t", {}, {}, make_shards(3), b"w", sha256_hex(b"w"), b"", first_units)
    assert sizes == [24]
    assert store.get_run().cursor == 6
    assert store.unit_counts(0).pending == 6


def test_a_failing_unit_plan_leaves_no_run(store: Store) -> None:
    def first_units(dataset_size: int) -> list[UnitSpec]:
        raise IngestFailed(f"{dataset_size} images are fewer than one micro-batch")

    with pytest.raises(IngestFailed):
        store.create_run("t", {}, {}, make_shards(3), b"w", sha256_hex(b"w"), b"", first_units)
    with pytest.raises(NoRun):
        store.get_run()
    assert store.shard_index() == []


def test_second_create_run_is_refused(store: Store) -> None:
    create_test_run(store)
    with pytest.raises(RunExists, match="already holds a run"):
        create_test_run(store)


def test_create_run_publishes_version_zero(store: Store) -> None:
    create_test_run(store, units=5, lease_s=10.0)
    run = store.get_run()
    assert (run.name, run.status, run.version, run.cursor) == ("test", "active", 0, 5)
    assert run.dataset_size == 3 * 8
    assert run.image_size == 32
    assert run.settings == {"lease_s": 10.0}
    assert run.model_config == {"image_size": 32}
    assert store.version_weights(0) == (b"w0", sha256_hex(b"w0"), {"image_size": 32})
    assert store.optimizer_state() == (0, b"adam0")
    assert store.latest_version() == 0
    assert store.unit_counts(0).pending == 5
    assert [u.unit_index for u in store.version_units(0)] == [0, 1, 2, 3, 4]


def test_shards_round_trip(store: Store) -> None:
    create_test_run(store)
    index = store.shard_index()
    assert [(s.index, s.count, s.image_size) for s in index] == [(0, 8, 32), (1, 8, 32), (2, 8, 32)]
    assert store.shard(2) == make_shards()[2]
    with pytest.raises(StoreError, match="no dataset shard 7"):
        store.shard(7)


def test_pause_resume_and_settings(store: Store) -> None:
    create_test_run(store, lease_s=10.0)
    assert store.set_status("paused").status == "paused"
    assert store.set_status("active").status == "active"
    with pytest.raises(StoreError, match="run status must be one of"):
        store.set_status("stopped")
    run = store.update_settings({"max_attempts": 5, "custom": "kept"})
    assert run.settings == {"lease_s": 10.0, "max_attempts": 5, "custom": "kept"}
    with pytest.raises(StoreError, match="max_attempts must be positive"):
        store.update_settings({"max_attempts": 0})
    assert store.get_run().settings["max_attempts"] == 5
    kinds = [e.kind for e in store.events(10)]
    assert kinds[:3] == ["settings", "resumed", "paused"]


def test_workers_register_and_touch(store: Store, clock) -> None:
    create_test_run(store)
    worker = store.register_worker("alice", "lab-1", "cpu")
    clock.advance(5)
    store.touch_worker(worker, "computing")
    (row,) = store.workers()
    assert (row.id, row.name, row.hostname, row.device) == (worker, "alice", "lab-1", "cpu")
    assert (row.state, row.last_seen - row.created_at) == ("computing", 5)
    assert (row.units, row.images, row.compute_s, row.rejected) == (0, 0, 0.0, 0)


def test_samples_metrics_and_events(store: Store, clock) -> None:
    create_test_run(store)
    for version in range(4):
        store.add_sample(version, f"png{version}".encode(), None)
        clock.advance(1)
    store.add_sample(3, b"png3-again", 0.25)  # a re-render replaces
    latest = store.latest_sample()
    assert latest is not None
    assert (latest.version, latest.png, latest.swd) == (3, b"png3-again", 0.25)
    assert [s.version for s in store.samples(2)] == [3, 2]
    store.add_event("note", "hello", version=1)
    (event,) = store.events(1)
    assert (event.kind, event.message, event.version, event.at) == ("note", "hello", 1, clock())
    assert store.events(10, after_id=event.id) == []
