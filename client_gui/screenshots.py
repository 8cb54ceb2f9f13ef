"""Screenshots of every page during a live local run, under Xvfb (real X11 windows), plus the
app's own figures: event-loop latency, CPU and memory, and Start → first unit.

    python -m client_gui.screenshots [--out docs/screenshots] [--seconds 90] [--friends 1]

Needs Xvfb (Debian/Ubuntu: `sudo apt-get install -y xvfb`; Fedora: `sudo dnf install
xorg-x11-server-Xvfb`) unless --display points at a running X server, and the X11 libraries
Qt's xcb plugin loads (Debian/Ubuntu: `sudo apt-get install -y libxcb-cursor0 libxcb-icccm4
libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0`). Everything it creates
(settings, the demo database, caches, logs) lives in a temporary folder that is removed after.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Qt is imported once the display is set up
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QAbstractButton

XVFB_HELP = (
    "Xvfb is needed for screenshots: install it (Debian/Ubuntu: sudo apt-get install -y xvfb; "
    "Fedora: sudo dnf install xorg-x11-server-Xvfb), or pass --display :0 to use a running X server"
)
XCB_HELP = (
    "install the X11 libraries Qt needs (Debian/Ubuntu: sudo apt-get install -y libxcb-cursor0 "
    "libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0)"
)
SCREEN = "1280x900x24"
WINDOW_SIZE = (1180, 820)
FRIEND_NAMES = ("Grace's desktop", "Alan's laptop", "Katherine's PC")
PROBE_MS = 10  # the latency probe's timer interval


class ScreenshotError(Exception):
    """The screenshots could not be taken; the message says what to do."""


@dataclass
class Figures:
    """What the run measured about the app itself."""

    late_ms: list[float] = field(default_factory=list)  # probe lateness while computing
    late_all_ms: list[float] = field(default_factory=list)  # from Start on, any state
    idle_cpu: float | None = None  # share of one core, connected but not donating
    busy_cpu: float | None = None  # share of one core while donating
    idle_rss_mb: float | None = None
    busy_rss_mb: float | None = None
    first_unit_s: float | None = None
    units: int = 0

    def lines(self) -> list[str]:
        def pct(samples: list[float], q: int) -> str:
            if len(samples) < 2:
                return "—"
            return f"{statistics.quantiles(samples, n=100)[q - 1]:.1f} ms"

        def share(value: float | None) -> str:
            return "—" if value is None else f"{value:.1%} of one core"

        def mb(value: float | None) -> str:
            return "—" if value is None else f"{value:.0f} MB"

        first = "—" if self.first_unit_s is None else f"{self.first_unit_s:.1f} s"
        return [
            f"event-loop latency while a unit computes: p50 {pct(self.late_ms, 50)}, "
            f"p99 {pct(self.late_ms, 99)} ({len(self.late_ms)} ticks of {PROBE_MS} ms); "
            f"from Start on: p99 {pct(self.late_all_ms, 99)}, max "
            f"{max(self.late_all_ms, default=0):.0f} ms",
            f"app CPU: idle {share(self.idle_cpu)}, while donating {share(self.busy_cpu)}",
            f"app memory (RSS): idle {mb(self.idle_rss_mb)}, while donating {mb(self.busy_rss_mb)}",
            f"Start → first unit computing (local mode): {first}; units finished: {self.units}",
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client_gui.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument(
        "--seconds", type=float, default=300.0, help="donate this long first (shapes need minutes)"
    )
    parser.add_argument("--friends", type=int, default=1, help="headless workers beside the app")
    parser.add_argument("--display", help="use this X server instead of starting Xvfb")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="ganfriends-shots-") as folder:
            return _with_display(args, Path(folder))
    except ScreenshotError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2


def _with_display(args: argparse.Namespace, folder: Path) -> int:
    xvfb = None
    display = args.display
    if display is None:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise ScreenshotError(XVFB_HELP)
        display = free_display()
        xvfb = subprocess.Popen(
            [binary, display, "-screen", "0", SCREEN, "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_display(display)
    for name in ("CONFIG", "DATA", "CACHE", "LOG"):
        os.environ[f"GANFRIENDS_{name}_DIR"] = str(folder / name.lower())
    os.environ.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    os.environ.pop("WAYLAND_DISPLAY", None)
    try:
        _check_xcb()
        return _take_screenshots(args)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)


def _check_xcb() -> None:
    """Qt aborts the process when its X11 plugin cannot load: try it in a child first."""
    probe = "from PySide6.QtGui import QGuiApplication; QGuiApplication(['probe'])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ScreenshotError(f"Qt cannot open the X display: {XCB_HELP}")


def free_display() -> str:
    """A display number no X server uses here (":90" to ":199")."""
    for number in range(90, 200):
        if (
            not Path(f"/tmp/.X11-unix/X{number}").exists()
            and not Path(f"/tmp/.X{number}-lock").exists()
        ):
            return f":{number}"
    raise ScreenshotError("no free X display number between :90 and :199")


def wait_for_display(display: str, timeout_s: float = 10.0) -> None:
    """Wait until the X server of `display` accepts connections (its socket exists)."""
    socket_path = Path(f"/tmp/.X11-unix/X{display.lstrip(':')}")
    deadline = time.monotonic() + timeout_s
    while not socket_path.exists():
        if time.monotonic() > deadline:
            raise ScreenshotError(f"Xvfb did not start on {display} within {timeout_s:.0f} s")
        time.sleep(0.1)


def _take_screenshots(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from client_gui.main_window import MainWindow
    from client_gui.qt_check import guard_singleton_references
    from client_gui.session import AppSession

    guard_singleton_references()
    app = QApplication(["ganfriends"])
    app.setApplicationName("ganfriends")
    window = MainWindow(AppSession(read_every_ms=1500))
    session = window.session
    session.update_settings(name="Ada's laptop")
    window.resize(*WINDOW_SIZE)
    window.start()
    window.show()
    figures = Figures()
    friends: list[subprocess.Popen[bytes]] = []
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    clock = QElapsedTimer()
    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_MS)
    started = {"probe": False}

    def tick() -> None:
        late = max(0.0, clock.nsecsElapsed() / 1e6 - PROBE_MS)
        clock.restart()
        if started["probe"]:
            figures.late_all_ms.append(late)
            if session.bridge.state == "computing":
                figures.late_ms.append(late)

    probe.timeout.connect(tick)
    session.unit_finished.connect(lambda _: setattr(figures, "units", figures.units + 1))

    def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise ScreenshotError(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.01)

    def pause(seconds: float) -> None:
        end = time.monotonic() + seconds
        wait_until(lambda: time.monotonic() >= end, seconds + 5, "a pause")

    def shoot(index: int, name: str) -> None:
        window.tabs.setCurrentIndex(index)
        pause(1.0)
        screen = window.screen()
        picture = screen.grabWindow(window.winId())
        path = out / f"{name}.png"
        picture.save(str(path))
        print(f"wrote {path} ({picture.width()}×{picture.height()})")

    try:
        clock.start()
        probe.start()
        press(window.connect_page.local_button)
        wait_until(lambda: session.phase == "connected", 300, "the local demo run")
        wait_until(lambda: bool(session.devices), 120, "device detection")
        pause(3.0)
        cpu_before, at_before = _cpu_s(), time.monotonic()
        pause(10.0)
        figures.idle_cpu = (_cpu_s() - cpu_before) / (time.monotonic() - at_before)
        figures.idle_rss_mb = _rss_mb()
        friends = _start_friends(session.target.url if session.target else "", args.friends)
        started["probe"] = True
        press(window.donate_page.start_button)
        wait_until(lambda: session.first_unit_s is not None, 120, "the first unit")
        figures.first_unit_s = session.first_unit_s
        cpu_before, at_before = _cpu_s(), time.monotonic()
        pause(args.seconds)
        figures.busy_cpu = (_cpu_s() - cpu_before) / (time.monotonic() - at_before)
        figures.busy_rss_mb = _rss_mb()
        wait_until(lambda: window.watch_page.samples.count >= 2, 180, "two sample grids")
        wait_until(lambda: session.bridge.state == "computing", 60, "a unit computing")
        shoot(3, "watch")
        window.watch_page.side_tabs.setCurrentIndex(1)
        shoot(3, "watch_event_log")
        window.watch_page.side_tabs.setCurrentIndex(0)
        shoot(2, "donate")
        shoot(1, "device")
        shoot(0, "connect")
        app.setPalette(_dark_palette())  # what a dark desktop hands the app
        pause(0.5)
        shoot(3, "watch_dark")
        _tray_strip(out / "tray_states.png")
    finally:
        started["probe"] = False
        probe.stop()
        for friend in friends:
            friend.terminate()
        stopped: list[bool] = []
        window.quit_finished.connect(lambda: stopped.append(True))
        window.quit()
        wait_until(lambda: bool(stopped), 60, "the app to stop")
        for friend in friends:
            friend.wait(15)
    for line in figures.lines():
        print(line)
    return 0


def press(button: QAbstractButton) -> None:
    """Press a button the way a person does: focus, then click."""
    button.setFocus()
    button.click()


def _start_friends(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "core.worker_cli", "--db", url, "--threads", "1", "--quiet"]
    return [
        subprocess.Popen([*command, "--name", FRIEND_NAMES[i % len(FRIEND_NAMES)]])
        for i in range(count)
    ]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dark_palette() -> QPalette:
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    roles = QPalette.ColorRole
    for role, color in (
        (roles.Window, "#2b2d30"),
        (roles.WindowText, "#e6e6e6"),
        (roles.Base, "#1e1f22"),
        (roles.AlternateBase, "#26282b"),
        (roles.Text, "#e6e6e6"),
        (roles.Button, "#35373b"),
        (roles.ButtonText, "#e6e6e6"),
        (roles.Highlight, "#3574f0"),
        (roles.HighlightedText, "#ffffff"),
        (roles.ToolTipBase, "#2b2d30"),
        (roles.ToolTipText, "#e6e6e6"),
        (roles.PlaceholderText, "#8c8c8c"),
    ):
        palette.setColor(role, QColor(color))
    return palette


def _tray_strip(path: Path) -> None:
    """The tray icon in each state, side by side with its name."""
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QColor, QPainter, QPixmap

    from client_gui import status
    from client_gui.tray import state_icon

    states = (status.OFF, status.WAITING, status.WORKING, status.PAUSED, status.ERROR)
    cell = 120
    strip = QPixmap(cell * len(states), 110)
    strip.fill(QColor("white"))
    painter = QPainter(strip)
    for i, state in enumerate(states):
        painter.drawPixmap(i * cell + 28, 8, state_icon(state).pixmap(64, 64))
        painter.setPen(QColor("#222222"))
        painter.drawText(QRect(i * cell, 78, cell, 24), Qt.AlignmentFlag.AlignCenter, state)
    painter.end()
    strip.save(str(path))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
