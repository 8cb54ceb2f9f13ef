"""Volunteer logins on a real PostgreSQL: the store through the volunteer API, invites, revoke.

Every test here runs as a real volunteer login created by `invite`, against a run database
owned by a non-superuser role with CREATEROLE (as docs/deployment.md sets it up), so what is
refused is refused by the server's privileges, not by a superuser's good manners.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import torch
from sqlalchemy import text

from coordinator import cli, volunteers
from coordinator.loop import Coordinator
from coordinator.runs import RunPlan, create_run
from coordinator.watchdog import WatchdogLimits
from core.config import RunSettings
from core.invite import Invite, decode_invite, encode_invite
from core.store import LeaseLost, Store, StoreError, StoreSettings, open_store
from core.store.volunteer import ShareExceeded
from tests.coordinator.harness import TinyRun, assert_bitwise_equal, published_params
from tests.coordinator.simulate import LocalWorker, run_to
from tests.core.store import test_queue
from tests.core.store.factories import (
    METRICS,
    UNIT_SIZE,
    FakeClock,
    add_finished_units,
    close,
    create_test_run,
)
from tests.factories import TINY_MODEL, tiny_settings
from tests.postgres import PostgresServer

OWNER_PASSWORD = "owner-test-password"
DATASET_IMAGES = 60


# ------------------------------------------------------------------------------ fixtures
@dataclass
class OwnedDatabase:
    """A database owned by a non-superuser role with CREATEROLE, as deployments have it."""

    server: PostgresServer
    name: str
    owner_role: str
    opened: list[Store] = field(default_factory=list)

    @property
    def owner_url(self) -> str:
        return self.server.database_url(self.name, self.owner_role, OWNER_PASSWORD)

    def open_owner(self, clock: Callable[[], float] = time.time) -> Store:
        store = open_store(self.owner_url, create=True, clock=clock)
        self.opened.append(store)
        return store

    def invite(self, owner: Store, name: str, **options: Any) -> Invite:
        """A real volunteer login, made by `invite`, decoded from its code as a volunteer would."""
        return volunteers.invite(
            owner, name, host=self.server.host, port=self.server.port, sslmode="disable", **options
        )

    def open_volunteer(self, invite: Invite) -> Store:
        store = open_store(invite.url())
        self.opened.append(store)
        return store

    def superuser(self) -> Any:
        """An autocommit superuser connection to the run database (for test set-up only)."""
        return self.server.connect(self.name)


def connect_as(invite: Invite, *, autocommit: bool = True) -> Any:
    """A raw psycopg2 session of the volunteer: what a hostile volunteer would open."""
    conn = psycopg2.connect(
        host=invite.host,
        port=invite.port,
        dbname=invite.database,
        user=invite.role,
        password=invite.password,
        sslmode=invite.sslmode,
        connect_timeout=10,
    )
    conn.autocommit = autocommit
    return conn


@pytest.fixture
def owned_db(postgres_server: PostgresServer) -> Iterator[OwnedDatabase]:
    """A fresh database owned by `<db>_owner`; it and every `<db>_…` role are dropped after."""
    name = postgres_server.create_database()
    owner_role = f"{name}_owner"
    su = postgres_server.connect()
    try:
        with su.cursor() as cur:
            cur.execute(
                f'CREATE ROLE "{owner_role}" LOGIN CREATEROLE PASSWORD %s', (OWNER_PASSWORD,)
            )
            cur.execute(f'ALTER DATABASE "{name}" OWNER TO "{owner_role}"')
            cur.execute(volunteers.parameter_grant_sql(owner_role))
    finally:
        su.close()
    su = postgres_server.connect(name)
    try:  # what docs/deployment.md has the server's administrator run in the run's database
        with su.cursor() as cur:
            cur.execute(volunteers.HARDENING_SQL)
    finally:
        su.close()
    owned = OwnedDatabase(postgres_server, name, owner_role)
    yield owned
    for store in owned.opened:
        store.dispose()
    postgres_server.drop_database(name)
    su = postgres_server.connect()
    try:
        with su.cursor() as cur:
            cur.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (name + "_",)
            )
            roles = [row[0] for row in cur.fetchall()]
            cur.execute(f'REVOKE SET ON PARAMETER temp_file_limit FROM "{owner_role}"')
            # volunteers before their group, the owner (a member of each volunteer) last
            for role in sorted(roles, key=lambda r: (r == owner_role, r.endswith("_volunteers"))):
                cur.execute(f'DROP ROLE "{role}"')
    finally:
        su.close()


@pytest.fixture
def fake_run(owned_db: OwnedDatabase) -> Store:
    """The owner's store of a run with fake shards and weights (store-level tests)."""
    owner = owned_db.open_owner()
    create_test_run(owner)
    return owner


# ---------------------------------------------------- the store contract, volunteer path
WORKER_CALLS = frozenset(
    {"register_worker", "touch_worker", "claim", "heartbeat", "submit", "release"}
)


class VolunteerPath:
    """The owner's store, except that the worker calls are a volunteer login's.

    The contract tests move a fake clock; the volunteer functions read the server's clock
    through volunteer._now(), which the owner re-points at a table the test keeps in step.
    """

    def __init__(self, owner: Store, volunteer: Store, clock: FakeClock) -> None:
        self._owner, self._volunteer, self._clock = owner, volunteer, clock

    def __getattr__(self, name: str) -> Any:
        if name in WORKER_CALLS:
            with self._owner.session() as conn:
                conn.execute(
                    text("UPDATE volunteer.test_clock SET now = :now"), {"now": self._clock()}
                )
            return getattr(self._volunteer, name)
        return getattr(self._owner, name)


def use_fake_clock(owner: Store) -> None:
    """Make the volunteer functions read volunteer.test_clock instead of the server's clock."""
    with owner.session() as conn:
        conn.execute(text("CREATE TABLE volunteer.test_clock (now double precision NOT NULL)"))
        conn.execute(text("INSERT INTO volunteer.test_clock VALUES (0)"))
        conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION volunteer._now() RETURNS double precision "
                "LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp "
                "AS 'SELECT now FROM volunteer.test_clock'"
            )
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(owned_db: OwnedDatabase, clock: FakeClock) -> Any:
    """What the contract tests call `store`: the owner's, with a volunteer's worker calls."""
    owner = owned_db.open_owner(clock)
    use_fake_clock(owner)
    volunteer = owned_db.open_volunteer(owned_db.invite(owner, "contract"))
    assert volunteer.volunteer_login and not owner.volunteer_login
    return VolunteerPath(owner, volunteer, clock)


run = test_queue.run  # the contract module's fixture: a run of 3 units

# The owner-path contract tests that hold for a volunteer unchanged. The others claim several
# units with one worker (a volunteer holds two live leases per worker: test_claims_*) or expect
# the worker's compute time to be credited as given (a volunteer's is capped by the server's
# clock: test_compute_time_*); their volunteer versions follow.
test_claim_by_unknown_worker_is_refused = test_queue.test_claim_by_unknown_worker_is_refused
test_paused_run_hands_out_nothing = test_queue.test_paused_run_hands_out_nothing
test_poison_unit_is_parked_after_max_attempts = (
    test_queue.test_poison_unit_is_parked_after_max_attempts
)
test_release_returns_the_unit_at_once = test_queue.test_release_returns_the_unit_at_once
test_submit_with_wrong_token_is_lease_lost = test_queue.test_submit_with_wrong_token_is_lease_lost
test_submit_after_expiry_is_lease_lost = test_queue.test_submit_after_expiry_is_lease_lost
test_heartbeat_extends_the_lease = test_queue.test_heartbeat_extends_the_lease
test_second_submit_of_one_lease_is_refused = test_queue.test_second_submit_of_one_lease_is_refused
test_submit_records_the_result = test_queue.test_submit_records_the_result
test_rejected_result_returns_the_unit = test_queue.test_rejected_result_returns_the_unit
test_rejected_too_often_is_parked = test_queue.test_rejected_too_often_is_parked
test_crosscheck_needs_an_accepted_result = test_queue.test_crosscheck_needs_an_accepted_result


def submit(store: Any, lease: Any, compute_s: float = 0.5) -> int:
    return int(store.submit(lease, b"x" * 10, "fp32", UNIT_SIZE, METRICS, compute_s))


def test_claims_follow_unit_order_two_live_leases_per_worker(run: Any, clock: FakeClock) -> None:
    # Two: a worker uploads one unit while it computes (or has claimed) the next.
    workers = [run.register_worker(f"w{i}", "h", "cpu") for i in range(2)]
    leases = [run.claim(worker) for worker in workers]
    assert [lease.unit_index for lease in leases] == [0, 1]
    assert leases[0].expires_at == clock() + 60.0
    second = run.claim(workers[0])
    assert second is not None and second.unit_index == 2
    assert len({lease.token for lease in [*leases, second]}) == 3
    with pytest.raises(ShareExceeded, match="already holds 2 units"):
        run.claim(workers[0])
    assert run.unit_counts(0).leased == 3
    submit(run, leases[0])  # once one is submitted, the worker may claim again
    assert run.claim(workers[0]) is None  # nothing left, and no backup of its own units


def test_share_is_four_workers_per_volunteer_and_a_name_comes_back(run: Any) -> None:
    ids = [run.register_worker(f"w{i}", "h", "cpu") for i in range(4)]
    with pytest.raises(ShareExceeded, match=r"already has 4 workers \(w0, w1, w2, w3\)"):
        run.register_worker("w4", "h", "cpu")
    lease = run.claim(ids[1])
    # The same name again is a restart of that worker: same row, and its lease given back.
    assert run.register_worker("w1", "other-host", "cuda:0") == ids[1]
    (unit, *_) = run.version_units(0)
    assert (unit.id, unit.status, unit.attempts) == (lease.unit_id, "pending", 0)
    assert [w.name for w in run.workers()] == ["w0", "w1", "w2", "w3"]


def test_expired_lease_is_reissued_by_the_next_claim(run: Any, clock: FakeClock) -> None:
    held, *_ = [run.claim(run.register_worker(f"slow{i}", "h", "cpu")) for i in range(3)]
    fast = run.register_worker("fast", "h", "cpu")
    assert run.claim(fast) is None
    clock.advance(61)
    again = run.claim(fast)  # the claim itself returns the expired leases first
    assert (again.unit_index, again.copy) == (0, 0)
    assert again.token != held.token
    assert run.version_units(0)[0].attempts == 2
    assert [e.kind for e in run.events(3)] == ["expired"] * 3
    with pytest.raises(LeaseLost, match="re-issued"):
        submit(run, held)  # the stale token
    submit(run, again)


def test_backup_copy_of_another_volunteers_straggler(
    owned_db: OwnedDatabase, run: Any, clock: FakeClock
) -> None:
    alice = [run.register_worker(f"a{i}", "h", "cpu") for i in range(3)]
    originals = [run.claim(worker) for worker in alice]
    spare = run.register_worker("a3", "h", "cpu")
    clock.advance(31)
    assert run.claim(spare) is None  # never a backup of its own volunteer's units
    bob = VolunteerPath(
        run._owner, owned_db.open_volunteer(owned_db.invite(run._owner, "bob")), clock
    )
    helper = bob.register_worker("b0", "h", "cpu")
    backup = bob.claim(helper)
    assert (backup.unit_index, backup.copy, backup.worker_id) == (0, 1, helper)
    assert (backup.seed, backup.sample_indices) == (originals[0].seed, originals[0].sample_indices)
    assert run.events(1)[0].kind == "backup"
    first = submit(bob, backup)
    assert run.resolve_result(first, "accepted") == "accepted"
    late = submit(run, originals[0])
    assert run.resolve_result(late, "accepted") == "crosscheck"


def test_submit_after_close_is_lease_lost(run: Any) -> None:
    workers = [run.register_worker(f"w{i}", "h", "cpu") for i in range(3)]
    leases = [run.claim(worker) for worker in workers]
    for lease in leases[:2]:
        run.resolve_result(submit(run, lease), "accepted")
    close(run, 0)
    with pytest.raises(LeaseLost, match="was cancelled"):
        submit(run, leases[2])
    with pytest.raises(LeaseLost, match="was cancelled"):
        run.heartbeat(leases[2])


def test_compute_time_is_capped_by_the_server_clock(run: Any, clock: FakeClock) -> None:
    worker = run.register_worker("w", "h", "cpu")
    honest = run.claim(worker)
    clock.advance(5)
    run.resolve_result(submit(run, honest, compute_s=4.0), "accepted")
    boasting = run.claim(worker)
    clock.advance(2)
    run.resolve_result(submit(run, boasting, compute_s=1e9), "accepted")
    (row,) = run.workers()
    assert (row.units, row.images, row.compute_s) == (2, 2 * UNIT_SIZE, 4.0 + 2.0)


def test_oversized_payload_and_unknown_precision_are_refused(run: Any) -> None:
    run.update_settings({"max_payload_mb": 0.001})  # 1048 bytes
    worker = run.register_worker("w", "h", "cpu")
    lease = run.claim(worker)
    with pytest.raises(StoreError, match="over the run's max_payload_mb"):
        run.submit(lease, b"x" * 2000, "fp32", UNIT_SIZE, METRICS, 0.1)
    with pytest.raises(StoreError, match="precision must be fp32, bf16 or fp16"):
        run.submit(lease, b"x", "pickle", UNIT_SIZE, METRICS, 0.1)
    assert run.new_results(10) == []
    submit(run, lease)


@pytest.mark.slow
def test_claim_stays_fast_with_100k_finished_units(run: Any) -> None:
    add_finished_units(run, 100_000)
    workers = [run.register_worker(f"w{i}", "h", "cpu") for i in range(4)]
    started = time.perf_counter()
    for worker in workers[:3]:
        assert run.claim(worker) is not None
    assert run.claim(workers[3]) is None  # the idle path: expiry and backup queries
    assert (time.perf_counter() - started) / 4 < 0.05  # seconds per claim


def test_function_defaults_match_the_store_settings() -> None:
    """Migration 0002 writes the settings' defaults into its SQL; they must stay equal."""
    from importlib import import_module

    migration = import_module("core.store.migrations.versions.0002_volunteers")
    store, run_settings = StoreSettings(), RunSettings()
    assert migration.DEFAULT_LEASE_S == store.lease_s == run_settings.lease_s
    assert migration.DEFAULT_MAX_ATTEMPTS == store.max_attempts == run_settings.max_attempts
    assert store.backup_after_s == migration.DEFAULT_BACKUP_AFTER_S
    assert run_settings.max_payload_mb == migration.DEFAULT_MAX_PAYLOAD_MB


# ------------------------------------------------------------- what a volunteer can read
def test_volunteer_reads_what_a_worker_needs_and_nothing_more(
    owned_db: OwnedDatabase, fake_run: Store
) -> None:
    alice = owned_db.open_volunteer(owned_db.invite(fake_run, "alice"))
    bob = owned_db.open_volunteer(owned_db.invite(fake_run, "bob"))
    assert alice.volunteer_login and not fake_run.volunteer_login
    mine = alice.register_worker("a", "alice-pc", "cpu")
    bob.register_worker("b", "bob-secret-host", "cuda:0")
    assert alice.get_run() == fake_run.get_run()
    assert alice.shard_index() == fake_run.shard_index()
    assert alice.shard(1) == fake_run.shard(1)
    assert alice.version_weights(0) == fake_run.version_weights(0)
    assert alice.versions() == fake_run.versions()
    assert alice.metrics() == fake_run.metrics() and alice.samples(5) == fake_run.samples(5)
    assert [w.id for w in alice.workers()] == [mine]  # her own rows only
    board = alice.leaderboard()
    assert sorted(row.name for row in board) == ["a", "b"]
    assert "bob-secret-host" not in repr(board)
    assert board == fake_run.leaderboard()
    for refused in (
        lambda: alice.events(10),
        lambda: alice.new_results(10),
        lambda: alice.optimizer_state(),
        lambda: alice.version_units(0),
        lambda: alice.expire_leases(),
    ):
        with pytest.raises(StoreError, match=r"does not exist|permission denied"):
            refused()


# ----------------------------------------------------------------- invite, list, revoke
def test_invite_volunteers_and_revoke_from_the_command_line(
    owned_db: OwnedDatabase, fake_run: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    url = owned_db.owner_url
    assert cli.main(["invite", "--db", url, "carol", "--expires", "7", "--sslmode", "disable"]) == 0
    out, err = capsys.readouterr()
    code = out.strip()
    assert len(out.splitlines()) == 1 and code.startswith("gf1-")
    assert "carol" in err and "only works on this computer" in err  # 127.0.0.1 in the URL
    assert "set verification=adaptive" in err  # the fake run counts results unchecked
    invite = decode_invite(code)
    assert (invite.database, invite.sslmode) == (owned_db.name, "disable")
    volunteer = owned_db.open_volunteer(invite)
    worker = volunteer.register_worker("carol-pc", "h", "cpu")
    lease = volunteer.claim(worker)
    assert lease is not None

    assert cli.main(["volunteers", "--db", url, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["status"], row["workers"], row["sessions"]) == (
        "carol",
        "active",
        1,
        1,
    )
    assert 6.9 < (row["expires_at"] - time.time()) / 86400 <= 7
    assert cli.main(["volunteers", "--db", url]) == 0
    table = capsys.readouterr().out
    assert "CAROL" not in table and "carol" in table and "NAME" in table

    assert cli.main(["invite", "--db", url, "carol"]) == 2
    assert "already invited" in capsys.readouterr().err
    assert cli.main(["revoke", "--db", url, "carol"]) == 0
    out = capsys.readouterr().out
    assert "revoked carol" in out and "1 lease(s) released" in out
    assert fake_run.version_units(0)[0].status == "pending"
    assert cli.main(["volunteers", "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "revoked"
    with pytest.raises(psycopg2.OperationalError, match="not permitted to log in"):
        connect_as(invite)

    # Re-admitted with a new code: the old password is dead, the new one works.
    again = owned_db.invite(fake_run, "carol")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect_as(invite)
    connect_as(again).close()


def test_invite_says_when_the_database_lacks_the_superuser_hardening(
    owned_db: OwnedDatabase, fake_run: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    su = owned_db.superuser()
    try:
        with su.cursor() as cur:
            cur.execute("GRANT EXECUTE ON FUNCTION pg_catalog.lo_create(oid) TO PUBLIC")
    finally:
        su.close()
    assert volunteers.missing_hardening(fake_run) == volunteers.HARDENING_SQL
    assert cli.main(["invite", "--db", owned_db.owner_url, "ivan", "--host", "gpu.lab"]) == 0
    out, err = capsys.readouterr()
    assert "can still create large objects" in err and volunteers.HARDENING_SQL in err
    assert "only works on this computer" not in err
    assert decode_invite(out.strip()).host == "gpu.lab"


def temp_file_limit(invite: Invite) -> str:
    conn = connect_as(invite)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW temp_file_limit")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def test_invite_caps_temporary_files_once_the_owner_may(
    owned_db: OwnedDatabase, fake_run: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    grant = volunteers.parameter_grant_sql(owned_db.owner_role)
    owned_db.server.execute(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM "))
    assert volunteers.missing_hardening(fake_run) == grant
    early = owned_db.invite(fake_run, "early")
    assert temp_file_limit(early) == "-1"  # not capped: the superuser's step is missing
    assert cli.main(["invite", "--db", owned_db.owner_url, "noted", "--host", "gpu.lab"]) == 0
    assert grant in capsys.readouterr().err
    owned_db.server.execute(grant)
    assert volunteers.missing_hardening(fake_run) is None
    late = owned_db.invite(fake_run, "late")
    cap = volunteers.TEMP_FILE_LIMIT
    assert temp_file_limit(late) == temp_file_limit(early) == cap  # the early one caught up
    conn = connect_as(late)
    try:
        assert refused_code(conn, "SET temp_file_limit = -1") == "42501"
    finally:
        conn.close()


def refused_code(conn: Any, statement: str) -> str:
    with conn.cursor() as cur:
        try:
            cur.execute(statement)
        except psycopg2.Error as error:
            return str(error.pgcode)
    raise AssertionError(f"allowed: {statement}")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["invite", "Bad Name"], "cannot be a volunteer name"),
        (["invite", "x", "--expires", "0"], "--expires must be more than 0"),
        (["revoke", "nobody"], "no volunteer named 'nobody'"),
    ],
)
def test_volunteer_commands_refuse_bad_input(
    owned_db: OwnedDatabase,
    fake_run: Store,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    assert cli.main([argv[0], "--db", owned_db.owner_url, *argv[1:]]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and expected in err


def test_volunteer_commands_need_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    open_store(url, create=True).dispose()
    for argv in (["invite", "--db", url, "ann"], ["volunteers", "--db", url]):
        assert cli.main(argv) == 2
        assert "need a PostgreSQL run" in capsys.readouterr().err


def test_a_role_name_taken_on_the_server_is_refused(
    owned_db: OwnedDatabase, fake_run: Store
) -> None:
    su = owned_db.superuser()
    try:
        with su.cursor() as cur:
            cur.execute(f'CREATE ROLE "{owned_db.name}_dave"')
    finally:
        su.close()
    with pytest.raises(volunteers.VolunteerError, match="already exists and is not a volunteer"):
        owned_db.invite(fake_run, "dave")


def test_revoke_takes_back_leases_and_unjudged_results_in_under_a_second(
    owned_db: OwnedDatabase, fake_run: Store
) -> None:
    erin = owned_db.open_volunteer(owned_db.invite(fake_run, "erin"))
    first, second = erin.register_worker("e1", "h", "cpu"), erin.register_worker("e2", "h", "cpu")
    submitted = erin.claim(first)
    assert submitted is not None
    erin.submit(submitted, b"x", "fp32", UNIT_SIZE, METRICS, 0.1)  # not judged yet
    held = erin.claim(second)
    assert held is not None
    done = volunteers.revoke(fake_run, "erin")
    assert done.seconds < 1.0
    assert (done.sessions_ended, done.leases_released, done.results_dropped) >= (1, 1, 1)
    units = {u.unit_index: u for u in fake_run.version_units(0)}
    assert units[submitted.unit_index].status == units[held.unit_index].status == "pending"
    assert fake_run.new_results(10) == []
    assert fake_run.events(1)[0].kind == "revoked"
    with pytest.raises(StoreError, match=r"terminat|closed|not permitted"):
        erin.claim(first)  # its pooled session was ended; a new one is refused


# ---------------------------------------------------------- a real run with volunteers
def make_pg_run(owned_db: OwnedDatabase, tmp_path: Path, **changes: object) -> TinyRun:
    settings = tiny_settings(**changes)
    owner = owned_db.open_owner()
    create_run(
        owner, RunPlan("test", TINY_MODEL, settings, ("synthetic", DATASET_IMAGES)), progress=False
    )
    return TinyRun(owned_db.owner_url, tmp_path / "unused", TINY_MODEL, settings, {})


@pytest.mark.slow
def test_volunteers_train_a_run_bitwise_equal_to_the_reference(
    owned_db: OwnedDatabase, tmp_path: Path
) -> None:
    """Two volunteers' workers do every unit through the functions; the coordinator closes."""
    from tests.coordinator.harness import reference_params

    run = make_pg_run(owned_db, tmp_path)
    owner = owned_db.opened[0]
    workers = [
        LocalWorker(run, owned_db.open_volunteer(owned_db.invite(owner, name)), f"{name}-pc")
        for name in ("fay", "gus")
    ]
    coordinator = Coordinator(owner)
    run_to(coordinator, workers, 2)
    assert_bitwise_equal(published_params(owner, 2), reference_params(run, 2))
    credited = {w.name: w.units for w in owner.workers()}
    assert sum(credited.values()) == 6 and all(credited.values())
    assert {row.name for row in workers[0].store.leaderboard()} == {"fay-pc", "gus-pc"}


@pytest.mark.slow
def test_worker_engine_with_an_invite_completes_units(
    owned_db: OwnedDatabase, tmp_path: Path
) -> None:
    """The worker engine itself, connected by an invite, as `ganfriends-worker --invite` runs."""
    import threading

    from core.cache import ShardCache
    from core.worker import WorkerEngine, WorkerOptions

    make_pg_run(owned_db, tmp_path)
    owner = owned_db.opened[0]
    invite = owned_db.invite(owner, "hal")
    options = WorkerOptions(
        name="hal-pc", hostname="h", device=torch.device("cpu"), threads=1, max_units=3
    )
    engine = WorkerEngine(
        lambda: owned_db.open_volunteer(decode_invite(encode_invite(invite))),
        ShardCache(tmp_path / "cache"),
        options,
    )
    thread = threading.Thread(target=engine.run)
    thread.start()
    coordinator = Coordinator(owner)
    # Ends at once any statement the engine does not issue that it sees running: the engine
    # itself must never trip it.
    coordinator.watchdog.limits = WatchdogLimits(foreign_statement_s=0.0, every_s=0.02)
    deadline = time.monotonic() + 120
    while coordinator.version < 1 and time.monotonic() < deadline:
        if not coordinator.step():
            time.sleep(0.02)
    engine.stop()
    thread.join(30)
    assert coordinator.version == 1
    (row,) = owner.workers()
    assert (row.name, row.units) == ("hal-pc", 3)
    assert [v.sessions_ended for v in volunteers.list_volunteers(owner)] == [0]
