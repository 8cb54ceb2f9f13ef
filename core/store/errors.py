"""Errors the store raises, and the translation of driver errors into them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL
from sqlalchemy import exc as sa_exc


class StoreError(Exception):
    """Base class of every error the store raises; the message says what to do."""


class DatabaseUnavailable(StoreError):
    """The database cannot be reached or stayed locked; retry with backoff."""


class DiskFull(DatabaseUnavailable):
    """The disk under the database is full: nothing can be written until space is freed.

    A `DatabaseUnavailable`, so whoever retries those waits it out: nothing committed is lost,
    and work goes on once there is room.
    """


class ServerBusy(DatabaseUnavailable):
    """The PostgreSQL server has no free connection slot (max_connections): one frees when
    another client disconnects, so whoever retries those waits it out."""


class NoRun(StoreError):
    """The database holds no run yet."""

    def __init__(
        self,
        message: str = "no run in this database; create one with `ganfriends-coordinator init`",
    ) -> None:
        super().__init__(message)


class RunExists(StoreError):
    """A run is already present; a database holds exactly one."""

    def __init__(
        self,
        message: str = (
            "this database already holds a run; use a new database file or URL for a new run"
        ),
    ) -> None:
        super().__init__(message)


class RunPaused(StoreError):
    """The run is paused by its operator; no work is handed out until it resumes."""

    def __init__(
        self,
        message: str = (
            "the run is paused by its coordinator; wait and claim again later "
            "(`ganfriends-coordinator resume` restarts it)"
        ),
    ) -> None:
        super().__init__(message)


class DamagedData(StoreError):
    """Stored bytes do not match the checksum written with them: damage, not a lost link.

    The message names the row and what to do. `table` and `key` name the row for code that
    recovers (the coordinator rebuilds or recomputes what it can).
    """

    def __init__(self, message: str, table: str, key: int) -> None:
        super().__init__(message)
        self.table = table
        self.key = key


SHARD_REMEDY = (
    "the coordinator cannot rebuild a dataset shard: the run's owner checks the database's "
    "disk and restores the database from a backup, or creates the run again "
    "(ganfriends-coordinator init)"
)


def damaged_shard(index: int, what: str) -> DamagedData:
    """`DamagedData` for dataset shard `index`: `what` is wrong with it, and the owner's remedy."""
    return DamagedData(
        f"dataset shard {index} (row {index} of dataset_shards) {what}; {SHARD_REMEDY}",
        "dataset_shards",
        index,
    )


class LeaseLost(StoreError):
    """The lease no longer holds (expired, cancelled, re-issued or another worker's)."""


class AlreadySubmitted(StoreError):
    """This lease's result is already stored; a second submit is refused."""


class UnknownWorker(StoreError):
    """No worker with this id is registered."""


SQLITE_FULL_MESSAGE = "database or disk is full"  # sqlite3's text for SQLITE_FULL
PG_DISK_FULL = "53100"  # PostgreSQL's SQLSTATE disk_full
# What the server says when max_connections is used up (at connect time there is no SQLSTATE;
# the second is for a client that is not a superuser, older and newer wording).
PG_NO_SLOT = ("too many clients already", "remaining connection slots are reserved")


def translate_db_error(
    error: sa_exc.DBAPIError, url: URL, doing: str = "writing to the database"
) -> StoreError:
    """Turn a driver error into the store error a caller can act on.

    Connection failures and a lock held past the busy timeout become `DatabaseUnavailable`
    (retry with backoff), a full disk `DiskFull` (`doing` says what needed the space); a
    missing schema and refused writes become plain `StoreError`s.
    """
    where = url.render_as_string(hide_password=True)
    detail = str(error.orig).strip() or type(error.orig).__name__
    if _disk_full(error.orig):
        return DiskFull(f"disk full while {doing}: {_free_space_on(url, detail)}")
    if any(text in detail for text in PG_NO_SLOT):
        return ServerBusy(
            f"the database server at {where} has no free connection slot "
            f"({_last_line(detail)}); one frees when another client disconnects, or its "
            "administrator raises max_connections"
        )
    code = getattr(error.orig, "sqlite_errorcode", None)
    exists = bool(url.database) and Path(str(url.database)).exists()
    if code == sqlite3.SQLITE_READONLY or (code == sqlite3.SQLITE_CANTOPEN and exists):
        # CANTOPEN on a file that exists: no permission, or no -wal/-shm file can be made.
        verb = "write" if code == sqlite3.SQLITE_READONLY else "open"
        return StoreError(
            f"cannot {verb} the database at {where} ({detail}); run this as a user who may "
            "write the file and its folder, on a disk that is not mounted read-only"
        )
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError) or (
        error.connection_invalidated
    ):
        if "no such table" in detail:
            return StoreError(
                f"the database at {where} has no ganfriends tables ({detail}); create it with "
                "`ganfriends-coordinator init --db URL`"
            )
        if "locked" in detail or "busy" in detail:
            return DatabaseUnavailable(
                f"the database at {where} stayed locked by another process ({detail}); "
                "retry in a moment"
            )
        return DatabaseUnavailable(
            f"cannot use the database at {where}: {detail}; check that it exists, that the "
            "host is reachable and the credentials are right, then retry"
        )
    if isinstance(error, sa_exc.IntegrityError):
        return StoreError(
            f"the database at {where} refused a write that conflicts with stored data: {detail}"
        )
    return StoreError(f"the database at {where} failed: {detail}")


def _disk_full(orig: BaseException | None) -> bool:
    if getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    return getattr(orig, "pgcode", None) == PG_DISK_FULL or SQLITE_FULL_MESSAGE in str(orig)


def _free_space_on(url: URL, detail: str) -> str:
    """Where to free space: the SQLite file's folder, or the PostgreSQL server's disk."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return f"free space on {Path(url.database or '').absolute().parent}"
    server = url.render_as_string(hide_password=True)
    return f"free space on the disk of the database server at {server} ({_last_line(detail)})"


def _last_line(detail: str) -> str:
    """The server's own words, without libpq's "connection to server … failed:" prefix."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    last = lines[0] if lines else detail
    return last.rsplit(" failed: ", 1)[-1]


@contextmanager
def translated_errors(url: URL, doing: str = "writing to the database") -> Iterator[None]:
    """Raise driver errors from the block as the store errors `translate_db_error` picks."""
    try:
        yield
    except sa_exc.DBAPIError as error:
        raise translate_db_error(error, url, doing) from error
