"""The coordinator's verdicts on results: accept, reject or keep as a cross-check."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Connection, select, update

from core.store import credits
from core.store.errors import StoreError
from core.store.notify import announce_work
from core.store.queue import add_event, return_copy
from core.store.schema import results, work_units, workers

Outcome = Literal["accepted", "rejected", "crosscheck"]


def resolve(
    conn: Connection,
    result_id: int,
    outcome: Outcome,
    reason: str | None,
    now: float,
    max_attempts: int | None,
) -> Outcome:
    """Record the coordinator's verdict on a new result; returns the outcome stored.

    'accepted' becomes 'crosscheck' when the unit already has an accepted result, so a unit
    never has two. `max_attempts` (the run's setting) is needed only to reject: None when the
    caller only accepts, which saves it reading the run in every accept.
    """
    if outcome not in ("accepted", "rejected", "crosscheck"):
        raise StoreError(f"outcome must be accepted, rejected or crosscheck, not {outcome!r}")
    result = conn.execute(select(results).where(results.c.id == result_id)).first()
    if result is None:
        raise StoreError(f"no result {result_id}; its version may have been closed")
    if result.status != "new":
        raise StoreError(f"result {result_id} is already resolved as {result.status}")
    unit = conn.execute(select(work_units).where(work_units.c.id == result.unit_id)).one()
    accepted_id = conn.execute(
        select(results.c.id).where(
            results.c.version == result.version,
            results.c.unit_index == result.unit_index,
            results.c.status == "accepted",
        )
    ).scalar()
    if outcome == "accepted" and accepted_id is not None:
        outcome = "crosscheck"
    if outcome == "crosscheck" and accepted_id is None:
        raise StoreError(
            f"result {result_id} cannot be a cross-check: unit {result.unit_index} has no "
            "accepted result yet; accept it instead"
        )
    if outcome == "rejected":
        if max_attempts is None:
            raise StoreError("a rejection needs the run's max_attempts")
        _reject(conn, result, unit, reason, now, max_attempts)
    else:
        _credit(conn, result, unit, outcome, reason, now)
    return outcome


def _credit(
    conn: Connection, result: Any, unit: Any, outcome: Outcome, reason: str | None, now: float
) -> None:
    # A cross-check's payload is no longer readable; `housekeeping.tidy` deletes it.
    conn.execute(
        update(results).where(results.c.id == result.id).values(status=outcome, reason=reason)
    )
    conn.execute(update(work_units).where(work_units.c.id == unit.id).values(status="done"))
    if outcome == "accepted":
        conn.execute(
            update(work_units)
            .where(
                work_units.c.version == unit.version,
                work_units.c.unit_index == unit.unit_index,
                work_units.c.status == "pending",
            )
            .values(status="cancelled")
        )
    # Credit the unit's own sample count, never the worker's claim.
    conn.execute(
        update(workers)
        .where(workers.c.id == result.worker_id)
        .values(
            units=workers.c.units + 1,
            images=workers.c.images + unit.sample_count,
            compute_s=workers.c.compute_s + result.compute_s,
        )
    )
    credits.record(conn, result.worker_id, unit.sample_count, now)


def _reject(
    conn: Connection, result: Any, unit: Any, reason: str | None, now: float, max_attempts: int
) -> None:
    conn.execute(
        update(results)
        .where(results.c.id == result.id)
        .values(status="rejected", reason=reason)  # payload: see _credit
    )
    conn.execute(
        update(workers)
        .where(workers.c.id == result.worker_id)
        .values(rejected=workers.c.rejected + 1)
    )
    add_event(
        conn,
        now,
        "rejected",
        f"result {result.id} for unit {result.unit_index} rejected: {reason or 'no reason given'}",
        worker_id=result.worker_id,
        version=result.version,
    )
    if unit.status == "submitted":
        return_copy(conn, unit, now, max_attempts, "result rejected")


def withdraw(conn: Connection, result_id: int, reason: str, now: float) -> bool:
    """Take back an accepted result whose stored payload no longer checks out; False if it
    is not accepted (any more).

    Storage, not the worker, is to blame (the payload passed every check when it arrived):
    the result becomes rejected without counting against its worker, and its unit is
    computed again.
    """
    result = conn.execute(
        select(results).where(results.c.id == result_id, results.c.status == "accepted")
    ).first()
    if result is None:
        return False
    conn.execute(
        update(results).where(results.c.id == result_id).values(status="rejected", reason=reason)
    )
    conn.execute(
        update(work_units)
        .where(work_units.c.id == result.unit_id)
        .values(
            status="pending",
            lease_token=None,
            lease_expires_at=None,
            leased_at=None,
            worker_id=None,
            attempts=0,
        )
    )
    add_event(
        conn,
        now,
        "damage",
        f"accepted result {result_id} of unit {result.unit_index} withdrawn ({reason}); "
        "the unit is computed again",
        version=result.version,
    )
    announce_work(conn)
    return True
