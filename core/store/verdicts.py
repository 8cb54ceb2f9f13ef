"""The coordinator's verdicts on results: accept, reject or keep as a cross-check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from sqlalchemy import Connection, case, select, update

from core.store import credits
from core.store.errors import StoreError
from core.store.notify import announce_work
from core.store.queue import add_event, return_copy
from core.store.schema import results, work_units, workers

Outcome = Literal["accepted", "rejected", "crosscheck"]


class _Credited(NamedTuple):
    """What crediting a result needs: its row's fields and its unit's sample count."""

    id: int
    unit_id: int
    version: int
    unit_index: int
    worker_id: int
    compute_s: float
    sample_count: int  # the unit's, never the worker's claim

    @classmethod
    def of(cls, result: Any, sample_count: int) -> _Credited:
        return cls(
            result.id,
            result.unit_id,
            result.version,
            result.unit_index,
            result.worker_id,
            result.compute_s,
            sample_count,
        )


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
    result = _new(result_id, conn.execute(select(results).where(results.c.id == result_id)).first())
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
        _credit(conn, [_Credited.of(result, unit.sample_count)], outcome, reason, now)
    return outcome


def accept_first(conn: Connection, result_ids: Sequence[int], now: float) -> list[int]:
    """Accept at once each of these new results whose unit has no accepted result yet (of two
    for one unit, the first given); the ids accepted, in the order given.

    The others stay new, for `resolve` one at a time (a late copy is compared with the
    accepted one first). The same statements however many results: a class's version ends
    with 32 results arriving together, and a set of statements for each held its close off by
    0.3-0.4 s (benchmarks/README.md, "What the verdicts were").
    """
    if not result_ids:
        return []
    found = {
        row.id: row
        for row in conn.execute(
            select(results, work_units.c.sample_count)
            .join(work_units, work_units.c.id == results.c.unit_id)
            .where(results.c.id.in_(result_ids))
        )
    }
    rows = [_new(result_id, found.get(result_id)) for result_id in result_ids]
    taken = {
        (row.version, row.unit_index)
        for row in conn.execute(
            select(results.c.version, results.c.unit_index).where(
                results.c.status == "accepted",
                results.c.version.in_({row.version for row in rows}),
                results.c.unit_index.in_({row.unit_index for row in rows}),
            )
        )
    }
    chosen = []
    for row in rows:
        if (row.version, row.unit_index) not in taken:
            taken.add((row.version, row.unit_index))
            chosen.append(row)
    if chosen:
        _credit(
            conn, [_Credited.of(row, row.sample_count) for row in chosen], "accepted", None, now
        )
    return [row.id for row in chosen]


def _new(result_id: int, result: Any) -> Any:
    """The result's row, if it is there and still new (StoreError if not)."""
    if result is None:
        raise StoreError(f"no result {result_id}; its version may have been closed")
    if result.status != "new":
        raise StoreError(f"result {result_id} is already resolved as {result.status}")
    return result


def _credit(
    conn: Connection,
    chosen: Sequence[_Credited],
    outcome: Outcome,
    reason: str | None,
    now: float,
) -> None:
    """Resolve these results (one per unit) as accepted or cross-checks, and credit their
    workers: the same statements for one result or many."""
    # A cross-check's payload is no longer readable; `housekeeping.tidy` deletes it.
    conn.execute(
        update(results)
        .where(results.c.id.in_([row.id for row in chosen]))
        .values(status=outcome, reason=reason)
    )
    unit_ids = [row.unit_id for row in chosen]
    conn.execute(update(work_units).where(work_units.c.id.in_(unit_ids)).values(status="done"))
    if outcome == "accepted":
        for version in sorted({row.version for row in chosen}):
            conn.execute(
                update(work_units)
                .where(
                    work_units.c.version == version,
                    work_units.c.unit_index.in_(
                        [row.unit_index for row in chosen if row.version == version]
                    ),
                    work_units.c.status == "pending",
                )
                .values(status="cancelled")
            )
    # Credit the unit's own sample count, never the worker's claim.
    totals: dict[int, tuple[int, int, float]] = {}  # worker: units, images, compute seconds
    for row in chosen:
        units, images, seconds = totals.get(row.worker_id, (0, 0, 0.0))
        totals[row.worker_id] = (
            units + 1,
            images + row.sample_count,
            seconds + row.compute_s,
        )
    by_worker = {"value": workers.c.id, "else_": 0}
    conn.execute(
        update(workers)
        .where(workers.c.id.in_(totals))
        .values(
            units=workers.c.units + case({w: t[0] for w, t in totals.items()}, **by_worker),
            images=workers.c.images + case({w: t[1] for w, t in totals.items()}, **by_worker),
            compute_s=workers.c.compute_s + case({w: t[2] for w, t in totals.items()}, **by_worker),
        )
    )
    credits.record(conn, {w: (t[0], t[1]) for w, t in totals.items()}, now)


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
