"""The work queue's SQL: claim, heartbeat, submit, release, expire and park unit copies.

Every function here runs inside a transaction the caller (`Store`) holds and takes `now`
from the store's clock. On SQLite that transaction began with BEGIN IMMEDIATE, so each one
sees and changes the queue alone. On PostgreSQL (READ COMMITTED) many run at once: the rows a
function reads and then changes are locked as they are read (FOR UPDATE, SKIP LOCKED where
another claimer's rows may simply be passed over), and result payloads arrive by binary COPY.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Update, and_, exists, func, insert, select, update

from core.store.binary_copy import Field, insert_bytes
from core.store.errors import AlreadySubmitted, LeaseLost, StoreError
from core.store.notify import announce_work
from core.store.rows import Lease, StoreSettings
from core.store.schema import events, result_payloads, results, work_units, workers

log = logging.getLogger(__name__)

LIVE = ("pending", "leased", "submitted")  # copies still able to produce a result
METRIC_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")

_LEASE_COLUMNS = (
    work_units.c.id,
    work_units.c.version,
    work_units.c.unit_index,
    work_units.c.copy,
    work_units.c.seed,
    work_units.c.sample_indices,
    work_units.c.lease_token,
    work_units.c.lease_expires_at,
    work_units.c.worker_id,
)


def pack_indices(indices: Sequence[int]) -> bytes:
    """Sample indices as int32 little-endian bytes."""
    try:
        return struct.pack(f"<{len(indices)}i", *indices)
    except struct.error as error:
        raise StoreError(f"sample indices must be integers in int32 range: {error}") from error


def unpack_indices(data: bytes) -> tuple[int, ...]:
    """Inverse of `pack_indices`."""
    return struct.unpack(f"<{len(data) // 4}i", data)


def nan_to_null(value: float) -> float | None:
    """SQLite cannot store NaN (it stores NULL silently), so NaN is NULL on every backend."""
    value = float(value)
    return None if math.isnan(value) else value


def null_to_nan(value: float | None) -> float:
    """Inverse of `nan_to_null`."""
    return math.nan if value is None else float(value)


def add_event(
    conn: Connection,
    now: float,
    kind: str,
    message: str,
    worker_id: int | None = None,
    version: int | None = None,
) -> None:
    """Append one entry to the run's event log."""
    conn.execute(
        insert(events).values(
            at=now, kind=kind, message=message, worker_id=worker_id, version=version
        )
    )


def _lease(row: Any) -> Lease:
    return Lease(
        unit_id=row.id,
        version=row.version,
        unit_index=row.unit_index,
        copy=row.copy,
        seed=row.seed,
        sample_indices=unpack_indices(row.sample_indices),
        token=row.lease_token,
        expires_at=row.lease_expires_at,
        worker_id=row.worker_id,
    )


def check_metric_keys(metrics: Mapping[str, float]) -> None:
    """A submit carries every metric the coordinator records."""
    missing = [key for key in METRIC_KEYS if key not in metrics]
    if missing:
        raise StoreError(f"submit metrics need {', '.join(METRIC_KEYS)}; missing {missing}")


def claim_statement(
    dialect: str,
    version: int,
    worker_id: int,
    token: str,
    now: float,
    lease_s: float,
    identity: str | None = None,
) -> Update:
    """The one UPDATE … RETURNING that leases the first pending unit of `version`.

    With `identity`, a copy of a unit that this volunteer identity already computes or
    computed is passed over, so verification copies always go to somebody else.
    SQLite serialises writers (BEGIN IMMEDIATE), so the sub-select cannot race; PostgreSQL
    needs the row lock, skipping rows other claims hold so concurrent workers never wait.
    """
    first_pending = (
        select(work_units.c.id)
        .where(work_units.c.status == "pending", work_units.c.version == version)
        .order_by(work_units.c.unit_index, work_units.c.copy)
        .limit(1)
    )
    if identity is not None:
        other = work_units.alias("other")
        same_identity = (workers.c.volunteer == identity) | (
            workers.c.volunteer.is_(None) & (workers.c.name == identity)
        )
        first_pending = first_pending.where(
            ~exists()
            .where(
                other.c.version == work_units.c.version,
                other.c.unit_index == work_units.c.unit_index,
                other.c.id != work_units.c.id,
                other.c.worker_id == workers.c.id,
            )
            .where(same_identity)
        )
    if dialect == "postgresql":
        first_pending = first_pending.with_for_update(skip_locked=True)
    return (
        update(work_units)
        .where(work_units.c.id == first_pending.scalar_subquery())
        .values(
            status="leased",
            lease_token=token,
            lease_expires_at=now + lease_s,
            leased_at=now,
            worker_id=worker_id,
            attempts=work_units.c.attempts + 1,
        )
        .returning(*_LEASE_COLUMNS)
    )


def claim_pending(
    conn: Connection,
    dialect: str,
    version: int,
    worker_id: int,
    token: str,
    now: float,
    lease_s: float,
    identity: str | None = None,
) -> Lease | None:
    """Lease the first pending unit of `version` to the worker, or None if none is pending."""
    statement = claim_statement(dialect, version, worker_id, token, now, lease_s, identity)
    row = conn.execute(statement).first()
    return None if row is None else _lease(row)


def claim_backup(
    conn: Connection,
    version: int,
    worker_id: int,
    token: str,
    now: float,
    settings: StoreSettings,
) -> Lease | None:
    """Straggler cover: lease a new copy of the oldest long-running unit of another worker."""
    other = work_units.alias("other")
    live_copies = (
        select(func.count())
        .where(
            other.c.version == work_units.c.version,
            other.c.unit_index == work_units.c.unit_index,
            other.c.status.in_(("leased", "submitted")),
        )
        .scalar_subquery()
    )
    done_copy = exists().where(
        other.c.version == work_units.c.version,
        other.c.unit_index == work_units.c.unit_index,
        other.c.status == "done",
    )
    straggler = conn.execute(
        select(work_units)
        .where(
            work_units.c.status == "leased",
            work_units.c.version == version,
            work_units.c.worker_id != worker_id,
            work_units.c.lease_expires_at >= now,
            work_units.c.leased_at <= now - settings.backup_after_s,
            ~done_copy,
            live_copies < 2,
        )
        .order_by(work_units.c.leased_at, work_units.c.unit_index)
        .limit(1)
        # PostgreSQL: a straggler another idle worker is backing up right now is passed over.
        .with_for_update(skip_locked=True, of=work_units)
    ).first()
    if straggler is None:
        return None
    # Serialised by BEGIN IMMEDIATE on SQLite and by the straggler's row lock on PostgreSQL;
    # were two backups of one unit ever to race, the (version, unit_index, copy) key refuses one.
    next_copy = conn.execute(
        select(func.max(work_units.c.copy) + 1).where(
            work_units.c.version == version, work_units.c.unit_index == straggler.unit_index
        )
    ).scalar_one()
    row = conn.execute(
        insert(work_units)
        .values(
            version=version,
            unit_index=straggler.unit_index,
            copy=next_copy,
            seed=straggler.seed,
            sample_indices=straggler.sample_indices,
            sample_count=straggler.sample_count,
            status="leased",
            lease_token=token,
            lease_expires_at=now + settings.lease_s,
            leased_at=now,
            worker_id=worker_id,
            attempts=1,
            created_at=now,
        )
        .returning(*_LEASE_COLUMNS)
    ).one()
    add_event(
        conn,
        now,
        "backup",
        f"unit {straggler.unit_index} has run {now - straggler.leased_at:.0f} s on worker "
        f"{straggler.worker_id}; backup copy {next_copy} issued",
        worker_id=worker_id,
        version=version,
    )
    return _lease(row)


def _lease_is_held(lease: Lease, now: float) -> Any:
    return and_(
        work_units.c.id == lease.unit_id,
        work_units.c.status == "leased",
        work_units.c.lease_token == lease.token,
        work_units.c.worker_id == lease.worker_id,
        work_units.c.lease_expires_at >= now,
    )


def lease_refusal(
    conn: Connection, lease: Lease, now: float, *, submitting: bool
) -> LeaseLost | AlreadySubmitted:
    """Explain why `lease` no longer holds, as the error to raise."""
    unit = conn.execute(select(work_units).where(work_units.c.id == lease.unit_id)).first()
    what = f"unit {lease.unit_index} (copy {lease.copy}) of version {lease.version}"
    if unit is None:
        return LeaseLost(f"{what} no longer exists (its version was closed); claim new work")
    if submitting and unit.status in ("submitted", "done") and unit.lease_token == lease.token:
        return AlreadySubmitted(
            f"the result of {what} from this lease is already stored; it is never counted twice"
        )
    if unit.status in ("cancelled", "parked"):
        return LeaseLost(
            f"{what} was {unit.status} (its version closed, another copy finished or the "
            "operator parked it); claim new work"
        )
    if unit.status == "pending":
        return LeaseLost(f"the lease on {what} expired and the unit was queued again")
    if unit.lease_token != lease.token or unit.worker_id != lease.worker_id:
        return LeaseLost(f"{what} was re-issued to another claim; claim new work")
    if unit.status == "leased":
        return LeaseLost(
            f"the lease on {what} expired {now - unit.lease_expires_at:.1f} s ago; "
            "heartbeat more often than lease_s, and claim new work"
        )
    return LeaseLost(f"{what} is {unit.status}, no longer leased to this worker")


def heartbeat(conn: Connection, lease: Lease, now: float, lease_s: float) -> float:
    """Extend a held lease; returns the new expiry or raises LeaseLost."""
    row = conn.execute(
        update(work_units)
        .where(_lease_is_held(lease, now))
        .values(lease_expires_at=now + lease_s)
        .returning(work_units.c.lease_expires_at)
    ).first()
    if row is None:
        refusal = lease_refusal(conn, lease, now, submitting=False)
        raise refusal if isinstance(refusal, LeaseLost) else LeaseLost(str(refusal))
    return float(row.lease_expires_at)


def submit(
    conn: Connection,
    lease: Lease,
    now: float,
    payload: bytes,
    precision: str,
    claimed_samples: int,
    metrics: Mapping[str, float],
    compute_s: float,
) -> int:
    """Store the result of a held lease as 'new' and mark the unit submitted; its id."""
    check_metric_keys(metrics)
    row = conn.execute(
        update(work_units)
        .where(_lease_is_held(lease, now))
        .values(status="submitted")
        .returning(work_units.c.version, work_units.c.unit_index)
    ).first()
    if row is None:
        raise lease_refusal(conn, lease, now, submitting=True)
    values = {
        "unit_id": lease.unit_id,
        "version": row.version,
        "unit_index": row.unit_index,
        "worker_id": lease.worker_id,
        "precision": precision,
        "claimed_samples": int(claimed_samples),
        "compute_s": float(compute_s),
        "status": "new",
        "submitted_at": now,
        **{key: nan_to_null(metrics[key]) for key in METRIC_KEYS},
    }
    result_id = int(
        conn.execute(insert(results).values(**values).returning(results.c.id)).scalar_one()
    )
    # Binary COPY on PostgreSQL: the payload's bytes cross the wire once, not as hex text.
    described: dict[str, Field] = {
        "result_id": result_id,
        "sha256": hashlib.sha256(payload).hexdigest(),  # checked on every read
    }
    insert_bytes(conn, result_payloads, described, "payload", payload)
    return result_id


def return_copy(
    conn: Connection,
    unit: Any,
    now: float,
    max_attempts: int,
    why: str,
    attempts: int | None = None,
) -> str:
    """Take a unit copy back from its worker: pending again, parked, or cancelled.

    A copy whose unit another copy still carries (live or done) is cancelled rather than
    queued twice; a copy claimed `max_attempts` times is parked. `attempts` overrides the
    stored count. Returns the new status.
    """
    attempts = unit.attempts if attempts is None else attempts
    others = set(
        conn.execute(
            select(work_units.c.status).where(
                work_units.c.version == unit.version,
                work_units.c.unit_index == unit.unit_index,
                work_units.c.id != unit.id,
            )
        ).scalars()
    )
    if others & {"done", *LIVE}:
        status = "cancelled"
    elif attempts >= max_attempts:
        status = "parked"
    else:
        status = "pending"
    values: dict[str, object] = {
        "status": status,
        "lease_token": None,
        "lease_expires_at": None,
        "attempts": attempts,
    }
    if status == "pending":
        values.update(worker_id=None, leased_at=None)
    conn.execute(update(work_units).where(work_units.c.id == unit.id).values(**values))
    where = f"unit {unit.unit_index} (copy {unit.copy})"
    if status == "parked":
        add_event(
            conn,
            now,
            "parked",
            f"{where} parked after {attempts} attempts ({why}); the version can close without it",
            worker_id=unit.worker_id,
            version=unit.version,
        )
    elif status == "pending" and why == "lease expired":
        add_event(
            conn,
            now,
            "expired",
            f"{where}: lease of worker {unit.worker_id} expired; re-issued",
            worker_id=unit.worker_id,
            version=unit.version,
        )
    log.debug("%s of version %s is %s (%s)", where, unit.version, status, why)
    return status


def expire_leases(conn: Connection, now: float, max_attempts: int) -> int:
    """Return every lease that expired before `now` to the queue; how many there were.

    On PostgreSQL, rows another transaction is expiring (or claiming) at this moment are
    skipped rather than waited for: that transaction returns them, and no row is returned
    twice (which would take back the lease a concurrent claim had just been given).
    """
    expired = conn.execute(
        select(work_units)
        .where(work_units.c.status == "leased", work_units.c.lease_expires_at < now)
        .order_by(work_units.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    statuses = [return_copy(conn, unit, now, max_attempts, "lease expired") for unit in expired]
    if "pending" in statuses:
        announce_work(conn)
    return len(expired)


def release(conn: Connection, lease: Lease, now: float, max_attempts: int) -> bool:
    """Give a held unit back at once without counting an attempt; False if already gone."""
    unit = conn.execute(
        select(work_units)
        .where(
            work_units.c.id == lease.unit_id,
            work_units.c.status == "leased",
            work_units.c.lease_token == lease.token,
        )
        .with_for_update()  # PostgreSQL: wait out a concurrent expiry, then read its outcome
    ).first()
    if unit is None:
        return False
    # A release is not a failure: give back the attempt its claim took.
    attempts = max(unit.attempts - 1, 0)
    if return_copy(conn, unit, now, max_attempts, "released", attempts=attempts) == "pending":
        announce_work(conn)
    return True


def park_unit(conn: Connection, unit_id: int, now: float) -> bool:
    """Park a pending or leased unit copy by hand; False if it was in another state."""
    unit = conn.execute(select(work_units).where(work_units.c.id == unit_id)).first()
    if unit is None:
        raise StoreError(f"no work unit with id {unit_id}; list them with version_units")
    if unit.status not in ("pending", "leased"):
        return False
    conn.execute(
        update(work_units)
        .where(work_units.c.id == unit_id)
        .values(status="parked", lease_token=None, lease_expires_at=None)
    )
    add_event(
        conn,
        now,
        "parked",
        f"unit {unit.unit_index} (copy {unit.copy}) parked by the operator",
        version=unit.version,
    )
    return True


def repair_units(conn: Connection, version: int, units: Sequence[Any], now: float) -> int:
    """Rewrite damaged copies of `units` (UnitSpecs) of `version`; how many were rewritten."""
    repaired = 0
    for spec in units:
        packed = pack_indices(spec.sample_indices)
        rows = conn.execute(
            select(work_units.c.id, work_units.c.seed, work_units.c.sample_indices).where(
                work_units.c.version == version, work_units.c.unit_index == spec.unit_index
            )
        ).all()
        for row in rows:
            if row.seed == spec.seed and bytes(row.sample_indices) == packed:
                continue
            conn.execute(
                update(work_units)
                .where(work_units.c.id == row.id)
                .values(
                    seed=spec.seed,
                    sample_indices=packed,
                    sample_count=len(spec.sample_indices),
                )
            )
            add_event(
                conn,
                now,
                "damage",
                f"unit {spec.unit_index} (row {row.id} of work_units) was damaged; rewritten "
                "from the run's plan",
                version=version,
            )
            repaired += 1
    return repaired
