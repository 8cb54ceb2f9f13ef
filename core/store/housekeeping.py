"""Work kept off the close's critical path: deleting dropped rows, checkpointing SQLite,
vacuuming PostgreSQL.

The coordinator runs `tidy` when it is idle. Deleting a 24 MiB payload walks its pages, and
an SQLite WAL checkpoint copies every page written since the last one back into the database
file; done inside the close, both made workers wait for the next version.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, exists, func, select
from sqlalchemy import exc as sa_exc

from core.store.schema import (
    model_versions,
    optimizer_states,
    result_payloads,
    result_uploads,
    results,
    samples,
    work_units,
)

log = logging.getLogger(__name__)

READABLE = ("new", "accepted")  # result statuses whose payload is still read


def delete_dropped_payloads(conn: Connection) -> int:
    """Delete the payloads of results that were resolved away or deleted; how many."""
    kept = select(results.c.id).where(results.c.status.in_(READABLE))
    return conn.execute(
        delete(result_payloads).where(result_payloads.c.result_id.not_in(kept))
    ).rowcount


def delete_old_optimizer_states(conn: Connection) -> int:
    """Delete the optimizer states of versions whose weights retention pruned; how many.

    Every kept version (the newest `keep_versions` and the kept checkpoints) keeps its Adam
    state, so each is a full state to roll back to (`ganfriends-coordinator rollback`). The
    newest stored state always stays: between publishing a version and storing its state it is
    what a restarted coordinator rebuilds the new one from.
    """
    kept = select(model_versions.c.version)
    newest = select(func.max(optimizer_states.c.version)).scalar_subquery()
    return conn.execute(
        delete(optimizer_states).where(
            optimizer_states.c.version.not_in(kept), optimizer_states.c.version < newest
        )
    ).rowcount


def delete_stale_uploads(conn: Connection) -> int:
    """Delete staged volunteer uploads whose lease has ended (PostgreSQL); how many.

    Our workers stage and submit in one transaction, so only a client that committed an
    upload without submitting it leaves one behind, at most one per lease it held.
    """
    held = exists().where(
        work_units.c.lease_token == result_uploads.c.lease_token, work_units.c.status == "leased"
    )
    return conn.execute(delete(result_uploads).where(~held)).rowcount


def take_over_checkpoints(engine: Engine) -> None:
    """Stop this engine's SQLite commits from checkpointing the WAL; call `checkpoint` instead.

    SQLite's automatic checkpoint runs inside whichever commit finds the WAL over its limit,
    which for the coordinator was the close of a version. Other processes keep theirs as a
    safety net (at 64 KiB pages their limit is 64 MiB of WAL).
    """
    if engine.dialect.name != "sqlite":
        return

    def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint = 0")

    event.listen(engine, "connect", _no_autocheckpoint)
    engine.dispose()  # connections opened before this get replaced by ones with the setting


# Tables whose big rows are deleted every version (their TOAST chunks on PostgreSQL).
CHURNED = (optimizer_states, model_versions, result_payloads, result_uploads, samples)


def vacuum(engine: Engine) -> None:
    """Make the space of deleted rows reusable at once (PostgreSQL; a no-op elsewhere).

    Every version deletes tens of MiB of weights, Adam state and payloads; autovacuum wakes
    once a minute at best (autovacuum_naptime), so a fast run would grow the database by that
    much between its passes. A plain VACUUM of these few tables takes milliseconds after a
    small run's version and seconds after a class's (32 volunteers: 128 payloads a version), so
    the coordinator runs it in a thread of its own (coordinator/vacuum.py).
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        quote = engine.dialect.identifier_preparer.quote
        for table in CHURNED:
            autocommit.exec_driver_sql(f"VACUUM {quote(table.name)}")


def checkpoint(engine: Engine) -> None:
    """Copy the WAL into the database file as far as readers allow, without waiting (SQLite)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        # Outside any transaction: the raw connection, not SQLAlchemy's autobegin.
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        statement = "PRAGMA wal_checkpoint(PASSIVE)"
        try:
            busy, logged, copied = dbapi_connection.execute(statement).fetchone()
        except sqlite3.Error as error:
            # The raw connection's errors are not wrapped by SQLAlchemy: wrap them as it would,
            # so the store translates them like every other (a full disk: DiskFull).
            raise sa_exc.DBAPIError.instance(statement, None, error, sqlite3.Error) from error
        log.debug("WAL checkpoint: busy=%s, %s pages in the WAL, %s copied", busy, logged, copied)
