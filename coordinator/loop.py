"""The coordinator loop: validate results, sum them in unit order, close versions, take samples.

All state lives in the database; what is held here (weights, optimizer state, the running sum
of the current version's gradients) is rebuilt from it on start, so a coordinator killed at
any point and restarted continues exactly where the committed state says.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from coordinator import rollback, stall
from coordinator.compaction import BackgroundCompaction
from coordinator.intake import Decoded, HeldResults, ResultIntake
from coordinator.optimizer_state import OptimizerStates
from coordinator.samples import BackgroundSample, Sampled, SampleRenderer
from coordinator.state import encode_weights
from coordinator.verify import Verifier
from coordinator.watchdog import Watchdog
from core.backoff import Backoff
from core.codec import (
    NormTooLarge,
    PayloadError,
    decode_tensors,
    global_norm,
    non_finite,
    payload_bytes,
    sha256_hex,
)
from core.config import RunSettings
from core.model import ModelConfig, parameter_manifest
from core.schedule import plan_unit, plan_version
from core.store import (
    DamagedData,
    DatabaseUnavailable,
    ResultRow,
    RunLock,
    Store,
    StoreError,
    UnitSpec,
    fence,
)
from core.training import AdamState, GradientSum, UnitMetrics
from core.unit_kinds import unit_kind

log = logging.getLogger(__name__)

NORM_HISTORY = 64  # accepted gradient norms remembered for the norm bound
MIN_NORM_HISTORY = 4  # below this many, only the absolute bound applies
ABSOLUTE_MAX_NORM = 1e4  # no honest per-sample-mean gradient of a DCGAN comes near this
CROSSCHECK_RTOL = 5e-2  # two computations of one unit must agree this closely (relative L2)
VALIDATE_BATCH = 32  # results validated per pass (read and decoded in parallel)
# Intra-op threads for the coordinator's tensor math (`serve` and the demo run with this many).
# Its elementwise passes are memory-bound (an Adam step over the 64×64 model: 0.03 s on one
# thread), and a second thread only waits for a core PostgreSQL, workers or another process is
# using: 0.2-0.5 s per step then, measured beside one busy process. Several results are decoded
# at once instead (coordinator/intake.py).
INTRA_OP_THREADS = 1
IDLE_WAIT_S = 0.25  # an idle pass waits this long for a result (a new result ends it at once)
TIDY_EVERY_S = 2.0  # tidy at most this often: each one holds workers' claims and uploads off
TIDY_AFTER_CLOSES = 20  # closes without an idle pass after which tidy runs anyway
RECONNECT_INITIAL_S = 0.5  # first wait after the database was lost (then doubling, with jitter)
RECONNECT_MAX_S = 15.0  # longest wait between attempts to reach a lost database
PARKED_CHECK_S = 1.0  # idle passes look this often for units parked inside a worker's claim
# Leases are expired (and, on SQLite, stamped) at most this often: a busy coordinator passes
# ~30 times a second (the demo), and each expiry pass is a transaction (~1.3 ms, 4 % of a core
# the workers share), one of them between a version's last result and its close.
EXPIRE_EVERY_S = 0.1
LIVE_SETTINGS_S = 1.0  # how stale the verification settings may be (`_settings_now`)


@dataclass(frozen=True)
class Published:
    """Reported after a version closes."""

    version: int  # the version just published
    metrics: UnitMetrics
    images: int  # images whose gradients made the step
    parked: int  # designated units closed without a result
    close_s: float  # last result accepted → new version committed


class Coordinator:
    """Owns one run in one database. Call `step()` repeatedly, or `serve()` until stopped."""

    def __init__(
        self,
        store: Store,
        *,
        on_published: Callable[[Published], None] | None = None,
        on_sampled: Callable[[Sampled], None] | None = None,
        lock: RunLock | None = None,
    ) -> None:
        # Takes the run: every transaction of self.store checks the epoch taken here, so once
        # another coordinator takes over, this one writes nothing more (Superseded).
        self.lock = lock
        self.store = store.take_run(lock)
        self._beat_at = self._advanced_at = self._checked_at = time.monotonic()
        self._expired_at = -math.inf
        self.on_published = on_published or (lambda p: None)
        self.on_sampled = on_sampled or (lambda s: None)
        self._norms: deque[float] = deque(maxlen=NORM_HISTORY)
        self._intake = ResultIntake(store.result_payloads, self._decode)
        weakref.finalize(self, self._intake.closer)
        self._held = HeldResults()  # accepted results decoded before their turn in unit order
        # Ends volunteer sessions holding transactions open (PostgreSQL); own thread, see poll.
        self.watchdog = Watchdog(self.store)
        weakref.finalize(self, self.watchdog.stop)
        # Checkpoints and payload deletes wait for idle passes, out of the close's way.
        self.store.take_over_checkpoints()
        self._closes_since_tidy = 1  # so the first idle pass tidies what an earlier run left
        self._tidied_at = -math.inf
        # Results count only once the run's verification policy lets them (coordinator/verify).
        self._live_settings: tuple[float, RunSettings] | None = None
        self.verifier = Verifier(self.store, self._decode, self._settings_now, self._undo)
        self._reloaded = False  # set when an undo rebuilt the state mid-pass (`step`)
        # Valid results of this pass to accept together (`_accept_pending`): (row, decoded).
        self._accepting: list[tuple[ResultRow, Decoded]] = []
        self._renderer = SampleRenderer(self.store)
        self._samples = BackgroundSample(self._sample)  # beside the closes (coordinator/samples)
        # Beside the loop (coordinator/compaction.py).
        self._compaction = BackgroundCompaction(self.store.compact)
        # The Adam state of each new version, written after its publish (coordinator/optimizer_state).
        self._states = OptimizerStates(
            self.store, lambda result: self._intake.decode_one(result).grads
        )
        self._load()

    # State ----------------------------------------------------------------------------------
    def _load(self) -> None:
        self._samples.wait()  # a sample of a version about to be rolled back is stored first
        try:
            self._load_run()
        except DamagedData as damage:  # the latest weights or optimizer state: go back
            version = rollback.repair(self.store, damage)
            log.warning("damaged state: rolled back to version %d to replay from there", version)
            self._load_run()

    def _load_run(self) -> None:
        run = self.store.get_run()
        self.version = run.version
        self.cursor = run.cursor
        self.dataset_size = run.dataset_size
        self.settings = RunSettings.from_dict(run.settings)
        self.kind = unit_kind(self.settings)  # gradients, or local steps: fixed at init
        self.model_config = ModelConfig.from_dict(run.model_config)
        self.manifest = parameter_manifest(self.model_config)
        self._intake.expect(payload_bytes(self.manifest, self.settings.precision))
        # A state not written yet is rebuilt from the database, as after a kill.
        self.params, self.adam = self._states.load(self.version, self.settings, self.kind)
        self._alert = None if run.alert is None else str(run.alert["kind"])
        self._start_version()

    def _start_version(self, *, published_now: bool = False) -> None:
        """Begin summing the current version's results. A version this coordinator has just
        published has none accepted yet (only its own verdicts accept one): nothing to read."""
        units = [u for u in self.store.version_units(self.version) if u.copy == 0]
        self._designated = sorted(units, key=lambda u: u.unit_index)
        self._sum = GradientSum()
        self._held.clear()
        self._next = 0  # position in _designated up to which results are summed
        self._last_accept_at: float | None = None
        self._progress_at = time.monotonic()  # a version published, or a result accepted
        if not published_now:
            self._advance()

    # The loop -------------------------------------------------------------------------------
    def serve(self, stop: threading.Event, poll_s: float = IDLE_WAIT_S) -> None:
        """Run until `stop` is set; idle passes wait up to `poll_s` seconds for a new result
        (a submit ends the wait at once: NOTIFY on PostgreSQL, the change counter on SQLite).

        A lost database (restart, terminated session, network) or a full disk does not end it:
        it says so once, waits with backoff and jitter, then rebuilds its state from the
        committed database and goes on.
        """
        log.info("coordinator serving version %d", self.version)
        retry = Backoff(initial_s=RECONNECT_INITIAL_S, maximum_s=RECONNECT_MAX_S)
        outage: type[DatabaseUnavailable] | None = None  # what keeps it from working, said once
        while not stop.is_set():
            try:
                if outage is not None:
                    self._load()  # whatever was half done in memory is rebuilt from the database
                busy = self.step()
            except DatabaseUnavailable as exc:
                if type(exc) is not outage:
                    log.warning("%s; waiting, and going on when it works again", exc)
                    outage = type(exc)
                delay = retry.next_delay()
                log.debug("retrying in %.1f s", delay)
                stop.wait(delay)
                continue
            if outage is not None:
                log.warning("the database works again; continuing at version %d", self.version)
                outage = None
            retry.reset()
            if not busy and not stop.is_set():
                try:
                    self.store.wait_for_results(poll_s)
                except DatabaseUnavailable:  # a hint only: the next pass finds out properly
                    stop.wait(poll_s)
        self.finish()

    def finish(self) -> None:
        """Finish what the loop left for later: write the newest version's optimizer state, and
        wait for the sample grid and the compaction running beside it. For the end of `serve`
        or of a `step` loop."""
        try:
            self._states.write()
        except StoreError as exc:  # a restart rebuilds it from the closed version's results
            log.warning("the optimizer state of version %d was not written: %s", self.version, exc)
        try:
            self._samples.wait()  # the sample rendering beside the last closes is stored
        except DatabaseUnavailable as exc:
            log.warning("the last sample grid was not stored: %s", exc)
        self._compaction.wait()

    def step(self) -> bool:
        """One pass: expire leases (at most every EXPIRE_EVERY_S), validate new results, close
        the version if complete.

        Returns whether there was anything to do. A pass with nothing to do after a close
        tidies the database (`Store.tidy`), at most every TIDY_EVERY_S.
        """
        self.watchdog.poll()
        self._samples.check()  # a failed sample's error (a lost database) is handled here
        if time.monotonic() - self._beat_at >= fence.HOLDER_BEAT_S:
            self._beat()
        self._states.write_if_due()
        busy = False
        now = time.monotonic()
        if now - self._expired_at >= EXPIRE_EVERY_S:
            self._expired_at = now
            busy = self.store.expire_leases() > 0
        results = self.store.new_results(VALIDATE_BATCH)
        current = [row.id for row in results if row.version == self.version]
        decoded = dict(zip(current, self._intake.decode_all(current), strict=True))
        self._reloaded = False
        self._accepting = []  # none left by a pass a lost database cut short: they are new still
        for row in results:
            self._validate(row, decoded.get(row.id))
            if self._reloaded:  # a caught volunteer's work was undone: the rest is read anew
                break
        self._accept_pending()
        self.verifier.poll(self.version)
        busy = busy or bool(results)
        if busy or time.monotonic() - self._advanced_at >= PARKED_CHECK_S:
            self._advance()  # idle too: a worker's claim may have parked the missing unit
        if time.monotonic() - self._checked_at >= stall.CHECK_EVERY_S:
            self._check_progress()
        if self._next == len(self._designated):
            self._close()
            self._closes_since_tidy += 1
            busy = True
        # Tidy in an idle pass after a close (not after every result: it vacuums on PostgreSQL,
        # and a result arriving meanwhile would wait), at most every TIDY_EVERY_S: in a run of
        # small fast versions, tidying after each close held the workers' next claims off. A
        # coordinator that is never idle tidies after TIDY_AFTER_CLOSES closes.
        due = time.monotonic() - self._tidied_at >= TIDY_EVERY_S
        if self._closes_since_tidy and (
            (due and not busy) or self._closes_since_tidy >= TIDY_AFTER_CLOSES
        ):
            self.store.tidy(compact=False)
            self._compaction.start()  # beside the loop: seconds after a class's version
            self._closes_since_tidy, self._tidied_at = 0, time.monotonic()
        return busy

    def _beat(self) -> None:
        """Show that this coordinator is alive; take the lock again if its session was lost."""
        if self.lock is not None and not self.lock.held() and not self.lock.acquire():
            log.warning(
                "another process holds %s; this coordinator may be taken over", self.lock.where
            )
        self.store.beat()  # Superseded if another coordinator took over meanwhile
        self._beat_at = time.monotonic()

    def _settings_now(self) -> RunSettings:
        """The run's settings as `set` left them, read at most once a second: the ones that do
        not shape the trajectory (verification) act at once, not only from the next close."""
        now = time.monotonic()
        if self._live_settings is None or now - self._live_settings[0] >= LIVE_SETTINGS_S:
            self._live_settings = (now, RunSettings.from_dict(self.store.get_run().settings))
        return self._live_settings[1]

    def _undo(self, identity: str, reached: list[tuple[int, int]]) -> None:
        """Take a caught volunteer's unchecked results out of the run (`rollback.undo_unchecked`)
        and rebuild the state from the database; the pass reads the rest anew."""
        self._accept_pending()  # what the pass found valid before, as if accepted one by one
        self._states.write()  # the current version is a full state to go back to
        rollback.undo_unchecked(self.store, self.version, identity, reached)
        self._load_run()
        self._reloaded = True

    def _validate(
        self, row: ResultRow, outcome: Decoded | PayloadError | DamagedData | None
    ) -> None:
        """The verdict on one result, given what reading and decoding it gave (None: another
        version). A valid result joins the pass's results to accept together."""
        if any(held.unit_index == row.unit_index for held, _ in self._accepting):
            self._accept_pending()  # another copy of that unit: judge this one as it will stand
        if row.version != self.version or outcome is None:
            self.store.resolve_result(
                row.id, "rejected", f"result for version {row.version}, not {self.version}"
            )
            return
        try:
            if isinstance(outcome, PayloadError | DamagedData):
                raise outcome
            grads, norm, bound = outcome.grads, outcome.norm, self._norm_bound()
            if not norm <= bound:
                raise NormTooLarge(f"global L2 norm {norm:.6g} exceeds the bound {bound:.6g}")
            _check_metrics(row)
        except (PayloadError, DamagedData) as exc:
            log.warning("rejected result %d of unit %d: %s", row.id, row.unit_index, exc)
            self.store.resolve_result(row.id, "rejected", str(exc))
            return
        if self.verifier.takes(row, grads):  # held for, settled by or refused by verification
            return
        self._accepting.append((row, outcome))

    def _accept_pending(self) -> None:
        """Accept the pass's valid results in one transaction of a few statements (a set each
        held a class's close off by 0.3-0.4 s: 32 results arrive together), then count them in
        the order they came. A result whose unit already has an accepted one is settled alone:
        a late copy is compared with it."""
        pending, self._accepting = self._accepting, []
        if not pending:
            return
        accepted = set(self.store.accept_results([row.id for row, _ in pending]))
        for row, outcome in pending:
            if row.id in accepted:
                self._count(row, outcome)
            else:
                self._accept_or_crosscheck(row, outcome)

    def _accept_or_crosscheck(self, row: ResultRow, outcome: Decoded) -> None:
        """A valid result of a unit with an accepted result: a cross-check of it, or, if that
        one was withdrawn meanwhile, the unit's accepted result."""
        with self.store.session():  # one transaction, not two
            accepted = self.store.accepted_result(row.version, row.unit_index)
            first = None if accepted is None else self._read_back(accepted)
            if accepted is None or first is None:
                self.store.resolve_result(row.id, "accepted")
        if accepted is None or first is None:
            self._count(row, outcome)
            return
        self._crosscheck(row, outcome.grads, accepted, first)

    def _count(self, row: ResultRow, outcome: Decoded) -> None:
        """An accepted result: into the sum if it is next in unit order, else held till then."""
        self._norms.append(outcome.norm)
        self._last_accept_at = time.perf_counter()
        self._progress_at = time.monotonic()
        if self._next < len(self._designated):
            unit = self._designated[self._next]
            if unit.unit_index == row.unit_index:  # next in unit order: sum it right away
                metrics = UnitMetrics(row.d_loss, row.g_loss, row.d_real, row.d_fake)
                self._sum.add(outcome.grads, metrics, unit.sample_count)
                self._next += 1
            else:  # its turn comes later: keep it decoded (or re-read it then)
                self._held.keep(row.unit_index, outcome)

    def _crosscheck(
        self,
        row: ResultRow,
        grads: dict[str, torch.Tensor],
        accepted: ResultRow,
        first: dict[str, torch.Tensor],
    ) -> None:
        """A second valid result of a unit: compare it with the first; record disagreement."""
        diff = global_norm({n: grads[n] - first[n] for n in grads})
        scale = max(global_norm(first), 1e-12)
        reason = None
        if diff / scale > CROSSCHECK_RTOL:
            reason = f"disagrees with result {accepted.id} (relative difference {diff / scale:.3g})"
            self.store.add_event(
                "mismatch", f"unit {row.unit_index}: {reason}", row.worker_id, row.version
            )
        self.store.resolve_result(row.id, "crosscheck", reason)

    def _decode(self, payload: bytes) -> dict[str, torch.Tensor]:
        """A result's gradients, checked against the model's manifest and the run's caps."""
        return decode_tensors(
            payload,
            self.manifest,
            precision=self.settings.precision,
            max_bytes=int(self.settings.max_payload_mb * 1024**2),
        )

    def _read_back(self, result: ResultRow) -> dict[str, torch.Tensor] | None:
        """An accepted result's gradients, checked again as stored; None once withdrawn.

        A payload damaged in storage (sha256), or one that no longer decodes to finite values
        within the absolute norm bound, is withdrawn and its unit computed again, instead of
        stopping (and on restart, stopping again) the coordinator.
        """
        try:
            return decode_tensors(
                self.store.result_payload(result.id),
                self.manifest,
                precision=self.settings.precision,
                max_bytes=int(self.settings.max_payload_mb * 1024**2),
                max_norm=ABSOLUTE_MAX_NORM,
            )
        except (PayloadError, DamagedData) as exc:
            log.warning(
                "withdrew accepted result %d of unit %d: %s", result.id, result.unit_index, exc
            )
            self.store.withdraw_result(result.id, f"its stored payload fails a check: {exc}")
            return None

    def _norm_bound(self) -> float:
        """The bound on a result's norm, from the latest accepted ones: those of this pass
        waiting to be accepted together count as accepted already."""
        norms = [*self._norms, *(decoded.norm for _, decoded in self._accepting)][-NORM_HISTORY:]
        if len(norms) < MIN_NORM_HISTORY:
            return ABSOLUTE_MAX_NORM
        return min(ABSOLUTE_MAX_NORM, self.settings.norm_factor * statistics.median(norms))

    def _advance(self) -> None:
        """Add accepted results to the running sum in unit order, as far as they are contiguous."""
        self._advanced_at = time.monotonic()
        parked: set[int] | None = None
        accepted: dict[int, ResultRow] | None = None  # read once a call, not once a unit
        while self._next < len(self._designated):
            unit = self._designated[self._next]
            if accepted is None:
                accepted = {
                    r.unit_index: r
                    for r in self.store.version_results(self.version)
                    if r.status == "accepted"
                }
            result = accepted.get(unit.unit_index)
            if result is None:
                if parked is None:
                    parked = self._parked_units()
                if unit.unit_index not in parked:
                    return
            else:
                held = self._held.take(unit.unit_index)  # decoded and checked at its verdict
                grads = held.grads if held is not None else self._read_back(result)
                if grads is None:  # withdrawn: the unit is computed again
                    return
                metrics = UnitMetrics(result.d_loss, result.g_loss, result.d_real, result.d_fake)
                # The coordinator's sample count, never the worker's claim.
                self._sum.add(grads, metrics, unit.sample_count)
            self._next += 1

    def _check_progress(self) -> None:
        """No silent stall: say what keeps the version from closing (`status`, the app)."""
        self._checked_at = time.monotonic()
        stalled_s = self._checked_at - self._progress_at
        if stalled_s < stall.STALL_S:
            if self._alert is not None:
                self.store.set_alert(None)
                self._alert = None
            return
        problem = stall.diagnose(self.store, self.version, self.settings.lease_s, stalled_s)
        if problem is None:
            return
        if problem.kind == "damage":
            self._repair_units()
            self._load()  # checks the stored weights and optimizer state; rolls back if damaged
            self._progress_at = self._checked_at - stalled_s  # a reload is no progress
        if problem.kind != self._alert:
            log.warning("%s; %s", problem.message, problem.remedy)
        self.store.set_alert(problem.kind, problem.message, problem.remedy)
        self._alert = problem.kind

    def _repair_units(self) -> None:
        """Rewrite this version's units whose stored seed or images differ from the plan."""
        specs = []
        for unit in self._designated:
            plan = plan_unit(
                self.settings.seed,
                self.dataset_size,
                self.settings.images_per_work_unit,
                unit.unit_index,
            )
            specs.append(UnitSpec(plan.unit_index, plan.seed, plan.sample_indices))
        if self.store.repair_units(self.version, specs):
            log.warning("rewrote damaged work units of version %d from the plan", self.version)

    def _publishable(self, params: dict[str, torch.Tensor], adam: AdamState) -> bool:
        """Whether the step's weights and optimizer state are finite; if not, nothing is
        published: the version's results are computed again and the run waits for its owner.
        """
        bad = sorted(non_finite({**params, **adam.to_tensors()}))
        if not bad:
            return True
        message = (
            f"the step from version {self.version} made {len(bad)} tensor(s) non-finite "
            f"(e.g. {bad[0]}); nothing was published and the run is paused"
        )
        log.error("%s", message)
        for result in self.store.version_results(self.version):
            if result.status == "accepted":
                self.store.withdraw_result(result.id, "its version's step was not finite")
        self.store.set_status("paused")
        self.store.set_alert(
            "non_finite",
            message,
            "check lr, beta1, beta2 and eps (ganfriends-coordinator status), fix them with "
            "`set`, then `resume`; or go back with `rollback --to VERSION`",
        )
        self._alert = "non_finite"
        self._start_version()
        return False

    def _parked_units(self) -> set[int]:
        """Units of this version that will never get a result: every copy parked or cancelled."""
        live: set[int] = set()
        parked: set[int] = set()
        for unit in self.store.version_units(self.version):
            (
                parked if unit.status == "parked" else live if unit.status != "cancelled" else set()
            ).add(unit.unit_index)
        return parked - live

    def _close(self) -> None:
        self._states.write()  # of the version closing now, if no pass wrote it yet
        started = time.perf_counter()
        run = self.store.get_run()
        settings = RunSettings.from_dict(run.settings)  # `set` changes apply from here on
        params, adam = self.params, self.adam
        if self._sum.units > 0:
            params, adam = self.kind.apply(
                self.params, self._sum.mean(), self.adam, settings, self.kind.step_lr(settings)
            )
        else:
            self.store.add_event(
                "empty_version",
                f"version {self.version} closed with every unit parked; weights unchanged",
            )
        if not self._publishable(params, adam):
            return
        metrics = self._sum.mean_metrics()
        parked = len(self._designated) - self._sum.units
        new_version = self.version + 1
        weights = encode_weights(
            params,
            self.settings.weights_precision,
            self.model_config,
            new_version,
            self.kind.step_lr(settings),
        )
        units = settings.num_workunits_per_update
        plans = plan_version(
            settings.seed, self.dataset_size, settings.images_per_work_unit, self.cursor, units
        )
        next_units = [UnitSpec(p.unit_index, p.seed, p.sample_indices) for p in plans]
        accepted_at = self._last_accept_at or started
        # Stored with the metrics, so it can only cover the time until the close's own
        # transaction starts; `Published.close_s` below includes the commit.
        close_s = time.perf_counter() - accepted_at
        self.store.publish_version(
            self.version,
            weights=weights,
            weights_sha256=sha256_hex(weights),
            model_config=run.model_config,
            metrics={
                **metrics.as_dict(),
                "images": self._sum.samples,
                "units": self._sum.units,
                "parked_units": parked,
                "close_s": close_s,
            },
            next_units=next_units,
            new_cursor=self.cursor + units,
        )
        committed_s = time.perf_counter() - accepted_at
        images = self._sum.samples
        # Workers compute the new version already; its optimizer state is written in a later
        # pass (optimizer_state.STATE_WRITE_AFTER_S), at the latest before the next close. A
        # kill before that leaves the closed version's accepted results, which `_load`
        # rebuilds the identical state from.
        self._states.published(new_version, params, adam, settings)
        self.version, self.cursor, self.settings = new_version, self.cursor + units, settings
        self.params, self.adam = params, adam
        self._start_version(published_now=True)
        self.on_published(Published(new_version, metrics, images, parked, committed_s))
        if new_version % settings.sample_every == 0:
            self._samples.start(new_version, params)

    # Samples and quality --------------------------------------------------------------------
    def take_sample(self) -> Sampled:
        """Render the sample grid and the quality figure of the current version and store both
        (after the sample in flight beside the closes, if any)."""
        self._samples.wait()
        return self._sample(self.version, self.params)

    def wait_for_samples(self) -> None:
        """Wait until the sample taken beside the closes, if any, is stored."""
        self._samples.wait()

    def _sample(self, version: int, params: Mapping[str, torch.Tensor]) -> Sampled:
        """The sample grid and quality figure of `version` with its weights `params`, stored;
        in the background thread of `BackgroundSample` after a close."""
        sampled = self._renderer.render(
            version, params, self.model_config, self.settings.seed, self.dataset_size
        )
        self.on_sampled(sampled)
        return sampled


def _check_metrics(row: ResultRow) -> None:
    values = (row.d_loss, row.g_loss, row.d_real, row.d_fake)
    if not all(isinstance(v, float) and v == v and abs(v) < 1e6 for v in values):
        raise PayloadError(f"the unit's metrics are not finite numbers: {values}")
