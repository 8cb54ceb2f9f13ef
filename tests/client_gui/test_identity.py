"""One identity per computer: renaming changes the name shown, never who the units belong to."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import update

from client_gui.run_state import contribution, leaderboard, summarize_run
from core.store import Store, open_store
from core.store.schema import workers
from tests.coordinator import test_volunteers as shared
from tests.coordinator.harness import make_tiny_run
from tests.coordinator.test_volunteers import OwnedDatabase
from tests.core.store.factories import create_test_run

owned_db = shared.owned_db  # the fixture, shared


def credit(owner: Store, worker_id: int, units: int, images: int) -> None:
    """What accepted units leave on a worker row (the coordinator's bookkeeping)."""
    with owner.session() as conn:
        conn.execute(
            update(workers)
            .where(workers.c.id == worker_id)
            .values(units=units, images=images, last_seen=time.time())
        )


def one_volunteer(owner: Store, name: str, units: int, other: int) -> None:
    """Leaderboard, contribution and the active count see one volunteer called `name`
    (beside the `other` computer's worker)."""
    rows = [w for w in owner.workers() if w.id != other]
    board = leaderboard(rows, name)
    assert [(r.name, r.units, r.is_me) for r in board] == [(name, units, True)]
    assert contribution(rows, name, None).units == units
    assert summarize_run(owner.get_run(), [], rows, time.time()).active_volunteers == 1


def test_renaming_on_sqlite_keeps_one_identity(tmp_path):
    run = make_tiny_run(tmp_path)
    store = open_store(run.url)
    try:
        first = store.register_worker("vm", "host-a", "cpu")
        credit(store, first, 40, 4542)
        other = store.register_worker("vm", "host-b", "cpu")  # another computer, same name
        assert store.rename_worker("vm", "Alice", "host-a") == 1
        names = {w.id: w.name for w in store.workers()}
        assert names == {first: "Alice", other: "vm"}
        again = store.register_worker("Alice", "host-a", "cpu")  # the worker restarts
        credit(store, again, 1, 121)
        one_volunteer(store, "Alice", 41, other)
        assert any(e.message == "vm is now called Alice" for e in store.events(10))
    finally:
        store.dispose()


@pytest.mark.slow
@pytest.mark.integration
def test_renaming_on_postgresql_keeps_one_identity(owned_db: OwnedDatabase):
    owner = owned_db.open_owner()
    create_test_run(owner)
    ada = owned_db.open_volunteer(owned_db.invite(owner, "ada"))
    bob = owned_db.open_volunteer(owned_db.invite(owner, "bob"))
    first = ada.register_worker("vm", "host-a", "cpu")
    credit(owner, first, 40, 4542)
    bobs = bob.register_worker("vm", "host-b", "cpu")
    assert ada.rename_worker("vm", "Alice", "ignored-for-volunteers") == 1
    assert {w.id: w.name for w in owner.workers()} == {first: "Alice", bobs: "vm"}
    assert ada.register_worker("Alice", "host-a", "cpu") == first  # the same row again
    one_volunteer(owner, "Alice", 40, bobs)
    assert [(r.name, r.units) for r in ada.leaderboard()] == [("Alice", 40), ("vm", 0)]


def test_renaming_in_the_app_while_donating_renames_in_the_run(
    qtbot, make_window, fake_workers, tmp_path
):
    run = make_tiny_run(tmp_path)
    store = open_store(run.url)
    me = socket.gethostname()
    credit(store, store.register_worker(me, me, "cpu"), 40, 4542)  # donated before
    window = make_window()
    window.session.connect_to(run.url)
    qtbot.waitUntil(lambda: window.session.phase == "connected", timeout=10_000)
    window.session.start_donating()
    qtbot.waitUntil(lambda: bool(fake_workers.made) and fake_workers.last.alive)
    page = window.device_page
    page.name_edit.setText("Alice")
    page.name_edit.editingFinished.emit()
    qtbot.waitUntil(
        lambda: fake_workers.last.config.name == "Alice" and fake_workers.last.alive, timeout=5000
    )
    assert not fake_workers.made[0].alive
    assert [(w.name, w.units) for w in store.workers()] == [("Alice", 40)]
    store.dispose()


def test_a_rename_while_away_is_made_at_the_next_connection(qtbot, make_window, tmp_path):
    run = make_tiny_run(tmp_path)
    store = open_store(run.url)
    me = socket.gethostname()
    credit(store, store.register_worker(me, me, "cpu"), 40, 4542)
    window = make_window()
    window.session.update_settings(name="Alice")  # not connected
    assert window.session.settings.renamed_from == me
    window.session.connect_to(run.url)
    qtbot.waitUntil(lambda: [w.name for w in store.workers()] == ["Alice"], timeout=10_000)
    assert window.session.settings.renamed_from == ""
    store.dispose()
