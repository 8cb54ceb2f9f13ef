"""Pause, snooze and the tray agree: nothing to snooze while not donating; the tray wakes it."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.client_gui.test_window import paste_and_connect, wait_connected
from tests.coordinator.harness import make_tiny_run


def test_snooze_only_while_donating_and_the_tray_wakes_it(
    qtbot, make_window, fake_workers, tmp_path
):
    run = make_tiny_run(tmp_path)
    window = make_window()
    paste_and_connect(qtbot, window, run.url)
    wait_connected(qtbot, window)
    page, tray = window.donate_page, window.tray
    assert not any(b.isEnabled() for b in page.snooze_buttons)
    assert "not donating" in page.snooze_buttons[0].toolTip()
    assert not tray.snooze_menu.isEnabled()

    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(fake_workers.made) and fake_workers.last.alive)
    qtbot.waitUntil(lambda: all(b.isEnabled() for b in page.snooze_buttons), timeout=3000)
    assert tray.snooze_menu.isEnabled() and not tray.wake_action.isVisible()
    qtbot.mouseClick(page.snooze_buttons[0], Qt.MouseButton.LeftButton)  # 1 h
    qtbot.waitUntil(lambda: tray.wake_action.isVisible(), timeout=3000)
    assert "snoozed until" in tray.wake_action.text() and not tray.snooze_menu.isEnabled()
    assert page.snooze_label.text().startswith("Snoozed: 1 h left")
    tray.wake_action.trigger()
    assert window.session.settings.snooze_until is None
    assert fake_workers.last.policy.snooze_until is None
    qtbot.waitUntil(lambda: not tray.wake_action.isVisible(), timeout=3000)
