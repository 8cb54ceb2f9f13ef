"""`Store`'s coordinator methods: expire leases, read results and record verdicts, tidy up."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import select

from core.store import clock as run_clock
from core.store import housekeeping, queue, reads, runs, verdicts
from core.store.errors import DamagedData, translated_errors
from core.store.rows import ResultRow, StoreSettings, UnitCounts, UnitRow, UnitSpec
from core.store.schema import held_results, results
from core.store.store_base import StoreBase
from core.store.verdicts import Outcome


class CoordinatorMixin(StoreBase):
    """What the coordinator calls between versions: results, verdicts, leases, housekeeping."""

    # ---------------------------------------------------- coordinator side
    def wait_for_results(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` s for a submitted result; True when one was announced.

        On PostgreSQL an insert into results (NOTIFY) ends the wait; on an SQLite file any
        commit that leaves a new result does (within ~2 ms). A hint only, as `wait_for_work`.
        """
        return self._result_waiter.wait(timeout_s)

    def interrupt_result_wait(self) -> None:
        """End a `wait_for_results` at once (or the next one); from any thread."""
        self._result_waiter.interrupt()

    def expire_leases(self) -> int:
        """Return expired leases to the queue (or park them); how many expired.

        On SQLite the coordinator's pass also publishes its clock and gives the leases that
        workers claimed or renewed since the last pass their expiry (core.store.clock).
        """
        if self.dialect == "sqlite":
            # Most passes have nothing to write: find that out without the write lock, which
            # every pass of a busy coordinator would otherwise take from the workers' claims.
            with self.session(reads_only=True) as conn:
                if not run_clock.pass_has_writes(conn, self._now(conn), self._epoch is not None):
                    return 0
        with self.session() as conn:
            settings = StoreSettings.from_settings(runs.read_run(conn).settings)
            now = self._now(conn)
            if self.dialect == "sqlite" and not self._observed:
                if self._epoch is not None:
                    run_clock.tick(conn, now)
                run_clock.observe_leases(conn, now, settings.lease_s)
            return queue.expire_leases(conn, now, settings.max_attempts)

    def repair_units(self, version: int, units: Sequence[UnitSpec]) -> int:
        """Rewrite the seed and images of `version`'s copies of `units` where they differ
        (damage); how many copies were rewritten."""
        with self.session() as conn:
            return queue.repair_units(conn, version, units, self._now(conn))

    def park_unit(self, unit_id: int) -> bool:
        """Park a pending or leased unit copy; False if it was already finished."""
        with self.session() as conn:
            return queue.park_unit(conn, unit_id, self._now(conn))

    def new_results(self, limit: int) -> list[ResultRow]:
        """Up to `limit` results waiting for a verdict, oldest first."""
        with self.session(reads_only=True) as conn:
            return reads.results_where(
                conn,
                results.c.status == "new",
                results.c.id.not_in(select(held_results.c.result_id)),
                limit=limit,
            )

    def accepted_result(self, version: int, unit_index: int) -> ResultRow | None:
        """The accepted result of a unit, if it has one."""
        with self.session(reads_only=True) as conn:
            found = reads.results_where(
                conn,
                results.c.version == version,
                results.c.unit_index == unit_index,
                results.c.status == "accepted",
            )
        return found[0] if found else None

    def version_results(self, version: int) -> list[ResultRow]:
        """Every result of a version still stored, oldest first."""
        with self.session(reads_only=True) as conn:
            return reads.results_where(conn, results.c.version == version)

    def result_payload(self, result_id: int) -> bytes:
        """The payload of a result (StoreError once it is resolved and dropped)."""
        with self.session(reads_only=True) as conn:
            return reads.result_payload(conn, result_id)

    def result_payloads(self, result_ids: Sequence[int]) -> dict[int, bytes | DamagedData]:
        """The payloads of results in one read, each checked (DamagedData in its place if it
        fails; StoreError if one was resolved and dropped)."""
        with self.session(reads_only=True) as conn:
            return reads.result_payloads_of(conn, result_ids)

    def resolve_result(
        self, result_id: int, outcome: Outcome, reason: str | None = None
    ) -> Outcome:
        """Record the verdict on a new result; returns the outcome actually stored.

        'accepted' is stored as 'crosscheck' when the unit already has an accepted result.
        """
        with self.session() as conn:
            max_attempts = None  # an accept or cross-check never returns a copy to the queue
            if outcome == "rejected":
                max_attempts = StoreSettings.from_settings(
                    runs.read_run(conn).settings
                ).max_attempts
            return verdicts.resolve(conn, result_id, outcome, reason, self._now(conn), max_attempts)

    def accept_results(self, result_ids: Sequence[int]) -> list[int]:
        """Accept, in one transaction, each of these new results whose unit has no accepted
        result yet (the first given of two for one unit); the ids accepted. The rest stay new
        for `resolve_result`."""
        with self.session() as conn:
            return verdicts.accept_first(conn, result_ids, self._now(conn))

    def withdraw_result(self, result_id: int, reason: str) -> bool:
        """Take back an accepted result whose payload is damaged; its unit is computed again."""
        with self.session() as conn:
            return verdicts.withdraw(conn, result_id, reason, self._now(conn))

    def accepted_payloads(self, version: int) -> Iterator[tuple[int, int, bytes]]:
        """(unit_index, sample_count, payload) of every accepted result, in unit order.

        Each payload is read in its own short query, so memory does not grow with the units
        of a version and workers are not held off while the caller aggregates.
        """
        with self.session(reads_only=True) as conn:
            accepted = reads.accepted_ids(conn, version)
        for result_id, unit_index, sample_count in accepted:
            yield unit_index, sample_count, self.result_payload(result_id)

    def version_units(self, version: int) -> list[UnitRow]:
        """Every copy of every unit of a version, by (unit_index, copy)."""
        with self.session(reads_only=True) as conn:
            return reads.version_units(conn, version)

    def unit_counts(self, version: int) -> UnitCounts:
        """Distinct units of a version counted by the best status of their copies."""
        with self.session(reads_only=True) as conn:
            return reads.unit_counts(conn, version)

    # -------------------------------------------------------- housekeeping
    def take_over_checkpoints(self) -> None:
        """From now on this store's commits leave the SQLite WAL alone; `tidy` checkpoints it.

        For the coordinator, so that the close of a version never pays for a checkpoint.
        """
        housekeeping.take_over_checkpoints(self.engine)

    def tidy(self, *, compact: bool = True) -> int:
        """Delete payloads, optimizer states and uploads no longer needed and, unless told not
        to, `compact`. Returns the payloads deleted.

        For idle moments: both walk many pages. The coordinator compacts in a thread of its own
        (coordinator/compaction.py).
        """
        with self.session() as conn:
            deleted = housekeeping.delete_dropped_payloads(conn)
            housekeeping.delete_old_optimizer_states(conn)
            housekeeping.delete_stale_uploads(conn)
        if compact:
            self.compact()
        return deleted

    def compact(self) -> None:
        """Checkpoint SQLite's WAL into the database file, or vacuum PostgreSQL's churned
        tables: either way, make the space of deleted rows reusable. Safe beside any other
        transaction; seconds on PostgreSQL when many large rows were deleted."""
        # Outside a transaction, not in `session`.
        with translated_errors(self.engine.url, f"checkpointing the WAL into {self._where}"):
            housekeeping.checkpoint(self.engine)
        self.vacuum()

    def vacuum(self) -> None:
        """Make the space of PostgreSQL's churned tables reusable (a no-op on SQLite). Safe
        beside any other transaction; seconds when many large rows were deleted."""
        with translated_errors(self.engine.url, "vacuuming the tables of deleted rows"):
            housekeeping.vacuum(self.engine)
