"""Reads the run from the database every few seconds on a background thread; emits plain data."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from client_gui.background import BackgroundRunner
from client_gui.run_state import RunReader, RunSnapshot
from core.store import StoreError

log = logging.getLogger(__name__)

READ_EVERY_MS = 3000  # how often the run is read: the coordinator publishes every few seconds
READ_HIDDEN_EVERY_MS = 30_000  # while the window is hidden: the tray needs little


class RunWatcher(QObject):
    """Emits `snapshot_read` with what is new in the run, or `read_failed` with why not.

    One read at a time: when a read is still running at the next tick, that tick is skipped,
    so a slow database never piles up threads.
    """

    snapshot_read = Signal(object)  # RunSnapshot
    read_failed = Signal(str)

    def __init__(
        self,
        runner: BackgroundRunner,
        interval_ms: int = READ_EVERY_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._reader: RunReader | None = None
        self._busy = False
        self._generation = 0  # answers from a previous run's reader are dropped
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.read_now)

    def watch(self, url: str) -> None:
        """Start reading the run at `url` (replacing any run watched before)."""
        self.stop()
        self._reader = RunReader(url)
        self._timer.start()
        self.read_now()

    def set_interval(self, interval_ms: int) -> None:
        """Read this often from now on (a shorter interval reads at once)."""
        sooner = interval_ms < self._timer.interval()
        self._timer.setInterval(interval_ms)
        if sooner:
            self.read_now()

    def stop(self) -> None:
        self._timer.stop()
        self._generation += 1
        reader, self._reader = self._reader, None
        if reader is not None:
            self._runner.submit(reader.close)
        self._busy = False

    @property
    def watching(self) -> bool:
        return self._reader is not None

    def read_now(self) -> None:
        reader = self._reader
        if reader is None or self._busy:
            return
        self._busy = True
        generation = self._generation

        def done(snapshot: object) -> None:
            if generation != self._generation:
                return
            self._busy = False
            assert isinstance(snapshot, RunSnapshot)
            self.snapshot_read.emit(snapshot)

        def failed(error: Exception) -> None:
            if generation != self._generation:
                return
            self._busy = False
            if not isinstance(error, StoreError):
                log.error("reading the run failed: %r", error)
            self.read_failed.emit(str(error))

        self._runner.submit(reader.read, done, failed)
