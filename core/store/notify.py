"""Wake-ups: NOTIFY when units become claimable or results arrive, and waiting for one (LISTEN).

A hint, never the authority: workers still poll, so a notification lost to a restart or sent
while nobody listened delays a claim by at most one poll interval and never loses work.
SQLite has no NOTIFY; there a waiter watches the database's change counter (`PRAGMA
data_version`, read from shared memory without taking any lock) every few milliseconds and,
after a commit, looks whether the run has a pending unit.
"""

from __future__ import annotations

import logging
import select
import socket
import sqlite3
import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, Select, func
from sqlalchemy import exc as sa_exc
from sqlalchemy import select as sql_select

from core.store.schema import results, run, work_units

log = logging.getLogger(__name__)

CHANNEL = "ganfriends_work"  # units became claimable (workers listen)
RESULTS_CHANNEL = "ganfriends_results"  # a result was submitted (the coordinator listens)
LISTEN_RETRY_S = 5.0  # seconds between attempts to reopen a lost LISTEN connection
# Seconds between looks at an SQLite database's change counter: a look reads shared memory
# (~10 µs), and every wake-up of a version's synchronous path waits half of this on average
# (benchmarks.demo_compute_share: 0.59 / 0.59 at 10 ms, 0.61 / 0.61 at 2 ms, interleaved).
SQLITE_WATCH_S = 0.002
# Any login may NOTIFY on any channel: a flood must not turn every waiting worker into a claim
# loop. A notification ends a wait at once, but not sooner than this after the previous one.
# Workers: a version rarely closes twice within it. The coordinator waits on results with a
# shorter gap: the last result of a version must not wait, and its wake-up costs one query.
NOTIFIED_GAP_S = 0.5  # seconds
RESULTS_NOTIFIED_GAP_S = 0.02  # seconds


def announce_work(conn: Connection) -> None:
    """Tell listening workers that units can be claimed, when this transaction commits.

    PostgreSQL only (a no-op elsewhere). Several announcements in one transaction are folded
    into one notification by the server.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sql_select(func.pg_notify(CHANNEL, "")))


def pending_work() -> Select:
    """A row when the run is active and one of its current units can be claimed."""
    return (
        sql_select(work_units.c.id)
        .join(run, (run.c.version == work_units.c.version) & (run.c.id == 1))
        .where(run.c.status == "active", work_units.c.status == "pending")
        .limit(1)
    )


def new_results() -> Select:
    """A row when a submitted result waits for the coordinator's verdict."""
    return sql_select(results.c.id).where(results.c.status == "new").limit(1)


class WorkWaiter:
    """Waits until work is announced, a timeout passes, or `interrupt` is called.

    What counts as work is given by a NOTIFY channel (PostgreSQL) and a query that returns a
    row when there is some (SQLite): by default claimable units, for workers; the coordinator
    waits on `RESULTS_CHANNEL` / `new_results()`.

    On PostgreSQL it holds one extra connection of its own, in autocommit with LISTEN, opened
    on the first wait and reopened when lost (at once, then at most every LISTEN_RETRY_S while
    the server stays unreachable). On an SQLite file it holds one extra connection that reads
    the change counter every SQLITE_WATCH_S and, when it moved, whether a unit is pending; an
    in-memory database waits its timeout. One thread waits at a time; others queue.
    """

    def __init__(
        self,
        engine: Engine,
        channel: str = CHANNEL,
        pending: Select | None = None,
        notified_gap_s: float = NOTIFIED_GAP_S,
    ) -> None:
        self._engine = engine
        self._gap_s = notified_gap_s
        self._channel = channel
        self._pending = pending_work() if pending is None else pending
        self._lock = threading.Lock()  # one waiter at a time
        self._pair_lock = threading.Lock()
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None
        self._listener: Any = None  # the psycopg2 connection that LISTENs
        self._retry_at = 0.0  # time.monotonic() before which no new LISTEN connection is tried
        self._watch: _SqliteWatch | None = None
        self._last_notified = -notified_gap_s  # time.monotonic() of the last notified wake-up

    def wait(self, timeout_s: float) -> bool:
        """Block up to `timeout_s` seconds; True if work was announced meanwhile."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        if not self._lock.acquire(timeout=max(timeout_s, 0.0)):
            return False
        try:
            return self._wait_until(deadline)
        finally:
            self._lock.release()

    def interrupt(self) -> None:
        """End the current wait at once (or the next one, if none is running); any thread."""
        _, writer = self._pair()
        try:
            writer.send(b"\0")
        except BlockingIOError:
            pass  # the buffer is full of wake-ups already: the waiter wakes either way
        except OSError as error:  # closed by `close()` meanwhile: nobody is left to wake
            log.debug("wake-up not sent: %s", error)

    def close(self) -> None:
        """Close the LISTEN connection and the wake-up sockets (a later wait reopens them)."""
        self.interrupt()  # a wait in progress ends now instead of at its timeout
        with self._lock:
            self._close_listener()
            if self._watch is not None:
                self._watch.close()
                self._watch = None
            with self._pair_lock:
                pair, self._wake_pair = self._wake_pair, None
            for sock in pair or ():
                sock.close()
            self._retry_at = 0.0

    # Internals --------------------------------------------------------------------------------
    def _wait_until(self, deadline: float) -> bool:
        reader, _ = self._pair()
        if self._engine.dialect.name == "sqlite":
            return self._watch_sqlite(reader, deadline)
        notified = False
        while (left := deadline - time.monotonic()) > 0:
            if notified and (hold := self._last_notified + self._gap_s - time.monotonic()) <= 0:
                self._last_notified = time.monotonic()
                return True
            listener = self._listening()
            # While a notified wake-up is held back, only an interrupt is waited for.
            sources: list[Any] = [reader] if listener is None or notified else [reader, listener]
            try:
                readable, _, _ = select.select(
                    sources, [], [], min(left, hold) if notified else left
                )
            except (OSError, ValueError) as error:  # the listener's socket went away
                log.debug("waiting for work: %s", error)
                if listener is None:
                    return False  # not the listener: nothing to wait on
                self._close_listener()
                continue
            if reader in readable:
                _drain(reader)
                return False
            if listener is not None and listener in readable and self._notified(listener):
                notified = True
        return notified

    def _watch_sqlite(self, reader: socket.socket, deadline: float) -> bool:
        if self._watch is None:
            self._watch = _SqliteWatch.open(self._engine, self._pending)
        while (left := deadline - time.monotonic()) > 0:
            step = left if self._watch is None else min(left, SQLITE_WATCH_S)
            readable, _, _ = select.select([reader], [], [], step)
            if readable:
                _drain(reader)
                return False
            if self._watch is not None and self._watch.work_appeared():
                return True
        return False

    def _notified(self, listener: Any) -> bool:
        """Read what arrived on the LISTEN connection; True if it held a notification."""
        try:
            listener.poll()
        except self._engine.dialect.loaded_dbapi.Error as error:
            log.info("lost the connection that listens for new work (%s); polling only", error)
            self._close_listener()
            return False
        found = bool(listener.notifies)
        del listener.notifies[:]
        return found

    def _listening(self) -> Any:
        """The LISTEN connection, opening it if due; None on SQLite or while it is lost."""
        if self._listener is not None or self._engine.dialect.name != "postgresql":
            return self._listener
        if time.monotonic() < self._retry_at:
            return None
        connection: Any = None
        try:
            # A pooled connection, taken out of the pool for good: same URL and settings
            # (keepalives, timeouts) as every other connection of this store.
            proxied = self._engine.raw_connection()
            proxied.detach()
            connection = proxied.dbapi_connection
            connection.rollback()
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {self._channel}")
        except (sa_exc.DBAPIError, self._engine.dialect.loaded_dbapi.Error) as error:
            # Tried again at once after a loss, then at most every LISTEN_RETRY_S while down.
            self._retry_at = time.monotonic() + LISTEN_RETRY_S
            log.info("cannot listen for new work (%s); polling only for now", error)
            self._listener = connection
            self._close_listener()
            return None
        self._listener = connection
        return connection

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.closed:
            try:
                listener.close()
            except self._engine.dialect.loaded_dbapi.Error as error:  # already broken
                log.debug("closing the LISTEN connection: %s", error)

    def _pair(self) -> tuple[socket.socket, socket.socket]:
        # A socket pair rather than a pipe: select() takes only sockets on Windows.
        with self._pair_lock:
            if self._wake_pair is None:
                reader, writer = socket.socketpair()
                reader.setblocking(False)
                writer.setblocking(False)
                self._wake_pair = (reader, writer)
            return self._wake_pair


class _SqliteWatch:
    """One raw connection to an SQLite file: has anything been committed, and is work pending?"""

    def __init__(self, connection: Any, pending_sql: str) -> None:
        self._connection = connection
        self._pending_sql = pending_sql
        self._seen = self._data_version()

    @classmethod
    def open(cls, engine: Engine, query: Select) -> _SqliteWatch | None:
        """A watch on the engine's database file; None for an in-memory database."""
        if engine.url.database in (None, "", ":memory:"):
            return None
        proxied = engine.raw_connection()  # the engine's settings (WAL, busy timeout), no BEGIN
        proxied.detach()
        compiled = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        return cls(proxied.dbapi_connection, str(compiled))

    def work_appeared(self) -> bool:
        """True once something was committed since the last look and the query finds a row."""
        try:
            version = self._data_version()
            if version == self._seen:
                return False
            self._seen = version
            return self._connection.execute(self._pending_sql).fetchone() is not None
        except sqlite3.Error as error:  # locked for a moment, file replaced: just poll
            log.debug("watching the SQLite database: %s", error)
            return False

    def close(self) -> None:
        self._connection.close()

    def _data_version(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])


def _drain(reader: socket.socket) -> None:
    try:
        while reader.recv(4096):
            pass
    except BlockingIOError:
        return  # nothing left to read
