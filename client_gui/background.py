"""Blocking calls (database, subprocesses, joins) on a thread pool, answered on the GUI thread."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)


class _JobSignals(QObject):
    finished = Signal(int, object)  # job id, result
    failed = Signal(int, object)  # job id, the exception


class _Job(QRunnable):
    def __init__(self, job_id: int, fn: Callable[[], Any], signals: _JobSignals) -> None:
        super().__init__()
        self._job_id = job_id
        self._fn = fn
        self._signals = signals

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:  # handed to the GUI thread, whose callback decides what to say
            log.debug("background job %d failed: %r", self._job_id, exc)
            self._signals.failed.emit(self._job_id, exc)
            return
        self._signals.finished.emit(self._job_id, result)


class BackgroundRunner(QObject):
    """Runs functions on a private thread pool; callbacks run on the GUI thread.

    The GUI thread never waits on the database, torch or a child process: it submits the
    call here and carries on. Exceptions reach `on_failed` (or the log when none is given).
    """

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._signals = _JobSignals()  # lives on the GUI thread: its slots run there
        self._signals.finished.connect(self._finished)
        self._signals.failed.connect(self._failed)
        self._ids = itertools.count(1)
        self._callbacks: dict[
            int, tuple[Callable[[Any], None] | None, Callable[[Exception], None] | None]
        ] = {}

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[Exception], None] | None = None,
    ) -> None:
        """Run `fn()` in the background; then `on_done(result)` or `on_failed(exc)` here."""
        job_id = next(self._ids)
        self._callbacks[job_id] = (on_done, on_failed)
        self._pool.start(_Job(job_id, fn, self._signals))

    @property
    def pending(self) -> int:
        """Jobs submitted whose callbacks have not run yet."""
        return len(self._callbacks)

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the pool is idle (for shutdown and tests); False on timeout."""
        return bool(self._pool.waitForDone(timeout_ms))

    @Slot(int, object)
    def _finished(self, job_id: int, result: object) -> None:
        on_done, _ = self._callbacks.pop(job_id, (None, None))
        if on_done is not None:
            on_done(result)

    @Slot(int, object)
    def _failed(self, job_id: int, error: object) -> None:
        _, on_failed = self._callbacks.pop(job_id, (None, None))
        if on_failed is not None:
            assert isinstance(error, Exception)
            on_failed(error)
        else:
            log.error("background job failed: %r", error)
