"""The window with a fake worker: connecting, donating controls, restart, tray, keyboard."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

from client_gui import status
from client_gui.settings import load_settings
from core.events import WorkerEvent
from core.invite import Invite, encode_invite
from tests.client_gui.conftest import idle_probe
from tests.coordinator.harness import make_tiny_run


def paste_and_connect(qtbot, window, text: str) -> None:
    window.tabs.setCurrentIndex(0)
    window.connect_page.code_edit.clear()
    qtbot.keyClicks(window.connect_page.code_edit, text)
    qtbot.mouseClick(window.connect_page.connect_button, Qt.MouseButton.LeftButton)


def wait_connected(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.session.phase == "connected", timeout=10_000)


def test_malformed_invite_shows_its_message(qtbot, make_window):
    window = make_window()
    paste_and_connect(qtbot, window, "gf1-this-is-not-a-code")
    qtbot.waitUntil(lambda: window.session.phase == "failed", timeout=5000)
    shown = window.connect_page.message.text()
    assert shown.startswith("This invite code does not work: the invite code is cut short")
    assert window.status_label.text().startswith("Not connected: This invite code")
    assert not window.donate_page.start_button.isEnabled()


def test_unreachable_host_shows_its_message(qtbot, make_window):
    window = make_window()
    code = encode_invite(Invite("127.0.0.1", 1, "run", "volunteer", "secret", "disable"))
    paste_and_connect(qtbot, window, code)
    qtbot.waitUntil(lambda: window.session.phase == "failed", timeout=15_000)
    shown = window.connect_page.message.text()
    assert shown.startswith("Cannot reach the run's server at 127.0.0.1:1/run.")
    assert "secret" not in shown and "secret" not in window.status_label.text()
    assert window.session.status[1] == status.ERROR


def test_connect_start_pause_and_finish(qtbot, make_window, fake_workers, tmp_path):
    run = make_tiny_run(tmp_path)
    window = make_window()
    paste_and_connect(qtbot, window, run.url)
    wait_connected(qtbot, window)
    assert window.tabs.currentWidget() is window.donate_page  # Start is what comes next
    assert window.status_label.text().startswith("Ready: press Start")
    qtbot.mouseClick(window.donate_page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(fake_workers.made), timeout=2000)
    process = fake_workers.last
    qtbot.waitUntil(lambda: process.alive, timeout=2000)
    assert process.config.db_url == run.url and process.config.device == "cpu"
    assert process.idle_s == 5.0
    process.queued.append(WorkerEvent("state", "computing", "Computing unit 0 — 0%", progress=0.0))
    qtbot.waitUntil(lambda: window.status_label.text() == "Computing unit 0 — 0%", timeout=2000)
    assert window.donate_page.finish_button.isEnabled()
    assert window.session.first_unit_s is not None

    qtbot.mouseClick(window.donate_page.finish_button, Qt.MouseButton.LeftButton)
    assert ("finish", None) in process.calls
    qtbot.waitUntil(lambda: "then pausing" in window.status_label.text(), timeout=2000)
    process.queued.append(WorkerEvent("state", "paused", "Paused: paused after finishing a unit"))
    qtbot.waitUntil(lambda: not window.session.settings.donating, timeout=2000)
    assert window.status_label.text().startswith("Paused after finishing the unit")
    assert window.donate_page.start_button.isEnabled()

    qtbot.mouseClick(window.donate_page.start_button, Qt.MouseButton.LeftButton)
    assert process.calls[-1] == ("resume", None)
    qtbot.mouseClick(window.donate_page.pause_button, Qt.MouseButton.LeftButton)
    assert process.calls[-1] == ("pause", "paused by you")
    assert not load_settings().donating


def test_snooze_and_settings_survive_a_restart(qtbot, make_window, fake_workers, tmp_path):
    run = make_tiny_run(tmp_path)
    first = make_window()
    paste_and_connect(qtbot, first, run.url)
    wait_connected(qtbot, first)
    page = first.donate_page
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    page.cap_slider.setValue(4)
    page.idle_check.setChecked(True)
    page.schedule_check.setChecked(True)
    page.day_checks[6].setChecked(False)  # not on Sundays
    first.device_page.threads.setValue(1)
    qtbot.mouseClick(page.snooze_buttons[1], Qt.MouseButton.LeftButton)  # 3 h
    until = first.session.settings.snooze_until
    assert until == pytest.approx(time.time() + 3 * 3600, abs=5)
    qtbot.waitUntil(lambda: first.status_label.text().startswith("Paused: snoozed for 3 h"))
    first.close()  # no tray in this test: closing quits
    qtbot.waitUntil(lambda: not first.session.bridge.running, timeout=5000)

    made_before = len(fake_workers.made)
    second = make_window(detect_idle=idle_probe(1000.0))
    wait_connected(qtbot, second)  # reconnected by itself
    settings = second.session.settings
    assert settings.snooze_until == until and settings.donating
    assert (settings.duty_cycle, settings.idle_only, settings.threads) == (0.4, True, 1)
    assert [day for day, _, _ in settings.schedule] == [0, 1, 2, 3, 4, 5]
    page = second.donate_page
    assert page.cap_slider.value() == 4 and page.idle_check.isChecked()
    assert page.schedule_check.isChecked() and not page.day_checks[6].isChecked()
    assert second.device_page.threads.value() == 1
    assert page.snooze_label.text().startswith("Snoozed: 3 h left")
    # It carried on donating, and the worker was told the snooze straight away.
    qtbot.waitUntil(lambda: len(fake_workers.made) > made_before and fake_workers.last.alive)
    process = fake_workers.last
    assert process.policy.snooze_until == until
    qtbot.waitUntil(lambda: second.status_label.text().startswith("Paused: snoozed for"))
    qtbot.mouseClick(page.cancel_snooze_button, Qt.MouseButton.LeftButton)
    assert process.policy.snooze_until is None and load_settings().snooze_until is None


def test_close_to_tray_is_said_once(qtbot, make_window, monkeypatch):
    window = make_window()
    window.tray_available = True
    said: list[str] = []
    monkeypatch.setattr(window.tray.icon, "showMessage", lambda title, text, *a: said.append(text))
    window.show()
    window.close()
    assert window.isHidden() and not window.quitting
    assert len(said) == 1 and "keeps donating" in said[0]
    assert load_settings().told_close_to_tray
    window.bring_to_front()
    window.close()
    assert len(said) == 1


def test_keyboard_reaches_every_page_and_connects(qtbot, make_window):
    window = make_window()
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    for number, page in enumerate(
        (window.connect_page, window.device_page, window.donate_page, window.watch_page), 1
    ):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_0 + number), Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentWidget() is page
    window.tabs.setCurrentIndex(0)
    window.connect_page.code_edit.setFocus()
    qtbot.keyClicks(window.connect_page.code_edit, "nonsense")
    qtbot.keyClick(window.connect_page.code_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.phase == "failed", timeout=5000)


def test_a_dead_worker_is_reported_and_restarted(
    qtbot, make_window, fake_workers, tmp_path, monkeypatch
):
    monkeypatch.setattr("client_gui.session.RESTART_AFTER_S", (0.2,))
    run = make_tiny_run(tmp_path)
    window = make_window()
    paste_and_connect(qtbot, window, run.url)
    wait_connected(qtbot, window)
    window.session.start_donating()
    qtbot.waitUntil(lambda: bool(fake_workers.made) and fake_workers.last.alive)
    first = fake_workers.last
    notified = []
    window.session.notified.connect(lambda *args: notified.append(args))
    first.die()
    qtbot.waitUntil(lambda: "stopped unexpectedly" in window.status_label.text(), timeout=3000)
    assert notified and notified[0][0] == "worker"
    # Started again: made in the background, then started on the GUI thread.
    qtbot.waitUntil(lambda: len(fake_workers.made) == 2 and fake_workers.last.alive, timeout=3000)


def test_a_run_joined_by_hand_waits_for_start(qtbot, make_window, fake_workers, tmp_path):
    run = make_tiny_run(tmp_path)
    window = make_window()
    window.session.update_settings(donating=True)  # donating to some other run before
    paste_and_connect(qtbot, window, run.url)
    wait_connected(qtbot, window)
    qtbot.wait(200)
    assert fake_workers.made == [] and not window.session.settings.donating
    assert window.status_label.text().startswith("Ready: press Start")


class FakeDemo:
    """A local demo whose coordinator can be made to die."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.alive = False
        self.exit_code: int | None = None
        self.starts = 0

    def ensure_run(self) -> None:
        pass

    def start(self) -> None:
        self.starts += 1
        self.alive = True

    def stop(self) -> None:
        self.alive = False


def test_the_local_coordinator_is_started_again_if_it_dies(qtbot, make_window, tmp_path):
    demo = FakeDemo(make_tiny_run(tmp_path).url)
    window = make_window(local_demo_factory=lambda: demo)
    qtbot.mouseClick(window.connect_page.local_button, Qt.MouseButton.LeftButton)
    wait_connected(qtbot, window)
    assert window.session.target.local and demo.starts == 1
    demo.alive, demo.exit_code = False, -9
    qtbot.waitUntil(lambda: demo.starts == 2, timeout=5000)
    entries = window.watch_page.log.model
    messages = [entries.entry(i).message for i in range(entries.rowCount())]
    assert "The local coordinator stopped (exit code -9); starting it again" in messages
