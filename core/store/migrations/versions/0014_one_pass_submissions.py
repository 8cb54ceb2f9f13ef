"""Volunteers submit a result in one pass: its payload is written once, not staged and copied.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Since 0005 a volunteer's payload went up by binary COPY into `volunteer.result_uploads`, whose
trigger stored it in the staging table `result_uploads`; `volunteer.submit_uploaded` then read
it back, deleted it and passed it to `volunteer.submit`, which stored it again in
`result_payloads`. Every result's bytes were written to PostgreSQL twice, read back once and
left as dead rows once: 1.55 bytes of WAL per payload byte, 0.55 now (a 4 MiB payload, the
test cluster, measured once with `pg_current_wal_lsn()`). The server's CPU did not change measurably (benchmarks.class_sim, 32
volunteers: PostgreSQL ~1.1 of the machine's 2 cores either way), but its disk writes, and
whatever copies its WAL (backups, replicas), carry a third of the bytes per result.

`volunteer.result_submissions` takes the whole submission in one COPY row (the lease, the
precision, the claimed samples, the metrics, the compute time and the payload). Its trigger
passes the row to `volunteer.submit`, which checks everything it always has (the volunteer's
own worker, the precision, the run's `max_payload_mb`, the held lease) and stores the payload
once. A COPY returns no rows, so the trigger leaves the new result's id in the transaction's
setting `ganfriends.submitted_result` for the client to read. The view can be inserted into
and never read. The staging view and `submit_uploaded` stay for clients older than this.
A no-op on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"

UPGRADE = f"""
-- Never returns a row (WHERE false): it exists to be COPYed into.
CREATE VIEW volunteer.result_submissions AS
    SELECT NULL::integer AS worker_id, NULL::integer AS unit_id, NULL::text AS lease_token,
           NULL::text AS "precision", NULL::integer AS claimed_samples,
           NULL::double precision AS d_loss, NULL::double precision AS g_loss,
           NULL::double precision AS d_real, NULL::double precision AS d_fake,
           NULL::double precision AS compute_s, NULL::bytea AS payload
    WHERE false;

CREATE FUNCTION volunteer._submit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    v_id integer;
BEGIN
    v_id := volunteer.submit(NEW.worker_id, NEW.unit_id, NEW.lease_token, NEW.payload,
                             NEW."precision", NEW.claimed_samples, NEW.d_loss, NEW.g_loss,
                             NEW.d_real, NEW.d_fake, NEW.compute_s);
    PERFORM set_config('ganfriends.submitted_result', v_id::text, true);
    RETURN NEW;
END
$$;

CREATE TRIGGER submit_row INSTEAD OF INSERT ON volunteer.result_submissions
FOR EACH ROW EXECUTE FUNCTION volunteer._submit_row();
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upgrade() -> None:
    """Create the submissions view and its trigger; let volunteers insert into the view."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    group = bind.execute(
        sa.text("SELECT value FROM volunteer.config WHERE key = 'group_role'")
    ).scalar_one()
    bind.exec_driver_sql(UPGRADE, execution_options={"no_parameters": True})
    for statement in (
        "REVOKE ALL ON volunteer.result_submissions FROM PUBLIC",
        "REVOKE ALL ON FUNCTION volunteer._submit_row() FROM PUBLIC",
        f"GRANT INSERT ON volunteer.result_submissions TO {_quote(group)}",
    ):
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    """Drop the submissions view and its trigger function."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql("DROP VIEW volunteer.result_submissions")
    bind.exec_driver_sql("DROP FUNCTION volunteer._submit_row()")
