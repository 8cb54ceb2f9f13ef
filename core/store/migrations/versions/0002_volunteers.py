"""Volunteer logins on PostgreSQL: group role, least privilege, views and SECURITY DEFINER functions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20

PostgreSQL only (a no-op on SQLite, which has no logins). Volunteers get one login role each
(`ganfriends-coordinator invite`), member of this database's group role, and may only:
read the views of the `volunteer` schema (published versions, shards, samples, metrics, the run,
their own worker rows and the public leaderboard) and call its functions (register, touch,
claim, heartbeat, submit, release), which run as the owner, take identity from `session_user`
and check lease token, ownership, version and expiry themselves. Every refusal raises a custom
SQLSTATE that `core.store.volunteer` maps to the store's domain errors:

  GF001 lease lost · GF002 already submitted · GF003 run paused · GF004 not this volunteer's
  worker, or not an invited volunteer · GF005 share exceeded · GF006 bad argument · GF007 no run
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.store.errors import StoreError

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "volunteer"  # written out in the SQL below as well
# Written into the functions: the defaults of StoreSettings / RunSettings at this revision
# (tests/coordinator/test_volunteers.py checks they still agree).
DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKUP_AFTER_S = 30.0
DEFAULT_MAX_PAYLOAD_MB = 64.0
MAX_WORKERS_PER_ROLE = 4  # worker rows (one live lease each) a volunteer may have

# ---------------------------------------------------------------------------------- tables
TABLES = """
CREATE SCHEMA volunteer;
REVOKE ALL ON SCHEMA volunteer FROM PUBLIC;
-- Owner-only bookkeeping: no volunteer privilege on any of these three tables.
CREATE TABLE volunteer.config (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE volunteer.volunteers (
    name text PRIMARY KEY,
    role_name text NOT NULL UNIQUE,
    created_at double precision NOT NULL,
    expires_at double precision,
    revoked_at double precision
);
CREATE TABLE volunteer.worker_roles (
    worker_id integer PRIMARY KEY REFERENCES @T.workers (id) ON DELETE CASCADE,
    role_name text NOT NULL
);
CREATE INDEX ix_worker_roles_role_name ON volunteer.worker_roles (role_name);
CREATE TYPE volunteer.lease AS (
    unit_id integer,
    version integer,
    unit_index integer,
    copy integer,
    seed bigint,
    sample_indices bytea,
    token text,
    expires_at double precision,
    worker_id integer
);
"""

# ----------------------------------------------------------------------------------- views
# Views run with their owner's rights: the volunteer reads through them, never the tables.
# Names and columns equal the tables', so the store's queries work on them unchanged.
VIEWS = """
CREATE VIEW volunteer.run AS SELECT * FROM @T.run;
CREATE VIEW volunteer.model_versions AS SELECT * FROM @T.model_versions;
CREATE VIEW volunteer.dataset_shards AS SELECT * FROM @T.dataset_shards;
CREATE VIEW volunteer.metrics AS SELECT * FROM @T.metrics;
CREATE VIEW volunteer.samples AS SELECT * FROM @T.samples;
-- Only the caller's own worker rows (security_barrier: no leaky function sees other rows).
CREATE VIEW volunteer.workers WITH (security_barrier) AS
    SELECT w.* FROM @T.workers w
    WHERE w.id IN (SELECT r.worker_id FROM volunteer.worker_roles r
                   WHERE r.role_name = session_user);
-- The public leaderboard: no hostnames, devices or ids.
CREATE VIEW volunteer.leaderboard AS
    SELECT name, units, images, compute_s FROM @T.workers
    ORDER BY images DESC, units DESC, name;
"""

# ------------------------------------------------------------------------------- internals
# Every function pins search_path and names every object with its schema, so nothing a
# caller puts on its search_path can stand in for them. Internals (leading _) are not
# executable by volunteers; they run inside the SECURITY DEFINER functions below.
PIN = "SET search_path = pg_catalog, pg_temp"

INTERNALS = f"""
CREATE FUNCTION volunteer._now() RETURNS double precision
LANGUAGE sql VOLATILE {PIN} AS $$
    -- The server's clock: a volunteer's own clock is never trusted.
    SELECT extract(epoch FROM clock_timestamp())::double precision
$$;

CREATE FUNCTION volunteer._setting(p_settings text, p_key text, p_default double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE {PIN} AS $$
    SELECT coalesce((p_settings::jsonb ->> p_key)::double precision, p_default)
$$;

CREATE FUNCTION volunteer._event(p_now double precision, p_kind text, p_message text,
                                 p_worker integer, p_version integer)
RETURNS void LANGUAGE sql {PIN} AS $$
    INSERT INTO @T.events (at, kind, message, worker_id, version)
    VALUES (p_now, p_kind, p_message, p_worker, p_version)
$$;

CREATE FUNCTION volunteer._run() RETURNS @T.run
LANGUAGE plpgsql STABLE {PIN} AS $$
DECLARE
    r @T.run;
BEGIN
    SELECT * INTO r FROM @T.run WHERE id = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF007',
            MESSAGE = 'no run in this database; create one with `ganfriends-coordinator init`';
    END IF;
    RETURN r;
END
$$;

CREATE FUNCTION volunteer._own_worker(p_worker integer) RETURNS void
LANGUAGE plpgsql STABLE {PIN} AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM volunteer.worker_roles
                   WHERE worker_id = p_worker AND role_name = session_user) THEN
        RAISE EXCEPTION USING ERRCODE = 'GF004',
            MESSAGE = format('worker %s is not registered to %s; register the worker again',
                             p_worker, session_user);
    END IF;
END
$$;

CREATE FUNCTION volunteer._touch(p_worker integer, p_now double precision, p_state text)
RETURNS void LANGUAGE sql {PIN} AS $$
    UPDATE @T.workers SET last_seen = p_now, state = coalesce(left(p_state, 200), state)
    WHERE id = p_worker
$$;

-- core.store.queue.return_copy: pending again, parked, or cancelled when another copy of the
-- unit still lives or is done.
CREATE FUNCTION volunteer._return_copy(u @T.work_units, p_now double precision,
                                       p_max_attempts integer, p_why text, p_attempts integer)
RETURNS text LANGUAGE plpgsql {PIN} AS $$
DECLARE
    v_others text[];
    v_status text;
BEGIN
    SELECT array_agg(o.status::text) INTO v_others FROM @T.work_units o
    WHERE o.version = u.version AND o.unit_index = u.unit_index AND o.id <> u.id;
    IF v_others && ARRAY['done', 'pending', 'leased', 'submitted'] THEN
        v_status := 'cancelled';
    ELSIF p_attempts >= p_max_attempts THEN
        v_status := 'parked';
    ELSE
        v_status := 'pending';
    END IF;
    UPDATE @T.work_units SET
        status = v_status, lease_token = NULL, lease_expires_at = NULL, attempts = p_attempts,
        worker_id = CASE WHEN v_status = 'pending' THEN NULL ELSE worker_id END,
        leased_at = CASE WHEN v_status = 'pending' THEN NULL ELSE leased_at END
    WHERE id = u.id;
    IF v_status = 'parked' THEN
        PERFORM volunteer._event(p_now, 'parked',
            format('unit %s (copy %s) parked after %s attempts (%s); the version can close '
                   'without it', u.unit_index, u.copy, p_attempts, p_why),
            u.worker_id, u.version);
    ELSIF v_status = 'pending' AND p_why = 'lease expired' THEN
        PERFORM volunteer._event(p_now, 'expired',
            format('unit %s (copy %s): lease of worker %s expired; re-issued',
                   u.unit_index, u.copy, u.worker_id),
            u.worker_id, u.version);
    END IF;
    IF v_status = 'pending' THEN
        PERFORM pg_notify('ganfriends_work', '');  -- core.store.notify's wake-up hint
    END IF;
    RETURN v_status;
END
$$;

CREATE FUNCTION volunteer._expire_leases(p_now double precision, p_max_attempts integer)
RETURNS integer LANGUAGE plpgsql {PIN} AS $$
DECLARE
    u @T.work_units;
    n integer := 0;
BEGIN
    FOR u IN SELECT * FROM @T.work_units
             WHERE status = 'leased' AND lease_expires_at < p_now
             ORDER BY id FOR UPDATE SKIP LOCKED LOOP
        PERFORM volunteer._return_copy(u, p_now, p_max_attempts, 'lease expired', u.attempts);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

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

-- Straggler cover (core.store.queue.claim_backup), never of the caller's own units.
CREATE FUNCTION volunteer._claim_backup(p_version integer, p_worker integer, p_token text,
                                        p_now double precision, p_lease_s double precision,
                                        p_backup_after_s double precision)
RETURNS volunteer.lease LANGUAGE plpgsql {PIN} AS $$
DECLARE
    s @T.work_units;
    v_copy integer;
    v_lease volunteer.lease;
BEGIN
    SELECT u.* INTO s FROM @T.work_units u
    WHERE u.status = 'leased' AND u.version = p_version AND u.lease_expires_at >= p_now
      AND u.leased_at <= p_now - p_backup_after_s
      AND u.worker_id NOT IN (SELECT r.worker_id FROM volunteer.worker_roles r
                              WHERE r.role_name = session_user)
      AND NOT EXISTS (SELECT 1 FROM @T.work_units o
                      WHERE o.version = u.version AND o.unit_index = u.unit_index
                        AND o.status = 'done')
      AND (SELECT count(*) FROM @T.work_units o
           WHERE o.version = u.version AND o.unit_index = u.unit_index
             AND o.status IN ('leased', 'submitted')) < 2
    ORDER BY u.leased_at, u.unit_index LIMIT 1
    FOR UPDATE OF u SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT max(copy) + 1 INTO v_copy FROM @T.work_units
    WHERE version = p_version AND unit_index = s.unit_index;
    INSERT INTO @T.work_units (version, unit_index, copy, seed, sample_indices, sample_count,
                               status, lease_token, lease_expires_at, leased_at, worker_id,
                               attempts, created_at)
    VALUES (p_version, s.unit_index, v_copy, s.seed, s.sample_indices, s.sample_count,
            'leased', p_token, p_now + p_lease_s, p_now, p_worker, 1, p_now)
    RETURNING id, version, unit_index, copy, seed, sample_indices, lease_token,
              lease_expires_at, worker_id INTO v_lease;
    PERFORM volunteer._event(p_now, 'backup',
        format('unit %s has run %s s on worker %s; backup copy %s issued',
               s.unit_index, round((p_now - s.leased_at)::numeric), s.worker_id, v_copy),
        p_worker, p_version);
    RETURN v_lease;
EXCEPTION WHEN unique_violation THEN
    RETURN NULL;  -- another claim issued this copy first
END
$$;

-- core.store.queue.lease_refusal: always raises, saying why the lease no longer holds.
CREATE FUNCTION volunteer._refuse(p_unit integer, p_token text, p_worker integer,
                                  p_now double precision, p_submitting boolean)
RETURNS void LANGUAGE plpgsql {PIN} AS $$
DECLARE
    u @T.work_units;
    v_what text;
BEGIN
    SELECT * INTO u FROM @T.work_units WHERE id = p_unit;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF001', MESSAGE = format(
            'work unit %s no longer exists (its version was closed); claim new work', p_unit);
    END IF;
    v_what := format('unit %s (copy %s) of version %s', u.unit_index, u.copy, u.version);
    IF p_submitting AND u.status IN ('submitted', 'done') AND u.lease_token = p_token THEN
        RAISE EXCEPTION USING ERRCODE = 'GF002', MESSAGE = format(
            'the result of %s from this lease is already stored; it is never counted twice',
            v_what);
    ELSIF u.status IN ('cancelled', 'parked') THEN
        RAISE EXCEPTION USING ERRCODE = 'GF001', MESSAGE = format(
            '%s was %s (its version closed, another copy finished or the operator parked '
            'it); claim new work', v_what, u.status);
    ELSIF u.status = 'pending' THEN
        RAISE EXCEPTION USING ERRCODE = 'GF001', MESSAGE = format(
            'the lease on %s expired and the unit was queued again', v_what);
    ELSIF u.lease_token IS DISTINCT FROM p_token OR u.worker_id IS DISTINCT FROM p_worker THEN
        RAISE EXCEPTION USING ERRCODE = 'GF001', MESSAGE = format(
            '%s was re-issued to another claim; claim new work', v_what);
    ELSIF u.status = 'leased' THEN
        RAISE EXCEPTION USING ERRCODE = 'GF001', MESSAGE = format(
            'the lease on %s expired %s s ago; heartbeat more often than lease_s, and claim '
            'new work', v_what, to_char(p_now - u.lease_expires_at, 'FM9999999990.0'));
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'GF001', MESSAGE = format(
        '%s is %s, no longer leased to this worker', v_what, u.status);
END
$$;
"""

# --------------------------------------------------------------------------- the volunteer API
API = f"""
-- One worker row per (volunteer, name), at most {MAX_WORKERS_PER_ROLE} per volunteer. A name
-- registering again is a restart: whatever its last process held is given back at once.
CREATE FUNCTION volunteer.register(p_name text, p_hostname text, p_device text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    v_now double precision := volunteer._now();
    v_id integer;
    v_count integer;
    v_names text;
    v_settings text;
    u @T.work_units;
BEGIN
    -- Locking the volunteer's own row serialises its registrations (the cap below holds).
    PERFORM 1 FROM volunteer.volunteers
    WHERE role_name = session_user AND revoked_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF004', MESSAGE = format(
            '%s is not an invited volunteer of this run (or was revoked); ask the run''s '
            'owner for an invite code', session_user);
    END IF;
    IF coalesce(length(p_name), 0) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION USING ERRCODE = 'GF006',
            MESSAGE = 'a worker name must have 1 to 200 characters';
    END IF;
    p_hostname := left(coalesce(p_hostname, ''), 255);
    p_device := left(coalesce(p_device, ''), 200);
    SELECT w.id INTO v_id FROM @T.workers w
    JOIN volunteer.worker_roles r ON r.worker_id = w.id
    WHERE r.role_name = session_user AND w.name = p_name;
    IF FOUND THEN
        UPDATE @T.workers SET hostname = p_hostname, device = p_device, last_seen = v_now,
                              state = 'registered'
        WHERE id = v_id;
        SELECT settings INTO v_settings FROM @T.run WHERE id = 1;
        FOR u IN SELECT * FROM @T.work_units
                 WHERE worker_id = v_id AND status = 'leased' FOR UPDATE LOOP
            PERFORM volunteer._return_copy(u, v_now,
                volunteer._setting(v_settings, 'max_attempts', {DEFAULT_MAX_ATTEMPTS})::integer,
                'released', greatest(u.attempts - 1, 0));
        END LOOP;
        PERFORM volunteer._event(v_now, 'worker',
            format('%s rejoined from %s (%s)', p_name, p_hostname, p_device), v_id, NULL);
        RETURN v_id;
    END IF;
    SELECT count(*), string_agg(w.name, ', ' ORDER BY w.id) INTO v_count, v_names
    FROM volunteer.worker_roles r JOIN @T.workers w ON w.id = r.worker_id
    WHERE r.role_name = session_user;
    IF v_count >= {MAX_WORKERS_PER_ROLE} THEN
        RAISE EXCEPTION USING ERRCODE = 'GF005', MESSAGE = format(
            '%s already has %s workers (%s); start this one with one of those names '
            '(--name) or ask the run''s owner for another invite',
            session_user, v_count, v_names);
    END IF;
    INSERT INTO @T.workers (name, hostname, device, created_at, last_seen, state)
    VALUES (p_name, p_hostname, p_device, v_now, v_now, 'registered')
    RETURNING id INTO v_id;
    INSERT INTO volunteer.worker_roles (worker_id, role_name) VALUES (v_id, session_user);
    PERFORM volunteer._event(v_now, 'worker',
        format('%s joined from %s (%s)', p_name, p_hostname, p_device), v_id, NULL);
    RETURN v_id;
END
$$;

CREATE FUNCTION volunteer.touch(p_worker integer, p_state text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
BEGIN
    PERFORM volunteer._own_worker(p_worker);
    PERFORM volunteer._touch(p_worker, volunteer._now(), p_state);
END
$$;

-- core.store.Store.claim, plus the volunteer's share: one live lease per worker row.
CREATE FUNCTION volunteer.claim(p_worker integer)
RETURNS SETOF volunteer.lease LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    r @T.run := volunteer._run();
    v_now double precision;
    v_lease_s double precision;
    v_max_attempts integer;
    v_token text;
    v_held record;
    v_lease volunteer.lease;
BEGIN
    IF r.status = 'paused' THEN
        RAISE EXCEPTION USING ERRCODE = 'GF003', MESSAGE = 'the run is paused';
    END IF;
    PERFORM volunteer._own_worker(p_worker);
    v_now := volunteer._now();
    PERFORM volunteer._touch(p_worker, v_now, NULL);
    SELECT version, unit_index, copy INTO v_held FROM @T.work_units
    WHERE worker_id = p_worker AND status = 'leased' AND lease_expires_at >= v_now LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GF005', MESSAGE = format(
            'worker %s already holds unit %s (copy %s) of version %s; submit or release it '
            'before claiming another (each worker process needs its own --name)',
            p_worker, v_held.unit_index, v_held.copy, v_held.version);
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
    IF v_lease.unit_id IS NOT NULL THEN
        RETURN NEXT v_lease;
    END IF;
END
$$;

CREATE FUNCTION volunteer.heartbeat(p_worker integer, p_unit integer, p_token text)
RETURNS double precision LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    r @T.run;
    v_now double precision;
    v_expires double precision;
BEGIN
    PERFORM volunteer._own_worker(p_worker);
    r := volunteer._run();
    v_now := volunteer._now();
    UPDATE @T.work_units
    SET lease_expires_at = v_now + volunteer._setting(r.settings, 'lease_s', {DEFAULT_LEASE_S})
    WHERE id = p_unit AND status = 'leased' AND lease_token = p_token
      AND worker_id = p_worker AND lease_expires_at >= v_now
    RETURNING lease_expires_at INTO v_expires;
    IF NOT FOUND THEN
        PERFORM volunteer._refuse(p_unit, p_token, p_worker, v_now, false);
    END IF;
    PERFORM volunteer._touch(p_worker, v_now, NULL);
    RETURN v_expires;
END
$$;

-- Kept to one UPDATE and one INSERT so the upload path can change around it.
CREATE FUNCTION volunteer.submit(p_worker integer, p_unit integer, p_token text,
                                 p_payload bytea, p_precision text, p_claimed_samples integer,
                                 p_d_loss double precision, p_g_loss double precision,
                                 p_d_real double precision, p_d_fake double precision,
                                 p_compute_s double precision)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
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
    v_max_bytes := volunteer._setting(r.settings, 'max_payload_mb', {DEFAULT_MAX_PAYLOAD_MB})
                   * 1048576;
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
    INSERT INTO @T.results (unit_id, version, unit_index, worker_id, payload, "precision",
                            claimed_samples, compute_s, status, submitted_at,
                            d_loss, g_loss, d_real, d_fake)
    VALUES (p_unit, u.version, u.unit_index, p_worker, p_payload, p_precision,
            coalesce(p_claimed_samples, 0), v_compute_s, 'new', v_now,
            -- NaN is stored as NULL on every backend (core.store.queue.nan_to_null)
            nullif(p_d_loss, 'NaN'), nullif(p_g_loss, 'NaN'),
            nullif(p_d_real, 'NaN'), nullif(p_d_fake, 'NaN'))
    RETURNING id INTO v_id;
    PERFORM volunteer._touch(p_worker, v_now, NULL);
    RETURN v_id;
END
$$;

CREATE FUNCTION volunteer.release(p_worker integer, p_unit integer, p_token text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $$
DECLARE
    r @T.run;
    u @T.work_units;
BEGIN
    PERFORM volunteer._own_worker(p_worker);
    r := volunteer._run();
    SELECT * INTO u FROM @T.work_units
    WHERE id = p_unit AND status = 'leased' AND lease_token = p_token AND worker_id = p_worker
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- A release is not a failure: give back the attempt its claim took.
    PERFORM volunteer._return_copy(u, volunteer._now(),
        volunteer._setting(r.settings, 'max_attempts', {DEFAULT_MAX_ATTEMPTS})::integer,
        'released', greatest(u.attempts - 1, 0));
    RETURN true;
END
$$;
"""

API_SIGNATURES = (
    "volunteer.register(text, text, text)",
    "volunteer.touch(integer, text)",
    "volunteer.claim(integer)",
    "volunteer.heartbeat(integer, integer, text)",
    "volunteer.submit(integer, integer, text, bytea, text, integer, double precision, "
    "double precision, double precision, double precision, double precision)",
    "volunteer.release(integer, integer, text)",
)
READABLE_VIEWS = ("run", "model_versions", "dataset_shards", "metrics", "samples", "workers")

# Large objects can be created by any login unless their functions are revoked; only a
# superuser may revoke them (docs/deployment.md says how when the owner is not one).
LARGE_OBJECT_FUNCTIONS = (
    "pg_catalog.lo_create(oid)",
    "pg_catalog.lo_creat(integer)",
    "pg_catalog.lo_from_bytea(oid, bytea)",
    "pg_catalog.lo_import(text)",
    "pg_catalog.lo_import(text, oid)",
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_powers(bind: sa.Connection) -> bool:
    """The migrating role must be able to create roles and to own the database's privileges."""
    row = bind.execute(
        sa.text(
            "SELECT r.rolsuper, r.rolcreaterole, pg_has_role(current_user, d.datdba, 'MEMBER') "
            "FROM pg_roles r, pg_database d "
            "WHERE r.rolname = current_user AND d.datname = current_database()"
        )
    ).one()
    superuser, createrole, owns = bool(row[0]), bool(row[1]), bool(row[2])
    if not superuser and not (createrole and owns):
        user = bind.execute(sa.text("SELECT current_user")).scalar_one()
        raise StoreError(
            f"the database role {user} must own the run's database and have CREATEROLE to "
            f"manage volunteer logins; as a superuser run: ALTER ROLE {user} CREATEROLE; "
            f"ALTER DATABASE <db> OWNER TO {user}; then run init again"
        )
    return superuser


def _group_names(bind: sa.Connection, database: str) -> tuple[str, str]:
    """(group role, prefix of volunteer roles): derived from the database name, cluster-unique."""
    base = re.sub(r"[^a-z0-9_]", "_", database.lower())[:36].strip("_") or "ganfriends"
    taken = set(bind.execute(sa.text("SELECT rolname FROM pg_roles")).scalars())
    for n in range(1, 1000):
        prefix = base if n == 1 else f"{base}_{n}"
        # Never reuse a group a dropped database left behind: its members are not ours.
        if f"{prefix}_volunteers" not in taken:
            return f"{prefix}_volunteers", prefix
    raise StoreError(f"no free volunteer group name for database {database}; drop old roles")


def upgrade() -> None:
    """Create the volunteer group, the views and functions, and take PUBLIC's rights away."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    superuser = _check_powers(bind)
    database, tables = bind.execute(sa.text("SELECT current_database(), current_schema()")).one()
    group, prefix = _group_names(bind, database)
    t, g, db = _quote(tables), _quote(group), _quote(database)
    for block in (TABLES, VIEWS, INTERNALS, API):
        # no_parameters: the SQL's own % signs (format()) must reach the server untouched
        bind.exec_driver_sql(block.replace("@T", t), execution_options={"no_parameters": True})
    bind.execute(
        sa.text("INSERT INTO volunteer.config (key, value) VALUES (:key, :value)"),
        [
            {"key": "group_role", "value": group},
            {"key": "role_prefix", "value": prefix},
            {"key": "tables_schema", "value": tables},
        ],
    )
    statements = [
        f"CREATE ROLE {g} NOLOGIN",
        # Nothing for anyone by default: not the tables, not the database, not the schema.
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {t} FROM PUBLIC",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {t} FROM PUBLIC",
        f"REVOKE CREATE ON SCHEMA {t} FROM PUBLIC",
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO CURRENT_USER",
        "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA volunteer FROM PUBLIC",
        "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        # What a volunteer may do: connect, check the schema revision, read the views, call
        # the API.
        f"GRANT CONNECT ON DATABASE {db} TO {g}",
        f"GRANT USAGE ON SCHEMA {t} TO {g}",
        f"GRANT SELECT ON {t}.alembic_version TO {g}",
        f"GRANT USAGE ON SCHEMA volunteer TO {g}",
        "GRANT SELECT ON "
        + ", ".join(f"volunteer.{view}" for view in (*READABLE_VIEWS, "leaderboard"))
        + f" TO {g}",
        f"GRANT EXECUTE ON FUNCTION {', '.join(API_SIGNATURES)} TO {g}",
    ]
    if superuser:
        statements.append(
            f"REVOKE EXECUTE ON FUNCTION {', '.join(LARGE_OBJECT_FUNCTIONS)} FROM PUBLIC"
        )
    for statement in statements:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    """Drop the volunteer schema and every volunteer role of this database."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    database, tables = bind.execute(sa.text("SELECT current_database(), current_schema()")).one()
    group = bind.execute(
        sa.text("SELECT value FROM volunteer.config WHERE key = 'group_role'")
    ).scalar_one()
    roles = list(bind.execute(sa.text("SELECT role_name FROM volunteer.volunteers")).scalars())
    t, g, db = _quote(tables), _quote(group), _quote(database)
    bind.exec_driver_sql("DROP SCHEMA volunteer CASCADE")
    for statement in (
        f"REVOKE ALL ON DATABASE {db} FROM {g}",
        f"REVOKE ALL ON SCHEMA {t} FROM {g}",
        f"REVOKE ALL ON {t}.alembic_version FROM {g}",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO PUBLIC",
    ):
        bind.exec_driver_sql(statement)
    for role in roles:
        bind.exec_driver_sql(f"DROP ROLE IF EXISTS {_quote(role)}")
    bind.exec_driver_sql(f"DROP ROLE IF EXISTS {g}")
