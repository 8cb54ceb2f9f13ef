"""The run's one clock: no lease time ever comes from a worker's own clock.

- PostgreSQL: the database server's clock (`clock_timestamp()`), read inside the transaction
  that uses it, for every login — volunteers (their SECURITY DEFINER functions), workers that
  log in as the owner, and the coordinator's expiry pass alike.
- SQLite: the coordinator's clock, which only the coordinator reads. An SQLite file has no
  server whose clock all processes share: each process would read its own (a worker under
  `faketime`, a container with another time). So a worker's claim or heartbeat records *no*
  times (lease_expires_at NULL: "alive, not yet observed"; a claim's leased_at NULL too); the
  coordinator's next pass stamps them with its own now (+ lease_s) and expires leases by its
  own clock (`observe_leases`). A lease therefore lasts at least lease_s of the coordinator's
  time after its latest claim or heartbeat, whatever the worker's clock says, and a backup
  copy is issued by how long the coordinator has seen a unit run. Other times a worker
  writes (last_seen, a result's submitted_at, events) are the coordinator's clock as it last
  published it (`coordinator.seen_at`: at most TICK_S old while it serves, its last while
  none does); before any coordinator has served, the writer's own.

A store given an explicit clock (tests) uses it instead, on both backends.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, select, text, update

from core.store.schema import coordinator, work_units

TICK_S = 1.0  # seconds: how stale the coordinator's published clock may be (SQLite)


def server_now(conn: Connection) -> float:
    """The PostgreSQL server's clock, seconds since the epoch."""
    return float(conn.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())


def coordinator_now(conn: Connection) -> float:
    """SQLite: the coordinator's clock as of its latest pass (this process's before any)."""
    seen = conn.execute(select(coordinator.c.seen_at).where(coordinator.c.id == 1)).scalar()
    return float(seen) if seen else time.time()


def tick(conn: Connection, now: float) -> None:
    """SQLite: publish the coordinator's clock for the times workers write, when it is more
    than TICK_S old (an idle coordinator passes every 0.25 s; each write grows the WAL)."""
    conn.execute(
        update(coordinator)
        .where(
            coordinator.c.id == 1,
            # a clock set back (or another coordinator's ahead) is published at once
            (coordinator.c.seen_at <= now - TICK_S) | (coordinator.c.seen_at > now),
        )
        .values(seen_at=now)
    )


def pass_has_writes(conn: Connection, now: float, publishes_clock: bool) -> bool:
    """SQLite: whether an expiry pass at `now` has anything to write: the clock to publish, a
    claim or heartbeat to stamp, or a lease that expired."""
    if publishes_clock:
        seen = conn.execute(select(coordinator.c.seen_at).where(coordinator.c.id == 1)).scalar()
        if seen is None or seen <= now - TICK_S or seen > now:
            return True
    leased = work_units.c.status == "leased"
    due = work_units.c.lease_expires_at.is_(None) | (work_units.c.lease_expires_at < now)
    return conn.execute(select(work_units.c.id).where(leased, due).limit(1)).first() is not None


def observe_leases(conn: Connection, now: float, lease_s: float) -> int:
    """SQLite: give every claim or heartbeat not yet observed its expiry by the coordinator's
    clock (now + lease_s), and a new claim its start (now); how many were stamped."""
    stamped = conn.execute(
        update(work_units)
        .where(work_units.c.status == "leased", work_units.c.lease_expires_at.is_(None))
        .values(
            lease_expires_at=now + lease_s,
            leased_at=func.coalesce(work_units.c.leased_at, now),
        )
    )
    return int(stamped.rowcount or 0)
