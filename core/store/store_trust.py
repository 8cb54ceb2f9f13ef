"""`Store`'s verification methods: trust records, held results, settlements and quarantines."""

from __future__ import annotations

from collections.abc import Sequence

from core.store import runs, trust
from core.store.rows import ResultRow, StoreSettings
from core.store.store_base import StoreBase
from core.verification import Candidate, Settlement, TrustRecord


class TrustMixin(StoreBase):
    """Verification: who is trusted, results held back, settlements, quarantines."""

    # --------------------------------------------------------------- trust
    def worker_identity(self, worker_id: int) -> tuple[str, str]:
        """(volunteer identity, device) a worker acts for and computes on."""
        with self.session() as conn:
            return trust.identity_of(conn, worker_id)

    def trust_record(self, identity: str) -> TrustRecord:
        """What the run knows about a volunteer identity (a volunteer login: only its own)."""
        with self.session() as conn:
            return trust.record(conn, identity)

    def trust_records(self) -> list[TrustRecord]:
        """The verification records this login may read (a volunteer login: only its own)."""
        with self.session() as conn:
            return trust.records(conn)

    def trust_rows(self) -> list[trust.TrustRow]:
        """Every volunteer identity with its record and workers (owner only)."""
        with self.session() as conn:
            return trust.trust_rows(conn)

    def hold_result(self, row: ResultRow) -> None:
        """Keep a valid result back until another volunteer's computation settles its unit."""
        with self.session() as conn:
            trust.hold(conn, row.id, row.version, row.unit_index, row.worker_id)

    def held_results(self, version: int, unit_index: int) -> list[Candidate]:
        """The held results of one unit, in submit order."""
        with self.session() as conn:
            return trust.held(conn, version, unit_index)

    def trusted_at_work(self, trust_after: int, within_s: float, besides: Sequence[str]) -> bool:
        """Whether a trusted volunteer not in `besides` had a worker seen in the last `within_s`."""
        with self.session() as conn:
            since = self._now(conn) - within_s
            return trust.trusted_at_work(conn, trust_after, since, besides)

    def park_undecided(self, version: int, unit_index: int, why: str) -> None:
        """Park a unit whose computations never agreed; its held results do not count."""
        with self.session() as conn:
            trust.park_undecided(conn, version, unit_index, why, self._now(conn))

    def release_held(self) -> int:
        """Let go of every held result (verification switched off); how many there were."""
        with self.session() as conn:
            return trust.release_held(conn)

    def held_count(self) -> int:
        """Results held for verification right now."""
        with self.session() as conn:
            return trust.held_count(conn)

    def settle_unit(
        self, candidates: Sequence[Candidate], settlement: Settlement, reasons: dict[int, str]
    ) -> None:
        """Record a unit's settlement in one transaction (verdicts, credit, quarantines)."""
        with self.session() as conn:
            settings = StoreSettings.from_settings(runs.read_run(conn).settings)
            trust.apply(
                conn, candidates, settlement, reasons, self._now(conn), settings.max_attempts
            )

    def count_unchecked(self, row: ResultRow, identity: str) -> None:
        """Record that a result counts without a second computation (its volunteer is trusted
        and was not picked for a spot-check)."""
        with self.session() as conn:
            trust.count_unchecked(conn, row.id, row.version, identity)

    def unchecked(self, identity: str) -> list[tuple[int, int]]:
        """(version, result_id) of the identity's results that counted unchecked, oldest first."""
        with self.session() as conn:
            return trust.unchecked(conn, identity)

    def forget_unchecked(self, identity: str) -> None:
        """Drop the identity's unchecked record (what it reached was undone)."""
        with self.session() as conn:
            trust.forget_unchecked(conn, identity)

    def quarantine(self, identity: str, reason: str) -> bool:
        """Stop counting anything of a volunteer; False if it already was quarantined."""
        with self.session() as conn:
            settings = StoreSettings.from_settings(runs.read_run(conn).settings)
            return trust.quarantine(conn, identity, reason, self._now(conn), settings.max_attempts)

    def issue_verification_copies(self, version: int) -> list[int]:
        """Queue a copy of every unit of `version` whose held results wait for a computation
        that nobody is doing; the unit indices."""
        with self.session() as conn:
            units = trust.units_needing_copy(conn, version)
            for unit_index in units:
                trust.issue_copy(conn, version, unit_index, self._now(conn), "verification")
            return units
