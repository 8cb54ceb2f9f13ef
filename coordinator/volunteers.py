"""Volunteer logins on PostgreSQL: invite, list and revoke them (the session watchdog that
polices them: coordinator/watchdog.py)."""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg2.extensions import encrypt_password
from sqlalchemy import Connection, delete, select, text

from core.invite import Invite
from core.store import Store, StoreError, StoreSettings, notify, queue, runs
from core.store.clock import server_now
from core.store.schema import result_uploads, results, work_units
from core.store.volunteer import MAX_WORKERS_PER_VOLUNTEER

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_]{0,19}")
# Sessions per volunteer: a worker process holds 2 (its pool's one connection in use at a
# time, and the one that LISTENs for work), and a volunteer may run MAX_WORKERS_PER_VOLUNTEER.
CONNECTION_LIMIT = 2 * MAX_WORKERS_PER_VOLUNTEER
# Set on each volunteer role. A session can lower or lift these for itself, which is why the
# watchdog (coordinator/watchdog.py) exists:
STATEMENT_TIMEOUT_S = 300  # the longest legitimate statement: a big download on a slow link
IDLE_IN_TRANSACTION_TIMEOUT_S = 15  # the store never idles inside a transaction
WORK_MEM = "4MB"  # memory per sort or hash (PostgreSQL's default, whatever the server's is)
# ... and this one it cannot: temp_file_limit may only be set by a superuser, or by a role
# granted SET on it (PostgreSQL 15+), which the guide has the superuser grant the owner.
# The engine's statements write no temporary files; this caps a hostile one's (per session).
TEMP_FILE_LIMIT = "64MB"
TERMINATE_WAIT_MS = 2000  # how long revoke waits for each ended session to go


# Any login may create large objects (disk space) unless these are revoked in the run's
# database, which only a superuser may do; migration 0002 does it when run by one.
LARGE_OBJECT_FUNCTIONS = (
    "pg_catalog.lo_create(oid)",
    "pg_catalog.lo_creat(integer)",
    "pg_catalog.lo_from_bytea(oid, bytea)",
    "pg_catalog.lo_import(text)",
    "pg_catalog.lo_import(text, oid)",
)
HARDENING_SQL = f"REVOKE EXECUTE ON FUNCTION {', '.join(LARGE_OBJECT_FUNCTIONS)} FROM PUBLIC;"


class VolunteerError(StoreError):
    """A volunteer command that cannot be done; the message says what to do."""


@dataclass(frozen=True)
class VolunteerRow:
    """One invited volunteer and what its workers did."""

    name: str
    role: str  # its login role
    created_at: float  # seconds since the epoch
    expires_at: float | None  # when its password stops working
    revoked_at: float | None
    sessions: int  # open database sessions now
    workers: int  # worker rows registered
    units: int  # accepted units
    images: int
    rejected: int  # results the coordinator rejected
    sessions_ended: int  # by the watchdog, ever
    last_ended_why: str | None  # the watchdog's reason, the last time
    verified: int = 0  # its results another volunteer's computation confirmed


@dataclass(frozen=True)
class Revoked:
    """What `revoke` did."""

    name: str
    role: str
    sessions_ended: int
    leases_released: int
    results_dropped: int
    seconds: float  # from the call to the volunteer being out with nothing left behind


def _need_postgres(store: Store) -> None:
    if store.dialect != "postgresql":
        raise VolunteerError(
            "volunteer logins need a PostgreSQL run; an SQLite run is used by local workers "
            "only (see docs/deployment.md)"
        )


def _quote(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote_identifier(name))


def _config(conn: Connection, key: str) -> str:
    return str(
        conn.execute(
            text("SELECT value FROM volunteer.config WHERE key = :key"), {"key": key}
        ).scalar_one()
    )


def group_role(store: Store) -> str:
    """The run's volunteer group role (for pg_hba.conf: `+<group>`)."""
    _need_postgres(store)
    with store.session() as conn:
        return _config(conn, "group_role")


def parameter_grant_sql(owner: str) -> str:
    """The superuser statement that lets `owner` cap volunteers' temporary files."""
    return f'GRANT SET ON PARAMETER temp_file_limit TO "{owner}";'


def missing_hardening(store: Store) -> str | None:
    """The superuser statements this run's database still lacks, or None when it has them."""
    _need_postgres(store)
    with store.session() as conn:
        open_to_all = conn.execute(
            text(
                "SELECT bool_or(has_function_privilege('public', f, 'EXECUTE')) "
                "FROM unnest(CAST(:functions AS text[])) AS f"
            ),
            {"functions": list(LARGE_OBJECT_FUNCTIONS)},
        ).scalar_one()
        owner, may_cap = conn.execute(
            text("SELECT current_user, has_parameter_privilege('temp_file_limit', 'SET')")
        ).one()
    missing = ([HARDENING_SQL] if open_to_all else []) + (
        [] if may_cap else [parameter_grant_sql(owner)]
    )
    return " ".join(missing) or None


def check_name(name: str) -> str:
    """A volunteer name as the role name needs it: 1-20 of a-z, 0-9 and _."""
    if not NAME_RE.fullmatch(name):
        raise VolunteerError(
            f"{name!r} cannot be a volunteer name: use 1 to 20 lowercase letters, digits or _, "
            "starting with a letter or digit"
        )
    return name


def invite(
    store: Store,
    name: str,
    *,
    host: str,
    port: int,
    sslmode: str,
    expires_days: float | None = None,
    connections: int = CONNECTION_LIMIT,
) -> Invite:
    """Create (or re-admit, after a revoke) the volunteer's login role; its invite."""
    _need_postgres(store)
    check_name(name)
    if expires_days is not None and expires_days <= 0:
        raise VolunteerError(f"--expires must be more than 0 days, not {expires_days}")
    if connections < 1:
        raise VolunteerError(f"--connections must be at least 1, not {connections}")
    password = secrets.token_urlsafe(24)
    with store.session() as conn:
        now = server_now(conn)  # the clock PostgreSQL checks VALID UNTIL with
        expires_at = None if expires_days is None else now + expires_days * 86400
        role = f"{_config(conn, 'role_prefix')}_{name}"
        group = _config(conn, "group_role")
        existing = conn.execute(
            text("SELECT revoked_at FROM volunteer.volunteers WHERE name = :name FOR UPDATE"),
            {"name": name},
        ).first()
        role_exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
        ).first()
        if existing is not None and existing.revoked_at is None:
            raise VolunteerError(
                f"{name} is already invited (role {role}); to give them a new code, "
                f"revoke {name} first"
            )
        if existing is None and role_exists:
            raise VolunteerError(
                f"a database role named {role} already exists and is not a volunteer of this "
                "run; choose another NAME"
            )
        _create_role(conn, role, group, password, expires_at, connections, exists=bool(existing))
        conn.execute(
            text(
                "INSERT INTO volunteer.volunteers (name, role_name, created_at, expires_at) "
                "VALUES (:name, :role, :now, :expires) ON CONFLICT (name) DO UPDATE "
                "SET expires_at = :expires, revoked_at = NULL"
            ),
            {"name": name, "role": role, "now": now, "expires": expires_at},
        )
        until = "" if expires_at is None else f", valid for {expires_days:g} days"
        queue.add_event(conn, now, "volunteer", f"invited {name} (role {role}{until})")
        database = str(conn.execute(text("SELECT current_database()")).scalar_one())
    return Invite(host, port, database, role, password, sslmode)


def _create_role(
    conn: Connection,
    role: str,
    group: str,
    password: str,
    expires_at: float | None,
    connections: int,
    *,
    exists: bool,
) -> None:
    """Create or re-enable a login role in the group, with limits; the password is hashed here."""
    r, g = _quote(conn, role), _quote(conn, group)
    # Hashed on this side (SCRAM), so the password itself never reaches the server or its logs.
    dbapi = conn.connection.dbapi_connection
    hashed = encrypt_password(password, role, dbapi, "scram-sha-256")
    until = (
        "infinity"
        if expires_at is None
        else datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
    )
    attributes = (
        f"LOGIN CONNECTION LIMIT {int(connections)} PASSWORD %(hashed)s VALID UNTIL %(until)s"
    )
    if exists:  # a revoked volunteer, re-admitted: its other attributes were set at creation
        statement = f"ALTER ROLE {r} {attributes}"
    else:
        statement = (
            f"CREATE ROLE {r} INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"NOBYPASSRLS {attributes}"
        )
    conn.exec_driver_sql(statement, {"hashed": hashed, "until": until})
    for statement in (
        f"GRANT {g} TO {r}",
        f"ALTER ROLE {r} SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'",
        f"ALTER ROLE {r} SET idle_in_transaction_session_timeout = "
        f"'{IDLE_IN_TRANSACTION_TIMEOUT_S}s'",
        f"ALTER ROLE {r} SET work_mem = '{WORK_MEM}'",
    ):
        conn.exec_driver_sql(statement)
    # Membership with INHERIT lets the owner see the role's sessions and end them (watchdog,
    # revoke) without being a superuser. Since PostgreSQL 16 a grant says what it allows: not
    # SET, so the owner cannot act as the volunteer.
    new_grants = (conn.dialect.server_version_info or (0,)) >= (16,)
    conn.exec_driver_sql(
        f"GRANT {r} TO CURRENT_USER" + (" WITH INHERIT TRUE, SET FALSE" if new_grants else "")
    )
    may_cap = conn.execute(
        text("SELECT has_parameter_privilege('temp_file_limit', 'SET')")
    ).scalar_one()
    if may_cap:  # otherwise `invite` prints the superuser's grant (missing_hardening)
        # Every volunteer, so those invited before the grant get the cap now too.
        roles = conn.execute(text("SELECT role_name FROM volunteer.volunteers")).scalars()
        for name in {role, *roles}:
            conn.exec_driver_sql(
                f"ALTER ROLE {_quote(conn, name)} SET temp_file_limit = '{TEMP_FILE_LIMIT}'"
            )


def list_volunteers(store: Store) -> list[VolunteerRow]:
    """Every invited volunteer, oldest first."""
    _need_postgres(store)
    with store.session() as conn:
        rows = conn.execute(
            text(
                "SELECT v.name, v.role_name, v.created_at, v.expires_at, v.revoked_at, "
                "(SELECT count(*) FROM pg_stat_activity a WHERE a.usename = v.role_name) "
                "AS sessions, count(w.id) AS workers, coalesce(sum(w.units), 0) AS units, "
                "coalesce(sum(w.images), 0) AS images, "
                "coalesce(sum(w.rejected), 0) AS rejected, v.sessions_ended, v.last_ended_why, "
                "coalesce(sum(w.verified), 0) AS verified "
                "FROM volunteer.volunteers v "
                "LEFT JOIN volunteer.worker_roles r ON r.role_name = v.role_name "
                "LEFT JOIN workers w ON w.id = r.worker_id "
                "GROUP BY v.name, v.role_name, v.created_at, v.expires_at, v.revoked_at, "
                "v.sessions_ended, v.last_ended_why "
                "ORDER BY v.created_at, v.name"
            )
        ).all()
    return [
        VolunteerRow(
            r.name,
            r.role_name,
            r.created_at,
            r.expires_at,
            r.revoked_at,
            int(r.sessions),
            int(r.workers),
            int(r.units),
            int(r.images),
            int(r.rejected),
            int(r.sessions_ended),
            r.last_ended_why,
            int(r.verified),
        )
        for r in rows
    ]


def revoke(store: Store, name: str) -> Revoked:
    """Lock the volunteer out now: no login, sessions ended, leases back in the queue.

    Its results not yet judged are dropped and their units queued again; what was already
    accepted stays (it was validated like anyone's).
    """
    _need_postgres(store)
    started = time.perf_counter()
    with store.session() as conn:
        found = conn.execute(
            text("SELECT role_name FROM volunteer.volunteers WHERE name = :name"),
            {"name": name},
        ).first()
        if found is None:
            raise VolunteerError(f"no volunteer named {name!r}; `volunteers` lists them")
        role = str(found.role_name)
        r, g = _quote(conn, role), _quote(conn, _config(conn, "group_role"))
        conn.exec_driver_sql(f"ALTER ROLE {r} NOLOGIN")
        # Its open sessions lose every right at their next statement, before they end.
        conn.exec_driver_sql(f"REVOKE {g} FROM {r}")
    # Committed: no new login can start, so ending the sessions now ends them for good.
    with store.session() as conn:
        ended = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, :wait)) "
                "FROM pg_stat_activity WHERE usename = :role AND pid <> pg_backend_pid()"
            ),
            {"role": role, "wait": TERMINATE_WAIT_MS},
        ).scalar_one()
    with store.session() as conn:
        now = server_now(conn)  # the run's clock (the server's), as every lease time
        released, dropped = _take_back_work(conn, role, now)
        conn.execute(
            text("UPDATE volunteer.volunteers SET revoked_at = :now WHERE name = :name"),
            {"now": now, "name": name},
        )
        queue.add_event(
            conn,
            now,
            "revoked",
            f"revoked {name} (role {role}): {ended} session(s) ended, {released} lease(s) "
            f"released, {dropped} unjudged result(s) dropped",
        )
    return Revoked(name, role, int(ended), released, dropped, time.perf_counter() - started)


def _take_back_work(conn: Connection, role: str, now: float) -> tuple[int, int]:
    """Queue again the units the role's workers hold or submitted unjudged; (leases, results)."""
    try:
        settings = StoreSettings.from_settings(runs.read_run(conn).settings)
    except StoreError:
        settings = StoreSettings()  # no run yet: nothing is leased, defaults are harmless
    worker_ids = list(
        conn.execute(
            text("SELECT worker_id FROM volunteer.worker_roles WHERE role_name = :role"),
            {"role": role},
        ).scalars()
    )
    unjudged = conn.execute(
        select(results.c.id, results.c.unit_id).where(
            results.c.worker_id.in_(worker_ids), results.c.status == "new"
        )
    ).all()
    conn.execute(delete(results).where(results.c.id.in_([row.id for row in unjudged])))
    conn.execute(delete(result_uploads).where(result_uploads.c.owner == role))
    taken = conn.execute(
        select(work_units)
        .where(
            work_units.c.worker_id.in_(worker_ids),
            work_units.c.status.in_(("leased", "submitted")),
        )
        .order_by(work_units.c.id)
        .with_for_update()
    ).all()
    for unit in taken:
        # Not the unit's fault: the attempt its claim took is given back.
        attempts = max(unit.attempts - 1, 0)
        queue.return_copy(conn, unit, now, settings.max_attempts, "volunteer revoked", attempts)
    if taken:
        notify.announce_work(conn)
    leased = sum(1 for unit in taken if unit.status == "leased")
    return leased, len(unjudged)
