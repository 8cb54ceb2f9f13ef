"""Database URLs, SQLite settings, opening a store, and driver errors at the boundary."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url

from core.store import (
    DatabaseUnavailable,
    NoRun,
    Store,
    StoreError,
    make_engine,
    open_store,
    parse_url,
)
from core.store.errors import translate_db_error

from .factories import create_test_run


@pytest.mark.parametrize("url", ["", "not a url", "mysql://u:p@h/db", "http://example.com"])
def test_bad_urls_are_refused_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(StoreError, match="is not a database URL; use sqlite:///"):
        parse_url(url)


def test_plain_postgresql_means_psycopg2() -> None:
    assert parse_url("postgresql://u:p@host/db").drivername == "postgresql+psycopg2"
    assert parse_url("sqlite:///run.db").drivername == "sqlite"


def test_open_missing_sqlite_file_refuses_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "run.db"
    with pytest.raises(StoreError, match=f"no database at {path}; create one with"):
        open_store(f"sqlite:///{path}")
    assert not path.parent.exists()


def test_open_with_create_makes_folder_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "run.db"
    store = open_store(f"sqlite:///{path}", create=True)
    try:
        assert path.is_file()
        with pytest.raises(NoRun, match="ganfriends-coordinator init"):
            store.get_run()
    finally:
        store.dispose()
    reopened = open_store(f"sqlite:///{path}")  # now it exists: no create needed
    reopened.dispose()


def test_open_file_without_schema_refuses(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    with pytest.raises(StoreError, match="has no ganfriends tables"):
        open_store(f"sqlite:///{path}")


def test_sqlite_connection_settings(tmp_path: Path) -> None:  # SQLite only
    engine = make_engine(f"sqlite:///{tmp_path / 'run.db'}")
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
        assert pragma == {
            "journal_mode": "wal",
            "busy_timeout": 30000,
            "foreign_keys": 1,
            "synchronous": 1,  # NORMAL
        }
    finally:
        engine.dispose()


def test_sqlite_transactions_take_the_write_lock_at_begin(store: Store, db_url: str) -> None:
    """Even a read-only session holds the write lock (BEGIN IMMEDIATE): no upgrade races."""
    if make_url(db_url).get_backend_name() != "sqlite":
        pytest.skip("SQLite only")
    other = sqlite3.connect(make_url(db_url).database or "", timeout=0.05, isolation_level=None)
    try:
        with store.session(), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again once the session ended
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_unopenable_sqlite_path_is_database_unavailable(tmp_path: Path) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'run.db'}"))
    with pytest.raises(DatabaseUnavailable, match="cannot use the database"):
        store.get_run()


def test_unreachable_postgresql_is_database_unavailable_without_password() -> None:
    store = Store(make_engine("postgresql://volunteer:s3cret@127.0.0.1:1/run"))
    with pytest.raises(DatabaseUnavailable) as caught:
        store.get_run()
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_lock_held_past_busy_timeout_is_database_unavailable() -> None:
    error = sa_exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("locked"))
    translated = translate_db_error(error, make_url("sqlite:///run.db"))
    assert isinstance(translated, DatabaseUnavailable)
    assert "retry" in str(translated)


def test_session_is_reentrant_and_atomic(store: Store) -> None:
    with pytest.raises(RuntimeError), store.session():
        create_test_run(store)  # joins the outer transaction
        assert store.get_run().name == "test"
        raise RuntimeError("roll everything back")
    with pytest.raises(NoRun):
        store.get_run()
