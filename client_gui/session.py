"""The app's state and what it does, without widgets: connect, donate, watch, remember.

`AppSession` owns the settings, the connection, the local demo, the worker process (through
`WorkerBridge`), the run watcher and the idle monitor, and says what is going on through
signals carrying plain data. Every blocking call goes to the background runner.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from client_gui import status
from client_gui.autostart import AutostartError, set_start_at_login
from client_gui.background import BackgroundRunner
from client_gui.connection import ConnectionProblem, RunTarget, check_connection
from client_gui.device_probe import DeviceChoice, auto_device, probe_devices
from client_gui.event_log import LogEntry, entry_from_run, entry_from_worker, published_entry
from client_gui.idle import IdleProbe, detect_idle_probe
from client_gui.idle_monitor import IdleMonitor
from client_gui.local_demo import LocalDemo, LocalDemoError
from client_gui.run_state import (
    Contribution,
    LeaderboardRow,
    RunSnapshot,
    RunSummary,
    contribution,
    leaderboard,
    summarize_run,
)
from client_gui.run_watcher import READ_EVERY_MS, READ_HIDDEN_EVERY_MS, RunWatcher
from client_gui.settings import (
    AppSettings,
    donation_policy,
    load_settings,
    save_settings,
    settings_path,
)
from client_gui.steady_state import SteadyState
from client_gui.usage_meter import UsageMeter, capped_duty_cycle
from client_gui.worker_bridge import (
    WorkerBridge,
    WorkerConfig,
    WorkerProcessLike,
    start_worker_process,
)
from core.events import Tally, WorkerEvent, units_line, worth_logging
from core.store import Credits, EventRow, MetricsRow, RunRow, WorkerRow, open_store
from core.throttle import MIN_DUTY_CYCLE, DonationPolicy, pause_reason
from core.verification import TrustRecord

log = logging.getLogger(__name__)

TICK_MS = 1000  # the status line and snooze countdown are recomputed this often
RESTART_AFTER_S = (15.0, 60.0, 300.0)  # waits before restarting a worker that died, in turn
DEMO_RESTART_EVERY_S = 30.0  # a local coordinator that died is started again at most this often
_WORKER_FIELDS = ("device", "threads")  # changing these restarts the worker (a name: see _rename)
USAGE_EVERY = 5  # ticks between re-applying the cap and showing the measured share
DUTY_STEP = 0.05  # the worker's duty cycle changes only by this much or more
_POLICY_FIELDS = ("snooze_until", "duty_cycle", "idle_only", "idle_after_s", "schedule")


class AppSession(QObject):
    """Everything the app does, as signals with plain data for the window and the tray."""

    status_changed = Signal(str, str)  # the status line, the tray state
    phase_changed = Signal(str)  # none | checking | starting_local | connected | failed
    connected = Signal(object)  # RunTarget
    connection_failed = Signal(str)  # a plain sentence
    settings_changed = Signal(object)  # AppSettings
    devices_found = Signal(object)  # list[DeviceChoice]
    snapshot_read = Signal(object)  # RunSnapshot
    figures_changed = Signal(object, object, object)  # RunSummary, Contribution, leaderboard
    unit_finished = Signal(object)  # WorkerEvent
    progress_changed = Signal(object)  # 0..1 while a unit computes, else None
    log_added = Signal(object)  # list[LogEntry]
    idle_measured = Signal(object, str)  # seconds or None, method
    notified = Signal(str, str, str)  # kind, title, message: failures worth a notification
    usage_measured = Signal(object, float)  # Usage or None, the worker's duty cycle applied

    def __init__(
        self,
        path: Path | None = None,
        worker_factory: Callable[[WorkerConfig], WorkerProcessLike] = start_worker_process,
        local_demo_factory: Callable[[], LocalDemo] = LocalDemo,
        detect_idle: Callable[[], IdleProbe] = detect_idle_probe,
        find_devices: Callable[[], list[DeviceChoice]] = probe_devices,
        read_every_ms: int | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.path = path or settings_path()
        self.settings = load_settings(self.path)
        self.runner = BackgroundRunner(self)
        self.bridge = WorkerBridge(self.runner, worker_factory, self)
        self._read_every_ms = read_every_ms or READ_EVERY_MS
        self.watcher = RunWatcher(self.runner, self._read_every_ms, parent=self)
        self.idle = IdleMonitor(self.runner, detect_idle, parent=self)
        self._local_demo_factory = local_demo_factory
        self._find_devices = find_devices
        self.phase = "none"
        self.problem: str | None = None
        self.target: RunTarget | None = None
        self.devices: list[DeviceChoice] = []
        self.demo: LocalDemo | None = None
        self.finishing = False
        self.status = ("", status.OFF)
        self.start_pressed_at: float | None = None
        self.first_unit_s: float | None = None  # Start → first unit computing, this session
        self._credits: Credits | None = None  # the run's accepted units of the last hour
        self._metrics: dict[int, MetricsRow] = {}
        self._workers: tuple[WorkerRow, ...] | None = None
        self._run_row: RunRow | None = None
        self._restarts = 0
        self._connect_generation = 0
        self._restoring = False  # reconnecting at launch: a failure deserves a notification
        self._last_read_problem: str | None = None
        self._demo_restarted_at = -DEMO_RESTART_EVERY_S  # monotonic seconds
        self.steady = SteadyState(now=time.time())  # what the status line shows of it
        self._log_pending: list[LogEntry] = []  # shown in the event log at the next tick
        self._units_log: Tally[WorkerEvent] = Tally()  # finished units, a log line a minute
        self._published_log: Tally[EventRow] = Tally()  # published versions, the same
        self._figures_dirty = False  # a new snapshot: figures recomputed at the tick
        self.watched = True  # the window is shown: read the run often

        self.meter = UsageMeter()  # the app, its worker and the local coordinator
        self._duty_applied = self.settings.duty_cycle  # the worker's share after the others'
        self._ticks = 0
        self.bridge.set_policy(self._policy())
        self.bridge.state_changed.connect(self._worker_state)
        self.bridge.progress_changed.connect(self._worker_progress)
        self.bridge.unit_finished.connect(self._unit_finished)
        self.bridge.event_logged.connect(self._worker_logged)
        self.bridge.connection_lost.connect(self._connection_lost)
        self.bridge.worker_stopped.connect(self._worker_stopped)
        self.watcher.snapshot_read.connect(self._snapshot)
        self.watcher.read_failed.connect(self._read_failed)
        self.idle.idle_measured.connect(self._idle)
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)

    # Start-up and shut-down ----------------------------------------------------------------
    def begin(self) -> None:
        """Detect devices and idle time, and reconnect (and donate) as when the app last ran."""
        self._tick.start()
        self.idle.start()
        self.runner.submit(self._find_devices, self._devices_found)
        self.settings_changed.emit(self.settings)
        # Only a connection being restored deserves a "could not reconnect" notification.
        self._restoring = bool(self.settings.local_demo or self.settings.connection)
        if self.settings.local_demo:
            self.try_locally(resume=True)
        elif self.settings.connection:
            self.connect_to(self.settings.connection, resume=True)
        self._refresh()

    def shutdown(self, on_done: Callable[[], None] | None = None) -> None:
        """Stop the worker (its unit is given back) and the local coordinator; then `on_done`."""
        self._tick.stop()
        self.idle.stop()
        self.watcher.stop()
        demo, self.demo = self.demo, None

        def worker_stopped() -> None:
            if demo is None:
                self._finished(on_done)
                return
            self.runner.submit(
                demo.stop, lambda _: self._finished(on_done), lambda _: self._finished(on_done)
            )

        self.bridge.shutdown(worker_stopped)

    def _finished(self, on_done: Callable[[], None] | None) -> None:
        if on_done is not None:
            on_done()

    # Connecting ----------------------------------------------------------------------------
    def connect_to(self, text: str, resume: bool = False) -> None:
        """Check an invite code or database URL in the background and connect to its run.

        With `resume` (the app starting again) donating carries on if it was on; a run joined
        by hand waits for Start.
        """
        self._leave_run()
        if not resume:
            self._update(donating=False)
        self._set_phase("checking")
        generation = self._connect_generation
        self.runner.submit(
            lambda: check_connection(text),
            lambda target: self._connected(generation, target, text),
            lambda error: self._connect_failed(generation, error),
        )

    def try_locally(self, resume: bool = False) -> None:
        """Create (if needed) and serve the demo run on this computer, then connect to it."""
        demo = self.demo or self._local_demo_factory()  # pressed twice: the same coordinator
        self.demo = None
        self._leave_run()
        if not resume:
            self._update(donating=False)
        self._set_phase("starting_local")
        self.demo = demo
        generation = self._connect_generation

        def prepare() -> RunTarget:
            demo.ensure_run()
            demo.start()
            return check_connection(demo.url, local=True)

        self.runner.submit(
            prepare,
            lambda target: self._connected(generation, target, ""),
            lambda error: self._connect_failed(generation, error),
        )

    def leave(self) -> None:
        """Leave the run: stop donating, forget the connection."""
        self._leave_run()
        self._update(connection="", local_demo=False, donating=False)
        self._set_phase("none")
        self.log("Disconnected")

    def _leave_run(self) -> None:
        self._connect_generation += 1
        self.watcher.stop()
        self.bridge.shutdown()
        if self.demo is not None:
            self.runner.submit(self.demo.stop)
            self.demo = None
        self.target = None
        self.finishing = False
        self._metrics.clear()
        self._workers = None
        self._trust: tuple[TrustRecord, ...] = ()  # verification records, as last read
        self._run_row = None
        self._credits = None

    def _connected(self, generation: int, target: object, text: str) -> None:
        if generation != self._connect_generation:
            return  # the volunteer moved on while this was checked
        assert isinstance(target, RunTarget)
        self.target = target
        self.problem = None
        self._restoring = False
        self._update(connection=text, local_demo=target.local)
        paused = " (its owner has paused it for now)" if target.paused else ""
        self.log(f"Connected to the run “{target.run_name}” at {target.shown}{paused}")
        self.watcher.watch(target.url)
        self._set_phase("connected")
        self.connected.emit(target)
        renamed_from = self.settings.renamed_from
        if renamed_from and renamed_from != self.worker_name:  # renamed while away
            self._update(renamed_from="")
            self._rename_in_run(renamed_from, self.worker_name, self._carry_on_donating)
        else:
            self._carry_on_donating()

    def _carry_on_donating(self) -> None:
        if self.settings.donating:  # donating when the app last closed: carry on, snooze kept
            self.start_donating(cancel_snooze=False)

    def _connect_failed(self, generation: int, error: Exception) -> None:
        if generation != self._connect_generation:
            return
        if isinstance(error, ConnectionProblem | LocalDemoError):
            message = str(error)
        else:
            log.error("connecting failed unexpectedly: %r", error)
            message = f"Connecting failed unexpectedly: {error}"
        self.problem = message
        if self.demo is not None:
            self.runner.submit(self.demo.stop)
            self.demo = None
        self.log(message, problem=True)
        self._set_phase("failed")
        self.connection_failed.emit(message)
        if self._restoring:  # nobody is looking at the window at login: say it out loud
            self._restoring = False
            self.notified.emit("connect", "ganfriends could not reconnect", message)

    # Donating ------------------------------------------------------------------------------
    def start_donating(self, cancel_snooze: bool = True) -> None:
        """Start (or resume) computing; pressing Start cancels a running snooze."""
        if self.target is None:
            return
        self.finishing = False
        self._restarts = 0
        if cancel_snooze:
            self._update(donating=True, snooze_until=None)
        else:
            self._update(donating=True)
        self.start_pressed_at = time.monotonic()
        self.first_unit_s = None
        if self.bridge.running:
            self.bridge.resume()
        else:
            self.bridge.start(self._worker_config())
            self.bridge.set_idle_seconds(self.idle.seconds)
        self._refresh()

    def pause_donating(self) -> None:
        self.finishing = False
        self._update(donating=False)
        self.bridge.pause("paused by you")
        self._refresh()

    def finish_current_unit(self) -> None:
        """Finish the unit being computed, then pause."""
        if self.bridge.state in ("downloading", "computing", "uploading"):
            self.finishing = True
            self.bridge.finish_current_unit()
        else:
            self.pause_donating()
        self._refresh()

    def snooze(self, hours: float) -> None:
        until = time.time() + hours * 3600
        self._update(snooze_until=until)
        self.log(f"Snoozed for {hours:g} h (until {time.strftime('%H:%M', time.localtime(until))})")

    def cancel_snooze(self) -> None:
        self._update(snooze_until=None)
        self.log("Snooze cancelled")

    def update_settings(self, **changes: Any) -> None:
        """Change settings from the pages; saved at once and applied to the worker."""
        self._update(**changes)

    def _update(self, **changes: Any) -> None:
        old = self.settings
        new = dataclasses.replace(old, **changes)
        if new == old:
            return
        self.settings = new
        try:
            save_settings(new, self.path)
        except OSError as exc:
            self.log(f"Could not save the settings ({exc}); they last until you quit", problem=True)
        if "start_at_login" in changes and new.start_at_login != old.start_at_login:
            try:
                set_start_at_login(new.start_at_login)
            except AutostartError as exc:
                self.log(str(exc), problem=True)
        if any(getattr(old, f) != getattr(new, f) for f in _POLICY_FIELDS):
            self._duty_applied = capped_duty_cycle(
                new.duty_cycle, self.meter.usage(), MIN_DUTY_CYCLE
            )
            self.bridge.set_policy(self._policy())
        if self.bridge.running and any(getattr(old, f) != getattr(new, f) for f in _WORKER_FIELDS):
            self.log("Restarting the worker with the new device settings")
            config = self._worker_config()
            self.bridge.shutdown(lambda: self._restart_worker(config))
        old_name, new_name = _shown_name(old), _shown_name(new)
        if old_name != new_name:
            self._rename(old_name, new_name)
        self.settings_changed.emit(new)
        self._refresh()

    def _rename(self, old: str, new: str) -> None:
        """A new name for the same volunteer: the run's rows are renamed before the worker
        registers again, so stats, leaderboard and the active count keep one identity."""
        if self.target is None:  # renamed in the run at the next connection
            if not self.settings.renamed_from:
                self._update(renamed_from=old)
            return
        self.log(f"Renaming {old} to {new} in the run")
        config = self._worker_config()
        running = self.bridge.running
        self.bridge.shutdown()  # the worker registers again under the new name afterwards
        self._rename_in_run(old, new, lambda: self._restart_worker(config) if running else None)

    def _rename_in_run(self, old: str, new: str, then: Callable[[], object]) -> None:
        assert self.target is not None
        url, hostname, generation = self.target.url, socket.gethostname(), self._connect_generation

        def rename() -> int:
            store = open_store(url)
            try:
                return store.rename_worker(old, new, hostname)
            finally:
                store.dispose()

        def done(_: object = None) -> None:
            if generation == self._connect_generation:
                then()

        def failed(error: Exception) -> None:
            self.log(f"Could not rename {old} to {new} in the run: {error}", problem=True)
            done()

        self.runner.submit(rename, done, failed)

    def _restart_worker(self, config: WorkerConfig) -> None:
        if self.settings.donating and self.target is not None and not self.bridge.running:
            self.bridge.start(config)

    def _worker_config(self) -> WorkerConfig:
        assert self.target is not None
        device = self.settings.device
        if device == "auto" and self.devices:
            device, _ = auto_device(self.devices)
        threads = self.settings.threads
        if threads is None and self.target.local:
            # The local coordinator shares this computer: the run's own thread count (1 for
            # the demo) leaves it a core, and keeps the demo bitwise like the command-line one.
            threads = self.target.compute_threads
        return WorkerConfig(
            db_url=self.target.url, device=device, threads=threads, name=self.worker_name
        )

    @property
    def worker_name(self) -> str:
        return _shown_name(self.settings)

    # Events --------------------------------------------------------------------------------
    def _worker_state(self, state: str, message: str) -> None:
        if state == "computing" and self.start_pressed_at is not None and self.first_unit_s is None:
            self.first_unit_s = time.monotonic() - self.start_pressed_at
            log.info("first unit computing %.1f s after Start", self.first_unit_s)
        at_once = self.steady.record(state, message, self.bridge.state_at)
        if state == "paused" and self.finishing:
            self.finishing = False
            self._update(donating=False)
        if at_once:  # otherwise the next tick shows what the worker did over that second
            self._refresh()

    def _worker_progress(self, _fraction: float, message: str) -> None:
        self.steady.record(self.bridge.state, message, self.bridge.state_at)

    def _unit_finished(self, event: WorkerEvent) -> None:
        self.unit_finished.emit(event)

    def _worker_logged(self, event: WorkerEvent) -> None:
        """The worker's news for the event log: problems and changes, not every unit's steps."""
        if event.kind == "unit_finished":
            self._units_log.add(event)
        elif worth_logging(event):
            self._log_pending.append(entry_from_worker(event))

    def _connection_lost(self, message: str) -> None:
        self.notified.emit("connection", "ganfriends cannot reach the run", message)

    def _worker_stopped(self, message: str) -> None:
        self.log(message, problem=True)
        self.notified.emit("worker", "ganfriends stopped computing", message)
        if self.settings.donating and self._restarts < len(RESTART_AFTER_S):
            wait_s = RESTART_AFTER_S[self._restarts]
            self._restarts += 1
            self.log(f"Starting the worker again in {wait_s:.0f} s")
            QTimer.singleShot(int(wait_s * 1000), self._restart_after_crash)
        self._refresh()

    def _restart_after_crash(self) -> None:
        if self.settings.donating and self.target is not None and not self.bridge.running:
            self.bridge.start(self._worker_config())

    def _read_failed(self, message: str) -> None:
        if message != self._last_read_problem:  # once per distinct problem, not every read
            self._last_read_problem = message
            self.log(f"Cannot read the run's progress: {message}", problem=True)

    def _snapshot(self, snapshot: object) -> None:
        assert isinstance(snapshot, RunSnapshot)
        if self._last_read_problem is not None:
            self._last_read_problem = None
            self.log("Reading the run's progress again")
        for row in snapshot.metrics:
            self._metrics[row.version] = row
        if snapshot.workers is not None:
            self._workers = snapshot.workers
        if snapshot.trust is not None:
            self._trust = snapshot.trust
        if snapshot.credits is not None:
            self._credits = snapshot.credits
        for event in snapshot.events:
            if event.kind == "published":  # several a second in a demo-sized run
                self._published_log.add(event)
            else:
                self._log_pending.append(entry_from_run(event))
        self.snapshot_read.emit(snapshot)
        self._run_row = snapshot.run
        self._figures_dirty = True
        self._flush()

    def _emit_figures(self) -> None:
        run = self._run_row
        if run is None:
            return
        now = time.time()
        metrics = [self._metrics[v] for v in sorted(self._metrics)]
        summary: RunSummary = summarize_run(run, metrics, self._workers, now)
        mine: Contribution = contribution(
            self._workers, self.worker_name, self._credits, self._trust
        )
        board: list[LeaderboardRow] = leaderboard(self._workers or (), self.worker_name)
        self.figures_changed.emit(summary, mine, board)

    def _devices_found(self, devices: object) -> None:
        assert isinstance(devices, list)
        self.devices = devices
        self.devices_found.emit(devices)
        self._refresh()

    def _idle(self, seconds: object, method: str) -> None:
        value = seconds if isinstance(seconds, float) else None
        self.bridge.set_idle_seconds(value)
        self.idle_measured.emit(value, method)

    def _flush(self) -> None:
        """What piled up since the last tick: log lines and figures, once."""
        now = time.time()
        units = self._units_log.take(now)
        if units:
            at, message = units_line(units)
            self._log_pending.append(LogEntry(at, "This computer", message, False))
        versions = self._published_log.take(now)
        if versions:
            self._log_pending.append(published_entry(versions))
        if self._log_pending:
            entries, self._log_pending = self._log_pending, []
            self.log_added.emit(entries)
        if self._figures_dirty:
            self._figures_dirty = False
            self._emit_figures()

    def set_watched(self, watched: bool) -> None:
        """The window is shown (read the run every few seconds) or hidden (seldom)."""
        self.watched = watched
        self.watcher.set_interval(self._read_every_ms if watched else READ_HIDDEN_EVERY_MS)

    def _policy(self) -> DonationPolicy:
        """The settings' policy, the cap lowered by what the app and its coordinator use."""
        policy = donation_policy(self.settings)
        return dataclasses.replace(policy, duty_cycle=self._duty_applied)

    def _measure_usage(self) -> None:
        """Every tick a sample; every USAGE_EVERY ticks the cap is re-applied and shown."""
        worker_pid = getattr(self.bridge.process, "pid", None)
        coordinator_pid = getattr(self.demo, "pid", None)
        self.meter.sample(time.monotonic(), worker_pid, [os.getpid(), coordinator_pid])
        self._ticks += 1
        if self._ticks % USAGE_EVERY:
            return
        usage = self.meter.usage()
        duty = capped_duty_cycle(self.settings.duty_cycle, usage, MIN_DUTY_CYCLE)
        if abs(duty - self._duty_applied) >= DUTY_STEP:
            self._duty_applied = duty
            self.bridge.set_policy(self._policy())
        self.usage_measured.emit(usage, self._duty_applied)

    def _on_tick(self) -> None:
        self.bridge.poll()  # the worker's latest events count in the second summarised now
        self._measure_usage()
        self._flush()
        snooze = self.settings.snooze_until
        if snooze is not None and snooze <= time.time():
            self._update(snooze_until=None)
            self.log("Snooze over")
        demo = self.demo
        now = time.monotonic()
        if (
            demo is not None
            and self.phase == "connected"
            and not demo.alive
            and now - self._demo_restarted_at > DEMO_RESTART_EVERY_S
        ):
            self._demo_restarted_at = now
            self.log(
                f"The local coordinator stopped (exit code {demo.exit_code}); starting it again",
                problem=True,
            )
            self.runner.submit(demo.start)  # its log is local-coordinator.log in the log folder
        self._refresh()

    # Status --------------------------------------------------------------------------------
    def policy_reason(self) -> str | None:
        """Why the donation policy holds computing back right now (None: it does not)."""
        idle_s = self.idle.seconds if self.idle.known else None
        return pause_reason(donation_policy(self.settings), datetime.now(), idle_s)

    def _refresh(self) -> None:
        worker_state, worker_message = self.steady.shown(time.time())
        inputs = status.StatusInputs(
            phase=self.phase,
            problem=self.problem,
            run_name=self.target.run_name if self.target else None,
            donating=self.settings.donating,
            worker_state=worker_state,
            worker_message=worker_message,
            policy_reason=self.policy_reason() if self.settings.donating else None,
            idle_only=self.settings.idle_only,
            idle_known=self.idle.known,
            finishing=self.finishing,
            device_note=self._device_note(),
        )
        line = status.status_line(inputs)
        self.progress_changed.emit(self.bridge.progress if worker_state == "computing" else None)
        if line != self.status:
            self.status = line
            self.status_changed.emit(*line)

    def _device_note(self) -> str | None:
        if self.settings.device != "auto" or not self.devices:
            return None
        return auto_device(self.devices)[1]

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_changed.emit(phase)
        self._refresh()

    def log(self, message: str, problem: bool = False) -> None:
        """An entry from the app itself in the event log."""
        self._log_pending.append(LogEntry(time.time(), "App", message, problem))
        self._flush()


def _shown_name(settings: AppSettings) -> str:
    """The name on the leaderboard: the one chosen, else this computer's."""
    return settings.name.strip() or socket.gethostname()
