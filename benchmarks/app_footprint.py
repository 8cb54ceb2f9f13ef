"""The desktop app's own CPU with each page shown, and hidden, during a local donation.

A real window under Xvfb (or --display), the local demo ("Try it locally") served by its
coordinator process, and the app donating to it. For each page in turn, and with the window
hidden, it measures over `--seconds` the CPU of the app's own process (its threads included,
the worker and coordinator processes not), of the worker process and of the local coordinator,
as shares of one core, and prints them against the targets: the app at most 3 % of a core with
any page shown and under 1 % hidden; the coordinator a small fraction of its worker.

    python -m benchmarks.app_footprint [--seconds 15] [--display :0]

Needs Xvfb and the X11 libraries Qt loads (see client_gui/screenshots.py). Everything it
creates lives in a temporary folder that is removed after.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from client_gui import screenshots
from client_gui.usage_meter import process_cpu_s

VISIBLE_TARGET = 0.03  # share of one core with any page shown
HIDDEN_TARGET = 0.01  # share of one core with the window hidden
VIEWS = (  # (name, main tab, Watch side tab or None)
    ("Connect", 0, None),
    ("Device", 1, None),
    ("Donate", 2, None),
    ("Watch: leaderboard", 3, 0),
    ("Watch: event log", 3, 1),
)


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.app_footprint", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measure each view this long")
    parser.add_argument("--display", help="use this X server instead of starting Xvfb")
    parser.add_argument("--only", help="measure only the views whose name starts with this")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ganfriends-footprint-") as folder:
        for name in ("CONFIG", "DATA", "CACHE", "LOG"):
            os.environ[f"GANFRIENDS_{name}_DIR"] = str(Path(folder) / name.lower())
        xvfb = None
        display = args.display
        if display is None:
            binary = shutil.which("Xvfb")
            if binary is None:
                print(f"app_footprint: {screenshots.XVFB_HELP}", file=sys.stderr)
                return 2
            display = screenshots.free_display()
            xvfb = subprocess.Popen(
                [binary, display, "-screen", "0", screenshots.SCREEN, "-nolisten", "tcp"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            screenshots.wait_for_display(display)
        os.environ.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
        os.environ.pop("WAYLAND_DISPLAY", None)
        try:
            return measure(args.seconds, args.only)
        finally:
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait(10)


def measure(seconds: float, only: str | None = None) -> int:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from client_gui.main_window import MainWindow
    from client_gui.qt_check import guard_singleton_references
    from client_gui.session import AppSession

    guard_singleton_references()
    _app = QApplication(["ganfriends"])
    window = MainWindow(AppSession())
    session = window.session
    window.resize(*screenshots.WINDOW_SIZE)
    window.start()
    window.show()

    def run_for(wait_s: float) -> None:
        """The real event loop for `wait_s` (no polling loop of our own to count)."""
        loop = QEventLoop()
        QTimer.singleShot(int(wait_s * 1000), loop.quit)
        loop.exec()

    def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"app_footprint: timed out waiting for {what}")
            run_for(0.2)

    def pids() -> tuple[int | None, int | None]:
        demo = session.demo
        coordinator = demo._process.pid if demo is not None and demo._process else None
        process = session.bridge._process
        worker = getattr(process, "pid", None)
        return worker, coordinator

    rows: list[tuple[str, float, float | None, float | None]] = []
    try:
        screenshots.press(window.connect_page.local_button)
        wait_until(lambda: session.phase == "connected", 600, "the local demo run")
        screenshots.press(window.donate_page.start_button)
        wait_until(lambda: session.first_unit_s is not None, 180, "the first unit")
        wait_until(lambda: window.watch_page.samples.count >= 1, 180, "a sample grid")
        run_for(5.0)
        views: list[tuple[str, Callable[[], None]]] = [
            (name, functools.partial(show, window, tab, side)) for name, tab, side in VIEWS
        ]
        views.append(("hidden", window.hide))
        views = [v for v in views if only is None or v[0].startswith(only)]
        for name, arrange in views:
            arrange()
            run_for(2.0)  # what showing the page costs once is not what it costs to keep
            worker_pid, coordinator_pid = pids()
            before = (own_cpu_s(), process_cpu_s(worker_pid), process_cpu_s(coordinator_pid))
            start = time.monotonic()
            run_for(seconds)
            wall = time.monotonic() - start
            after = (own_cpu_s(), process_cpu_s(worker_pid), process_cpu_s(coordinator_pid))
            shares = [
                None if b is None or a is None else (a - b) / wall
                for b, a in zip(before, after, strict=True)
            ]
            assert shares[0] is not None
            rows.append((name, shares[0], shares[1], shares[2]))
    finally:
        stopped: list[bool] = []
        window.quit_finished.connect(lambda: stopped.append(True))
        window.quit()
        wait_until(lambda: bool(stopped), 60, "the app to stop")
    print(report(rows, seconds))
    return 0


def show(window: object, tab: int, side: int | None) -> None:
    from client_gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    window.show()
    window.tabs.setCurrentIndex(tab)
    if side is not None:
        window.watch_page.side_tabs.setCurrentIndex(side)


def report(rows: Sequence[tuple[str, float, float | None, float | None]], seconds: float) -> str:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:6.1%}"

    lines = [
        f"CPU as a share of one core, {seconds:.0f} s per view, during a local donation",
        f"{'view':<20} {'app':>7} {'target':>7} {'worker':>7} {'coordinator':>12} {'coord÷worker':>13}",
    ]
    for name, app, worker, coordinator in rows:
        target = HIDDEN_TARGET if name == "hidden" else VISIBLE_TARGET
        ratio = "—" if not worker or coordinator is None else f"{coordinator / worker:.2f}"
        mark = "ok" if app <= target else "OVER"
        lines.append(
            f"{name:<20} {pct(app)} {'≤' + format(target, '.0%'):>7} {pct(worker)} "
            f"{pct(coordinator):>12} {ratio:>13}  {mark}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
