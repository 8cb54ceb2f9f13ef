"""`Store`: the only code that reads and writes the run database, one transaction per call."""

from __future__ import annotations

import logging

from core.store import fence, queue
from core.store.store_coordinator import CoordinatorMixin
from core.store.store_records import RecordsMixin
from core.store.store_run import RunMixin
from core.store.store_trust import TrustMixin
from core.store.store_workers import WorkersMixin

log = logging.getLogger(__name__)


class Store(RunMixin, WorkersMixin, CoordinatorMixin, RecordsMixin, TrustMixin):
    """Every query of the run database; each public method is one transaction.

    Methods return frozen rows from `core.store.rows`. Driver errors leave as `StoreError`s:
    `DatabaseUnavailable` means retry with backoff. Safe to share between threads (each
    thread gets its own connection and transaction).
    """

    # ---------------------------------------------------- the run's holder
    def take_run(self, lock: fence.RunLock | None = None) -> Store:
        """Take the run as its coordinator: a new epoch, and a store that is fenced by it.

        The store returned shares this one's engine; each of its transactions first checks
        that the epoch is still its own, so once another coordinator takes over it writes
        nothing (Superseded). With a `lock`, a live coordinator elsewhere holding it means
        RunHeld (naming it); one silent for `fence.HOLDER_LEASE_S` (frozen, suspended) is
        taken over, its sessions ended on PostgreSQL. Without one (tests), the run is taken.
        """
        stale = False
        if lock is not None and not lock.acquire():
            with self.session() as conn:
                holder, now = fence.read_holder(conn), fence.db_now(conn)
            if now - holder.seen_at < fence.HOLDER_LEASE_S:
                raise fence.RunHeld(
                    f"another coordinator serves this run ({holder.describe(now)}); stop it "
                    f"first — a coordinator silent for {fence.HOLDER_LEASE_S:.0f} s is taken "
                    f"over ({lock.where})"
                )
            log.warning("taking the run over from a silent coordinator (%s)", holder.describe(now))
            stale = True
        with self.session() as conn:
            if stale:
                fence.end_stale_sessions(conn)
            holder = fence.take(conn)
            queue.add_event(
                conn,
                holder.since,
                "coordinator",
                f"coordinator pid {holder.pid} on {holder.host} took the run (epoch {holder.epoch})",
            )
        fenced = Store(self.engine, clock=self._given_clock)
        fenced._epoch = holder.epoch
        return fenced

    @property
    def epoch(self) -> int | None:
        """The coordinator epoch this store is fenced by (None: not a coordinator's store)."""
        return self._epoch

    def holder(self) -> fence.Holder:
        """The coordinator that holds the run, as recorded."""
        with self.session() as conn:
            return fence.read_holder(conn)

    def beat(self) -> None:
        """Record that this store's coordinator is alive (Superseded if it no longer holds)."""
        with self.session() as conn:
            fence.beat(conn)
