"""Hostile workers as real processes against a serving coordinator, on SQLite and on PostgreSQL
with real volunteer logins: each attack is caught within the cheater's first two results, no
honest volunteer is quarantined, and the run ends bitwise equal to the reference trainer's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator import admin
from coordinator.loop import Coordinator
from core.invite import encode_invite
from core.store import Store
from tests.coordinator.harness import (
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
    stop_processes,
)
from tests.coordinator.test_volunteers import OwnedDatabase, make_pg_run
from tests.coordinator.test_volunteers import owned_db as owned_db  # the fixture

pytestmark = [pytest.mark.slow, pytest.mark.integration]

VERSIONS = 3
TIMEOUT_S = 240.0


def worker(
    run: TinyRun, where: list[str], name: str, attack: str | None = None
) -> subprocess.Popen[bytes]:
    """An honest worker (`core.worker_cli`) or, with `attack`, a hostile one, as a process."""
    module = "core.worker_cli" if attack is None else "tests.coordinator.hostile_worker"
    command = [sys.executable, "-m", module, *where, "--threads", "1", "--name", name]
    command += ["--quiet"] if attack is None else ["--attack", attack]
    return subprocess.Popen(command, env=run.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def serve(store: Store, procs: list[subprocess.Popen[bytes]]) -> Coordinator:
    """A coordinator in this process until VERSIONS is published (failing if a worker dies)."""
    coordinator = Coordinator(store)
    deadline = time.monotonic() + TIMEOUT_S
    while coordinator.version < VERSIONS or not any(
        r.record.quarantined for r in store.trust_rows()
    ):  # a slow-starting cheater may join late: serve until it was caught too
        assert time.monotonic() < deadline, f"version {VERSIONS} not reached in {TIMEOUT_S} s"
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a worker exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        if not coordinator.step():
            time.sleep(0.01)
    return coordinator


def check(store: Store, run: TinyRun, cheater: str, honest: list[str], remedy: str) -> None:
    assert_bitwise_equal(published_params(store, VERSIONS), reference_params(run, VERSIONS))
    records = {row.record.identity: row for row in store.trust_rows()}
    caught = records[cheater].record
    assert caught.quarantined and caught.reason, caught
    for name in honest:
        assert not records[name].record.quarantined, records[name]
        assert records[name].record.outvoted == 0
    events = [e for e in store.events(1000) if e.kind == "quarantined"]
    assert len(events) == 1 and remedy in events[0].message, events[0].message
    shown = admin.run_status(store)["verification"]
    assert [q["identity"] for q in shown["quarantined"]] == [cheater]
    assert shown["quarantined"][0]["remedy"] in events[0].message
    table = {w["volunteer"]: w for w in admin.worker_table(store)}
    assert table[cheater]["trust"].startswith("quarantined")
    assert all(table[name]["verified"] > 0 for name in honest)


def test_hostile_worker_process_on_sqlite(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, verification="adaptive")
    where = ["--db", run.url]
    procs = [worker(run, where, n) for n in ("ada", "bob")]
    procs.append(worker(run, where, "mallory", "scaled_and_flipped"))
    store = run.store()
    try:
        serve(store, procs)
        check(store, run, "mallory", ["ada", "bob"], "stop the computers running 'mallory'")
    finally:
        stop_processes(procs)
        store.dispose()


@pytest.mark.postgres
def test_hostile_volunteer_process_on_postgresql(owned_db: OwnedDatabase, tmp_path: Path) -> None:
    """Volunteer logins made by `invite`; the cheater runs two workers under one login."""
    run = make_pg_run(owned_db, tmp_path, verification="adaptive")
    owner = owned_db.opened[0]
    invites = {n: owned_db.invite(owner, n) for n in ("fay", "gus", "mallory")}
    codes = {n: encode_invite(invite) for n, invite in invites.items()}
    role = {n: invite.role for n, invite in invites.items()}  # the identity: its login
    procs = [worker(run, ["--invite", codes[n]], f"{n}-pc") for n in ("fay", "gus")]
    procs += [
        worker(run, ["--invite", codes["mallory"]], f"mallory-{i}", "random_at_bound")
        for i in range(2)
    ]
    try:
        serve(owner, procs)
        check(
            owner,
            run,
            role["mallory"],
            [role["fay"], role["gus"]],
            "lock it out with: ganfriends-coordinator revoke mallory",
        )
        shown = {v["name"]: v for v in admin.volunteer_table(owner)}
        assert shown["mallory"]["trust"].startswith("quarantined")
        assert shown["fay"]["verified"] > 0 and shown["fay"]["trust"].startswith("new (")
    finally:
        stop_processes(procs)
