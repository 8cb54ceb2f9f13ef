"""Accepted units per worker and minute: the run's recent history of who computed what.

Worker rows carry all-time totals and unit rows are pruned a version after they close, so
neither says who computed the last hour. The coordinator adds each accepted unit to its
worker's row for that minute (`record`); the app reads the sums since a moment (`recent`): a
volunteer login its own workers' through `volunteer.credits` and the whole run's through
`volunteer.run_credits`, which shows no worker (migration 0012).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import (
    Column,
    Connection,
    Double,
    MetaData,
    Table,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from core.store.rows import Credits, WorkerCredit
from core.store.schema import credits

MINUTE_S = 60.0
KEEP_S = 86_400.0  # seconds of history kept: a day
# The run's sums per minute (PostgreSQL, migration 0012): readable by volunteers.
_RUN_CREDITS = Table(
    "run_credits",
    MetaData(),
    Column("minute", Double),
    Column("units", Double),
    Column("images", Double),
    schema="volunteer",
)


def record(conn: Connection, accepted: Mapping[int, tuple[int, int]], now: float) -> None:
    """Count accepted units in the minute of `now`: {worker id: (units, images)}.

    One statement for any number of workers that have a row for the minute, one more for
    those that do not. The coordinator is the only writer (fenced), so no insert races these.
    """
    if not accepted:
        return
    minute = float(int(now // MINUTE_S) * MINUTE_S)
    by_worker = {"value": credits.c.worker_id, "else_": 0}
    added = set(
        conn.execute(
            update(credits)
            .where(credits.c.minute == minute, credits.c.worker_id.in_(accepted))
            .values(
                units=credits.c.units + case({w: n for w, (n, _) in accepted.items()}, **by_worker),
                images=credits.c.images
                + case({w: i for w, (_, i) in accepted.items()}, **by_worker),
            )
            .returning(credits.c.worker_id)
        ).scalars()
    )
    new = [
        {"worker_id": w, "minute": minute, "units": n, "images": i}
        for w, (n, i) in sorted(accepted.items())
        if w not in added
    ]
    if new:
        conn.execute(insert(credits), new)


def prune(conn: Connection, now: float) -> None:
    """Forget the minutes older than `KEEP_S`."""
    conn.execute(delete(credits).where(credits.c.minute < now - KEEP_S))


def recent(conn: Connection, since: float, *, through_views: bool) -> Credits:
    """Sums over the minutes that end after `since`: per worker this login may read, and the
    run's (all workers')."""
    first = since - MINUTE_S  # a minute that started before `since` still overlaps it
    if through_views:
        return _recent_through_views(conn, since, first)
    rows = conn.execute(
        select(credits.c.worker_id, func.sum(credits.c.units), func.sum(credits.c.images))
        .where(credits.c.minute > first)
        .group_by(credits.c.worker_id)
        .order_by(credits.c.worker_id)
    ).all()
    units, images = conn.execute(
        select(
            func.coalesce(func.sum(credits.c.units), 0),
            func.coalesce(func.sum(credits.c.images), 0),
        ).where(credits.c.minute > first)
    ).one()
    return Credits(
        since,
        tuple(WorkerCredit(int(w), int(u), int(i)) for w, u, i in rows),
        int(units),
        int(images),
    )


def _recent_through_views(conn: Connection, since: float, first: float) -> Credits:
    """A volunteer's reads: plain rows of one view each, summed here, because the watchdog
    lets a volunteer session run only such reads (coordinator/volunteer_statements.py); an
    hour is at most 61 rows per worker and 61 of the run."""
    mine: dict[int, list[int]] = {}
    for worker_id, units, images in conn.execute(
        select(credits.c.worker_id, credits.c.units, credits.c.images).where(
            credits.c.minute > first
        )
    ).all():
        total = mine.setdefault(int(worker_id), [0, 0])
        total[0] += int(units)
        total[1] += int(images)
    run = conn.execute(
        select(_RUN_CREDITS.c.units, _RUN_CREDITS.c.images).where(_RUN_CREDITS.c.minute > first)
    ).all()
    return Credits(
        since,
        tuple(WorkerCredit(w, u, i) for w, (u, i) in sorted(mine.items())),
        sum(int(u) for u, _ in run),
        sum(int(i) for _, i in run),
    )
