"""Qt adapter over the worker process: polls its events from a timer and emits plain signals."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from client_gui.background import BackgroundRunner
from core.throttle import DonationPolicy

if TYPE_CHECKING:  # importing core.worker loads torch: the GUI process does not need it
    from core.events import WorkerEvent

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 250  # how often events are fetched from the worker process (the status
# line shows a second's summary of them, so a quicker poll would only cost the app CPU)
STOP_TIMEOUT_S = 10.0  # the worker's time to give its unit back before it is killed
_STOPPED = "Stopped: the worker stopped unexpectedly; press Start to try again"
_DEVICE_ERROR = "Cannot compute on"  # core.worker_process: the chosen device is unusable


class WorkerProcessLike(Protocol):
    """What the bridge needs of `core.worker_process.WorkerProcess` (tests pass fakes)."""

    def start(self) -> None: ...
    def pause(self, reason: str) -> None: ...
    def resume(self) -> None: ...
    def finish_current_unit(self) -> None: ...
    def set_policy(self, policy: DonationPolicy) -> None: ...
    def set_idle_seconds(self, seconds: float | None) -> None: ...
    def poll_events(self, limit: int = 200) -> list[WorkerEvent]: ...
    def stop(self, timeout_s: float = 10.0) -> None: ...
    @property
    def alive(self) -> bool: ...


@dataclass(frozen=True)
class WorkerConfig:
    """How to start the worker process."""

    db_url: str
    device: str  # auto | cpu | cuda:N | mps
    threads: int | None  # None: the fair share of this computer's cores
    name: str  # shown on the leaderboard
    cache_dir: Path | None = None  # None: the user cache folder
    log_dir: Path | None = None  # None: the user log folder


def start_worker_process(config: WorkerConfig) -> WorkerProcessLike:
    """The real worker: the core engine in a separate low-priority process."""
    from core.worker_process import WorkerProcess

    return WorkerProcess(
        config.db_url,
        device=config.device,
        threads=config.threads,
        name=config.name,
        cache_dir=config.cache_dir,
        log_dir=config.log_dir,
    )


class WorkerBridge(QObject):
    """Drives one worker process and turns its events into signals on the GUI thread.

    `poll_events` never blocks, so polling runs on a GUI timer; only `stop` (a join) goes
    to the background runner.
    """

    state_changed = Signal(str, str)  # state, message ("computing", "Computing unit 8 — 43%")
    progress_changed = Signal(float, str)  # 0..1 within the unit, message
    unit_finished = Signal(object)  # the WorkerEvent, with images, compute_s and metrics
    connection_lost = Signal(str)  # the worker cannot use the database; it keeps retrying
    worker_stopped = Signal(str)  # the process ended by itself: why
    event_logged = Signal(object)  # every WorkerEvent except progress, for the event log

    def __init__(
        self,
        runner: BackgroundRunner,
        factory: Callable[[WorkerConfig], WorkerProcessLike] = start_worker_process,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._factory = factory
        self._process: WorkerProcessLike | None = None
        self._creating = 0  # generation of the process being made in the background, 0: none
        self._generation = 0
        self._policy = DonationPolicy()
        self._idle_s: float | None = None
        self._pause_reason: str | None = None  # a pause asked for while the process was made
        self._stopping = False
        self._after_stop: list[Callable[[], None]] = []
        self._lost = False
        self.state = "stopped"
        self.message = ""
        self.progress: float | None = None
        self.state_at = time.time()  # epoch seconds of the newest state or progress
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self.poll)

    @property
    def process(self) -> WorkerProcessLike | None:
        """The worker process while it runs (its `pid`, where it has one, is measured)."""
        return self._process

    # Controls ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """A worker process exists (or is being made) and is not being stopped."""
        return (self._process is not None or self._creating != 0) and not self._stopping

    def start(self, config: WorkerConfig) -> None:
        """Make and spawn the worker process; returns at once, events follow."""
        if self.running:
            self.resume()
            return
        if self._stopping:  # the previous process is still stopping: start once it has
            self._after_stop.append(lambda: self.start(config))
            return
        log.info("starting the worker process for %s on %s", config.name, config.device)
        self._generation += 1
        generation = self._creating = self._generation
        self._lost = False
        self._pause_reason = None
        self._set_state("starting", "Starting the worker…")
        # Importing the worker module loads torch (seconds): never on the GUI thread.
        self._runner.submit(
            lambda: self._factory(config),
            lambda process: self._created(generation, process),
            lambda error: self._create_failed(generation, error),
        )

    def _created(self, generation: int, process: WorkerProcessLike) -> None:
        if generation != self._creating:  # shut down while it was being made: never start it
            return
        self._creating = 0
        process.set_policy(self._policy)
        process.set_idle_seconds(self._idle_s)
        if self._pause_reason is not None:
            process.pause(self._pause_reason)
        process.start()
        self._process = process
        self._timer.start()

    def _create_failed(self, generation: int, error: Exception) -> None:
        if generation != self._creating:
            return
        self._creating = 0
        log.error("could not start the worker process: %r", error)
        message = f"Stopped: the worker could not start ({error}); press Start to try again"
        self._set_state("error", message)
        self.worker_stopped.emit(message)

    def pause(self, reason: str) -> None:
        self._pause_reason = reason
        if self._process is not None:
            self._process.pause(reason)

    def resume(self) -> None:
        self._pause_reason = None
        if self._process is not None:
            self._process.resume()

    def finish_current_unit(self) -> None:
        if self._process is not None:
            self._process.finish_current_unit()

    def set_policy(self, policy: DonationPolicy) -> None:
        self._policy = policy
        if self._process is not None:
            self._process.set_policy(policy)

    def set_idle_seconds(self, seconds: float | None) -> None:
        self._idle_s = seconds
        if self._process is not None:
            self._process.set_idle_seconds(seconds)

    def shutdown(self, on_done: Callable[[], None] | None = None) -> None:
        """Stop the worker in the background (its lease is given back); then call `on_done`."""
        done = on_done or (lambda: None)
        if self._creating:
            self._creating = 0  # `_created` will drop the process unstarted
            self._set_state("stopped", "Stopped")
        process = self._process
        if process is None:
            done()
            return
        self._after_stop.append(done)
        if self._stopping:  # a stop is under way: `done` runs when it ends
            return
        self._stopping = True

        def finished(_: object = None) -> None:
            self.poll()  # the last events: "Stopped"
            self._timer.stop()
            self._process = None
            self._stopping = False
            self._set_state("stopped", "Stopped")
            callbacks, self._after_stop = self._after_stop, []
            for callback in callbacks:
                callback()

        self._runner.submit(lambda: process.stop(STOP_TIMEOUT_S), finished, lambda _: finished())

    # Events --------------------------------------------------------------------------------
    def poll(self) -> None:
        """Fetch and dispatch the worker's events (the timer calls this every 250 ms)."""
        process = self._process
        if process is None:
            return
        events = process.poll_events()
        latest_progress: WorkerEvent | None = None
        for event in events:
            if event.kind == "progress" and event.state == self.state:
                latest_progress = event  # many progress events per poll: the newest of a run
                continue
            if latest_progress is not None:  # its state and time still count (steady_state)
                self._progressed(latest_progress)
                latest_progress = None
            if event.kind == "progress":  # the first of a new state: when it began counts
                self._progressed(event)
            else:
                self._dispatch(event)
        if latest_progress is not None:
            self._progressed(latest_progress)
        if not events and self._process is process and not process.alive and not self._stopping:
            # Ended without its own last word: keep the error it reported (a device it cannot
            # use), else say it stopped.
            message = self.message if self.state == "error" else _STOPPED
            self._ended(message)

    def _progressed(self, event: WorkerEvent) -> None:
        self.progress = event.progress
        self._set_state(event.state, event.message, event.at)
        self.progress_changed.emit(event.progress or 0.0, event.message)

    def _ended(self, message: str) -> None:
        self._timer.stop()
        self._process = None
        self._set_state("error", message)
        self.worker_stopped.emit(message)

    def _dispatch(self, event: WorkerEvent) -> None:
        self.event_logged.emit(event)
        if event.kind == "unit_finished":
            self.unit_finished.emit(event)
        dead = self._process is not None and not self._process.alive
        if event.state == "error":
            trouble = event.kind == "error" and not event.message.startswith(_DEVICE_ERROR)
            if trouble and not dead and not self._lost:
                self._lost = True
                self.connection_lost.emit(event.message)
        else:
            self._lost = False
        if event.state == "computing":
            self.progress = event.progress
        elif event.state != "uploading":
            self.progress = None
        self._set_state(event.state, event.message, event.at)
        if event.state == "error" and dead:
            self._ended(event.message)

    def _set_state(self, state: str, message: str, at: float | None = None) -> None:
        self.state_at = time.time() if at is None else at  # when the worker said it
        if (state, message) == (self.state, self.message):
            return
        self.state = state
        self.message = message
        self.state_changed.emit(state, message)
