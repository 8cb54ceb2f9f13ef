"""Fixtures for the desktop app's tests: offscreen Qt, private folders, a fake worker process."""

from __future__ import annotations

import os

# Before anything imports Qt: no display is needed, and none is touched.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client_gui.device_probe import DeviceChoice
from client_gui.idle import IdleProbe
from client_gui.main_window import MainWindow
from client_gui.qt_check import guard_singleton_references
from client_gui.session import AppSession
from client_gui.worker_bridge import WorkerConfig
from core.events import WorkerEvent
from core.throttle import DonationPolicy

# The app guards itself in main(); the test process runs the same widgets for minutes.
guard_singleton_references()

CPU_ONLY = [DeviceChoice("cpu", "Test CPU", None, 2, True, "")]


class FakeWorkerProcess:
    """Stands in for core.worker_process.WorkerProcess: records calls, replays queued events."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.calls: list[tuple[str, object]] = []
        self.queued: list[WorkerEvent] = []
        self.policy: DonationPolicy | None = None
        self.idle_s: float | None = None
        self._alive = False

    def start(self) -> None:
        self._alive = True
        self.calls.append(("start", None))

    def pause(self, reason: str) -> None:
        self.calls.append(("pause", reason))

    def resume(self) -> None:
        self.calls.append(("resume", None))

    def finish_current_unit(self) -> None:
        self.calls.append(("finish", None))

    def set_policy(self, policy: DonationPolicy) -> None:
        self.policy = policy
        self.calls.append(("policy", policy))

    def set_idle_seconds(self, seconds: float | None) -> None:
        self.idle_s = seconds

    def poll_events(self, limit: int = 200) -> list[WorkerEvent]:
        events, self.queued = self.queued[:limit], self.queued[limit:]
        return events

    def stop(self, timeout_s: float = 10.0) -> None:
        self.calls.append(("stop", timeout_s))
        self._alive = False

    def die(self) -> None:
        self._alive = False

    @property
    def alive(self) -> bool:
        return self._alive


class FakeWorkers:
    """A factory that remembers every fake it made."""

    def __init__(self) -> None:
        self.made: list[FakeWorkerProcess] = []

    def __call__(self, config: WorkerConfig) -> FakeWorkerProcess:
        process = FakeWorkerProcess(config)
        self.made.append(process)
        return process

    @property
    def last(self) -> FakeWorkerProcess:
        return self.made[-1]


@pytest.fixture(autouse=True)
def private_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, data, cache, logs and autostart entries under tmp_path, never the real ones."""
    for name, folder in (
        ("GANFRIENDS_CONFIG_DIR", "config"),
        ("GANFRIENDS_DATA_DIR", "data"),
        ("GANFRIENDS_CACHE_DIR", "cache"),
        ("GANFRIENDS_LOG_DIR", "logs"),
        ("XDG_CONFIG_HOME", "xdg"),
    ):
        monkeypatch.setenv(name, str(tmp_path / folder))
    return tmp_path


@pytest.fixture
def fake_workers() -> FakeWorkers:
    return FakeWorkers()


def idle_probe(seconds: float | None = 0.0) -> Callable[[], IdleProbe]:
    return lambda: IdleProbe("test clock", lambda: seconds)


@pytest.fixture
def make_window(qtbot, fake_workers: FakeWorkers) -> Iterator[Callable[..., MainWindow]]:
    """Builds windows on a session with fakes (a worker factory, idle probe, CPU only)."""
    made: list[MainWindow] = []

    def make(**session_args: object) -> MainWindow:
        session_args.setdefault("worker_factory", fake_workers)
        session_args.setdefault("detect_idle", idle_probe(5.0))
        session_args.setdefault("find_devices", lambda: CPU_ONLY)
        window = MainWindow(AppSession(**session_args), tray_available=False)  # type: ignore[arg-type]
        qtbot.addWidget(window)
        window.start()
        made.append(window)
        return window

    yield make
    for window in made:
        window.session.shutdown()
        window.session.runner.wait(20_000)
