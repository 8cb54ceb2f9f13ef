"""A volunteer's claim looks up its identity's workers once, not once per unit it passes over.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

0011's `volunteer._claim_pending` passes over a unit of which the volunteer's identity already
holds or held a copy with a subquery that joined `workers` for every candidate unit. Its
cached plan scanned `workers` for each of the version's units: with 32 volunteers of a class
that was ~190 scans and 13 ms of the server's CPU per claim, the largest single cost on the
server (benchmarks.class_sim with track_functions: 29 s of 2,205 claims). The identity's
worker ids are now read once per claim and the subquery probes `work_units` by its
(version, unit_index) key alone. Same rule, same refusals. A no-op on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"

_HEAD = f"""
CREATE OR REPLACE FUNCTION volunteer._claim_pending(p_version integer, p_worker integer,
                                                    p_token text, p_now double precision,
                                                    p_lease_s double precision)
RETURNS volunteer.lease LANGUAGE plpgsql {PIN} AS $$
DECLARE
    v_identity text;
    v_reason text;
    v_lease volunteer.lease;
    v_workers integer[];
BEGIN
    SELECT volunteer INTO v_identity FROM @T.workers WHERE id = p_worker;
    SELECT coalesce(reason, 'no reason recorded') INTO v_reason FROM @T.trust
    WHERE identity = v_identity AND quarantined_at IS NOT NULL;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF004', MESSAGE = format(
            '%s is quarantined (%s); none of its results count. Ask the run''s owner',
            v_identity, v_reason);
    END IF;
"""

# The unit rule, with how it finds the identity's other copies: 0011's join per candidate unit,
# and this migration's worker ids read once.
_RULE = """
    @IDS
    UPDATE @T.work_units SET
        status = 'leased', lease_token = p_token, lease_expires_at = p_now + p_lease_s,
        leased_at = p_now, worker_id = p_worker, attempts = attempts + 1
    WHERE id = (SELECT u.id FROM @T.work_units u
                WHERE u.status = 'pending' AND u.version = p_version
                  AND NOT EXISTS (@OTHERS)
                ORDER BY u.unit_index, u.copy LIMIT 1
                FOR UPDATE OF u SKIP LOCKED)
"""
_JOINED = _RULE.replace("@IDS", "").replace(
    "@OTHERS",
    """
                      SELECT 1 FROM @T.work_units o JOIN @T.workers w ON w.id = o.worker_id
                      WHERE o.version = u.version AND o.unit_index = u.unit_index
                        AND o.id <> u.id AND w.volunteer = v_identity""",
)
_BY_IDS = _RULE.replace(
    "@IDS",
    """SELECT coalesce(array_agg(id), '{}') INTO v_workers FROM @T.workers
    WHERE volunteer = v_identity;""",
).replace(
    "@OTHERS",
    """
                      SELECT 1 FROM @T.work_units o
                      WHERE o.version = u.version AND o.unit_index = u.unit_index
                        AND o.id <> u.id AND o.worker_id = ANY (v_workers)""",
)
_TAIL = """
    RETURNING id, version, unit_index, copy, seed, sample_indices, lease_token,
              lease_expires_at, worker_id INTO v_lease;
    RETURN v_lease;
END
$$;
"""


def _replace(rule: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    tables = bind.execute(
        sa.text("SELECT value FROM volunteer.config WHERE key = 'tables_schema'")
    ).scalar_one()
    sql = (_HEAD + rule + _TAIL).replace("@T", '"' + tables.replace('"', '""') + '"')
    bind.exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    """Replace the claim's unit rule with one that reads the identity's workers once."""
    _replace(_BY_IDS)


def downgrade() -> None:
    """Restore 0011's unit rule."""
    _replace(_JOINED)
