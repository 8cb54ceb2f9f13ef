"""`Store`: the only code that reads and writes the run database, one transaction per call."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, delete, insert, select, update

from core.store import clock as run_clock
from core.store import (
    credits,
    fence,
    housekeeping,
    notify,
    queue,
    reads,
    runs,
    trust,
    verdicts,
    volunteer,
)
from core.store.errors import RunPaused, StoreError, UnknownWorker, translated_errors
from core.store.rows import (
    RUN_STATUSES,
    Credits,
    EventRow,
    Lease,
    MetricsRow,
    ResultRow,
    RunRow,
    SampleRow,
    ShardData,
    ShardLike,
    ShardRow,
    StoreSettings,
    UnitCounts,
    UnitRow,
    UnitSpec,
    VersionRow,
    WorkerRow,
)
from core.store.schema import (
    held_results,
    metrics,
    optimizer_states,
    results,
    run,
    samples,
    workers,
)
from core.store.verdicts import Outcome
from core.verification import Candidate, Settlement, TrustRecord

log = logging.getLogger(__name__)

READS_ONLY = "ganfriends_reads_only"  # execution option: the transaction writes nothing


class Store:
    """Every query of the run database; each public method is one transaction.

    Methods return frozen rows from `core.store.rows`. Driver errors leave as `StoreError`s:
    `DatabaseUnavailable` means retry with backoff. Safe to share between threads (each
    thread gets its own connection and transaction).
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] | None = None) -> None:
        self.engine = engine
        # A clock given here (tests: one they can move) stands in for the run's clock on both
        # backends; without one, lease times come from the run's clock (core.store.clock).
        self._given_clock = clock
        self.clock = clock or time.time  # seconds since the epoch
        self._local = threading.local()
        self._work_waiter = notify.WorkWaiter(engine)
        # The coordinator's: results to validate (created on its first wait, unused elsewhere).
        self._result_waiter = notify.WorkWaiter(
            engine, notify.RESULTS_CHANNEL, notify.new_results(), notify.RESULTS_NOTIFIED_GAP_S
        )
        # Volunteer login (PostgreSQL)? Decided by the first session; see `volunteer_login`.
        self._volunteer: bool | None = None
        # The coordinator epoch every transaction checks, once `take_run` made this store a
        # coordinator's (core.store.fence); None for everyone else.
        self._epoch: int | None = None

    def _now(self, conn: Connection) -> float:
        """The run's clock for this transaction: never a worker's own (core.store.clock)."""
        if self._given_clock is not None:
            return self._given_clock()
        if self.dialect == "postgresql":
            return run_clock.server_now(conn)
        if self._epoch is not None:
            return time.time()  # SQLite: the coordinator's own clock is the run's
        return run_clock.coordinator_now(conn)

    @property
    def _observed(self) -> bool:
        """Whether this store's claims and heartbeats leave their expiry to the coordinator
        (a worker on SQLite, where only the coordinator's clock counts)."""
        return self.dialect == "sqlite" and self._given_clock is None and self._epoch is None

    def now(self) -> float:
        """The clock to compare the run's times with (seconds since the epoch): the database
        server's on PostgreSQL, this host's for an SQLite file (the coordinator's host)."""
        if self.dialect != "postgresql" or self._given_clock is not None:
            return self.clock()
        with self.session() as conn:
            return run_clock.server_now(conn)

    @property
    def _where(self) -> str:
        """The database, for messages: the SQLite file, or the URL without its password."""
        url = self.engine.url
        if self.dialect == "sqlite":
            return str(url.database)
        return url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """The backend's name: 'sqlite' or 'postgresql'."""
        return str(self.engine.dialect.name)

    @property
    def volunteer_login(self) -> bool:
        """True for a volunteer's login (PostgreSQL): worker calls go through the volunteer API.

        Such a login reads only the volunteer views (the published run, versions, shards,
        samples, metrics, its own workers) and cannot read results, events or other workers.
        """
        if self._volunteer is None:
            with self.session():
                pass  # the first session decides
        return bool(self._volunteer)

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

    def take_over_checkpoints(self) -> None:
        """From now on this store's commits leave the SQLite WAL alone; `tidy` checkpoints it.

        For the coordinator, so that the close of a version never pays for a checkpoint.
        """
        housekeeping.take_over_checkpoints(self.engine)

    def tidy(self) -> int:
        """Delete payloads, optimizer states and uploads no longer needed; checkpoint SQLite's
        WAL or vacuum PostgreSQL's churned tables.

        For idle moments: both walk many pages. Returns the payloads deleted.
        """
        with self.session() as conn:
            deleted = housekeeping.delete_dropped_payloads(conn)
            housekeeping.delete_old_optimizer_states(conn)
            housekeeping.delete_stale_uploads(conn)
        # Outside a transaction, not in `session`.
        with translated_errors(self.engine.url, f"checkpointing the WAL into {self._where}"):
            housekeeping.checkpoint(self.engine)
        with translated_errors(self.engine.url, "vacuuming the tables of deleted rows"):
            housekeeping.vacuum(self.engine)
        return deleted

    def dispose(self) -> None:
        """Close the pooled connections (the store can still be used; it reconnects)."""
        self._work_waiter.close()
        self._result_waiter.close()
        self.engine.dispose()

    def close(self) -> None:
        """Same as `dispose`: close the pooled connections."""
        self.dispose()

    @contextmanager
    def session(self, *, reads_only: bool = False) -> Iterator[Connection]:
        """One transaction that commits on success and rolls back on error.

        Re-entrant: a nested `session()` (and every store method called inside one) joins
        the outer transaction, so several calls can be made atomic together. `reads_only`
        promises that the transaction writes nothing: on SQLite it then reads a snapshot
        without taking the write lock (a write in it could fail with SQLITE_BUSY).
        """
        outer = getattr(self._local, "connection", None)
        if outer is not None:
            with translated_errors(self.engine.url):
                yield outer
            return
        with translated_errors(self.engine.url), self.engine.connect() as connection:
            if reads_only:
                connection.execution_options(**{READS_ONLY: True})
            with connection.begin():
                # --- volunteer logins: reads go to the volunteer views of the same names
                if self._volunteer is None:
                    self._volunteer = volunteer.is_volunteer(connection)
                if self._volunteer:
                    connection.execution_options(schema_translate_map=volunteer.READ_VIEWS)
                # ---
                if self._epoch is not None:  # a coordinator's: write nothing once superseded
                    fence.check(connection, self._epoch)
                self._local.connection = connection
                try:
                    yield connection
                finally:
                    self._local.connection = None

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
        """The optimizer state of the published `version`, written after `publish_version`."""
        with self.session() as conn:
            runs.store_optimizer_state(conn, version, state)

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

    def wait_for_work(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` s for claimable work; True when it was announced meanwhile.

        On PostgreSQL a version close, release or expiry (NOTIFY) ends the wait early; on an
        SQLite file any commit that leaves a unit pending does (within ~10 ms). A hint only:
        claim after it returns, whatever it says.
        """
        return self._work_waiter.wait(timeout_s)

    def interrupt_wait(self) -> None:
        """End a `wait_for_work` at once (or the next one, if none runs); from any thread."""
        self._work_waiter.interrupt()

    # ---------------------------------------------------- coordinator side
    def wait_for_results(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` s for a submitted result; True when one was announced.

        On PostgreSQL an insert into results (NOTIFY) ends the wait; on an SQLite file any
        commit that leaves a new result does (within ~10 ms). A hint only, as `wait_for_work`.
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

    def resolve_result(
        self, result_id: int, outcome: Outcome, reason: str | None = None
    ) -> Outcome:
        """Record the verdict on a new result; returns the outcome actually stored.

        'accepted' is stored as 'crosscheck' when the unit already has an accepted result.
        """
        with self.session() as conn:
            settings = StoreSettings.from_settings(runs.read_run(conn).settings)
            return verdicts.resolve(
                conn, result_id, outcome, reason, self._now(conn), settings.max_attempts
            )

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
