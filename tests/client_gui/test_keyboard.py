"""Keyboard: after a failed connect the focus is back in the address field (and a fresh profile
is not told it could not reconnect); Tab visits every control of each page in reading order."""

from __future__ import annotations

import re

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QRadioButton,
    QTabBar,
    QTextEdit,
    QWidget,
)

from client_gui.local_demo import LocalDemoError


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


class BrokenDemo:
    """A local demo whose coordinator cannot start."""

    def ensure_run(self) -> None:
        raise LocalDemoError("the local demo could not create its run: disk full")

    def start(self) -> None:
        raise AssertionError("not reached")

    def stop(self) -> None:
        pass


def test_focus_returns_to_try_it_locally_after_the_demo_failed(qtbot, make_window):
    window = make_window(local_demo_factory=BrokenDemo)
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    page = window.connect_page
    window.tabs.setCurrentIndex(0)
    page.local_button.setFocus()
    qtbot.keyClick(page.local_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.session.phase == "failed", timeout=5000)
    assert "disk full" in page.message.text()
    assert page.local_button.hasFocus()  # Space again tries again


# ------------------------------------------------------------------------ the tab order
INTERACTIVE = (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTabBar,
    QTextEdit,
)


def _outermost(widget: QWidget, page: QWidget) -> bool:
    """Not a part inside a control (a spin box's line edit, a table's scroll bars, a line
    edit's clear button)."""
    parent = widget.parentWidget()
    while parent is not None and parent is not page:
        if isinstance(parent, (*INTERACTIVE, QAbstractScrollArea)):
            return False
        parent = parent.parentWidget()
    return parent is page


def interactive_widgets(page: QWidget) -> list[QWidget]:
    """The controls a volunteer can see on `page`."""
    return [
        w
        for w in page.findChildren(QWidget)
        if isinstance(w, INTERACTIVE) and w.isVisible() and _outermost(w, page)
    ]


def tab_stops(page: QWidget) -> list[QWidget]:
    """What Tab may stop at on `page`, controls or not."""
    return [
        w
        for w in page.findChildren(QWidget)
        if w.isVisible()
        and w.focusPolicy() & Qt.FocusPolicy.TabFocus
        and w.focusProxy() is None
        and _outermost(w, page)
    ]


def tab_chain(page: QWidget) -> list[QWidget]:
    """The page's widgets in the order Tab visits them (the window's focus chain)."""
    chain: list[QWidget] = []
    widget = page.nextInFocusChain()
    while widget is not None and widget is not page and widget not in chain:
        if page.isAncestorOf(widget):
            chain.append(widget)
        widget = widget.nextInFocusChain()
    return chain


def _ancestors(widget: QWidget, page: QWidget) -> list[QWidget]:
    line = [widget]
    while line[-1] is not page:
        parent = line[-1].parentWidget()
        assert parent is not None, f"{widget!r} is not on the page"
        line.append(parent)
    return line


def _rect(widget: QWidget, page: QWidget) -> QRect:
    return QRect(widget.mapTo(page, QPoint(0, 0)), widget.size())


def reads_before(a: QWidget, b: QWidget, page: QWidget) -> bool:
    """Whether `a` comes before `b` reading the page top to bottom, left to right.

    The two are compared as the blocks that hold them side by side (two panes of a splitter,
    two group boxes), so everything in a left pane reads before the pane to its right."""
    line_a, line_b = _ancestors(a, page), _ancestors(b, page)
    common = next(w for w in line_a if w in line_b)
    block_a = line_a[line_a.index(common) - 1]
    block_b = line_b[line_b.index(common) - 1]
    ra, rb = _rect(block_a, page), _rect(block_b, page)
    if ra.bottom() < rb.top():
        return True
    if rb.bottom() < ra.top():
        return False
    return ra.left() < rb.left()


def shown_as(widget: QWidget) -> str:
    text = widget.text() if hasattr(widget, "text") and callable(widget.text) else ""
    return f"{type(widget).__name__}({widget.accessibleName() or text or widget.objectName()!r})"


def check_tab_order(page: QWidget, where: str) -> int:
    controls = interactive_widgets(page)
    assert controls, where
    for widget in controls:
        # An exclusive group of radio buttons is one Tab stop (its checked one); the arrow keys
        # move within it, as everywhere.
        group = widget.group() if isinstance(widget, QAbstractButton) else None
        stops = group.buttons() if group is not None and group.exclusive() else [widget]
        assert any(w.focusPolicy() & Qt.FocusPolicy.TabFocus for w in stops), (
            f"{where}: Tab skips {shown_as(widget)}"
        )
    # Tab stops only where there is something to do, and a screen reader can name it.
    assert [shown_as(w) for w in tab_stops(page) if w not in controls] == [], where
    unnamed = [
        shown_as(w)
        for w in controls
        if not (w.accessibleName() or isinstance(w, (QAbstractButton, QTabBar)))
    ]
    assert unnamed == [], f"{where}: no accessible name"
    chain = [w for w in tab_chain(page) if w in controls]
    assert set(chain) == set(controls), where
    wrong = [
        f"{shown_as(later)} is reached after {shown_as(earlier)} but reads before it"
        for i, earlier in enumerate(chain)
        for later in chain[i + 1 :]
        if reads_before(later, earlier, page)
    ]
    assert wrong == [], f"{where}: " + "; ".join(wrong[:5])
    return len(chain)


def mnemonics(page: QWidget) -> list[str]:
    """The Alt+letter keys of the page's visible buttons, labelled fields and boxes."""
    texts = [w.text() for w in page.findChildren(QAbstractButton) if w.isVisible()]
    texts += [w.text() for w in page.findChildren(QLabel) if w.isVisible() and w.buddy()]
    texts += [w.title() for w in page.findChildren(QGroupBox) if w.isVisible()]
    found = [re.search(r"(?<!&)&([^&])", text.replace("&&", "")) for text in texts]
    return [match.group(1).lower() for match in found if match]


def test_tab_visits_every_control_of_each_page_in_reading_order(qtbot, make_window):
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: bool(window.device_page.findChildren(QRadioButton)), timeout=5000)
    checked = {}
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        page = window.tabs.widget(index)
        qtbot.waitUntil(page.isVisible)
        checked[window.tabs.tabText(index)] = check_tab_order(page, window.tabs.tabText(index))
        keys = mnemonics(page)
        assert len(keys) == len(set(keys)), f"{window.tabs.tabText(index)}: Alt+ twice: {keys}"
    side = window.watch_page.side_tabs
    side.setCurrentIndex(1)  # the event log
    qtbot.waitUntil(window.watch_page.log.isVisible)
    checked["Watch, event log"] = check_tab_order(window.watch_page, "Watch, event log")
    # Every page has its controls (the device choices, the schedule's 7 days, …).
    assert checked["Connect"] >= 3 and checked["Device"] >= 4
    assert checked["Donate"] >= 30 and checked["Watch, event log"] >= 5
