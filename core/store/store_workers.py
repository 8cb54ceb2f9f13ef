"""`Store`'s worker methods: register workers; claim, heartbeat, submit and release units."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Mapping

from sqlalchemy import Connection, insert, update

from core.store import queue, reads, runs, trust, volunteer
from core.store.errors import RunPaused, StoreError, UnknownWorker
from core.store.rows import Lease, StoreSettings, WorkerRow
from core.store.schema import workers
from core.store.store_base import StoreBase


class WorkersMixin(StoreBase):
    """Workers and what they call: claims, heartbeats, submits, waits for work."""

    # ------------------------------------------------------------- workers
    def register_worker(self, name: str, hostname: str, device: str) -> int:
        """Add a worker and return its id (a volunteer's worker of that name is reused)."""
        if self.volunteer_login:
            with self.session() as conn:
                return volunteer.register(conn, name, hostname, device)
        with self.session() as conn:
            now = self._now(conn)
            worker_id = int(
                conn.execute(
                    insert(workers)
                    .values(
                        name=name,
                        hostname=hostname,
                        device=device,
                        volunteer=name,  # the owner's workers each act for themselves
                        created_at=now,
                        last_seen=now,
                        state="registered",
                    )
                    .returning(workers.c.id)
                ).scalar_one()
            )
            queue.add_event(
                conn, now, "worker", f"{name} joined from {hostname} ({device})", worker_id
            )
            return worker_id

    def rename_worker(self, old: str, new: str, hostname: str) -> int:
        """Rename this computer's workers called `old` in place (their history stays theirs).

        A volunteer renames only its own rows; the owner's login renames the rows of that name
        registered from `hostname`. Returns the rows renamed.
        """
        if not 1 <= len(new) <= 200:
            raise StoreError("a worker name must have 1 to 200 characters")
        with self.session() as conn:
            if self.volunteer_login:
                return volunteer.rename(conn, old, new)
            renamed = conn.execute(
                update(workers)
                .where(workers.c.name == old, workers.c.hostname == hostname)
                .values(name=new)
            ).rowcount
            if renamed:
                queue.add_event(conn, self._now(conn), "worker", f"{old} is now called {new}")
            return int(renamed)

    def touch_worker(self, worker_id: int, state: str) -> None:
        """Record that the worker is alive and what it is doing."""
        with self.session() as conn:
            if self.volunteer_login:
                volunteer.touch(conn, worker_id, state)
                return
            self._touch(conn, worker_id, state)

    def _touch(
        self, conn: Connection, worker_id: int, state: str | None = None, now: float | None = None
    ) -> None:
        values: dict[str, object] = {"last_seen": self._now(conn) if now is None else now}
        if state is not None:
            values["state"] = state
        touched = conn.execute(update(workers).where(workers.c.id == worker_id).values(**values))
        if touched.rowcount == 0:
            raise UnknownWorker(
                f"no worker with id {worker_id} in this database; register the worker again"
            )

    def workers(self) -> list[WorkerRow]:
        """Every registered worker, by id."""
        with self.session(reads_only=True) as conn:
            return reads.worker_rows(conn)

    # --------------------------------------------------------- worker side
    def claim(self, worker_id: int) -> Lease | None:
        """Lease the next unit of the current version to the worker, or None if none is free.

        Order: the first pending unit; else, after returning expired leases (not on SQLite,
        where only the coordinator's pass expires them), the first pending one again; else a
        backup copy of a straggler. RunPaused while paused.
        A volunteer login holds at most one live lease per worker (ShareExceeded).
        """
        with self.session() as conn:
            if self.volunteer_login:
                return volunteer.claim(conn, worker_id)
            current = runs.read_run(conn)
            if current.status == "paused":
                raise RunPaused()
            settings = StoreSettings.from_settings(current.settings)
            now, token, observed = self._now(conn), secrets.token_hex(16), self._observed
            self._touch(conn, worker_id, now=now)
            identity = trust.check_not_quarantined(conn, worker_id)
            args = (
                conn,
                self.dialect,
                current.version,
                worker_id,
                token,
                now,
                settings.lease_s,
                identity,
            )
            lease = queue.claim_pending(*args, observed=observed)
            # Only a clock that rules leases may expire them: on SQLite a worker leaves that
            # to the coordinator's pass (core.store.clock).
            if (
                lease is None
                and not observed
                and queue.expire_leases(conn, now, settings.max_attempts)
            ):
                lease = queue.claim_pending(*args)
            if lease is None:
                lease = queue.claim_backup(
                    conn, current.version, worker_id, token, now, settings, observed=observed
                )
            return lease

    def heartbeat(self, lease: Lease) -> Lease:
        """Extend the lease by lease_s; LeaseLost if it no longer holds."""
        renewed = time.monotonic()  # before the round trip: the holder errs on the safe side
        with self.session() as conn:
            if self.volunteer_login:
                expires = volunteer.heartbeat(conn, lease)
                return dataclasses.replace(lease, expires_at=expires, renewed_at=renewed)
            settings = StoreSettings.from_settings(runs.read_run(conn).settings)
            now = self._now(conn)
            expires = queue.heartbeat(conn, lease, now, settings.lease_s, observed=self._observed)
            self._touch(conn, lease.worker_id, now=now)
            return dataclasses.replace(lease, expires_at=expires, renewed_at=renewed)

    def submit(
        self,
        lease: Lease,
        payload: bytes,
        precision: str,
        claimed_samples: int,
        metrics: Mapping[str, float],
        compute_s: float,
    ) -> int:
        """Store the unit's result if the lease still holds; returns the result id.

        LeaseLost if the lease expired, was cancelled or re-issued; AlreadySubmitted if this
        lease's result is already stored. Never two results for one lease.
        """
        with self.session() as conn:
            if self.volunteer_login:
                return volunteer.submit(
                    conn, lease, payload, precision, claimed_samples, metrics, compute_s
                )
            now = self._now(conn)
            result_id = queue.submit(
                conn,
                lease,
                now,
                payload,
                precision,
                claimed_samples,
                metrics,
                compute_s,
                observed=self._observed,
            )
            self._touch(conn, lease.worker_id, now=now)
            return result_id

    def release(self, lease: Lease) -> None:
        """Give the unit back at once (shutdown); a no-op if the lease is already gone."""
        with self.session() as conn:
            if self.volunteer_login:
                volunteer.release(conn, lease)
                return
            settings = StoreSettings.from_settings(runs.read_run(conn).settings)
            queue.release(conn, lease, self._now(conn), settings.max_attempts)

    @property
    def announces_work(self) -> bool:
        """Whether every new version, release and expiry ends a `wait_for_work` at once
        (PostgreSQL's NOTIFY), so that polling for claims is only the fallback."""
        return self.dialect == "postgresql"

    def wait_for_work(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` s for claimable work; True when it was announced meanwhile.

        On PostgreSQL a version close, release or expiry (NOTIFY) ends the wait early; on an
        SQLite file any commit that leaves a unit pending does (within ~2 ms). A hint only:
        claim after it returns, whatever it says.
        """
        return self._work_waiter.wait(timeout_s)

    def interrupt_wait(self) -> None:
        """End a `wait_for_work` at once (or the next one, if none runs); from any thread."""
        self._work_waiter.interrupt()
