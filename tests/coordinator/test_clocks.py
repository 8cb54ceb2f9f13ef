"""One clock per run: workers hours off and a coordinator minutes off the run's clock change nothing.

Real processes whose wall clock libfaketime moves (tests/faketime.py). On SQLite the run's clock
is the coordinator's; on PostgreSQL the database server's (core/store/clock.py). The runs must
end bitwise equal to the reference trainer: no unit expired early (an empty version, skipped
data) and a killed worker's unit re-issued after its lease, not hours later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator.runs import RunPlan, create_run
from core.invite import encode_invite
from core.store import Store
from tests.coordinator.harness import (
    DATASET_IMAGES,
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
    serve_until,
    stop_processes,
    wait_for,
)
from tests.coordinator.test_volunteers import OwnedDatabase, owned_db  # noqa: F401 (fixture)
from tests.factories import TINY_MODEL, tiny_settings
from tests.faketime import skewed
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.integration]

VERSIONS = 4
# Units slow enough to be caught mid-compute, and a short lease so that a re-issue comes soon.
SLOW_UNITS = {"images_per_work_unit": 30, "batch_size": 2, "lease_s": 2.0, "backup_after_s": 60.0}
ON_TIME_S = 60.0  # a lease of seconds re-issued later than this was not re-issued on time


@pytest.fixture(params=["sqlite", "postgresql"])
def run_url(request: pytest.FixtureRequest) -> str | None:
    """None: an SQLite file; else an empty PostgreSQL database (workers log in as the owner)."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database_url(request.getfixturevalue("pg_database"))


def start_worker(run: TinyRun, name: str, clock: str | None, *login: str) -> subprocess.Popen:
    """A worker process whose wall clock is `clock` off ('+2h'), or the true one (None)."""
    env = run.env if clock is None else skewed(run.env, clock)
    command = [sys.executable, "-m", "core.worker_cli", *(login or ("--db", run.url))]
    command += ["--threads", "1", "--name", name, "--quiet"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def assert_nothing_expired_or_parked(store: Store, versions: int, units: int) -> None:
    every_version = {m.version: (m.units, m.parked_units) for m in store.metrics()}
    assert every_version == {v: (units, 0) for v in range(versions)}
    kinds = {event.kind for event in store.events(10_000)}
    assert not kinds & {"expired", "parked"}, kinds


def test_workers_hours_off_change_nothing(tmp_path: Path, run_url: str | None) -> None:
    run = make_tiny_run(tmp_path, run_url)
    procs = [start_worker(run, f"w{clock}", clock) for clock in (None, "-2h", "+2h")]
    store = run.store()
    try:
        serve_until(store, VERSIONS).watchdog.stop()  # no thread left behind on PostgreSQL
        got = published_params(store, VERSIONS)
        assert_nothing_expired_or_parked(store, VERSIONS, run.settings.num_workunits_per_update)
        # every worker is seen "now" by the run's clock, whatever its own clock says
        # (this host's: the coordinator's here, and the PostgreSQL server's, which runs here)
        now = time.time()
        assert {w.name: abs(now - w.last_seen) < 30 for w in store.workers()} == {
            "wNone": True,
            "w-2h": True,
            "w+2h": True,
        }
    finally:
        stop_processes(procs)
        store.dispose()
    assert_bitwise_equal(got, reference_params(run, VERSIONS))


@pytest.mark.parametrize("clock", ["+2h", "-2h"])
def test_a_killed_worker_hours_off_loses_its_unit_on_time(
    tmp_path: Path, run_url: str | None, clock: str
) -> None:
    # A lease long enough that expiring it at once (a clock behind) is told from on time.
    run = make_tiny_run(tmp_path, run_url, **{**SLOW_UNITS, "lease_s": 4.0})
    victim = start_worker(run, "victim", clock)
    store = run.store()
    procs = [victim]
    try:
        wait_for(lambda: any(u.status == "leased" for u in store.version_units(0)), 60)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.time()  # the run's clock: the coordinator's, or the server's here
        procs.append(start_worker(run, "survivor", None))
        # not hours later (a clock ahead)
        serve_until(store, 2, timeout_s=ON_TIME_S).watchdog.stop()
        got = published_params(store, 2)
        # ... nor before its lease ran out (a clock behind): it was renewed every lease_s / 3
        victim_id = next(w.id for w in store.workers() if w.name == "victim")
        expired = [e.at for e in store.events(1000) if e.kind == "expired"]
        assert expired, "the victim's unit was never re-issued"
        assert all(at >= killed_at + run.settings.lease_s / 2 for at in expired), [
            at - killed_at for at in expired
        ]
        assert {e.worker_id for e in store.events(1000) if e.kind == "expired"} == {victim_id}
    finally:
        stop_processes(procs)
        store.dispose()
    assert_bitwise_equal(got, reference_params(run, 2))


@pytest.mark.parametrize("clock", ["+5m", "-5m"])
def test_a_coordinator_minutes_off_the_servers_clock_changes_nothing(
    tmp_path: Path,
    owned_db: OwnedDatabase,  # noqa: F811 (the fixture imported above)
    clock: str,
) -> None:
    """Volunteers' units complete, and a killed volunteer's lease expires on time, although
    the coordinator's own clock is 5 minutes ahead of the database server's, or behind it."""
    # Leases of 6 s: a clock minutes off would expire them at once or never. (At 2 s a
    # survivor's lease expired once on a loaded CI machine, when a lease got its first
    # heartbeat only after its unit was fetched; it now beats from its claim, and 6 s leaves a
    # heartbeat every 2 s room for a busy database.)
    settings = tiny_settings(**{**SLOW_UNITS, "lease_s": 6.0})
    owner = owned_db.open_owner()
    plan = RunPlan("clocks", TINY_MODEL, settings, ("synthetic", DATASET_IMAGES))
    create_run(owner, plan, progress=False)
    env = dict(
        os.environ,
        GANFRIENDS_CACHE_DIR=str(tmp_path / "cache"),
        GANFRIENDS_LOG_DIR=str(tmp_path / "logs"),
    )
    run = TinyRun(owned_db.owner_url, tmp_path, TINY_MODEL, settings, env)
    login = ("--invite", encode_invite(owned_db.invite(owner, "vol")))
    serve = [sys.executable, "-m", "coordinator.cli", "serve", "--db", run.url]
    coordinator = subprocess.Popen(
        serve, env=skewed(run.env, clock), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    victim = start_worker(run, "victim", None, *login)
    procs = [coordinator, victim]
    try:
        wait_for(lambda: any(u.status == "leased" for u in owner.version_units(0)), 60)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # Nobody claims meanwhile: only the coordinator's expiry pass can give the unit back.
        wait_for(lambda: not any(u.status == "leased" for u in owner.version_units(0)), 15)
        procs.append(start_worker(run, "survivor", None, *login))
        wait_for(lambda: owner.latest_version() >= 2 or coordinator.poll() is not None, ON_TIME_S)
        assert coordinator.poll() is None, coordinator.stderr.read() if coordinator.stderr else ""
        got = published_params(owner, 2)
        assert {m.version: m.parked_units for m in owner.metrics()} == {0: 0, 1: 0}
        # the survivor's leases never expired early: only the victim's did
        names = {w.id: w.name for w in owner.workers()}
        expired = {names.get(e.worker_id or 0) for e in owner.events(1000) if e.kind == "expired"}
        assert expired == {"victim"}
    finally:
        stop_processes(procs)
    assert_bitwise_equal(got, reference_params(run, 2))
