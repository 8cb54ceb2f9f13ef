"""A binding that drops references to None/True/False must not be able to kill the app."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from client_gui.qt_check import BALLAST, binding_leaks_references, guard_singleton_references

CALLS = 20_000  # more than a leaking binding needs to free None in a fresh process (~5,000)


class _Flag(QObject):
    flipped = Signal(bool)


def test_many_void_calls_and_bool_signals_leave_the_singletons_alive(qtbot):
    guard_singleton_references()  # conftest did it already: a second call changes nothing
    label = QLabel()
    flag = _Flag()
    flag.flipped.connect(lambda on: None)
    for i in range(CALLS):
        label.setText("x")
        flag.flipped.emit(i % 2 == 0)
    # Reaching this line is the test: unguarded, a leaking binding aborts the process here.
    if binding_leaks_references() and sys.version_info < (3, 12):
        assert sys.getrefcount(None) > BALLAST // 2
        assert sys.getrefcount(True) > BALLAST // 2
