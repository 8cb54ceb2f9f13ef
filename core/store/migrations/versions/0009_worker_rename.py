"""Renaming a volunteer's worker keeps its identity: volunteer.rename (PostgreSQL).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

A volunteer who changes the name shown on the leaderboard must not become a second volunteer
(a new worker row with no history, counted twice among the active ones and, after a few
renames, refused by the per-volunteer worker cap). `volunteer.rename(old, new)` renames the
volunteer's own worker rows called `old` in place, so their units and images stay theirs; the
next registration under `new` finds the same row. A no-op on SQLite (the owner's store updates
the table itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"
RENAME = "volunteer.rename(text, text)"

UPGRADE = f"""
CREATE FUNCTION volunteer.rename(p_old text, p_new text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM 1 FROM volunteer.volunteers
    WHERE role_name = session_user AND revoked_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF004', MESSAGE = format(
            '%s is not an invited volunteer of this run (or was revoked); ask the run''s '
            'owner for an invite code', session_user);
    END IF;
    IF coalesce(length(p_new), 0) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION USING ERRCODE = 'GF006',
            MESSAGE = 'a worker name must have 1 to 200 characters';
    END IF;
    UPDATE @T.workers w SET name = p_new
    FROM volunteer.worker_roles r
    WHERE r.worker_id = w.id AND r.role_name = session_user AND w.name = p_old;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM volunteer._event(volunteer._now(), 'worker',
            format('%s is now called %s', p_old, p_new), NULL, NULL);
    END IF;
    RETURN v_count;
END
$$;
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _config(bind: sa.Connection, key: str) -> str:
    return str(
        bind.execute(
            sa.text("SELECT value FROM volunteer.config WHERE key = :key"), {"key": key}
        ).scalar_one()
    )


def upgrade() -> None:
    """Create volunteer.rename and grant it to volunteers."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    t, g = _quote(_config(bind, "tables_schema")), _quote(_config(bind, "group_role"))
    bind.exec_driver_sql(UPGRADE.replace("@T", t), execution_options={"no_parameters": True})
    bind.exec_driver_sql(f"REVOKE ALL ON FUNCTION {RENAME} FROM PUBLIC")
    bind.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION {RENAME} TO {g}")


def downgrade() -> None:
    """Drop volunteer.rename."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql(f"DROP FUNCTION {RENAME}")
