"""Result payloads in their own table; one optimizer state row per version.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

SQLite rewrites a whole row on UPDATE and walks a blob's overflow pages on DELETE, so with the
payload inside `results` every verdict copied the 24 MiB payload of a 64×64 model and every
close walked all of them while workers waited for the next version. Payloads now live in
`result_payloads`, keyed by result id without a foreign key: the close deletes the small rows
and the coordinator deletes orphaned payloads when idle (`core.store.housekeeping`). On
PostgreSQL `volunteer.submit` is replaced to write the payload there.

For the same reason the optimizer state (48 MiB for the 64×64 model) is no longer updated in
place: the close inserts a row for the version it publishes into `optimizer_states`, and the
idle coordinator deletes the rows of older versions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"
DEFAULT_MAX_PAYLOAD_MB = 64.0  # as in 0002 (the function's fallback when the setting is absent)

# volunteer.submit of 0002, with the payload's INSERT as a parameter.
SUBMIT = """
CREATE OR REPLACE FUNCTION volunteer.submit(p_worker integer, p_unit integer, p_token text,
                                 p_payload bytea, p_precision text, p_claimed_samples integer,
                                 p_d_loss double precision, p_g_loss double precision,
                                 p_d_real double precision, p_d_fake double precision,
                                 p_compute_s double precision)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER @PIN AS $$
DECLARE
    r @T.run;
    v_now double precision;
    v_max_bytes double precision;
    v_compute_s double precision;
    v_id integer;
    u record;
BEGIN
    PERFORM volunteer._own_worker(p_worker);
    r := volunteer._run();
    v_now := volunteer._now();
    IF p_precision IS NULL OR p_precision NOT IN ('fp32', 'bf16', 'fp16') THEN
        RAISE EXCEPTION USING ERRCODE = 'GF006', MESSAGE = format(
            'precision must be fp32, bf16 or fp16, not %L', p_precision);
    END IF;
    v_max_bytes := volunteer._setting(r.settings, 'max_payload_mb', @MAX_MB) * 1048576;
    IF p_payload IS NULL OR octet_length(p_payload) > v_max_bytes THEN
        RAISE EXCEPTION USING ERRCODE = 'GF006', MESSAGE = format(
            'a payload of %s bytes is over the run''s max_payload_mb (%s MiB); it is refused',
            coalesce(octet_length(p_payload), 0), v_max_bytes / 1048576);
    END IF;
    UPDATE @T.work_units SET status = 'submitted'
    WHERE id = p_unit AND status = 'leased' AND lease_token = p_token
      AND worker_id = p_worker AND lease_expires_at >= v_now
    RETURNING version, unit_index, leased_at INTO u;
    IF NOT FOUND THEN
        PERFORM volunteer._refuse(p_unit, p_token, p_worker, v_now, true);
    END IF;
    -- Compute time is only the worker's word (it is credited on the leaderboard): never
    -- more than the lease has run by the server's clock.
    v_compute_s := CASE WHEN p_compute_s IS NULL OR p_compute_s = 'NaN' OR p_compute_s < 0
                        THEN 0 ELSE least(p_compute_s, greatest(v_now - u.leased_at, 0)) END;
    INSERT INTO @T.results (unit_id, version, unit_index, worker_id, @PAYLOAD_COLUMN"precision",
                            claimed_samples, compute_s, status, submitted_at,
                            d_loss, g_loss, d_real, d_fake)
    VALUES (p_unit, u.version, u.unit_index, p_worker, @PAYLOAD_VALUEp_precision,
            coalesce(p_claimed_samples, 0), v_compute_s, 'new', v_now,
            -- NaN is stored as NULL on every backend (core.store.queue.nan_to_null)
            nullif(p_d_loss, 'NaN'), nullif(p_g_loss, 'NaN'),
            nullif(p_d_real, 'NaN'), nullif(p_d_fake, 'NaN'))
    RETURNING id INTO v_id;
    @PAYLOAD_INSERT
    PERFORM volunteer._touch(p_worker, v_now, NULL);
    RETURN v_id;
END
$$;
"""


def _replace_submit(bind: sa.Connection, payload_table: bool) -> None:
    if bind.dialect.name != "postgresql":
        return
    tables = bind.execute(
        sa.text("SELECT value FROM volunteer.config WHERE key = 'tables_schema'")
    ).scalar_one()
    t = '"' + tables.replace('"', '""') + '"'
    sql = (
        SUBMIT.replace("@PIN", PIN)
        .replace("@MAX_MB", repr(DEFAULT_MAX_PAYLOAD_MB))
        .replace("@PAYLOAD_COLUMN", "" if payload_table else "payload, ")
        .replace("@PAYLOAD_VALUE", "" if payload_table else "p_payload, ")
        .replace(
            "@PAYLOAD_INSERT",
            "INSERT INTO @T.result_payloads (result_id, payload) VALUES (v_id, p_payload);"
            if payload_table
            else "",
        )
        .replace("@T", t)
    )
    bind.exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    """Create result_payloads, move the payloads there, drop results.payload."""
    op.create_table(
        "result_payloads",
        sa.Column("result_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("result_id", name="pk_result_payloads"),
    )
    op.execute(
        "INSERT INTO result_payloads (result_id, payload) "
        "SELECT id, payload FROM results WHERE payload IS NOT NULL"
    )
    # Plain ALTER TABLE (SQLite 3.35+ can drop a column): a batch "move and copy" would rebuild
    # results and lose its AUTOINCREMENT, letting a new result reuse an orphaned payload's id.
    op.execute("ALTER TABLE results DROP COLUMN payload")
    _replace_submit(op.get_bind(), payload_table=True)
    op.create_table(
        "optimizer_states",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_optimizer_states"),
    )
    op.execute(
        "INSERT INTO optimizer_states (version, state) SELECT version, state FROM optimizer_state"
    )
    op.drop_table("optimizer_state")


def downgrade() -> None:
    """Back to one optimizer_state row and payloads in results.payload."""
    op.create_table(
        "optimizer_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_optimizer_state"),
        sa.CheckConstraint("id = 1", name="ck_optimizer_state_single_row"),
    )
    op.execute(
        "INSERT INTO optimizer_state (id, version, state) SELECT 1, version, state "
        "FROM optimizer_states WHERE version = (SELECT max(version) FROM optimizer_states)"
    )
    op.drop_table("optimizer_states")
    op.add_column("results", sa.Column("payload", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE results SET payload = (SELECT p.payload FROM result_payloads p "
        "WHERE p.result_id = results.id) WHERE status IN ('new', 'accepted')"
    )
    _replace_submit(op.get_bind(), payload_table=False)
    op.drop_table("result_payloads")
