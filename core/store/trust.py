"""Trust's SQL: volunteer identities and records, results held for a second computation,
verification copies, quarantine (policy: core/verification.py; caller holds the transaction)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, exists, func, insert, select, text, update

from core.store.errors import StoreError
from core.store.notify import announce_work
from core.store.queue import add_event, return_copy
from core.store.schema import (
    held_results,
    results,
    trust,
    unchecked_results,
    work_units,
    workers,
)
from core.store.verdicts import Outcome, resolve
from core.verification import Candidate, Settlement, TrustRecord

log = logging.getLogger(__name__)

MAX_HELD = 5  # results of one unit held at most (core.verification.MAX_RESULTS)


class Quarantined(StoreError):
    """The volunteer was caught returning wrong results; nothing more of it counts."""


@dataclass(frozen=True)
class TrustRow:
    """A volunteer identity's record with its workers, for the owner's console."""

    record: TrustRecord
    workers: tuple[str, ...]  # names of the workers acting for it
    quarantined_at: float | None
    remedy: str = ""  # what the owner can do about it once quarantined (`lock_out_hint`)


def identity_of(conn: Connection, worker_id: int) -> tuple[str, str]:
    """(volunteer identity, device) of a worker; a worker without one acts for its name."""
    row = conn.execute(
        select(workers.c.volunteer, workers.c.name, workers.c.device).where(
            workers.c.id == worker_id
        )
    ).first()
    if row is None:
        raise StoreError(f"no worker with id {worker_id}")
    return (row.volunteer or row.name), row.device


def record(conn: Connection, identity: str) -> TrustRecord:
    """The identity's record (a fresh one if nothing of it was settled yet)."""
    row = conn.execute(select(trust).where(trust.c.identity == identity)).first()
    return TrustRecord(identity) if row is None else _record(row)


def _record(row: Any) -> TrustRecord:
    return TrustRecord(
        identity=row.identity,
        earned=row.earned,
        verified=row.verified,
        outvoted=row.outvoted,
        quarantined=row.quarantined_at is not None,
        reason=row.reason,
    )


def check_not_quarantined(conn: Connection, worker_id: int) -> str:
    """The worker's identity; Quarantined if that volunteer is (owner path; PostgreSQL
    volunteers are refused by `volunteer._claim_pending`, migration 0011)."""
    identity, _ = identity_of(conn, worker_id)
    found = record(conn, identity)
    if found.quarantined:
        raise Quarantined(
            f"{identity} is quarantined ({found.reason}); none of its results count. "
            "Ask the run's owner"
        )
    return identity


def hold(conn: Connection, result_id: int, version: int, unit_index: int, worker_id: int) -> None:
    """Keep a valid result back until another volunteer's computation settles its unit."""
    identity, device = identity_of(conn, worker_id)
    conn.execute(
        insert(held_results).values(
            result_id=result_id,
            version=version,
            unit_index=unit_index,
            identity=identity,
            device=device,
        )
    )


def held(conn: Connection, version: int, unit_index: int) -> list[Candidate]:
    """The held results of one unit, in submit order."""
    rows = conn.execute(
        select(held_results)
        .where(held_results.c.version == version, held_results.c.unit_index == unit_index)
        .order_by(held_results.c.result_id)
    ).all()
    return [Candidate(r.result_id, r.identity, r.device) for r in rows]


def trusted_at_work(
    conn: Connection, trust_after: int, since: float, besides: Sequence[str]
) -> bool:
    """Whether a trusted volunteer (not quarantined, not in `besides`) had a worker seen since."""
    seen = exists().where(workers.c.volunteer == trust.c.identity, workers.c.last_seen >= since)
    found = conn.execute(
        select(trust.c.identity)
        .where(
            trust.c.earned >= trust_after,
            trust.c.quarantined_at.is_(None),
            trust.c.identity.not_in(list(besides)),
            seen,
        )
        .limit(1)
    ).first()
    return found is not None


def held_count(conn: Connection) -> int:
    """Results held for verification right now."""
    return int(conn.execute(select(func.count()).select_from(held_results)).scalar_one())


def units_needing_copy(conn: Connection, version: int) -> list[int]:
    """Units of `version` with held results, fewer than MAX_HELD of them, no accepted result
    and nothing in flight (no pending or leased copy, no result waiting for validation)."""
    in_flight = exists().where(
        work_units.c.version == held_results.c.version,
        work_units.c.unit_index == held_results.c.unit_index,
        work_units.c.status.in_(("pending", "leased")),
    )
    unjudged = exists().where(
        results.c.version == held_results.c.version,
        results.c.unit_index == held_results.c.unit_index,
        results.c.status.in_(("new", "accepted")),
        results.c.id.not_in(select(held_results.c.result_id)),
    )
    rows = conn.execute(
        select(held_results.c.unit_index)
        .where(held_results.c.version == version, ~in_flight, ~unjudged)
        .group_by(held_results.c.unit_index)
        .having(func.count() < MAX_HELD)
        .order_by(held_results.c.unit_index)
    ).scalars()
    return [int(unit_index) for unit_index in rows]


def issue_copy(conn: Connection, version: int, unit_index: int, now: float, why: str) -> int:
    """Queue one more copy of a unit for another volunteer to compute; its copy number.

    The claim never gives it to an identity that already has a copy of the unit.
    """
    unit = conn.execute(
        select(work_units)
        .where(work_units.c.version == version, work_units.c.unit_index == unit_index)
        .order_by(work_units.c.copy)
        .limit(1)
    ).one()
    copy = conn.execute(
        select(func.max(work_units.c.copy) + 1).where(
            work_units.c.version == version, work_units.c.unit_index == unit_index
        )
    ).scalar_one()
    conn.execute(
        insert(work_units).values(
            version=version,
            unit_index=unit_index,
            copy=copy,
            seed=unit.seed,
            sample_indices=unit.sample_indices,
            sample_count=unit.sample_count,
            status="pending",
            attempts=0,
            created_at=now,
        )
    )
    log.debug("unit %d of version %d: copy %d issued (%s)", unit_index, version, copy, why)
    announce_work(conn)
    return int(copy)


def apply(
    conn: Connection,
    candidates: Sequence[Candidate],
    settlement: Settlement,
    reasons: dict[int, str],
    now: float,
    max_attempts: int,
) -> None:
    """Record a unit's settlement: accept, credit, outvote, and quarantine who was caught."""
    assert settlement.accepted is not None
    ids = [c.result_id for c in candidates]
    conn.execute(delete(held_results).where(held_results.c.result_id.in_(ids)))
    by_id = {c.result_id: c for c in candidates}
    first = min(ids)  # computed before any other result of the unit existed: trust is earned
    for result_id in settlement.confirmed:
        outcome: Outcome = "accepted" if result_id == settlement.accepted else "crosscheck"
        resolve(conn, result_id, outcome, "confirmed by another volunteer", now, max_attempts)
        _bump(conn, by_id[result_id].identity, now, verified=1, earned=int(result_id == first))
        worker_id = conn.execute(select(results.c.worker_id).where(results.c.id == result_id))
        conn.execute(
            update(workers)
            .where(workers.c.id == worker_id.scalar_one())
            .values(verified=workers.c.verified + 1)
        )
    for result_id in settlement.outvoted:
        resolve(conn, result_id, "rejected", reasons[result_id], now, max_attempts)
        _bump(conn, by_id[result_id].identity, now, outvoted=1)
    for result_id in settlement.caught:
        resolve(conn, result_id, "rejected", reasons[result_id], now, max_attempts)
        quarantine(conn, by_id[result_id].identity, reasons[result_id], now, max_attempts)


def _bump(conn: Connection, identity: str, now: float, **counts: int) -> None:
    found = conn.execute(select(trust.c.identity).where(trust.c.identity == identity)).first()
    if found is None:
        conn.execute(insert(trust).values(identity=identity, updated_at=now, **counts))
        return
    values: dict[str, Any] = {name: trust.c[name] + n for name, n in counts.items()}
    conn.execute(update(trust).where(trust.c.identity == identity).values(updated_at=now, **values))


def quarantine(conn: Connection, identity: str, reason: str, now: float, max_attempts: int) -> bool:
    """Stop counting anything of `identity`: its leases go back, its held results are refused.

    Returns False when it was already quarantined.
    """
    if record(conn, identity).quarantined:
        return False
    _bump(conn, identity, now)
    conn.execute(
        update(trust)
        .where(trust.c.identity == identity)
        .values(quarantined_at=now, reason=reason[:1000])
    )
    worker_ids = select(workers.c.id).where(
        (workers.c.volunteer == identity)
        | (workers.c.volunteer.is_(None) & (workers.c.name == identity))
    )
    leased = conn.execute(
        select(work_units).where(
            work_units.c.status == "leased", work_units.c.worker_id.in_(worker_ids)
        )
    ).all()
    for unit in leased:
        return_copy(conn, unit, now, max_attempts, "volunteer quarantined", unit.attempts - 1)
    held_ids = conn.execute(
        select(held_results.c.result_id).where(held_results.c.identity == identity)
    ).scalars()
    for result_id in list(held_ids):
        conn.execute(delete(held_results).where(held_results.c.result_id == result_id))
        resolve(conn, result_id, "rejected", f"{identity} is quarantined", now, max_attempts)
    add_event(
        conn,
        now,
        "quarantined",
        f"volunteer {identity} quarantined: {reason}. Nothing more of it counts; "
        f"{lock_out_hint(conn, identity)}",
    )
    announce_work(conn)
    return True


def records(conn: Connection) -> list[TrustRecord]:
    """Every identity's record this login may read (a volunteer login: its own, if any)."""
    return [_record(row) for row in conn.execute(select(trust).order_by(trust.c.identity))]


def lock_out_hint(conn: Connection, identity: str) -> str:
    """How the owner locks a quarantined identity out: `revoke` for a volunteer login."""
    invited = (
        conn.dialect.name == "postgresql"
        and conn.execute(
            text("SELECT to_regclass('volunteer.volunteers') IS NOT NULL")
        ).scalar_one()
    )
    if invited:
        name = conn.execute(
            text("SELECT name FROM volunteer.volunteers WHERE role_name = :role"),
            {"role": identity},
        ).scalar()
        if name is not None:
            return f"lock it out with: ganfriends-coordinator revoke {name}"
    return (
        f"its workers log in as the run's owner: stop the computers running {identity!r} "
        "(or give them their own volunteer login with `invite`)"
    )


def trust_rows(conn: Connection) -> list[TrustRow]:
    """Every identity with a worker or a record, by identity."""
    names: dict[str, list[str]] = {}
    for w in conn.execute(select(workers.c.volunteer, workers.c.name).order_by(workers.c.id)):
        names.setdefault(w.volunteer or w.name, []).append(w.name)
    records: dict[str, Any] = {r.identity: r for r in conn.execute(select(trust))}
    out = []
    for identity in sorted(set(names) | set(records)):
        row = records.get(identity)
        out.append(
            TrustRow(
                record=TrustRecord(identity) if row is None else _record(row),
                workers=tuple(names.get(identity, ())),
                quarantined_at=None if row is None else row.quarantined_at,
                remedy=lock_out_hint(conn, identity)
                if row is not None and row.quarantined_at
                else "",
            )
        )
    return out


def count_unchecked(conn: Connection, result_id: int, version: int, identity: str) -> None:
    """Record that a result counted without a second computation (a trusted volunteer's)."""
    conn.execute(
        insert(unchecked_results).values(result_id=result_id, version=version, identity=identity)
    )


def unchecked(conn: Connection, identity: str) -> list[tuple[int, int]]:
    """(version, result_id) of the identity's results that counted unchecked, oldest first."""
    rows = conn.execute(
        select(unchecked_results.c.version, unchecked_results.c.result_id)
        .where(unchecked_results.c.identity == identity)
        .order_by(unchecked_results.c.version, unchecked_results.c.result_id)
    ).all()
    return [(int(r.version), int(r.result_id)) for r in rows]


def forget_unchecked(conn: Connection, identity: str) -> None:
    """Drop the identity's unchecked record once what it reached was undone."""
    conn.execute(delete(unchecked_results).where(unchecked_results.c.identity == identity))


def park_undecided(conn: Connection, version: int, unit_index: int, why: str, now: float) -> None:
    """Give up on a unit whose computations never agreed: its held results do not count (nobody
    is blamed: who was right is unknown) and every copy is parked, so the version closes
    without it."""
    ids = list(
        conn.execute(
            select(held_results.c.result_id).where(
                held_results.c.version == version, held_results.c.unit_index == unit_index
            )
        ).scalars()
    )
    conn.execute(delete(held_results).where(held_results.c.result_id.in_(ids)))
    conn.execute(
        update(results).where(results.c.id.in_(ids)).values(status="rejected", reason=why[:1000])
    )
    conn.execute(
        update(work_units)
        .where(
            work_units.c.version == version,
            work_units.c.unit_index == unit_index,
            work_units.c.status != "cancelled",
        )
        .values(status="parked", lease_token=None, lease_expires_at=None)
    )
    add_event(conn, now, "parked", why, version=version)


def release_held(conn: Connection) -> int:
    """Let go of every held result: they are validated again like new ones (policy off)."""
    return int(conn.execute(delete(held_results)).rowcount or 0)


def forget_version(conn: Connection, versions: Iterable[int]) -> None:
    """Drop held results of closed versions (their results are gone)."""
    conn.execute(delete(held_results).where(held_results.c.version.in_(list(versions))))
