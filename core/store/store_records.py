"""`Store`'s records of the run: sample grids, metrics, the event log, credits, leaderboard."""

from __future__ import annotations

from sqlalchemy import delete, insert, update

from core.store import credits, queue, reads, volunteer
from core.store.rows import Credits, EventRow, MetricsRow, SampleRow
from core.store.runs import best_quality
from core.store.schema import metrics, samples
from core.store.store_base import StoreBase


class RecordsMixin(StoreBase):
    """What the run shows: samples, metrics, events, credits."""

    # ------------------------------------------------ samples, metrics, log
    def add_sample(self, version: int, png: bytes, swd: float | None) -> None:
        """Store (or replace) the sample grid of a version."""
        with self.session() as conn:
            conn.execute(delete(samples).where(samples.c.version == version))
            conn.execute(
                insert(samples).values(
                    version=version, png=png, swd=swd, created_at=self._now(conn)
                )
            )

    def set_metric_swd(self, version: int, swd: float) -> None:
        """Fill in the quality figure of a version's metrics row."""
        with self.session() as conn:
            conn.execute(update(metrics).where(metrics.c.version == version).values(swd=swd))

    def latest_sample(self) -> SampleRow | None:
        """The newest sample grid, if any."""
        found = self.samples(1)
        return found[0] if found else None

    def samples(self, limit: int) -> list[SampleRow]:
        """Up to `limit` sample grids, newest first."""
        with self.session(reads_only=True) as conn:
            return reads.sample_rows(conn, limit)

    def best_quality(self) -> tuple[int, float] | None:
        """The version with the best quality figure so far and the figure; retention keeps that
        version (weights, optimizer state, grid) for `rollback`."""
        with self.session(reads_only=True) as conn:
            return best_quality(conn)

    def metrics(self, since_version: int = 0) -> list[MetricsRow]:
        """Metrics of every closed version >= since_version, oldest first."""
        with self.session(reads_only=True) as conn:
            return reads.metrics_rows(conn, since_version)

    def add_event(
        self,
        kind: str,
        message: str,
        worker_id: int | None = None,
        version: int | None = None,
    ) -> None:
        """Append an entry to the run's event log."""
        with self.session() as conn:
            queue.add_event(conn, self._now(conn), kind, message, worker_id, version)

    def events(self, limit: int, after_id: int = 0) -> list[EventRow]:
        """Up to `limit` newest events with id > after_id, newest first."""
        with self.session(reads_only=True) as conn:
            return reads.event_rows(conn, limit, after_id)

    # ------------------------------------------------------------- credits
    def leaderboard(self) -> list[volunteer.LeaderRow]:
        """Every worker's name and contribution, most images first (readable by volunteers)."""
        with self.session() as conn:
            return volunteer.leaderboard(conn, through_views=self.volunteer_login)

    def recent_credits(self, within_s: float) -> Credits:
        """Units accepted in the last `within_s` seconds of the run's clock: each worker's
        this login may read (a volunteer: its own) and the whole run's."""
        with self.session() as conn:
            since = self._now(conn) - within_s
            return credits.recent(conn, since, through_views=self.volunteer_login)
