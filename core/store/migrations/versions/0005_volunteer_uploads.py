"""Volunteer payloads by binary COPY: an upload view with a checking trigger (PostgreSQL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Until now a volunteer sent its payload as a bytea parameter of `volunteer.submit`, which
psycopg2 writes as hex text: twice the payload's bytes on the wire. A volunteer now COPYs the
payload in binary into the view `volunteer.result_uploads` (INSERT is all it may do there; it
cannot read it back), whose INSTEAD OF trigger checks, as the owner and as `volunteer.submit`
does, that the worker is the volunteer's, the payload is within the run's `max_payload_mb`, and
the lease (unit, token, worker, expiry) is held, and
then stages the payload in `result_uploads` under the volunteer's own role (`session_user`; a
volunteer cannot name another). `volunteer.submit_uploaded` then submits the staged payload
through `volunteer.submit`'s checks and deletes it, in the volunteer's transaction. One staged
row per held lease at most; the coordinator's watchdog deletes rows whose lease has ended.
A no-op on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"
DEFAULT_MAX_PAYLOAD_MB = 64.0  # as in 0002
SUBMIT_UPLOADED = (
    "volunteer.submit_uploaded(integer, integer, text, text, integer, double precision, "
    "double precision, double precision, double precision, double precision)"
)

UPGRADE = f"""
-- Never returns a row (WHERE false): it exists to be COPYed into. The worker and unit are
-- checked as volunteer.submit checks them, so a refusal reads the same.
CREATE VIEW volunteer.result_uploads AS
    SELECT NULL::integer AS worker_id, NULL::integer AS unit_id, lease_token, payload
    FROM @T.result_uploads WHERE false;

CREATE FUNCTION volunteer._stage_upload() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    r @T.run;
    v_now double precision;
    v_max_bytes double precision;
BEGIN
    PERFORM volunteer._own_worker(NEW.worker_id);
    r := volunteer._run();
    v_now := volunteer._now();
    v_max_bytes := volunteer._setting(r.settings, 'max_payload_mb', {DEFAULT_MAX_PAYLOAD_MB})
                   * 1048576;
    IF NEW.payload IS NULL OR octet_length(NEW.payload) > v_max_bytes THEN
        RAISE EXCEPTION USING ERRCODE = 'GF006', MESSAGE = format(
            'a payload of %s bytes is over the run''s max_payload_mb (%s MiB); it is refused',
            coalesce(octet_length(NEW.payload), 0), v_max_bytes / 1048576);
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM @T.work_units
        WHERE id = NEW.unit_id AND status = 'leased' AND lease_token = NEW.lease_token
          AND worker_id = NEW.worker_id AND lease_expires_at >= v_now
    ) THEN
        PERFORM volunteer._refuse(NEW.unit_id, NEW.lease_token, NEW.worker_id, v_now, true);
    END IF;
    -- A retried upload replaces the earlier one: one staged row per lease and volunteer.
    DELETE FROM @T.result_uploads WHERE lease_token = NEW.lease_token AND owner = session_user;
    INSERT INTO @T.result_uploads (lease_token, owner, payload)
    VALUES (NEW.lease_token, session_user, NEW.payload);
    RETURN NEW;
END
$$;

CREATE TRIGGER stage_upload INSTEAD OF INSERT ON volunteer.result_uploads
FOR EACH ROW EXECUTE FUNCTION volunteer._stage_upload();

CREATE FUNCTION volunteer.submit_uploaded(p_worker integer, p_unit integer, p_token text,
                                          p_precision text, p_claimed_samples integer,
                                          p_d_loss double precision, p_g_loss double precision,
                                          p_d_real double precision, p_d_fake double precision,
                                          p_compute_s double precision)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    v_payload bytea;
BEGIN
    DELETE FROM @T.result_uploads WHERE lease_token = p_token AND owner = session_user
    RETURNING payload INTO v_payload;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF006', MESSAGE =
            'no uploaded payload for this lease: COPY it into volunteer.result_uploads first';
    END IF;
    RETURN volunteer.submit(p_worker, p_unit, p_token, v_payload, p_precision,
                            p_claimed_samples, p_d_loss, p_g_loss, p_d_real, p_d_fake,
                            p_compute_s);
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
    """Create the upload view, its trigger and submit_uploaded; grant them to volunteers."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    t, g = _quote(_config(bind, "tables_schema")), _quote(_config(bind, "group_role"))
    bind.exec_driver_sql(UPGRADE.replace("@T", t), execution_options={"no_parameters": True})
    for statement in (
        "REVOKE ALL ON volunteer.result_uploads FROM PUBLIC",
        "REVOKE ALL ON FUNCTION volunteer._stage_upload() FROM PUBLIC",
        f"REVOKE ALL ON FUNCTION {SUBMIT_UPLOADED} FROM PUBLIC",
        f"GRANT INSERT ON volunteer.result_uploads TO {g}",
        f"GRANT EXECUTE ON FUNCTION {SUBMIT_UPLOADED} TO {g}",
    ):
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    """Drop the upload view, its trigger function and submit_uploaded."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql(f"DROP FUNCTION {SUBMIT_UPLOADED}")
    bind.exec_driver_sql("DROP VIEW volunteer.result_uploads")
    bind.exec_driver_sql("DROP FUNCTION volunteer._stage_upload()")
