"""Database engines for SQLite and PostgreSQL, schema migrations, and opening a store."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from core.store.errors import StoreError, translated_errors
from core.store.store import Store
from core.store.store_base import READS_ONLY

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for the lock before failing
LOCK_POLL_S = 0.0005  # seconds between a waiting writer's tries for the lock (`_begin_immediate`)
SQLITE_PAGE_SIZE = 65_536  # bytes; the largest SQLite allows, for a database of big blobs
PG_CONNECT_TIMEOUT_S = 10  # seconds before an unreachable PostgreSQL host is reported
PG_KEEPALIVES_IDLE_S = 10  # seconds of silence on a connection before the first TCP keepalive
PG_KEEPALIVES_INTERVAL_S = 5  # seconds between unanswered keepalives
PG_KEEPALIVES_COUNT = 3  # unanswered keepalives that end the connection
PG_TCP_USER_TIMEOUT_MS = 30_000  # milliseconds sent data may stay unacknowledged before an error
URL_HELP = "use sqlite:///path/run.db or postgresql+psycopg2://user:pass@host/db"
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
}


def parse_url(url: str) -> URL:
    """Parse and check a database URL; a plain postgresql:// means postgresql+psycopg2://."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as error:
        raise StoreError(f"{url!r} is not a database URL; {URL_HELP}") from error
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StoreError(f"{url!r} is not a database URL; {URL_HELP}")
    return parsed.set(drivername=driver)


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """Create an engine for a run database; no connection is made until it is used.

    SQLite gets WAL, a 30 s busy timeout, foreign keys, and BEGIN IMMEDIATE for every
    transaction, so writers queue on the lock instead of failing with "database is locked".
    PostgreSQL gets `pg_connect_args`; libpq parameters in the URL's query string
    (`?tcp_user_timeout=5000`) take precedence over those defaults.

    `read_only` is for commands that only look (status, workers, export…): an SQLite file is
    opened read-only and left in the journal mode it has (it may be someone else's file, on
    a read-only disk); PostgreSQL transactions are read-only.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, read_only=read_only)
    defaults = {k: v for k, v in pg_connect_args().items() if k not in parsed.query}
    if read_only and "options" not in parsed.query:
        defaults["options"] = "-c default_transaction_read_only=on"
    # pre-ping: a pooled connection the server dropped (restart, terminated session) is
    # replaced at checkout instead of failing the next statement.
    return create_engine(parsed, pool_pre_ping=True, connect_args=defaults)


def pg_connect_args() -> dict[str, Any]:
    """libpq settings that make a vanished server or network an error within seconds.

    Idle connections: keepalive probes after 10 s of silence, every 5 s, 3 unanswered ones
    end the connection (~25 s). Connections with unacknowledged data (mid-statement), where
    keepalives do not apply: tcp_user_timeout. Connecting: connect_timeout.
    """
    return {
        "connect_timeout": PG_CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": PG_KEEPALIVES_IDLE_S,
        "keepalives_interval": PG_KEEPALIVES_INTERVAL_S,
        "keepalives_count": PG_KEEPALIVES_COUNT,
        "tcp_user_timeout": PG_TCP_USER_TIMEOUT_MS,
        "application_name": _application_name(),
    }


def _application_name() -> str:
    # Shown in pg_stat_activity, so an operator can tell coordinators from workers.
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return f"ganfriends:{program}"[:63]  # PostgreSQL truncates at NAMEDATALEN - 1


def _sqlite_engine(url: URL, *, read_only: bool = False) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    kwargs: dict[str, Any] = {"connect_args": connect_args}
    if in_memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own DB
        read_only = False
    if read_only:
        path = Path(url.database or "")
        kwargs["creator"] = lambda: _connect_read_only(path, connect_args)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's documented recipe: stop the sqlite3 module from issuing its own
        # (deferred) BEGIN so that the "begin" hook below controls every transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if read_only:
                return  # neither the page size nor the journal mode of the file is changed
            # Takes effect only in a new, empty database file (before WAL is switched on):
            # a 24 MiB payload is 385 pages instead of 6,200, and writing, deleting and
            # checkpointing it got 2-3x faster (benchmarks/close_latency.py).
            cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads and then writes
        # can never fail half-way with SQLITE_BUSY, it waits for the lock at BEGIN instead.
        # A read-only connection cannot take it, and a transaction that only reads (READS_ONLY)
        # needs only a consistent snapshot: in WAL mode it neither waits for writers nor holds
        # them off (workers fetching weights while the coordinator publishes).
        reads = read_only or connection.get_execution_options().get(READS_ONLY, False)
        if reads:
            connection.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(connection.connection.dbapi_connection)

    return engine


def _begin_immediate(dbapi_connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, asking for the write lock again every LOCK_POLL_S for up to
    SQLITE_BUSY_TIMEOUT_MS. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms… between
    tries, so a worker's claim behind a 10 ms write (another worker's upload, the coordinator's
    close) waited ~20-30 ms, every version: a third of a small unit's compute in the demo."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    dbapi_connection.execute("PRAGMA busy_timeout = 0")  # a busy lock answers at once
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                code = getattr(error, "sqlite_errorcode", sqlite3.SQLITE_BUSY)
                busy = code & 0xFF == sqlite3.SQLITE_BUSY  # the primary code of an extended one
                if not busy or time.monotonic() >= deadline:
                    # Raised from the begin hook: wrapped as SQLAlchemy would wrap it, so that
                    # the store translates it like every other error.
                    raise sa_exc.DBAPIError.instance(
                        "BEGIN IMMEDIATE", None, error, sqlite3.Error
                    ) from error
                time.sleep(LOCK_POLL_S)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def _connect_read_only(path: Path, connect_args: dict[str, Any]) -> sqlite3.Connection:
    """Open an SQLite file read-only; on a read-only filesystem, as the immutable file it is.

    A WAL file cannot be read without its -shm index, which a reader cannot create on a
    read-only filesystem; there nobody can write either, so SQLite may treat it as immutable.
    """
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, **connect_args)
        connection.execute("PRAGMA schema_version")  # opening the WAL fails only at a read
        return connection
    except sqlite3.OperationalError:
        if not os.statvfs(path).f_flag & os.ST_RDONLY:
            raise
        return sqlite3.connect(uri + "&immutable=1", uri=True, **connect_args)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head revision"
    return head


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest revision; a no-op when it is already there."""
    config = alembic_config()
    with translated_errors(engine.url), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, or None when it has no ganfriends schema."""
    with translated_errors(engine.url), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_store(
    url: str,
    *,
    create: bool = False,
    read_only: bool = False,
    clock: Callable[[], float] | None = None,
) -> Store:
    """Open the run database at `url`; with create=True make it (and its folder) if missing.

    Without create, a missing SQLite file is an error and no file is created; a database
    whose schema is missing or from another release is an error too. With read_only, every
    write fails and the database file is left as it was (see `make_engine`).
    """
    shown = parse_url(url).render_as_string(hide_password=True)
    path = sqlite_path(url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise StoreError(
                f"no database at {path}; create one with ganfriends-coordinator init --db {shown}"
            )
    engine = make_engine(url, read_only=read_only)
    try:
        if create:
            migrate(engine)
        _check_schema(engine, shown)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, clock=clock)


def _check_schema(engine: Engine, shown: str) -> None:
    found = schema_revision(engine)
    if found is None:
        raise StoreError(
            f"the database at {shown} has no ganfriends tables; create them with "
            f"ganfriends-coordinator init --db {shown}"
        )
    head = head_revision()
    if found != head:
        raise StoreError(
            f"the database at {shown} has schema revision {found} but this program needs "
            f"{head}; install the ganfriends release that matches the run's coordinator"
        )
