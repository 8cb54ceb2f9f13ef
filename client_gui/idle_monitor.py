"""Measures idle time every couple of seconds on a background thread and emits the reading."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from client_gui.background import BackgroundRunner
from client_gui.idle import UNKNOWN, IdleProbe, detect_idle_probe

log = logging.getLogger(__name__)

MEASURE_EVERY_MS = 2000


class IdleMonitor(QObject):
    """Emits `idle_measured(seconds or None, method)`; the first reading follows the probe."""

    idle_measured = Signal(object, str)  # float | None, how it was measured

    def __init__(
        self,
        runner: BackgroundRunner,
        detect: Callable[[], IdleProbe] = detect_idle_probe,
        interval_ms: int = MEASURE_EVERY_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._detect = detect
        self._probe: IdleProbe | None = None
        self._busy = False
        self.seconds: float | None = None
        self.method = "measuring…"
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._measure)

    def start(self) -> None:
        self._busy = True
        self._runner.submit(self._detect, self._detected, self._detect_failed)

    def stop(self) -> None:
        self._timer.stop()

    @property
    def known(self) -> bool:
        """Whether this desktop reports idle time (False until the probe found a way)."""
        return self._probe is not None and self._probe.method != UNKNOWN

    def _detected(self, probe: object) -> None:
        assert isinstance(probe, IdleProbe)
        self._probe = probe
        self.method = probe.method
        self._busy = False
        self._timer.start()
        self._measure()

    def _detect_failed(self, error: Exception) -> None:
        log.warning("idle detection failed: %r", error)
        self._detected(IdleProbe(UNKNOWN, lambda: None))

    def _measure(self) -> None:
        probe = self._probe
        if probe is None or self._busy:
            return
        self._busy = True

        def done(seconds: object) -> None:
            self._busy = False
            self.seconds = seconds if isinstance(seconds, float) else None
            self.idle_measured.emit(self.seconds, probe.method)

        def failed(error: Exception) -> None:
            self._busy = False
            log.debug("idle measurement failed: %r", error)
            self.seconds = None
            self.idle_measured.emit(None, probe.method)

        self._runner.submit(probe.measure, done, failed)
