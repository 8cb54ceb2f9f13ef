"""Alembic environment: migrates the connection `core.store.engine.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from core.store.schema import metadata

config = context.config


def run_migrations_offline() -> None:
    """Write the migration SQL for the configured URL instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the connection from `migrate`, or an engine made from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is None:
        # Imported here: engine imports alembic's command module, which is only needed online.
        from core.store.engine import make_engine

        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                _run(conn)
        finally:
            engine.dispose()
    else:
        _run(connection)


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite can only alter tables by copying them; batch mode does that.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
