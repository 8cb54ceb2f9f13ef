"""Honest figures after restarts: an app that starts after its computer donated all hour shows
that hour's share and every unit it gave, read from the database (issue 16 item 5)."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from client_gui.run_state import RunReader, contribution
from coordinator.volunteer_statements import is_engine_statement
from core.store import Store, open_store
from tests.coordinator import test_volunteers as shared
from tests.coordinator.harness import make_tiny_run
from tests.coordinator.test_volunteers import OwnedDatabase
from tests.core.store.factories import FakeClock, create_test_run

owned_db = shared.owned_db  # the fixture, shared
UNITS = 12  # units of version 0: all a test needs, no close
PAYLOAD = b"x" * 10
METRICS = {"d_loss": 0.7, "g_loss": 1.3, "d_real": 0.6, "d_fake": 0.4}


def accept(owner: Store, computer: Store, worker_id: int) -> None:
    """One unit computed by `computer`'s worker and accepted by the owner (the coordinator)."""
    lease = computer.claim(worker_id)
    assert lease is not None
    result = computer.submit(lease, PAYLOAD, "fp32", len(lease.sample_indices), METRICS, 1.0)
    assert owner.resolve_result(result, "accepted") == "accepted"


def donate_before_the_restart(
    owner: Store, clock: FakeClock, me: tuple[Store, int], other: tuple[Store, int]
) -> None:
    """Earlier sessions: one unit of mine two hours ago; in the last hour 8 of mine, 2 others'."""
    clock.now = time.time() - 7200
    accept(owner, *me)
    clock.now = time.time() - 3300
    for step in range(8):
        accept(owner, *me)
        if step in (2, 5):
            accept(owner, *other)
        clock.advance(300)


@pytest.mark.slow
def test_an_app_started_after_an_hour_of_donating_shows_that_hour(qtbot, make_window, tmp_path):
    run = make_tiny_run(tmp_path, num_workunits_per_update=UNITS)
    clock = FakeClock()
    owner = open_store(run.url, clock=clock)
    me = socket.gethostname()  # the app's worker name on a fresh profile
    try:
        mine = owner.register_worker(me, me, "cpu")
        theirs = owner.register_worker("bob", "elsewhere", "cpu")
        donate_before_the_restart(owner, clock, (owner, mine), (owner, theirs))
        window = make_window()  # the app starts again, having seen nothing of it
        window.session.connect_to(run.url)
        page = window.watch_page
        qtbot.waitUntil(lambda: page.units_label.text() == "9", timeout=10_000)
        assert page.images_label.text() == f"{9 * 12:,}"
        assert page.share_label.text() == "80% of the images"  # 8 of the hour's 10 units
        assert page.share_title.text() == "Share of the last hour:"
    finally:
        owner.dispose()


@pytest.mark.slow
@pytest.mark.integration
def test_a_volunteer_login_reads_its_share_and_totals_after_a_restart(
    owned_db: OwnedDatabase,
):
    clock = FakeClock()
    owner = owned_db.open_owner(clock)
    create_test_run(owner, units=UNITS)
    ada_invite = owned_db.invite(owner, "ada")
    ada = owned_db.open_volunteer(ada_invite)
    bob = owned_db.open_volunteer(owned_db.invite(owner, "bob"))
    mine = ada.register_worker("vm", "host-a", "cpu")
    theirs = bob.register_worker("vm", "host-b", "cpu")  # the same name, another volunteer
    donate_before_the_restart(owner, clock, (ada, mine), (bob, theirs))
    reader = RunReader(ada_invite.url())  # a new app session of ada's
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(cursor.query.decode())  # as the server (and its watchdog) sees it

    event.listen(Engine, "after_cursor_execute", record)
    try:
        snapshot = reader.read()
    finally:
        event.remove(Engine, "after_cursor_execute", record)
        reader.close()
    # The watchdog would end a volunteer session that runs anything else for long.
    assert any("volunteer.run_credits" in query for query in sent)
    assert [query for query in sent if not is_engine_statement(query)] == []
    assert snapshot.credits is not None and snapshot.workers is not None
    assert [c.worker_id for c in snapshot.credits.workers] == [mine]  # her own rows only
    assert snapshot.credits.run_units == 10  # the run's, through volunteer.run_credits
    figures = contribution(snapshot.workers, "vm", snapshot.credits, snapshot.trust)
    assert (figures.units, figures.images) == (9, 9 * 4)
    assert figures.share_last_hour == pytest.approx(0.8)
