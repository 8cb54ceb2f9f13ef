"""New-work wake-ups: NOTIFY when units become claimable, and waiting for one (LISTEN).

A hint, never the authority: workers still poll, so a notification lost to a restart or sent
while nobody listened delays a claim by at most one poll interval and never loses work.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, func
from sqlalchemy import exc as sa_exc
from sqlalchemy import select as sql_select

log = logging.getLogger(__name__)

CHANNEL = "ganfriends_work"
LISTEN_RETRY_S = 5.0  # seconds between attempts to reopen a lost LISTEN connection


def announce_work(conn: Connection) -> None:
    """Tell listening workers that units can be claimed, when this transaction commits.

    PostgreSQL only (a no-op elsewhere). Several announcements in one transaction are folded
    into one notification by the server.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sql_select(func.pg_notify(CHANNEL, "")))


class WorkWaiter:
    """Waits until work is announced, a timeout passes, or `interrupt` is called.

    On PostgreSQL it holds one extra connection of its own, in autocommit with LISTEN, opened
    on the first wait and reopened when lost (at once, then at most every LISTEN_RETRY_S while
    the server stays unreachable); elsewhere a wait simply lasts its timeout. One thread waits
    at a time; others queue for the lock.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()  # one waiter at a time
        self._pair_lock = threading.Lock()
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None
        self._listener: Any = None  # the psycopg2 connection that LISTENs
        self._retry_at = 0.0  # time.monotonic() before which no new LISTEN connection is tried

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
            with self._pair_lock:
                pair, self._wake_pair = self._wake_pair, None
            for sock in pair or ():
                sock.close()
            self._retry_at = 0.0

    # Internals --------------------------------------------------------------------------------
    def _wait_until(self, deadline: float) -> bool:
        reader, _ = self._pair()
        while (left := deadline - time.monotonic()) > 0:
            listener = self._listening()
            sources: list[Any] = [reader] if listener is None else [reader, listener]
            try:
                readable, _, _ = select.select(sources, [], [], left)
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
                cursor.execute(f"LISTEN {CHANNEL}")
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


def _drain(reader: socket.socket) -> None:
    try:
        while reader.recv(4096):
            pass
    except BlockingIOError:
        return  # nothing left to read
