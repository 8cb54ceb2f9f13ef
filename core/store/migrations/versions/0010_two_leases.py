"""A volunteer's worker may hold two leases: one unit uploading while the next computes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

The worker engine uploads a finished unit in the background while it claims and computes the
next, and a fast worker claims its next unit while the current one computes (core/worker.py,
core/claim_ahead.py): at most two live leases per worker. `volunteer.claim` refused a second
(GF005), so on PostgreSQL a volunteer's pipelined worker was turned away and retried. Now a
worker row may hold two; a third is refused as before. The worker row is also touched last,
after the unit rows, as `volunteer.submit` and `volunteer.heartbeat` do, so a worker's claim and
its own concurrent submit take their locks in the same order and cannot deadlock. A no-op on
SQLite, where the owner's claim never limited leases.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"
DEFAULT_LEASE_S = 60.0  # as in 0002
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKUP_AFTER_S = 30.0


def _claim(max_leases: int, touch_first: bool) -> str:
    touch = "    PERFORM volunteer._touch(p_worker, v_now, NULL);\n"
    return f"""
CREATE OR REPLACE FUNCTION volunteer.claim(p_worker integer)
RETURNS SETOF volunteer.lease LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    r @T.run := volunteer._run();
    v_now double precision;
    v_lease_s double precision;
    v_max_attempts integer;
    v_token text;
    v_held integer;
    v_lease volunteer.lease;
BEGIN
    IF r.status = 'paused' THEN
        RAISE EXCEPTION USING ERRCODE = 'GF003', MESSAGE = 'the run is paused';
    END IF;
    PERFORM volunteer._own_worker(p_worker);
    v_now := volunteer._now();
{touch if touch_first else ""}    SELECT count(*) INTO v_held FROM @T.work_units
    WHERE worker_id = p_worker AND status = 'leased' AND lease_expires_at >= v_now;
    IF v_held >= {max_leases} THEN
        RAISE EXCEPTION USING ERRCODE = 'GF005', MESSAGE = format(
            'worker %s already holds %s units; submit or release one before claiming another '
            '(each worker process needs its own --name)', p_worker, v_held);
    END IF;
    v_lease_s := volunteer._setting(r.settings, 'lease_s', {DEFAULT_LEASE_S});
    v_max_attempts := volunteer._setting(r.settings, 'max_attempts', {DEFAULT_MAX_ATTEMPTS})::integer;
    v_token := replace(gen_random_uuid()::text, '-', '');
    v_lease := volunteer._claim_pending(r.version, p_worker, v_token, v_now, v_lease_s);
    IF v_lease.unit_id IS NULL AND volunteer._expire_leases(v_now, v_max_attempts) > 0 THEN
        v_lease := volunteer._claim_pending(r.version, p_worker, v_token, v_now, v_lease_s);
    END IF;
    IF v_lease.unit_id IS NULL THEN
        v_lease := volunteer._claim_backup(r.version, p_worker, v_token, v_now, v_lease_s,
            volunteer._setting(r.settings, 'backup_after_s', {DEFAULT_BACKUP_AFTER_S}));
    END IF;
{"" if touch_first else touch}    IF v_lease.unit_id IS NOT NULL THEN
        RETURN NEXT v_lease;
    END IF;
END
$$;
"""


def _tables(bind: sa.Connection) -> str:
    name = bind.execute(
        sa.text("SELECT value FROM volunteer.config WHERE key = 'tables_schema'")
    ).scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _replace(sql: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    body = sql.replace("@T", _tables(bind))
    bind.exec_driver_sql(body, execution_options={"no_parameters": True})


def upgrade() -> None:
    """Two live leases per worker; the worker row touched after the unit rows."""
    _replace(_claim(2, touch_first=False))


def downgrade() -> None:
    """One live lease per worker, as 0002 had it."""
    _replace(_claim(1, touch_first=True))
