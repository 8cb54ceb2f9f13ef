"""Trust: volunteer identities, their record, results held for verification.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

`workers.volunteer` names the identity a worker acts for: its volunteer's login role on
PostgreSQL (set by a trigger when `volunteer.register` records the role), its own name for
workers of the owner's login and on SQLite. `workers.verified` counts its results another
volunteer's computation confirmed. `trust` keeps each identity's record (confirmed units,
quarantine), `held_results` the valid results that wait for a second computation
(core/verification.py) and `unchecked_results` those that counted without one.

On PostgreSQL `volunteer._claim_pending` now refuses a quarantined volunteer and never hands a
volunteer a copy of a unit its identity already computes or computed, so a result is always
confirmed by somebody else; the volunteer's views gain the new columns, and `volunteer.trust`
shows a volunteer its own record.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"

UPGRADE = f"""
UPDATE @T.workers w SET volunteer = r.role_name
FROM volunteer.worker_roles r WHERE r.worker_id = w.id;

CREATE FUNCTION volunteer._set_identity() RETURNS trigger
LANGUAGE plpgsql {PIN} AS $$
BEGIN
    UPDATE @T.workers SET volunteer = NEW.role_name WHERE id = NEW.worker_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER set_identity AFTER INSERT ON volunteer.worker_roles
FOR EACH ROW EXECUTE FUNCTION volunteer._set_identity();

-- core.store.queue.claim_statement with its identity rule.
CREATE OR REPLACE FUNCTION volunteer._claim_pending(p_version integer, p_worker integer,
                                                    p_token text, p_now double precision,
                                                    p_lease_s double precision)
RETURNS volunteer.lease LANGUAGE plpgsql {PIN} AS $$
DECLARE
    v_identity text;
    v_reason text;
    v_lease volunteer.lease;
BEGIN
    SELECT volunteer INTO v_identity FROM @T.workers WHERE id = p_worker;
    SELECT coalesce(reason, 'no reason recorded') INTO v_reason FROM @T.trust
    WHERE identity = v_identity AND quarantined_at IS NOT NULL;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF004', MESSAGE = format(
            '%s is quarantined (%s); none of its results count. Ask the run''s owner',
            v_identity, v_reason);
    END IF;
    UPDATE @T.work_units SET
        status = 'leased', lease_token = p_token, lease_expires_at = p_now + p_lease_s,
        leased_at = p_now, worker_id = p_worker, attempts = attempts + 1
    WHERE id = (SELECT u.id FROM @T.work_units u
                WHERE u.status = 'pending' AND u.version = p_version
                  AND NOT EXISTS (
                      SELECT 1 FROM @T.work_units o JOIN @T.workers w ON w.id = o.worker_id
                      WHERE o.version = u.version AND o.unit_index = u.unit_index
                        AND o.id <> u.id AND w.volunteer = v_identity)
                ORDER BY u.unit_index, u.copy LIMIT 1
                FOR UPDATE OF u SKIP LOCKED)
    RETURNING id, version, unit_index, copy, seed, sample_indices, lease_token,
              lease_expires_at, worker_id INTO v_lease;
    RETURN v_lease;
END
$$;

-- The new columns of workers appear at the end of the views (CREATE OR REPLACE keeps grants).
CREATE OR REPLACE VIEW volunteer.workers WITH (security_barrier) AS
    SELECT w.* FROM @T.workers w
    WHERE w.id IN (SELECT r.worker_id FROM volunteer.worker_roles r
                   WHERE r.role_name = session_user);
CREATE OR REPLACE VIEW volunteer.leaderboard AS
    SELECT name, units, images, compute_s, verified FROM @T.workers
    ORDER BY images DESC, units DESC, name;
-- A volunteer's own record: confirmed units, and why it was quarantined if it was.
CREATE VIEW volunteer.trust WITH (security_barrier) AS
    SELECT * FROM @T.trust WHERE identity = session_user;
"""

# 0002's definitions, restored by the downgrade.
DOWNGRADE = f"""
DROP VIEW volunteer.trust;
DROP TRIGGER set_identity ON volunteer.worker_roles;
DROP FUNCTION volunteer._set_identity();
DROP FUNCTION volunteer._claim_pending(integer, integer, text, double precision,
                                       double precision);
CREATE FUNCTION volunteer._claim_pending(p_version integer, p_worker integer, p_token text,
                                         p_now double precision, p_lease_s double precision)
RETURNS volunteer.lease LANGUAGE sql {PIN} AS $$
    UPDATE @T.work_units SET
        status = 'leased', lease_token = p_token, lease_expires_at = p_now + p_lease_s,
        leased_at = p_now, worker_id = p_worker, attempts = attempts + 1
    WHERE id = (SELECT id FROM @T.work_units
                WHERE status = 'pending' AND version = p_version
                ORDER BY unit_index, copy LIMIT 1
                FOR UPDATE SKIP LOCKED)
    RETURNING id, version, unit_index, copy, seed, sample_indices, lease_token,
              lease_expires_at, worker_id
$$;
REVOKE ALL ON FUNCTION volunteer._claim_pending(integer, integer, text, double precision,
                                                double precision) FROM PUBLIC;
DROP VIEW volunteer.workers;
DROP VIEW volunteer.leaderboard;
CREATE VIEW volunteer.workers WITH (security_barrier) AS
    SELECT w.id, w.name, w.hostname, w.device, w.created_at, w.last_seen, w.state, w.units,
           w.images, w.compute_s, w.rejected FROM @T.workers w
    WHERE w.id IN (SELECT r.worker_id FROM volunteer.worker_roles r
                   WHERE r.role_name = session_user);
CREATE VIEW volunteer.leaderboard AS
    SELECT name, units, images, compute_s FROM @T.workers
    ORDER BY images DESC, units DESC, name;
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
    """Add the identity and trust columns and tables; on PostgreSQL the claim and views."""
    op.add_column("workers", sa.Column("volunteer", sa.String(200), nullable=True))
    op.add_column(
        "workers",
        sa.Column("verified", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.execute("UPDATE workers SET volunteer = name")
    op.create_table(
        "trust",
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("earned", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("verified", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("outvoted", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("quarantined_at", sa.Double(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("identity", name=op.f("pk_trust")),
    )
    op.create_table(
        "held_results",
        sa.Column("result_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("unit_index", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("device", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("result_id", name=op.f("pk_held_results")),
    )
    op.create_index("ix_held_results_version_unit_index", "held_results", ["version", "unit_index"])
    op.create_table(
        "unchecked_results",
        sa.Column("result_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("result_id", name=op.f("pk_unchecked_results")),
    )
    op.create_index("ix_unchecked_results_identity", "unchecked_results", ["identity"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql("REVOKE ALL ON trust, held_results, unchecked_results FROM PUBLIC")
    if bind.execute(sa.text("SELECT to_regnamespace('volunteer') IS NULL")).scalar_one():
        return
    t, g = _quote(_config(bind, "tables_schema")), _quote(_config(bind, "group_role"))
    bind.exec_driver_sql(UPGRADE.replace("@T", t), execution_options={"no_parameters": True})
    for statement in (
        "REVOKE ALL ON FUNCTION volunteer._set_identity() FROM PUBLIC",
        "REVOKE ALL ON volunteer.trust FROM PUBLIC",
        f"GRANT SELECT ON volunteer.trust TO {g}",
    ):
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    """Drop the trust tables and columns; on PostgreSQL restore 0002's claim and views."""
    bind = op.get_bind()
    if (
        bind.dialect.name == "postgresql"
        and not bind.execute(sa.text("SELECT to_regnamespace('volunteer') IS NULL")).scalar_one()
    ):
        t, g = _quote(_config(bind, "tables_schema")), _quote(_config(bind, "group_role"))
        bind.exec_driver_sql(DOWNGRADE.replace("@T", t), execution_options={"no_parameters": True})
        bind.exec_driver_sql(f"GRANT SELECT ON volunteer.workers, volunteer.leaderboard TO {g}")
    op.drop_index("ix_unchecked_results_identity", table_name="unchecked_results")
    op.drop_table("unchecked_results")
    op.drop_index("ix_held_results_version_unit_index", table_name="held_results")
    op.drop_table("held_results")
    op.drop_table("trust")
    # Plain DROP COLUMN (SQLite >= 3.35): a batch copy of workers would break its references.
    op.drop_column("workers", "verified")
    op.drop_column("workers", "volunteer")
