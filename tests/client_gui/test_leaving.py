"""Nothing ends a donation without asking: Enter, Try it locally, Connect and Disconnect."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from client_gui.connect_page import EMPTY_CODE
from tests.client_gui.test_window import FakeDemo, wait_connected
from tests.coordinator.harness import make_tiny_run


def donating_locally(qtbot, make_window, fake_workers, tmp_path):
    demo = FakeDemo(make_tiny_run(tmp_path).url)
    window = make_window(local_demo_factory=lambda: demo)
    asked: list[str] = []
    answers: list[bool] = []

    def ask(title: str, question: str) -> bool:
        asked.append(question)
        return answers.pop(0)

    window.ask = ask
    qtbot.mouseClick(window.connect_page.local_button, Qt.MouseButton.LeftButton)
    wait_connected(qtbot, window)
    window.session.start_donating()
    qtbot.waitUntil(lambda: bool(fake_workers.made) and fake_workers.last.alive)
    return window, demo, asked, answers


def still_donating(window, process, demo) -> bool:
    s = window.session
    return (
        s.phase == "connected"
        and s.settings.donating
        and process.alive
        and ("stop", 10.0) not in process.calls
        and demo.alive
    )


def test_enter_in_the_empty_field_and_try_locally_again_keep_donating(
    qtbot, make_window, fake_workers, tmp_path
):
    window, demo, asked, _ = donating_locally(qtbot, make_window, fake_workers, tmp_path)
    process = fake_workers.last
    page = window.connect_page
    window.tabs.setCurrentIndex(0)
    page.code_edit.clear()
    page.code_edit.setFocus()
    qtbot.keyClick(page.code_edit, Qt.Key.Key_Return)
    assert page.message.text() == EMPTY_CODE
    qtbot.mouseClick(page.local_button, Qt.MouseButton.LeftButton)  # runs already
    qtbot.wait(300)
    assert asked == [] and demo.starts == 1
    assert still_donating(window, process, demo)
    assert window.tabs.currentWidget() is window.watch_page


def test_connecting_elsewhere_or_disconnecting_asks_first(
    qtbot, make_window, fake_workers, tmp_path
):
    window, demo, asked, answers = donating_locally(qtbot, make_window, fake_workers, tmp_path)
    process = fake_workers.last
    page = window.connect_page
    other = make_tiny_run(tmp_path / "other")
    page.code_edit.setText(other.url)
    answers.extend([False, False])
    qtbot.keyClick(page.code_edit, Qt.Key.Key_Return)  # Enter with a code: asks
    qtbot.mouseClick(page.disconnect_button, Qt.MouseButton.LeftButton)
    qtbot.wait(300)
    run = window.session.target.run_name
    assert asked == [
        f"This computer is donating to the run “{run}”. Stop donating to “{run}” and "
        "connect to the run in this invite code?",
        f"This computer is donating to the run “{run}”. Stop donating to “{run}” and disconnect?",
    ]
    assert still_donating(window, process, demo)
    answers.append(True)
    qtbot.mouseClick(page.connect_button, Qt.MouseButton.LeftButton)
    wait_connected(qtbot, window)
    assert window.session.target.url == other.url
    assert not process.alive and not demo.alive


def test_the_question_answers_no_to_enter_and_escape(qtbot, make_window):
    window = make_window()
    for key in (Qt.Key.Key_Return, Qt.Key.Key_Escape):
        QTimer.singleShot(200, lambda k=key: qtbot.keyClick(QApplication.activeModalWidget(), k))
        assert window.ask("Stop donating?", "Stop donating and disconnect?") is False
