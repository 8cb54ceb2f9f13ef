"""`ganfriends`: the desktop app for volunteers (a gui-script: no console window on Windows)."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import sys
from collections.abc import Sequence

from PySide6.QtCore import QLockFile, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from client_gui.main_window import MainWindow
from client_gui.qt_check import guard_singleton_references
from client_gui.session import AppSession
from client_gui.settings import config_dir
from client_gui.system_libraries import install_hint, missing_window_libraries, say_missing
from core.logs import configure_logging

log = logging.getLogger(__name__)

LOCK_FILE = "ganfriends.lock"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganfriends",
        description="Lend this computer to a shared GAN training run, and watch it learn.",
    )
    parser.add_argument(
        "--minimized",
        action="store_true",
        help="start in the tray without opening the window (used when starting at login)",
    )
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()  # the worker is a spawned child, also in frozen installers
    args = build_parser().parse_args(argv)
    # A gui-script on Windows has no console: sys.stderr is None there.
    configure_logging("ganfriends", verbose=args.verbose, console=sys.stderr is not None)
    guard_singleton_references()  # before any widget: a leaking binding kills us in minutes
    missing = missing_window_libraries()
    if missing:  # Qt would abort naming no package: name them, and the command
        say_missing(install_hint(missing))
        return 1
    app = QApplication(sys.argv[:1])
    app.setApplicationName("ganfriends")
    app.setApplicationDisplayName("ganfriends")
    app.setOrganizationName("ganfriends")
    app.setDesktopFileName("ganfriends")
    _follow_dark_mode_on_windows(app)
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    lock = QLockFile(str(directory / LOCK_FILE))
    lock.setStaleLockTime(0)  # a lock whose process is gone is stale at once
    if not lock.tryLock(100):
        QMessageBox.information(
            None,
            "ganfriends",
            "ganfriends is already running: look for its icon in the tray (or the taskbar).",
        )
        return 1
    window = MainWindow(AppSession())
    window.quit_finished.connect(app.quit)
    app.setQuitOnLastWindowClosed(not window.tray_available)
    # Ctrl-C in a terminal, a logout or `kill` quit cleanly: the unit is given back as with
    # Quit. SIGKILL and crashes are covered by the children themselves (client_gui.child_guard).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.quit())
    wake = QTimer()  # lets Python see the signal while Qt's loop runs
    wake.start(250)
    wake.timeout.connect(lambda: None)
    window.start()
    if not (args.minimized and window.tray_available):
        window.show()
    log.info("ganfriends started")
    code = app.exec()
    lock.unlock()
    return int(code)


def _follow_dark_mode_on_windows(app: QApplication) -> None:
    """Windows 10's native style draws light only: Fusion follows a dark system theme."""
    if sys.platform != "win32":
        return

    def apply(scheme: Qt.ColorScheme) -> None:
        if scheme == Qt.ColorScheme.Dark and app.style().name().lower() == "windowsvista":
            app.setStyle("Fusion")

    hints = app.styleHints()
    apply(hints.colorScheme())
    hints.colorSchemeChanged.connect(apply)


if __name__ == "__main__":
    sys.exit(main())
