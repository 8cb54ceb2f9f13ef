"""The worker engine: claim → weights → shards → compute → submit, with controls and events.

A finished unit uploads in the background while the engine claims and computes the next one
(one upload in flight at most), so a fast worker does not wait for its own upload. A lease's
heartbeat runs from its claim until its submit is answered or it is given back: a unit whose
weights and images take longer to download than the run's lease_s stays this worker's.

One engine drives both the headless worker and the desktop app. It reports what it does as
plain `WorkerEvent` values to a callback (a GUI turns them into signals), and it is controlled
from any thread with `pause`, `resume`, `finish_current_unit` and `stop`. Pauses and stops take
effect between micro-batches; an abandoned unit's lease is released at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from core.backoff import Backoff
from core.cache import ShardCache
from core.claim_ahead import CLAIM_AHEAD_BELOW_S, NextUnit
from core.codec import decode_named, encode_tensors
from core.config import RunSettings
from core.events import WorkerEvent
from core.heartbeat import Heartbeat, WakeUp
from core.model import GAN, ModelConfig, gan_from_parameters, load_parameters
from core.schedule import plan_unit
from core.shards import ShardFetcher
from core.store import (
    AlreadySubmitted,
    DamagedData,
    DatabaseUnavailable,
    Lease,
    LeaseLost,
    RunPaused,
    Store,
    StoreError,
)
from core.training import UnitCancelled, intra_op_threads
from core.unit_kinds import UnitKind, unit_kind

log = logging.getLogger(__name__)

IDLE_POLL_MIN_S = 0.05  # first wait when there is no work: a new version usually follows fast
# The first wait where the store announces new work (`Store.announces_work`): a publish ends
# the wait at once, and polls only back a lost notification up. Polling from 50 ms, a class's
# volunteers made ~130 empty claims a version (~45 from 0.5 s) while they waited for the
# version's last results, with the server busy taking those uploads (benchmarks.class_sim at
# 32 volunteers, benchmarks/README.md "Idle claims").
IDLE_POLL_ANNOUNCED_S = 0.5
IDLE_POLL_MAX_S = 2.0  # longest wait between claims when the queue stays empty
PROGRESS_EVERY_S = 0.5  # at most this often a progress event
REPORT_EVERY_S = 15.0  # at most this often the worker's state is written to the database
MAX_WEIGHTS_BYTES = 2 * 1024**3  # refuse published weights larger than this
DAMAGE_RETRY_S = 60.0  # wait after finding damaged data, for the coordinator to repair it


@dataclass(frozen=True)
class WorkerOptions:
    name: str  # shown on the leaderboard
    hostname: str  # this computer's name, for the admin console
    device: torch.device  # where to compute
    # Intra-op CPU threads per unit; None: the run's `compute_threads`, which is what makes a
    # worker's results bitwise those of the reference trainer (CPU kernels sum in another order
    # with another thread count). Only a caller that knows better (a GPU, a benchmark) sets it.
    threads: int | None
    max_units: int | None = None  # stop after this many accepted submits
    heartbeat_fraction: float = 1 / 3  # heartbeat every lease_s × this
    # Given a unit's wall seconds (fetch, compute, upload), the seconds to rest before the next
    # claim: a duty-cycle cap (core.throttle.rest_after_unit). Called on the engine's thread.
    after_unit: Callable[[float], float] | None = None


class _Version:
    """The model and settings of one published version, loaded once."""

    def __init__(self, version: int, gan: GAN, settings: RunSettings) -> None:
        self.version = version
        self.gan = gan
        self.settings = settings


class WorkerEngine:
    """Runs units until stopped; `run()` blocks, the controls may be called from other threads."""

    def __init__(
        self,
        connect: Callable[[], Store],
        cache: ShardCache,
        options: WorkerOptions,
        on_event: Callable[[WorkerEvent], None] | None = None,
        *,
        kind_for: Callable[[RunSettings], UnitKind] = unit_kind,
    ) -> None:
        self._connect_fn = connect
        # What a unit computes, from the run's settings. Only benchmarks pass anything else
        # (benchmarks/class_sim's stand-in); no command or app offers a way to.
        self._kind_for = kind_for
        self._cache = cache
        self.options = options
        self._on_event = on_event or (lambda event: None)
        self._store: Store | None = None
        self._worker_id: int | None = None
        self._fetcher: ShardFetcher | None = None
        self._loaded: _Version | None = None
        self._wake = WakeUp()  # controls set it; it also ends an idle wait_for_work
        self._stop = threading.Event()
        self._abandon = threading.Event()  # abandon the unit being computed
        self._pause_reason: str | None = None
        self._finish_then_pause = False
        self.units_done = 0
        self.state = "connecting"
        self._last_report = 0.0
        self._run_thread: threading.Thread | None = None
        self._upload: threading.Thread | None = None  # the finished unit being submitted
        self._uploads_pending = 0  # computed units whose submit is still running
        self._pending_lock = threading.Lock()
        self._thread_role = threading.local()  # `.background` on the upload thread
        self._ahead: NextUnit | None = None  # the next unit, claimed while this one computes
        self._lease_s: float | None = None  # the run's, read at connecting and with each version
        self._last_compute_s: float | None = None

    # Controls (any thread) ------------------------------------------------------------------
    def pause(self, reason: str = "paused by you") -> None:
        self._pause_reason = reason
        self._abandon.set()
        self._wake.set()

    def resume(self) -> None:
        self._pause_reason = None
        self._finish_then_pause = False
        self._wake.set()

    def finish_current_unit(self) -> None:
        """Finish the unit being computed, then pause."""
        self._finish_then_pause = True
        self._wake.set()

    def stop(self) -> None:
        """Abandon the current unit (its lease is released at once) and make `run` return."""
        self._stop.set()
        self._abandon.set()
        self._wake.set()

    @property
    def worker_id(self) -> int | None:
        return self._worker_id

    # The loop -------------------------------------------------------------------------------
    def run(self) -> int:
        """Work until `stop()` or `max_units`; returns the number of units submitted."""
        threads_before = torch.get_num_threads()
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads_before)

    def _run(self) -> int:
        self._run_thread = threading.current_thread()
        reconnect = Backoff(initial_s=0.5, maximum_s=30.0)
        idle_wait: float | None = None  # the next idle wait; None: the first, once connected
        while not self._stop.is_set():
            if self._pause_reason is not None:
                self._release_ahead()
                self._finish_upload()  # "Paused" comes after the last unit's verdict
                self._emit("state", "paused", f"Paused: {self._pause_reason}")
                self._sleep(3600)
                continue
            images: torch.Tensor | None = None
            heartbeat: Heartbeat | None = None
            try:
                store = self._ensure_connected()
                looked_ahead = self._ahead is not None
                ahead = self._take_ahead()
                if ahead is not None:
                    heartbeat, images = ahead
                elif looked_ahead:
                    # It found nothing while the last unit computed: wait for work to be
                    # announced rather than ask again now, a write that would only compete
                    # with this worker's own upload (the version's last, often).
                    pass
                else:
                    lease = store.claim(self._worker_id_or_fail())
                    heartbeat = None if lease is None else self._start_heartbeat(store, lease)
                reconnect.reset()
            except RunPaused:
                self._emit("state", "paused", "Waiting: the run is paused by its owner")
                self._sleep(IDLE_POLL_MAX_S)
                continue
            except StoreError as exc:  # unreachable, or refused: either way wait and retry
                if not isinstance(exc, DatabaseUnavailable):
                    self._drop_connection()  # refused (e.g. unknown worker): register afresh
                # Unreachable: keep the store and this worker's identity; its pool reconnects.
                delay = reconnect.next_delay()
                self._emit(
                    "error",
                    "error",
                    f"Cannot use the database ({exc}); retrying in {delay:.0f} s",
                )
                self._sleep(delay)
                continue
            if heartbeat is None:
                self._finish_upload()  # nothing else to do meanwhile: let its events arrive
                if self.state != "idle":
                    self._emit("state", "idle", "Waiting: no work right now")
                if idle_wait is None:  # at start-up, or after a unit
                    idle_wait = IDLE_POLL_ANNOUNCED_S if store.announces_work else IDLE_POLL_MIN_S
                self._wait_for_work(store, idle_wait)
                idle_wait = min(IDLE_POLL_MAX_S, idle_wait * 1.5)
                continue
            idle_wait = None
            work_started = time.monotonic()
            self._work(heartbeat, images)
            if self._reached_max_units():
                break
            if self._finish_then_pause:
                self._finish_then_pause = False
                self._pause_reason = "paused after finishing a unit"
            self._rest_after_unit(time.monotonic() - work_started)
        self._release_ahead()
        self._finish_upload()
        self._emit("state", "stopped", "Stopped")
        return self.units_done

    def _claim_ahead(self, store: Store) -> None:
        """Start claiming the next unit now, if this worker is fast and unthrottled."""
        fast = self._last_compute_s is not None and self._last_compute_s < CLAIM_AHEAD_BELOW_S
        if not fast or self.options.after_unit is not None or self._ahead is not None:
            return
        if self._pause_reason is not None or self._finish_then_pause or self._stop.is_set():
            return
        limit = self.options.max_units
        if limit is not None and self.units_done + self._uploads_pending + 1 >= limit:
            return
        fetcher, worker_id = self._fetcher, self._worker_id_or_fail()
        assert fetcher is not None
        self._ahead = NextUnit(
            lambda: store.claim(worker_id),
            lambda lease: fetcher.images(lease.sample_indices),
            lambda lease: self._start_heartbeat(store, lease),
        ).start()

    def _take_ahead(self) -> tuple[Heartbeat, torch.Tensor | None] | None:
        ahead, self._ahead = self._ahead, None
        return None if ahead is None else ahead.take()

    def _release_ahead(self) -> None:
        """Give back a unit claimed ahead (pause, stop, the last unit done)."""
        ahead = self._take_ahead()
        if ahead is None:
            return
        if self._store is None:  # no connection to give it back on: it expires on its own
            ahead[0].stop()
        else:
            self._end_lease(self._store, ahead[0])

    def _start_heartbeat(self, store: Store, lease: Lease) -> Heartbeat:
        """A running heartbeat for a lease just claimed, every lease_s × heartbeat_fraction."""
        assert self._lease_s is not None  # read when connecting
        return Heartbeat(store, lease, self._lease_s * self.options.heartbeat_fraction).start()

    def _end_lease(self, store: Store, heartbeat: Heartbeat) -> None:
        """Stop a unit's heartbeat and give its lease back (unless it is already lost)."""
        heartbeat.stop()
        self._give_back(store, heartbeat.lease, lost=heartbeat.lost)

    def _reached_max_units(self) -> bool:
        """Whether `max_units` submits are done, counting an upload in flight until it ends."""
        limit = self.options.max_units
        if limit is None or self.units_done + self._uploads_pending < limit:
            return False
        self._finish_upload()
        return self.units_done >= limit

    def _rest_after_unit(self, work_s: float) -> None:
        """Rest as long as `options.after_unit` asks; pause, resume and stop cut the rest short."""
        if self.options.after_unit is None:
            return
        rest_s = self.options.after_unit(work_s)
        if rest_s > 0 and self._pause_reason is None and not self._stop.is_set():
            self._emit("state", "idle", f"Resting {rest_s:.1f} s to stay within your usage cap")
            self._sleep(rest_s)

    def _work(self, heartbeat: Heartbeat, images: torch.Tensor | None = None) -> None:
        """Compute one unit, whose lease's heartbeat runs since its claim, and hand it to the
        upload thread; `images` if already fetched."""
        store = self._store
        assert store is not None
        lease = heartbeat.lease
        self._abandon.clear()
        # A lease lost from now on (expired, or its version closed) ends the unit.
        heartbeat.on_lost = self._abandon.set
        if heartbeat.lost:
            self._abandon.set()
        try:
            loaded, images = self._fetch(store, heartbeat, images)
        except DamagedData as exc:  # damage, not a lost connection: say so, and wait
            self._emit("error", "error", f"The run's database holds damaged data: {exc}", lease)
            self._end_lease(store, heartbeat)
            self._report_damage(store, exc)
            self._sleep(DAMAGE_RETRY_S)
            return
        except DatabaseUnavailable as exc:
            self._emit("error", "error", f"Lost the database while fetching data ({exc})", lease)
            self._end_lease(store, heartbeat)
            return
        except StoreError as exc:  # e.g. the version closed and was pruned meanwhile
            self._emit(
                "unit_refused", "idle", f"Unit {lease.unit_index} cannot be computed: {exc}", lease
            )
            self._end_lease(store, heartbeat)
            return
        if heartbeat.every_s != loaded.settings.lease_s * self.options.heartbeat_fraction:
            # This version changed the run's lease_s: beat at the new pace.
            heartbeat.stop()
            heartbeat = self._start_heartbeat(store, heartbeat.lease)
            heartbeat.on_lost = self._abandon.set
        self._claim_ahead(store)
        try:
            result, compute_s = self._compute(lease, loaded, images)
        except UnitCancelled:
            self._end_lease(store, heartbeat)
            return
        self._last_compute_s = compute_s
        payload = encode_tensors(
            {n: g.cpu() for n, g in result.grads.items()}, loaded.settings.precision
        )
        self._finish_upload()  # one upload in flight at most
        self._emit("state", "uploading", f"Uploading unit {lease.unit_index}", lease)
        heartbeat.on_lost = lambda: None  # a lost lease now ends the submit, not the next unit
        with self._pending_lock:
            self._uploads_pending += 1
        self._upload = threading.Thread(
            target=self._upload_unit,
            args=(store, heartbeat, payload, loaded.settings.precision, result, compute_s),
            name="upload",
            daemon=True,
        )
        self._upload.start()

    def _upload_unit(
        self,
        store: Store,
        heartbeat: Heartbeat,
        payload: bytes,
        precision: str,
        result,
        compute_s: float,
    ) -> None:
        """Submit a computed unit (on the upload thread); the heartbeat runs until it is done."""
        self._thread_role.background = True  # its events never change the engine's state
        lease = heartbeat.lease
        try:
            submitted = self._submit(store, heartbeat, payload, precision, result, compute_s)
        finally:
            heartbeat.stop()
        with self._pending_lock:
            self.units_done += int(submitted)
            self._uploads_pending -= 1
        if submitted:
            self._emit(
                "unit_finished",
                "idle",
                f"Finished unit {lease.unit_index} in {compute_s:.1f} s",
                lease,
                images=result.sample_count,
                compute_s=compute_s,
                metrics=result.metrics.as_dict(),
            )

    def _finish_upload(self) -> None:
        """Wait until the unit being uploaded (if any) is submitted or given up."""
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.join()

    def _fetch(
        self, store: Store, heartbeat: Heartbeat, images: torch.Tensor | None
    ) -> tuple[_Version, torch.Tensor]:
        """The unit's model and images (unless fetched ahead); retries a lost database while
        the lease lasts."""
        lease = heartbeat.lease
        retry = Backoff(initial_s=0.2, maximum_s=5.0)
        while True:
            try:
                loaded = self._load_version(store, lease.version)
                assert self._fetcher is not None
                _check_unit(lease, loaded.settings, self._fetcher.dataset_size)
                if images is not None:  # fetched ahead
                    return loaded, images
                self._emit(
                    "state", "downloading", f"Fetching images for unit {lease.unit_index}", lease
                )
                assert self._fetcher is not None
                return loaded, self._fetcher.images(lease.sample_indices)
            except DatabaseUnavailable as exc:
                delay = retry.next_delay()
                if self._stop.is_set() or self._lease_left_s(heartbeat.lease) < delay:
                    raise
                self._emit("error", "downloading", f"Download interrupted ({exc}); retrying", lease)
                self._stop.wait(delay)

    def _compute(self, lease: Lease, loaded: _Version, images: torch.Tensor):
        last_emit = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last_emit
            now = time.monotonic()
            if now - last_emit >= PROGRESS_EVERY_S or done == total:
                last_emit = now
                pct = done / total
                self._emit(
                    "progress",
                    "computing",
                    f"Computing unit {lease.unit_index} — {pct:.0%}",
                    lease,
                    progress=pct,
                )

        self._emit(
            "state", "computing", f"Computing unit {lease.unit_index} — 0%", lease, progress=0.0
        )
        start = time.perf_counter()
        with intra_op_threads(self._threads(loaded.settings)):
            # Gradients or local steps, with the run's micro-batch (never ours to choose).
            result = self._kind_for(loaded.settings).compute(
                loaded.gan,
                images,
                lease.seed,
                loaded.settings,
                progress=progress,
                should_stop=self._abandon.is_set,
            )
        return result, time.perf_counter() - start

    def _submit(
        self,
        store: Store,
        heartbeat: Heartbeat,
        payload: bytes,
        precision: str,
        result,
        compute_s: float,
    ) -> bool:
        retry = Backoff(initial_s=0.2, maximum_s=5.0)
        while True:
            lease = heartbeat.lease  # the newest: a heartbeat may have renewed it meanwhile
            try:
                store.submit(
                    lease,
                    payload,
                    precision,
                    result.sample_count,
                    result.metrics.as_dict(),
                    compute_s,
                )
                return True
            except AlreadySubmitted:
                return True  # an earlier attempt whose answer was lost did go through
            except LeaseLost as exc:
                self._emit(
                    "unit_refused",
                    "idle",
                    f"Result for unit {lease.unit_index} not needed: {exc}",
                    lease,
                )
                return False
            except DatabaseUnavailable as exc:
                # Ambiguous (the commit may have happened): retrying is safe, a stored result
                # answers AlreadySubmitted and is counted once.
                if self._stop.is_set() or self._lease_left_s(lease) < 0:
                    self._emit(
                        "error", "error", f"Could not upload unit {lease.unit_index}: {exc}", lease
                    )
                    return False
                self._emit("error", "uploading", f"Upload interrupted ({exc}); retrying", lease)
                self._stop.wait(retry.next_delay())
            except StoreError as exc:  # refused for another reason: the result cannot count
                self._emit(
                    "unit_refused",
                    "idle",
                    f"Result for unit {lease.unit_index} refused: {exc}",
                    lease,
                )
                return False

    def _give_back(self, store: Store, lease: Lease, *, lost: bool) -> None:
        if lost:
            self._emit(
                "unit_refused",
                "idle",
                f"Unit {lease.unit_index} was reassigned (lease expired or version closed)",
                lease,
            )
            return
        try:
            store.release(lease)
        except StoreError as exc:  # the lease will expire on its own
            log.warning("could not release unit %s: %s", lease.unit_index, exc)
        self._emit("state", "idle", f"Gave unit {lease.unit_index} back", lease)

    def _lease_left_s(self, lease: Lease) -> float:
        """Seconds the lease has left by this process's monotonic clock (never its wall clock,
        which may be hours off the run's)."""
        assert self._lease_s is not None  # read when connecting
        return lease.renewed_at + self._lease_s - time.monotonic()

    def _load_version(self, store: Store, version: int) -> _Version:
        if self._loaded is not None and self._loaded.version == version:
            return self._loaded
        self._emit(
            "state", "downloading", f"Downloading the model of version {version}", version=version
        )
        # The run's settings as of now are read beside the weights download, which is the
        # link's time, not ours: a transaction's round trips hidden (benchmarks.class_sim at
        # 32 volunteers: 0.71-0.74 against 0.66-0.67 read after it; more on a home link).
        beside = ThreadPoolExecutor(1, thread_name_prefix="settings")
        try:
            run = beside.submit(store.get_run)
            # The store checks the weights against their sha256 (DamagedData if they differ).
            weights, _, model_config = store.version_weights(version)
            settings = RunSettings.from_dict(run.result().settings)
        finally:
            beside.shutdown(wait=False)  # a failed download does not wait for the settings
        params, _ = decode_named(weights, MAX_WEIGHTS_BYTES, writable=False)  # copied in
        config = ModelConfig.from_dict(model_config)
        if self._loaded is not None and self._loaded.gan.config == config:
            gan = self._loaded.gan  # same architecture: copy the new weights in place
            load_parameters(gan, params)
        else:
            gan = gan_from_parameters(config, params).to(self.options.device)
        self._loaded = _Version(version, gan, settings)
        self._lease_s = settings.lease_s
        # All of this worker's tensor work, not only the compute, on the unit's thread count
        # (until `run` returns): fetching images, loading weights and encoding the result with
        # the default of one thread per core made them wait on each other's cores while a unit
        # computed beside them (the demo: 40 ms for a 0.5 ms gather; benchmarks.demo_timeline).
        # Threads started from now on (claiming ahead) take the same count.
        torch.set_num_threads(self._threads(settings))
        return self._loaded

    def _threads(self, settings: RunSettings) -> int:
        """Intra-op CPU threads for the run's units: ours if given, else the run's."""
        return self.options.threads or settings.compute_threads

    def _ensure_connected(self) -> Store:
        # Step by step, so a step that failed (database unreachable) is all that is retried.
        if self._store is None:
            self._emit("state", "connecting", "Connecting to the run")
            self._store = self._connect_fn()
        if self._worker_id is None:
            self._worker_id = self._store.register_worker(
                self.options.name, self.options.hostname, str(self.options.device)
            )
        if self._fetcher is None:
            self._fetcher = ShardFetcher(self._store, self._cache)
        if self._lease_s is None:  # a claimed lease's heartbeat needs it before any version
            self._lease_s = RunSettings.from_dict(self._store.get_run().settings).lease_s
        return self._store

    def _drop_connection(self) -> None:
        """Forget the store and this worker's registration; the next claim starts afresh."""
        store, self._store = self._store, None
        self._worker_id = None
        self._fetcher = None
        if store is not None:
            store.dispose()

    def _worker_id_or_fail(self) -> int:
        assert self._worker_id is not None
        return self._worker_id

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _wait_for_work(self, store: Store, seconds: float) -> None:
        """Idle: until the store announces work (PostgreSQL NOTIFY), a control, or `seconds`."""
        # Publish the store before looking at the flag; a control sets the flag before it
        # looks for the store. So either we see its flag, or it ends our wait.
        self._wake.waiting_on = store
        try:
            if not self._wake.is_set():
                store.wait_for_work(seconds)
        finally:
            self._wake.waiting_on = None
        self._wake.clear()

    def _emit(
        self, kind: str, state: str, message: str, lease: Lease | None = None, **extra
    ) -> None:
        if getattr(self._thread_role, "background", False):
            # The upload thread reports what happened to its unit; what the engine is doing
            # now (computing the next unit, say) is the run thread's to say.
            state = "idle" if self.state == "uploading" and kind == "unit_finished" else self.state
        changed = state != self.state
        self.state = state
        if kind != "progress" and threading.current_thread() is self._run_thread:
            self._report_state(state, changed and kind == "state")
        if lease is not None:
            extra.setdefault("version", lease.version)
            extra.setdefault("unit_index", lease.unit_index)
        event = WorkerEvent(kind, state, message, **extra)
        log.debug("%s", event)
        try:
            self._on_event(event)
        except Exception:  # a broken subscriber must not stop the computing
            log.exception("event subscriber failed")

    def _report_damage(self, store: Store, damage: DamagedData) -> None:
        """Show the owner (`workers`, and the coordinator's stall check) what is damaged."""
        if self._worker_id is None:
            return
        try:
            store.touch_worker(
                self._worker_id, f"error: damaged data ({damage.table} row {damage.key})"
            )
        except StoreError as exc:  # only bookkeeping
            log.debug("could not report damage: %s", exc)

    def _report_state(self, state: str, changed: bool) -> None:
        """Tell the admin console what this worker does: on settling states, and every so often."""
        now = time.monotonic()
        settled = state in ("paused", "stopped", "error")
        if self._store is None or self._worker_id is None:
            return
        if not (changed and settled) and now - self._last_report < REPORT_EVERY_S:
            return
        self._last_report = now
        try:
            self._store.touch_worker(self._worker_id, state)
        except StoreError as exc:  # only bookkeeping: computing goes on
            log.debug("could not report state: %s", exc)


def _check_unit(lease: Lease, settings: RunSettings, dataset_size: int) -> None:
    """DamagedData unless the unit's seed and images are the run's plan for its index.

    Both follow from settings fixed at `init` (seed, images_per_work_unit) and the unit's
    index, so this is a stronger check than a stored checksum, and volunteers can make it too.
    """
    plan = plan_unit(settings.seed, dataset_size, settings.images_per_work_unit, lease.unit_index)
    if plan.seed != lease.seed or tuple(plan.sample_indices) != tuple(lease.sample_indices):
        raise DamagedData(
            f"work unit {lease.unit_index} (row {lease.unit_id} of work_units) does not match "
            "the run's plan for it: its stored seed or image list is damaged; the run's "
            "coordinator rewrites it from the plan when it notices",
            "work_units",
            lease.unit_id,
        )
