"""The status line shows what the worker did over a second, and the window does not jump."""

from __future__ import annotations

from PySide6.QtCore import QTimer

from client_gui.steady_state import SteadyState
from core.events import WorkerEvent
from tests.client_gui.test_window import paste_and_connect, wait_connected
from tests.coordinator.harness import make_tiny_run


def test_the_state_held_longest_over_the_last_second_is_shown():
    steady = SteadyState("stopped", "Stopped", now=0.0)
    assert steady.record("starting", "Starting the worker…", 0.0)  # leaving a settled state
    assert steady.shown(0.0) == ("starting", "Starting the worker…")
    t = 1.0
    for unit in range(20):  # units of 0.1 s: 0.02 s down, 0.06 s computing, 0.02 s up
        assert not steady.record("downloading", f"Downloading unit {unit}", t)
        assert not steady.record("computing", f"Computing unit {unit} — 0%", t + 0.02)
        assert not steady.record("computing", f"Computing unit {unit} — 50%", t + 0.05)
        assert not steady.record("uploading", f"Uploading unit {unit}", t + 0.08)
        t += 0.1
        assert steady.shown(t)[0] == "computing" or unit < 6  # "starting" fades out first
    assert steady.shown(t) == ("computing", "Computing unit 19 — 50%")
    steady.record("idle", "Waiting: no work right now", t)
    assert steady.shown(t + 0.3)[0] == "computing"  # a short wait between units is no news
    assert steady.shown(t + 0.6) == ("idle", "Waiting: no work right now")
    assert steady.record("paused", "Paused: paused by you", t + 0.7)  # settled: at once
    assert steady.shown(t + 0.7) == ("paused", "Paused: paused by you")


def test_short_units_keep_the_status_line_and_the_tabs_still(
    qtbot, make_window, fake_workers, tmp_path
):
    run = make_tiny_run(tmp_path)
    window = make_window()
    window.show()
    paste_and_connect(qtbot, window, run.url)
    wait_connected(qtbot, window)
    window.session.start_donating()
    qtbot.waitUntil(lambda: bool(fake_workers.made) and fake_workers.last.alive)
    process = fake_workers.last
    process.queued.append(WorkerEvent("state", "computing", "Computing unit 0 — 0%", progress=0.0))
    qtbot.waitUntil(lambda: window.status_label.text().startswith("Computing unit"), timeout=3000)
    qtbot.wait(1200)
    tabs_at = window.tabs.geometry()
    shown: list[str] = []
    moved: list[object] = []
    window.session.status_changed.connect(lambda text, _: shown.append(text))
    steps = iter(range(10_000))

    def unit_step() -> None:  # one 0.1 s unit every 4 ticks of 25 ms
        step = next(steps)
        unit, phase = divmod(step, 4)
        if phase == 0:
            process.queued.append(WorkerEvent("state", "downloading", f"Downloading unit {unit}"))
        elif phase in (1, 2):
            p = 0.5 * (phase - 1)
            message = f"Computing unit {unit} — {p:.0%}"
            process.queued.append(WorkerEvent("progress", "computing", message, progress=p))
        else:
            process.queued.append(WorkerEvent("state", "uploading", f"Uploading unit {unit}"))
        if window.tabs.geometry() != tabs_at:
            moved.append(window.tabs.geometry())

    timer = QTimer()
    timer.timeout.connect(unit_step)
    timer.start(25)
    qtbot.wait(3000)
    timer.stop()
    assert moved == []
    assert 1 <= len(shown) <= 4, shown  # about once a second, not 4 × 10 times
    assert all(text.startswith("Computing unit") for text in shown), shown
