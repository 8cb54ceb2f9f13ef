"""The main window: the status line on top, four pages below, and the tray icon beside it."""

from __future__ import annotations

import logging
import time

import shiboken6
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QHideEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from client_gui import status
from client_gui.connect_page import ConnectPage
from client_gui.connection import RunTarget
from client_gui.device_page import DevicePage
from client_gui.donate_page import DonatePage
from client_gui.session import AppSession
from client_gui.settings import AppSettings
from client_gui.tray import TrayIcon, state_icon
from client_gui.watch_page import WatchPage

log = logging.getLogger(__name__)

CLOSE_TO_TRAY_NOTE = (
    "ganfriends keeps donating in the background: its icon in the tray shows what it does. "
    "Use Quit in the icon's menu (or Ctrl+Q) to stop it."
)
_BUSY = ("downloading", "computing", "uploading")
_TITLES = {
    status.OFF: "not donating",
    status.WORKING: "computing",
    status.WAITING: "waiting for work",
    status.PAUSED: "paused",
    status.ERROR: "needs attention",
}


class MainWindow(QMainWindow):
    """Connect, Device, Donate and Watch pages around one `AppSession`."""

    quit_finished = Signal()  # Quit is done: the worker and the local coordinator have stopped

    def __init__(self, session: AppSession, tray_available: bool | None = None) -> None:
        super().__init__()
        self.session = session
        self.quitting = False
        self.setWindowTitle("ganfriends")
        self.setWindowIcon(state_icon(status.WORKING))
        self.resize(1120, 780)
        self.connect_page = ConnectPage()
        self.device_page = DevicePage()
        self.donate_page = DonatePage()
        self.watch_page = WatchPage()
        self.tabs = QTabWidget()
        for index, (page, title) in enumerate(
            (
                (self.connect_page, "Connect"),
                (self.device_page, "Device"),
                (self.donate_page, "Donate"),
                (self.watch_page, "Watch"),
            )
        ):
            self.tabs.addTab(page, title)
            self.tabs.setTabToolTip(index, f"{title} (Ctrl+{index + 1})")
            QShortcut(QKeySequence(f"Ctrl+{index + 1}"), self, lambda i=index: self._show_tab(i))
        self.status_label = QLabel("Starting…")
        self.status_label.setAccessibleName("Status")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = QFont(self.status_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.status_label.setFont(font)
        # Two lines always: a sentence that wraps or not must not move the tabs below it.
        self.status_label.setMinimumHeight(2 * self.status_label.fontMetrics().lineSpacing())
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumHeight(8)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Progress of the unit being computed")
        keep_room = self.progress.sizePolicy()
        keep_room.setRetainSizeWhenHidden(True)  # appearing must not push the tabs down
        self.progress.setSizePolicy(keep_room)
        self.progress.setVisible(False)
        banner = QFrame()
        banner.setFrameShape(QFrame.Shape.StyledPanel)
        banner_layout = QVBoxLayout(banner)
        banner_layout.addWidget(self.status_label)
        banner_layout.addWidget(self.progress)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(banner)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.tray = TrayIcon(self)
        self.tray_available = self.tray.available if tray_available is None else tray_available
        QShortcut(QKeySequence("Ctrl+Q"), self, self.quit)
        QShortcut(QKeySequence.StandardKey.Close, self, self.close)
        self._wire()
        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self.donate_page.show_snooze)  # runs while shown

    def _wire(self) -> None:
        s = self.session
        self.connect_page.connect_requested.connect(self._connect_requested)
        self.connect_page.local_requested.connect(self._local_requested)
        self.connect_page.disconnect_requested.connect(self._disconnect_requested)
        self.device_page.settings_edited.connect(lambda changes: s.update_settings(**changes))
        self.donate_page.settings_edited.connect(lambda changes: s.update_settings(**changes))
        self.donate_page.start_clicked.connect(s.start_donating)
        self.donate_page.pause_clicked.connect(s.pause_donating)
        self.donate_page.finish_clicked.connect(s.finish_current_unit)
        self.donate_page.snooze_clicked.connect(s.snooze)
        self.donate_page.snooze_cancelled.connect(s.cancel_snooze)
        self.tray.start_requested.connect(s.start_donating)
        self.tray.pause_requested.connect(s.pause_donating)
        self.tray.snooze_requested.connect(s.snooze)
        self.tray.wake_requested.connect(s.cancel_snooze)
        self.tray.open_requested.connect(self.bring_to_front)
        self.tray.quit_requested.connect(self.quit)
        s.status_changed.connect(self._show_status)
        s.progress_changed.connect(self._show_progress)
        s.phase_changed.connect(self._phase_changed)
        s.connected.connect(self._connected)
        s.connection_failed.connect(self.connect_page.show_problem)
        s.settings_changed.connect(self._settings_changed)
        s.devices_found.connect(self.device_page.show_devices)
        s.snapshot_read.connect(self.watch_page.add_snapshot)
        s.figures_changed.connect(self.watch_page.show_figures)
        s.unit_finished.connect(lambda e: self.watch_page.add_own_unit(e.version, e.metrics))
        s.log_added.connect(self.watch_page.log.add)
        s.idle_measured.connect(self.donate_page.show_idle)
        s.usage_measured.connect(self.donate_page.show_usage)
        s.notified.connect(self._notify)
        s.bridge.state_changed.connect(lambda *_: self._update_controls())

    def start(self) -> None:
        """Restore the last session: settings into the pages, reconnect, maybe donate."""
        self.connect_page.set_code(self.session.settings.connection)
        self.session.begin()
        restoring = self.session.settings.connection or self.session.settings.local_demo
        self._show_tab(3 if restoring else 0)

    # Leaving a donation only when asked ----------------------------------------------------
    def _connect_requested(self, text: str) -> None:
        if self._may_stop_donating("connect to the run in this invite code"):
            self.session.connect_to(text)

    def _local_requested(self) -> None:
        target = self.session.target
        if target is not None and target.local and self.session.phase == "connected":
            self._show_tab(3)  # the local demo runs already: nothing to restart
            return
        if self._may_stop_donating("start the local demo on this computer"):
            self.session.try_locally()

    def _disconnect_requested(self) -> None:
        if self._may_stop_donating("disconnect"):
            self.session.leave()

    def _may_stop_donating(self, then: str) -> bool:
        """Ask before a donation in progress ends; True when there is none or they said yes."""
        s = self.session
        if not (s.settings.donating and s.target is not None):
            return True
        run = s.target.run_name
        return self.ask(
            "Stop donating?",
            f"This computer is donating to the run “{run}”. Stop donating to “{run}” and {then}?",
        )

    def ask(self, title: str, question: str) -> bool:
        """A yes/no question whose default (Enter, Escape) is No; tests replace this method."""
        box = QMessageBox(QMessageBox.Icon.Question, title, question, parent=self)
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setEscapeButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    # Session → widgets ---------------------------------------------------------------------
    def _show_status(self, text: str, state: str) -> None:
        self.status_label.setText(text)
        self.setWindowTitle(f"ganfriends ({_TITLES.get(state, state)})")
        self._update_controls()

    def _show_progress(self, fraction: object) -> None:
        if isinstance(fraction, float):
            self.progress.setValue(round(fraction * 100))
            self.progress.setVisible(True)
        else:
            self.progress.setVisible(False)

    def _phase_changed(self, phase: str) -> None:
        self.connect_page.show_phase(phase)
        if phase in ("checking", "starting_local", "none"):
            self.watch_page.clear()
        self._update_controls()

    def _connected(self, target: RunTarget) -> None:
        self.connect_page.show_connected(target)
        if not target.local:
            self.connect_page.set_code(self.session.settings.connection)
        if self.tabs.currentIndex() == 0:  # joined from the Connect page: Start is next
            self._show_tab(2)

    def _settings_changed(self, settings: AppSettings) -> None:
        self.device_page.show_settings(settings)
        self.donate_page.show_settings(settings)
        self._update_controls()

    def _update_controls(self) -> None:
        s = self.session
        connected = s.phase == "connected"
        donating = s.settings.donating and s.bridge.running
        busy = s.steady.shown(time.time())[0] in _BUSY  # not every 0.1 s unit change
        self.donate_page.show_state(connected=connected, donating=donating, busy=busy)
        text, state = s.status
        self.tray.show_status(
            text,
            state,
            can_start=connected and not donating,
            can_pause=connected and (donating or busy),
            snoozed_until=s.settings.snooze_until if s.settings.snoozed() else None,
        )

    def _notify(self, kind: str, title: str, message: str) -> None:
        self.tray.notify(kind, title, message, enabled=self.session.settings.notifications)

    def _show_tab(self, index: int) -> None:
        self.tabs.setCurrentIndex(index)
        self.tabs.currentWidget().setFocus()

    # Window and tray -----------------------------------------------------------------------
    def bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing keeps donating in the tray (said once); without a tray it quits."""
        if self.quitting:
            event.accept()
            return
        if not self.tray_available:
            event.ignore()
            self.quit()
            return
        event.ignore()
        self.hide()
        if not self.session.settings.told_close_to_tray:
            self.tray.icon.showMessage("ganfriends is still running", CLOSE_TO_TRAY_NOTE)
            self.session.update_settings(told_close_to_tray=True)

    def quit(self) -> None:
        """Stop the worker (giving its unit back) and the local coordinator, then exit."""
        if self.quitting:
            return
        self.quitting = True
        self.status_label.setText("Stopping: giving the unit in hand back to the run…")
        self.tray.hide()
        self.session.shutdown(self._finish_quit)

    def _finish_quit(self) -> None:
        # The worker and the local coordinator stop in the background; the window may be gone
        # by then (the app exiting on a signal, a test's teardown): nothing left to close.
        if not shiboken6.isValid(self):
            return
        self.close()
        self.quit_finished.emit()

    def changeEvent(self, event: QEvent) -> None:
        """Follow the system's light or dark palette in the plots too; read the run seldom
        while minimised."""
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.watch_page.plots.apply_palette(self.palette())
        if event.type() == QEvent.Type.WindowStateChange:
            self.session.set_watched(self.isVisible() and not self.isMinimized())
        super().changeEvent(event)

    def showEvent(self, event: QShowEvent) -> None:
        self.session.set_watched(not self.isMinimized())
        self._countdown.start()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self.session.set_watched(False)
        self._countdown.stop()
        super().hideEvent(event)
