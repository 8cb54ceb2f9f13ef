"""The session watchdog: ends volunteer sessions (PostgreSQL) that run what the worker engine
never runs, hold a transaction open, or run longer than any download needs."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from coordinator.volunteer_statements import is_engine_statement
from core.store import Store, StoreError, queue
from core.store.clock import server_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchdogLimits:
    """When the watchdog ends a volunteer session."""

    foreign_statement_s: float = 2.0  # a running statement the worker engine never issues
    idle_in_transaction_s: float = 10.0  # a transaction left open with nothing running
    # An engine statement or transaction may run as long as moving the run's largest object
    # (weights, a shard or a result, about the weights' size) over the slowest link planned
    # for, plus this slack; a longer one is not a download.
    slowest_link_bytes_per_s: float = 125_000.0  # 1 Mbit/s
    transfer_slack_s: float = 60.0
    every_s: float = 1.0  # seconds between checks
    sizes_every_s: float = 60.0  # seconds between looks at the largest object's size

    def transfer_s(self, largest_bytes: int) -> float:
        """The longest an engine statement or transaction may run."""
        return self.transfer_slack_s + largest_bytes / self.slowest_link_bytes_per_s


@dataclass(frozen=True)
class EndedSession:
    """A volunteer session the watchdog ended."""

    pid: int
    role: str
    why: str


_SESSIONS = text(
    "SELECT a.pid, a.usename, a.state, a.query, "
    "octet_length(a.query) >= (SELECT setting::int - 1 FROM pg_settings "
    "                          WHERE name = 'track_activity_query_size') AS truncated, "
    "extract(epoch FROM clock_timestamp() - a.query_start) AS query_s, "
    "extract(epoch FROM clock_timestamp() - a.state_change) AS state_s, "
    "extract(epoch FROM clock_timestamp() - a.xact_start) AS xact_s, "
    # The engine takes no advisory lock; one held (even by an idle session) could block the
    # coordinator's own.
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory') "
    "AS advisory "
    "FROM pg_stat_activity a "
    "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() "
    # The invited roles by name, not the group's members: since PostgreSQL 16 the role that
    # creates a role (the owner, with CREATEROLE) becomes a member of it, the group included.
    "AND a.usename IN (SELECT role_name FROM volunteer.volunteers) "
    "AND a.usename <> current_user"
)
# Any login may NOTIFY any channel; workers listen on one (core.store.notify), and only the
# volunteer API's functions notify on it. A session whose statement, running or last, notifies
# is ended even when idle: a flood costs every listener, and unread notifications fill the queue.
_NOTIFY = re.compile(r"\bnotify\b|pg_notify", re.IGNORECASE)
_LARGEST = text(
    "SELECT greatest((SELECT max(octet_length(weights)) FROM model_versions), "
    "(SELECT max(octet_length(data)) FROM dataset_shards), 0)"
)


class Watchdog:
    """Ends volunteer sessions that run what the worker engine never runs, or run too long.

    A volunteer login may lift its own statement_timeout and work_mem, so limits set on its
    role are only defaults; this is where they are enforced (PostgreSQL):
    - a running statement that is not one the worker engine issues
      (coordinator/volunteer_statements.py) ends after `foreign_statement_s`;
    - an engine statement, or any transaction, that has run longer than moving the run's
      largest object over the slowest link needs ends then;
    - a transaction idle for `idle_in_transaction_s` ends (it holds row locks the
      coordinator's close needs).
    Each end is an event and counts against the volunteer (`volunteers`, `status`). The check
    runs on a thread of its own, started by the first `poll()` (from `Coordinator.step()`), so
    a step blocked on a volunteer's lock cannot keep it from running. Explicit lifecycle:
    `stop()`.
    """

    def __init__(self, store: Store, limits: WatchdogLimits | None = None) -> None:
        self.store = store
        self.limits = limits or WatchdogLimits()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_blind = False
        self._largest: tuple[float, int] | None = None  # (when looked, bytes)

    def poll(self) -> None:
        """Make sure the checks run (PostgreSQL only); cheap, call it as often as you like."""
        if self._thread is None and self.store.dialect == "postgresql":
            self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the checks (the thread exits within `every_s`)."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.limits.every_s):
            try:
                self.check()
            except StoreError as exc:  # the database is away: the next round tries again
                log.warning("watchdog check failed: %s", exc)

    def check(self) -> list[EndedSession]:
        """One pass: end every volunteer session that broke a limit now; what was ended."""
        if self.store.dialect != "postgresql":
            return []
        with self.store.session() as conn:
            self._check_visibility(conn)
            transfer_s = self.limits.transfer_s(self._largest_bytes(conn))
            ended = []
            for row in conn.execute(_SESSIONS).all():
                why = self._verdict(row, transfer_s)
                if why is not None:
                    ended.append(self._end(conn, row, why))
        return [session for session in ended if session is not None]

    def _largest_bytes(self, conn: Connection) -> int:
        now = time.monotonic()
        if self._largest is None or now - self._largest[0] > self.limits.sizes_every_s:
            self._largest = (now, int(conn.execute(_LARGEST).scalar_one() or 0))
        return self._largest[1]

    def _verdict(self, row: Any, transfer_s: float) -> str | None:
        """Why this session must end, or None."""
        if row.advisory:
            return "took an advisory lock"
        if _NOTIFY.search(row.query or "") and not is_engine_statement(row.query, row.truncated):
            return "sent a notification (NOTIFY), which only the run's own functions do"
        if row.state is None or row.state == "idle":
            return None
        if row.state.startswith("idle in transaction"):
            if row.state_s > self.limits.idle_in_transaction_s:
                return f"idle in a transaction for {row.state_s:.0f} s"
        elif row.state != "active" or not is_engine_statement(row.query, row.truncated):
            if row.query_s > self.limits.foreign_statement_s:
                shown = " ".join(row.query.split())[:80]
                return f"ran a statement the worker never issues ({row.state}: {shown!r})"
        elif row.query_s > transfer_s:
            return f"one statement ran {row.query_s:.0f} s, longer than any download needs"
        if row.xact_s is not None and row.xact_s > transfer_s:
            return f"a transaction open for {row.xact_s:.0f} s ({row.state})"
        return None

    def _end(self, conn: Connection, row: Any, why: str) -> EndedSession | None:
        if not conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": row.pid}).scalar():
            return None  # it ended by itself meanwhile
        now = server_now(conn)  # the run's clock, as every time the volunteers' rows hold
        ended = conn.execute(
            text(
                "UPDATE volunteer.volunteers SET sessions_ended = sessions_ended + 1, "
                "last_ended_at = :now, last_ended_why = :why WHERE role_name = :role "
                "RETURNING name, sessions_ended"
            ),
            {"now": now, "why": why, "role": row.usename},
        ).one()
        message = (
            f"watchdog ended a session of {ended.name} (role {row.usename}): {why}; "
            f"{ended.sessions_ended} session(s) ended so far"
        )
        log.warning("%s", message)
        queue.add_event(conn, now, "watchdog", message)
        return EndedSession(int(row.pid), str(row.usename), why)

    def _check_visibility(self, conn: Connection) -> None:
        """Warn once when the owner cannot see volunteer sessions' state (then nothing ends)."""
        if self._warned_blind:
            return
        blind = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity a "
                "JOIN volunteer.volunteers v ON v.role_name = a.usename "
                "WHERE a.datname = current_database() AND a.state IS NULL"
            )
        ).scalar_one()
        if blind:
            self._warned_blind = True
            log.warning(
                "the watchdog cannot see %d volunteer session(s): the coordinator's role must "
                "be a member of each volunteer role (invite grants it) or of pg_read_all_stats "
                "and pg_signal_backend",
                blind,
            )
