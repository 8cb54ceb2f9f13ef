"""Migrations create the schema core.store.schema describes, once."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from core.store import Store, head_revision, make_engine, migrate
from core.store.schema import metadata

from .factories import create_test_run


def test_migrate_creates_every_table(db_url: str, tmp_path) -> None:
    (tmp_path / "db").mkdir(exist_ok=True)
    engine = make_engine(db_url)
    try:
        migrate(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    finally:
        engine.dispose()


def test_migrate_twice_is_a_no_op(db_url: str, tmp_path) -> None:
    (tmp_path / "db").mkdir(exist_ok=True)
    engine = make_engine(db_url)
    try:
        migrate(engine)
        store = Store(engine)
        create_test_run(store)

        def shape() -> dict[str, list[str]]:
            inspector = inspect(engine)
            return {
                t: sorted(ix["name"] or "" for ix in inspector.get_indexes(t))
                for t in inspector.get_table_names()
            }

        before = shape()
        migrate(engine)
        assert shape() == before
        assert store.get_run().name == "test"  # the data survived
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_metadata(db_url: str, tmp_path) -> None:
    """Migration 0001 is written out by hand; it must build exactly schema.py's tables."""
    (tmp_path / "db").mkdir(exist_ok=True)
    engine = make_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == []
    finally:
        engine.dispose()


def test_partial_unique_index_on_accepted_results(db_url: str, tmp_path) -> None:
    (tmp_path / "db").mkdir(exist_ok=True)
    engine = make_engine(db_url)
    try:
        migrate(engine)
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("results")}
        accepted = indexes["uq_results_accepted"]
        assert accepted["unique"]
        assert accepted["column_names"] == ["version", "unit_index"]
    finally:
        engine.dispose()


def test_tensor_columns_are_stored_uncompressed(db_url: str, tmp_path) -> None:
    """PostgreSQL's default bytea storage runs pglz over every weight, optimizer state and
    payload before storing it uncompressed anyway (0.27 s per 24 MiB of weights); the tensor
    columns are EXTERNAL (out of line, never compressed), images keep the default."""
    if not db_url.startswith("postgresql"):
        return  # SQLite has no storage modes
    engine = make_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            storage = {
                (table, column): conn.exec_driver_sql(
                    "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attname = %s",
                    (table, column),
                ).scalar_one()
                for table, column in [
                    ("model_versions", "weights"),
                    ("optimizer_states", "state"),
                    ("result_payloads", "payload"),
                    ("result_uploads", "payload"),
                    ("dataset_shards", "data"),
                ]
            }
        assert storage.pop(("dataset_shards", "data")) == "x"  # extended: images compress
        assert set(storage.values()) == {"e"}, storage
    finally:
        engine.dispose()
