"""One coordinator per run: the lock refuses a second one, the epoch fences a stale one."""

from __future__ import annotations

import threading
import time

import pytest

from core.store import RunHeld, RunLock, Store, Superseded, fence

from .factories import create_test_run


def test_a_new_epoch_fences_every_transaction_of_the_old_one(store: Store) -> None:
    create_test_run(store)
    first = store.take_run()
    first.add_event("note", "written by the first coordinator")
    second = store.take_run()
    assert (first.epoch, second.epoch) == (1, 2)
    with pytest.raises(Superseded, match=r"another coordinator took this run over \(pid \d+"):
        first.add_event("note", "written by the stale coordinator")
    with pytest.raises(Superseded):
        first.set_status("paused")
    second.add_event("note", "written by the second coordinator")
    messages = [e.message for e in store.events(50)]
    assert "written by the stale coordinator" not in messages
    assert store.get_run().status == "active"
    assert {"written by the first coordinator", "written by the second coordinator"} <= set(
        messages
    )
    store.add_event("note", "an unfenced store (a worker, the admin console) is not affected")


def test_a_takeover_waits_for_the_open_transaction_of_the_old_holder(store: Store) -> None:
    """The check and the commit of a fenced transaction cannot be split by a takeover."""
    create_test_run(store)
    first = store.take_run()
    inside, taken = threading.Event(), threading.Event()

    def take() -> None:
        inside.wait()
        store.take_run()
        taken.set()

    thread = threading.Thread(target=take)
    thread.start()
    with first.session():
        inside.set()
        time.sleep(0.5)
        assert not taken.is_set()  # the takeover waits for this transaction to end
        first.add_event("note", "committed before the takeover")
    thread.join(30)
    assert taken.is_set()
    assert "committed before the takeover" in [e.message for e in store.events(50)]
    with pytest.raises(Superseded):
        first.add_event("note", "after")


def test_a_live_holder_refuses_a_second_coordinator_a_silent_one_is_taken_over(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_test_run(store)
    mine, other = RunLock(store.engine), RunLock(store.engine)
    try:
        fenced = store.take_run(mine)
        fenced.beat()
        assert mine.held()
        with pytest.raises(RunHeld, match=r"another coordinator serves this run \(pid \d+ on host"):
            store.take_run(other)
        assert fenced.epoch == store.holder().epoch  # the refusal changed nothing
        monkeypatch.setattr(fence, "HOLDER_LEASE_S", 0.2)
        time.sleep(0.3)  # the holder stays silent past the lease: frozen, as far as anyone knows
        taker = store.take_run(other)
        assert taker.epoch == (fenced.epoch or 0) + 1
        with pytest.raises(Superseded):
            fenced.beat()
        mine.release()
        assert other.acquire()  # the first coordinator's lock is free once it is gone
    finally:
        mine.release()
        other.release()


def test_the_lock_is_free_again_once_released(store: Store) -> None:
    create_test_run(store)
    first, second = RunLock(store.engine), RunLock(store.engine)
    try:
        assert first.acquire() and first.acquire()  # taking it twice is a no-op
        assert not second.acquire()
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()
