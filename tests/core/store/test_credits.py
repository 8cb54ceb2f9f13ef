"""Accepted units per worker and minute: recorded by the verdict, summed by window, pruned."""

from __future__ import annotations

from core.store import Store

from .factories import UNIT_SIZE, FakeClock, close, create_test_run, work_one


def accept_one(store: Store, worker_id: int) -> None:
    assert store.resolve_result(work_one(store, worker_id), "accepted") == "accepted"


def test_accepted_units_are_credited_by_minute_and_summed_over_a_window(
    store: Store, clock: FakeClock
) -> None:
    create_test_run(store, units=6)
    ada = store.register_worker("ada", "a", "cpu")
    bob = store.register_worker("bob", "b", "cpu")
    accept_one(store, ada)  # two hours ago
    clock.advance(7200)
    accept_one(store, ada)
    accept_one(store, ada)  # the same minute: one row, two units
    clock.advance(600)
    accept_one(store, bob)
    rejected = work_one(store, bob)
    store.resolve_result(rejected, "rejected", "bad")  # not credited
    clock.advance(600)
    hour = store.recent_credits(3600)
    assert hour.since == clock() - 3600
    assert [(c.worker_id, c.units, c.images) for c in hour.workers] == [
        (ada, 2, 2 * UNIT_SIZE),
        (bob, 1, UNIT_SIZE),
    ]
    assert (hour.run_units, hour.run_images) == (3, 3 * UNIT_SIZE)
    assert store.recent_credits(3 * 3600).run_units == 4
    assert store.recent_credits(60).run_units == 0


def test_a_close_forgets_credits_older_than_a_day(store: Store, clock: FakeClock) -> None:
    create_test_run(store, units=3)
    ada = store.register_worker("ada", "a", "cpu")
    for _ in range(3):
        accept_one(store, ada)
    clock.advance(2 * 86_400)
    assert store.recent_credits(3 * 86_400).run_units == 3
    close(store, 0)
    assert store.recent_credits(3 * 86_400).run_units == 0
    assert [w.units for w in store.workers()] == [3]  # the all-time totals stay
