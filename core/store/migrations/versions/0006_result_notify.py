"""Wake the coordinator when a result arrives: NOTIFY on every insert into results (PostgreSQL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

The coordinator used to poll for new results every 50 ms, so a result waited 25 ms on average
before its validation started, and an idle coordinator queried all the time. A statement-level
trigger now sends `pg_notify('ganfriends_results', '')` after any insert into results — the
owner's submits and the volunteers' (through their SECURITY DEFINER functions) alike — and the
coordinator LISTENs. A hint, never the authority: the coordinator still polls. A no-op on SQLite,
where the coordinator watches the database's change counter instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "ganfriends_results"  # core.store.notify.RESULTS_CHANNEL, fixed here as migrated


def _tables_schema(bind: sa.Connection) -> str:
    name = bind.execute(
        sa.text("SELECT value FROM volunteer.config WHERE key = 'tables_schema'")
    ).scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def upgrade() -> None:
    """Create the notifying trigger function and its statement-level trigger on results."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    t = _tables_schema(bind)
    bind.exec_driver_sql(
        f"""
        CREATE FUNCTION {t}.announce_results() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END;
        $$;
        CREATE TRIGGER announce_results AFTER INSERT ON {t}.results
            FOR EACH STATEMENT EXECUTE FUNCTION {t}.announce_results();
        REVOKE ALL ON FUNCTION {t}.announce_results() FROM PUBLIC;
        """,
        execution_options={"no_parameters": True},
    )


def downgrade() -> None:
    """Drop the trigger and its function."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    t = _tables_schema(bind)
    bind.exec_driver_sql(f"DROP TRIGGER announce_results ON {t}.results")
    bind.exec_driver_sql(f"DROP FUNCTION {t}.announce_results()")
