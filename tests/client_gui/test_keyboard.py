"""After a failed connect the focus is back in the address field; a fresh profile is not told
it could not reconnect."""

from __future__ import annotations

from PySide6.QtCore import Qt


def test_focus_returns_to_the_field_after_a_failed_connect(qtbot, make_window):
    window = make_window()
    notified: list[tuple[str, str, str]] = []
    window.session.notified.connect(lambda *args: notified.append(args))
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    page = window.connect_page
    window.tabs.setCurrentIndex(0)
    page.code_edit.setFocus()
    qtbot.keyClicks(page.code_edit, "gf1-not-a-code")
    qtbot.keyClick(page.code_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.phase == "failed", timeout=5000)
    assert page.code_edit.hasFocus()
    assert page.code_edit.selectedText() == "gf1-not-a-code"  # typing replaces it
    assert notified == []  # nothing was being restored: no "could not reconnect" balloon
