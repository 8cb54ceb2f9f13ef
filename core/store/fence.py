"""One coordinator per run: a lock that makes a second one fail fast, an epoch that fences.

The lock (a PostgreSQL advisory lock held by a session of its own, or a lock file beside the
SQLite database) is freed at once when its holder dies, so the common mistake — a second
`serve` — is refused with who holds the run. It cannot stop a holder that was frozen (SIGSTOP,
a suspended VM) and wakes up after another coordinator took over; the epoch does: taking the
run adds 1 to `coordinator.epoch`, and every transaction of a coordinator first checks that the
epoch is still its own (`check`), so a stale one writes nothing.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import filelock
from sqlalchemy import Connection, Engine, select, text, update

from core.store.clock import server_now
from core.store.errors import StoreError, translated_errors
from core.store.schema import coordinator

HOLDER_LEASE_S = 60.0  # a holder silent this long (frozen, suspended, cut off) may be replaced
HOLDER_BEAT_S = 10.0  # how often a serving coordinator records that it is alive
ADVISORY_KEY = 0x67616E66  # pg_try_advisory_lock key of a run's coordinator ("ganf")


@dataclass(frozen=True)
class Holder:
    """The coordinator that holds the run, as the database records it."""

    epoch: int  # 0: no coordinator has taken the run yet
    host: str
    pid: int
    since: float  # database clock, seconds since the epoch
    seen_at: float  # its last sign of life, database clock

    def describe(self, now: float) -> str:
        """'pid 12 on host lab-1 since 2026-12-05 11:40:02 UTC, last seen 3 s ago'."""
        since = datetime.datetime.fromtimestamp(self.since, datetime.UTC)
        return (
            f"pid {self.pid} on host {self.host} since {since:%Y-%m-%d %H:%M:%S} UTC, "
            f"last seen {max(0.0, now - self.seen_at):.0f} s ago"
        )


class RunHeld(StoreError):
    """Another coordinator serves the run and is alive: this one must not start."""


class Superseded(StoreError):
    """Another coordinator took the run over: this one must write nothing more and stop."""


def db_now(conn: Connection) -> float:
    """The database's clock (PostgreSQL's server), or this host's for an SQLite file."""
    return server_now(conn) if conn.dialect.name == "postgresql" else time.time()


def read_holder(conn: Connection) -> Holder:
    row = conn.execute(select(coordinator).where(coordinator.c.id == 1)).one()
    return Holder(row.epoch, row.host, row.pid, row.since, row.seen_at)


def take(conn: Connection) -> Holder:
    """Take the run for this process: a new epoch (caller's transaction)."""
    now = db_now(conn)
    conn.execute(
        update(coordinator)
        .where(coordinator.c.id == 1)
        .values(
            epoch=coordinator.c.epoch + 1,
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            since=now,
            seen_at=now,
        )
    )
    return read_holder(conn)


def check(conn: Connection, epoch: int) -> None:
    """Superseded unless `epoch` still holds the run; first statement of a fenced transaction.

    On PostgreSQL the row is locked FOR SHARE until the transaction ends, so a takeover waits
    for the transaction to finish instead of slipping in between the check and the commit.
    SQLite's transactions hold the write lock from BEGIN IMMEDIATE, which does the same.
    """
    query = select(coordinator).where(coordinator.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = conn.execute(query).one()
    if row.epoch != epoch:
        holder = Holder(row.epoch, row.host, row.pid, row.since, row.seen_at)
        raise Superseded(
            f"another coordinator took this run over ({holder.describe(db_now(conn))}); "
            "this one wrote nothing more and stopped"
        )


def beat(conn: Connection) -> None:
    """Record that the holder is alive (caller's fenced transaction)."""
    conn.execute(update(coordinator).where(coordinator.c.id == 1).values(seen_at=db_now(conn)))


def end_stale_sessions(conn: Connection) -> int:
    """End the sessions that lock the coordinator row (PostgreSQL): those of a frozen holder.

    Called only when taking over from a holder silent for HOLDER_LEASE_S: a holder frozen
    inside a transaction would otherwise keep the takeover waiting until it wakes.
    """
    if conn.dialect.name != "postgresql":
        return 0
    ended = conn.execute(
        text(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
            "WHERE l.relation = 'coordinator'::regclass AND l.mode = 'RowShareLock' "
            "AND l.pid <> pg_backend_pid()"
        )
    ).all()
    return len(ended)


class RunLock:
    """The one-coordinator lock of a run database; hold it for the coordinator's lifetime."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._file: filelock.BaseFileLock | None = None
        self._session: Connection | None = None
        path = engine.url.database
        if engine.dialect.name == "sqlite" and path not in (None, "", ":memory:"):
            self._file = filelock.FileLock(lock_path(Path(str(path))), timeout=0)

    @property
    def where(self) -> str:
        """What the lock is, for messages."""
        if self._file is not None:
            return f"the lock file {self._file.lock_file}"
        return f"the advisory lock {ADVISORY_KEY} of the database"

    def acquire(self) -> bool:
        """Take the lock without waiting (a no-op if held); False if another process holds it."""
        if self._file is not None:
            if self._file.is_locked:
                return True
            try:
                self._file.acquire()
            except filelock.Timeout:
                return False
            return True
        if self.engine.dialect.name != "postgresql":
            return True  # an in-memory database: no other process can open it
        if self._session is not None:
            return True
        with translated_errors(self.engine.url, "taking the run's lock"):
            session = self.engine.connect()
            try:
                taken = session.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
                ).scalar_one()
                session.commit()  # a session-level lock outlives the transaction
            except BaseException:
                session.close()
                raise
        if not taken:
            session.close()
            return False
        self._session = session
        return True

    def held(self) -> bool:
        """Whether the lock is still ours (PostgreSQL: its session is alive)."""
        if self._file is not None:
            return self._file.is_locked
        if self._session is None:
            return False
        try:
            self._session.execute(text("SELECT 1")).all()
            self._session.commit()
        except Exception:  # any failure means the session, and with it the lock, is gone
            self._drop_session()
            return False
        return True

    def release(self) -> None:
        if self._file is not None and self._file.is_locked:
            self._file.release()
        if self._session is not None:
            try:
                self._session.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY}
                )
                self._session.commit()
            except Exception:  # a dead session released the lock with itself
                pass
            self._drop_session()

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.invalidate()
                session.close()
            except Exception:  # closing a broken connection may fail too; it is gone anyway
                pass


def lock_path(database: Path) -> Path:
    """The lock file of an SQLite run database."""
    return database.with_name(database.name + ".coordinator-lock")
