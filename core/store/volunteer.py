"""A volunteer login's side of the store (PostgreSQL): the `volunteer` schema's views and functions.

A volunteer role may not touch the tables. It reads the views of the `volunteer` schema, which
carry the tables' names and columns (so the store's queries run on them unchanged through
SQLAlchemy's schema translation), and it registers, claims, heartbeats, submits and releases
through SECURITY DEFINER functions that take its identity from the session (migration 0002).
Their refusals arrive as custom SQLSTATEs, turned here into the store's domain errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy import exc as sa_exc

from core.store.binary_copy import insert_bytes
from core.store.errors import (
    AlreadySubmitted,
    LeaseLost,
    NoRun,
    RunPaused,
    StoreError,
    UnknownWorker,
)
from core.store.queue import METRIC_KEYS, check_metric_keys, unpack_indices
from core.store.rows import Lease

log = logging.getLogger(__name__)

SCHEMA = "volunteer"
# Unqualified table names resolve to the volunteer schema's views of the same names.
READ_VIEWS: dict[str | None, str] = {None: SCHEMA}
MAX_WORKERS_PER_VOLUNTEER = 4  # as the register function enforces it
# The view a whole submission is COPYed into (migration 0014): a volunteer may only INSERT.
_SUBMISSIONS = Table(
    "result_submissions",
    MetaData(),
    Column("worker_id", Integer),
    Column("unit_id", Integer),
    Column("lease_token", String),
    Column("precision", String),
    Column("claimed_samples", Integer),
    *(Column(key, Float) for key in METRIC_KEYS),
    Column("compute_s", Float),
    Column("payload", LargeBinary),
    schema=SCHEMA,
)


class ShareExceeded(StoreError):
    """A volunteer asked for more than its share: a second live lease, or too many workers."""


_ERRORS: dict[str, type[StoreError]] = {
    "GF001": LeaseLost,
    "GF002": AlreadySubmitted,
    "GF004": UnknownWorker,
    "GF005": ShareExceeded,
    "GF006": StoreError,
}

# True for a login that may not change the queue itself while the volunteer API exists:
# every other login (the owner, a superuser) keeps the owner path.
_DETECT = text(
    "SELECT CASE WHEN to_regnamespace(:schema) IS NULL THEN false "
    "WHEN to_regclass('work_units') IS NULL THEN true "
    "ELSE NOT has_table_privilege(to_regclass('work_units'), 'UPDATE') END"
)


@dataclass(frozen=True)
class LeaderRow:
    """One worker on the public leaderboard (no hostnames, devices or ids)."""

    name: str
    units: int  # accepted units
    images: int  # images in them, counted by the coordinator
    compute_s: float  # seconds of compute credited
    verified: int  # units another volunteer's computation confirmed


def is_volunteer(conn: Connection) -> bool:
    """Whether this connection's login must use the volunteer API (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(_DETECT, {"schema": SCHEMA}).scalar_one())


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the functions' custom SQLSTATEs into domain errors carrying the server's message."""
    try:
        yield
    except sa_exc.DBAPIError as error:
        code = getattr(error.orig, "pgcode", None)
        diag = getattr(error.orig, "diag", None)
        message = getattr(diag, "message_primary", None) or str(error.orig).strip()
        if code == "GF003":
            raise RunPaused() from error
        if code == "GF007":
            raise NoRun() from error
        kind = _ERRORS.get(code or "")
        if kind is None:
            raise
        raise kind(message) from error


def _call(conn: Connection, sql: str, params: Mapping[str, object]) -> Any:
    with refusals():
        return conn.execute(text(sql), dict(params))


def register(conn: Connection, name: str, hostname: str, device: str) -> int:
    """The id of this volunteer's worker called `name` (created on first use)."""
    row = _call(
        conn,
        "SELECT volunteer.register(:name, :hostname, :device)",
        {"name": name, "hostname": hostname, "device": device},
    )
    return int(row.scalar_one())


def rename(conn: Connection, old: str, new: str) -> int:
    """Rename this volunteer's workers called `old` in place; the rows renamed."""
    row = _call(conn, "SELECT volunteer.rename(:old, :new)", {"old": old, "new": new})
    return int(row.scalar_one())


def touch(conn: Connection, worker_id: int, state: str) -> None:
    """Record that the worker is alive and what it is doing."""
    _call(conn, "SELECT volunteer.touch(:worker, :state)", {"worker": worker_id, "state": state})


def claim(conn: Connection, worker_id: int) -> Lease | None:
    """Lease the next unit to the worker, or None; ShareExceeded if it already holds two (one
    uploading while the next computes: migration 0010)."""
    row = _call(conn, "SELECT * FROM volunteer.claim(:worker)", {"worker": worker_id}).first()
    if row is None:
        return None
    return Lease(
        unit_id=row.unit_id,
        version=row.version,
        unit_index=row.unit_index,
        copy=row.copy,
        seed=row.seed,
        sample_indices=unpack_indices(bytes(row.sample_indices)),
        token=row.token,
        expires_at=row.expires_at,
        worker_id=row.worker_id,
    )


def heartbeat(conn: Connection, lease: Lease) -> float:
    """Extend a held lease; the new expiry (server clock) or LeaseLost."""
    row = _call(
        conn,
        "SELECT volunteer.heartbeat(:worker, :unit, :token)",
        {"worker": lease.worker_id, "unit": lease.unit_id, "token": lease.token},
    )
    return float(row.scalar_one())


def submit(
    conn: Connection,
    lease: Lease,
    payload: bytes,
    precision: str,
    claimed_samples: int,
    metrics: Mapping[str, float],
    compute_s: float,
) -> int:
    """Store the result of a held lease; its id. LeaseLost or AlreadySubmitted otherwise.

    One binary COPY row into the submissions view carries the whole submission; its trigger
    submits it through `volunteer.submit`'s checks, storing the payload once, and leaves the
    result's id in the transaction's setting `ganfriends.submitted_result` (migration 0014).
    """
    check_metric_keys(metrics)
    fields: dict[str, str | int | float] = {
        "worker_id": lease.worker_id,
        "unit_id": lease.unit_id,
        "lease_token": lease.token,
        "precision": precision,
        "claimed_samples": int(claimed_samples),
        **{key: float(metrics[key]) for key in METRIC_KEYS},
        "compute_s": float(compute_s),
    }
    with refusals():  # binary COPY: the payload's bytes cross the wire once, not as hex
        insert_bytes(conn, _SUBMISSIONS, fields, "payload", payload)
    row = _call(conn, "SELECT current_setting('ganfriends.submitted_result')", {})
    return int(row.scalar_one())


def release(conn: Connection, lease: Lease) -> bool:
    """Give a held unit back at once; False if the lease was already gone."""
    row = _call(
        conn,
        "SELECT volunteer.release(:worker, :unit, :token)",
        {"worker": lease.worker_id, "unit": lease.unit_id, "token": lease.token},
    )
    return bool(row.scalar_one())


def leaderboard(conn: Connection, *, through_views: bool) -> list[LeaderRow]:
    """Every worker's contribution, most images first (the public view for volunteers)."""
    source = f"{SCHEMA}.leaderboard" if through_views else "workers"
    rows = conn.execute(
        text(
            f"SELECT name, units, images, compute_s, verified FROM {source} "
            "ORDER BY images DESC, units DESC, name"
        )
    ).all()
    return [
        LeaderRow(r.name, int(r.units), int(r.images), float(r.compute_s), int(r.verified))
        for r in rows
    ]
