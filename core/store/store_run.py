"""`Store`'s run and version methods: create, settings, publish, roll back, weights, shards."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy import select, update

from core.store import notify, queue, reads, runs
from core.store.errors import StoreError
from core.store.rows import (
    RUN_STATUSES,
    RunRow,
    ShardData,
    ShardLike,
    ShardRow,
    StoreSettings,
    UnitSpec,
    VersionRow,
)
from core.store.schema import optimizer_states, run
from core.store.store_base import StoreBase


class RunMixin(StoreBase):
    """The run, its versions and its data."""

    # ----------------------------------------------------------------- run
    def create_run(
        self,
        name: str,
        model_config: Mapping[str, object],
        settings: Mapping[str, object],
        shards: Iterable[ShardLike],
        weights: bytes,
        weights_sha256: str,
        optimizer_state: bytes,
        first_units: Sequence[UnitSpec] | Callable[[int], Sequence[UnitSpec]],
    ) -> RunRow:
        """Create the run in one transaction: shards, version 0, its optimizer state and units.

        `first_units` (version 0's units) may be a function of the dataset size, called once
        the shards are stored. RunExists if the database already holds a run; any failure
        (including one raised by the `shards` iterator or `first_units`) leaves nothing behind.
        """
        with self.session() as conn:
            return runs.create_run(
                conn,
                self._now(conn),
                name,
                model_config,
                settings,
                shards,
                weights,
                weights_sha256,
                optimizer_state,
                first_units,
            )

    def get_run(self) -> RunRow:
        """The run (NoRun if the database holds none)."""
        with self.session(reads_only=True) as conn:
            return runs.read_run(conn)

    def latest_version(self) -> int:
        """The latest published version."""
        return self.get_run().version

    def set_status(self, status: str) -> RunRow:
        """Pause ('paused') or resume ('active') the run."""
        if status not in RUN_STATUSES:
            raise StoreError(f"run status must be one of {RUN_STATUSES}, not {status!r}")
        with self.session() as conn:
            current = runs.read_run(conn, for_update=True)
            if current.status != status:
                now = self._now(conn)
                conn.execute(update(run).values(status=status, updated_at=now))
                kind = "paused" if status == "paused" else "resumed"
                queue.add_event(conn, now, kind, f"run {kind}", version=current.version)
                if status == "active":
                    notify.announce_work(conn)
            return runs.read_run(conn)

    def set_alert(self, kind: str | None, message: str = "", remedy: str = "") -> None:
        """Record what stops the run (shown by `status` and the app), or clear it (kind None).

        Setting a new kind also adds an event; setting the same kind again only updates it.
        """
        with self.session() as conn:
            current = runs.read_run(conn).alert
            now = self._now(conn)
            if kind is None:
                if current is not None:
                    conn.execute(update(run).where(run.c.id == 1).values(alert=None))
                return
            since = current["since"] if current and current.get("kind") == kind else now
            alert = {"kind": kind, "message": message, "remedy": remedy, "since": since}
            conn.execute(update(run).where(run.c.id == 1).values(alert=runs.to_json(alert)))
            if current is None or current.get("kind") != kind:
                queue.add_event(conn, now, "alert", f"{message}; {remedy}")

    def update_settings(self, changes: Mapping[str, object]) -> RunRow:
        """Merge `changes` into the run's settings and return the updated run."""
        with self.session() as conn:
            current = runs.read_run(conn, for_update=True)
            merged = {**current.settings, **changes}
            StoreSettings.from_settings(merged)  # refuse values the store cannot act on
            now = self._now(conn)
            conn.execute(update(run).values(settings=runs.to_json(merged), updated_at=now))
            shown = ", ".join(f"{key}={value!r}" for key, value in sorted(changes.items()))
            queue.add_event(conn, now, "settings", f"settings changed: {shown}")
            return runs.read_run(conn)

    def close_version(
        self,
        version: int,
        *,
        weights: bytes,
        weights_sha256: str,
        model_config: Mapping[str, object],
        optimizer_state: bytes,
        metrics: Mapping[str, float | int | None],
        next_units: Sequence[UnitSpec],
        new_cursor: int,
    ) -> None:
        """Publish version+1 with its optimizer state and retire `version`, in one transaction.

        `metrics` needs d_loss, g_loss, d_real, d_fake, images, units, parked_units, close_s
        (swd optional). Raises StoreError if the run is no longer at `version`.
        """
        with self.session() as conn:
            runs.close_version(
                conn,
                self._now(conn),
                version,
                weights,
                weights_sha256,
                model_config,
                optimizer_state,
                metrics,
                next_units,
                new_cursor,
            )
            notify.announce_work(conn)

    def publish_version(
        self,
        version: int,
        *,
        weights: bytes,
        weights_sha256: str,
        model_config: Mapping[str, object],
        metrics: Mapping[str, float | int | None],
        next_units: Sequence[UnitSpec],
        new_cursor: int,
    ) -> None:
        """Publish version+1 and retire `version` in one transaction, without the optimizer
        state: `store_optimizer_state` writes that afterwards, so workers start sooner.

        Until it does, `version`'s accepted results are kept for `rebuild` (see the
        coordinator). Raises StoreError if the run is no longer at `version`.
        """
        with self.session() as conn:
            runs.publish_version(
                conn,
                self._now(conn),
                version,
                weights,
                weights_sha256,
                model_config,
                metrics,
                next_units,
                new_cursor,
            )
            notify.announce_work(conn)

    def store_optimizer_state(self, version: int, state: bytes) -> None:
        """The optimizer state of the published `version`, written after `publish_version`;
        retention (`runs.prune`: old versions, finished units, samples, events, credits) is
        applied with it."""
        with self.session() as conn:
            runs.store_optimizer_state(conn, self._now(conn), version, state)

    # ------------------------------------------------------ versions, data
    def version_weights(self, version: int) -> tuple[bytes, str, dict[str, object]]:
        """(safetensors bytes, sha256, model config) of a kept version."""
        with self.session(reads_only=True) as conn:
            return reads.version_weights(conn, version)

    def versions(self) -> list[VersionRow]:
        """The kept model versions, oldest first (no weight bytes)."""
        with self.session(reads_only=True) as conn:
            return reads.versions(conn)

    def optimizer_state_versions(self) -> set[int]:
        """The versions whose optimizer state is kept (with their weights: full states)."""
        with self.session(reads_only=True) as conn:
            return set(conn.execute(select(optimizer_states.c.version)).scalars())

    def optimizer_state_of(self, version: int) -> bytes:
        """The Adam state kept with `version`'s weights (DamagedData if damaged)."""
        with self.session(reads_only=True) as conn:
            return reads.optimizer_state_of(conn, version)

    def rollback(self, version: int, units: Sequence[UnitSpec], reason: str) -> None:
        """Make `version` the latest again: later versions, their metrics, samples, units and
        results are deleted, and `units` (the version's own, as first designated) are issued
        again. One transaction. The caller checked `version` has a full state."""
        with self.session() as conn:
            runs.rollback(conn, self._now(conn), version, units, reason)
            notify.announce_work(conn)

    def optimizer_state(self) -> tuple[int, bytes]:
        """(version, Adam state bytes) for the latest published version."""
        with self.session(reads_only=True) as conn:
            return reads.optimizer_state(conn)

    def newest_optimizer_state(self) -> tuple[int, bytes]:
        """(version, Adam state bytes) of the newest stored state: the published version's, or
        the one before it when the coordinator stopped between publishing and storing it."""
        with self.session(reads_only=True) as conn:
            return reads.newest_optimizer_state(conn)

    def shard_index(self) -> list[ShardRow]:
        """Every dataset shard, in index order, without data."""
        with self.session(reads_only=True) as conn:
            return reads.shard_index(conn)

    def shard(self, idx: int) -> ShardData:
        """One dataset shard with its bytes."""
        with self.session(reads_only=True) as conn:
            return reads.shard(conn, idx)
