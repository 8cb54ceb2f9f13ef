"""`StoreBase`: the engine, clock and transactions that every `Store` method builds on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from core.store import clock as run_clock
from core.store import fence, notify, volunteer
from core.store.errors import translated_errors

READS_ONLY = "ganfriends_reads_only"  # execution option: the transaction writes nothing


class StoreBase:
    """The engine, the run's clock and `session()`: what every `Store` method needs.

    The methods themselves are in the mixins `Store` is made of (core.store.store).
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] | None = None) -> None:
        self.engine = engine
        # A clock given here (tests: one they can move) stands in for the run's clock on both
        # backends; without one, lease times come from the run's clock (core.store.clock).
        self._given_clock = clock
        self.clock = clock or time.time  # seconds since the epoch
        self._local = threading.local()
        self._work_waiter = notify.WorkWaiter(engine)
        # The coordinator's: results to validate (created on its first wait, unused elsewhere).
        self._result_waiter = notify.WorkWaiter(
            engine, notify.RESULTS_CHANNEL, notify.new_results(), notify.RESULTS_NOTIFIED_GAP_S
        )
        # Volunteer login (PostgreSQL)? Decided by the first session; see `volunteer_login`.
        self._volunteer: bool | None = None
        # The coordinator epoch every transaction checks, once `take_run` made this store a
        # coordinator's (core.store.fence); None for everyone else.
        self._epoch: int | None = None

    def _now(self, conn: Connection) -> float:
        """The run's clock for this transaction: never a worker's own (core.store.clock)."""
        if self._given_clock is not None:
            return self._given_clock()
        if self.dialect == "postgresql":
            return run_clock.server_now(conn)
        if self._epoch is not None:
            return time.time()  # SQLite: the coordinator's own clock is the run's
        return run_clock.coordinator_now(conn)

    @property
    def _observed(self) -> bool:
        """Whether this store's claims and heartbeats leave their expiry to the coordinator
        (a worker on SQLite, where only the coordinator's clock counts)."""
        return self.dialect == "sqlite" and self._given_clock is None and self._epoch is None

    def now(self) -> float:
        """The clock to compare the run's times with (seconds since the epoch): the database
        server's on PostgreSQL, this host's for an SQLite file (the coordinator's host)."""
        if self.dialect != "postgresql" or self._given_clock is not None:
            return self.clock()
        with self.session() as conn:
            return run_clock.server_now(conn)

    @property
    def _where(self) -> str:
        """The database, for messages: the SQLite file, or the URL without its password."""
        url = self.engine.url
        if self.dialect == "sqlite":
            return str(url.database)
        return url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """The backend's name: 'sqlite' or 'postgresql'."""
        return str(self.engine.dialect.name)

    @property
    def volunteer_login(self) -> bool:
        """True for a volunteer's login (PostgreSQL): worker calls go through the volunteer API.

        Such a login reads only the volunteer views (the published run, versions, shards,
        samples, metrics, its own workers) and cannot read results, events or other workers.
        """
        if self._volunteer is None:
            with self.session():
                pass  # the first session decides
        return bool(self._volunteer)

    def dispose(self) -> None:
        """Close the pooled connections (the store can still be used; it reconnects)."""
        self._work_waiter.close()
        self._result_waiter.close()
        self.engine.dispose()

    def close(self) -> None:
        """Same as `dispose`: close the pooled connections."""
        self.dispose()

    @contextmanager
    def session(self, *, reads_only: bool = False) -> Iterator[Connection]:
        """One transaction that commits on success and rolls back on error.

        Re-entrant: a nested `session()` (and every store method called inside one) joins
        the outer transaction, so several calls can be made atomic together. `reads_only`
        promises that the transaction writes nothing: on SQLite it then reads a snapshot
        without taking the write lock (a write in it could fail with SQLITE_BUSY).
        """
        outer = getattr(self._local, "connection", None)
        if outer is not None:
            with translated_errors(self.engine.url):
                yield outer
            return
        with translated_errors(self.engine.url), self.engine.connect() as connection:
            if reads_only:
                connection.execution_options(**{READS_ONLY: True})
            with connection.begin():
                # --- volunteer logins: reads go to the volunteer views of the same names
                if self._volunteer is None:
                    self._volunteer = volunteer.is_volunteer(connection)
                if self._volunteer:
                    connection.execution_options(schema_translate_map=volunteer.READ_VIEWS)
                # ---
                if self._epoch is not None:  # a coordinator's: write nothing once superseded
                    fence.check(connection, self._epoch)
                self._local.connection = connection
                try:
                    yield connection
                finally:
                    self._local.connection = None
