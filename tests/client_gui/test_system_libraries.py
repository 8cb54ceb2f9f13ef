"""A missing system library is named with the command that installs it, before Qt aborts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from client_gui import app, system_libraries
from client_gui.system_libraries import SONAME_PACKAGES, install_hint, not_found, uses_xcb

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "installers"))
from build_deb import DEPENDS  # the installers are scripts, not a package

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd1b5f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f0c1c800000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-cursor.so.0 => not found
\tlibfoo-unknown.so.3 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1c400000)
"""


def test_ldd_output_gives_each_missing_library_once():
    assert not_found(LDD) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libfoo-unknown.so.3"]
    assert not_found("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def test_the_hint_names_the_apt_command_and_what_it_cannot_map():
    hint = install_hint(not_found(LDD))
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4\n" in hint
    assert "Install the packages that provide libfoo-unknown.so.3." in hint
    assert "docs/install.md" in hint


def test_only_x11_sessions_are_checked():
    assert uses_xcb({})
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})
    assert uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland",
                     "QT_QPA_PLATFORM": "xcb"})  # fmt: skip
    assert system_libraries.missing_window_libraries({"QT_QPA_PLATFORM": "offscreen"}) == []


def test_every_mapped_package_is_a_dependency_of_the_deb():
    alternatives = {name.strip() for entry in DEPENDS for name in entry.split("|")}
    assert set(SONAME_PACKAGES.values()) <= alternatives


def test_the_app_stops_with_the_hint_before_qt_aborts(monkeypatch, caplog):
    monkeypatch.setattr(app, "missing_window_libraries", lambda: ["libxcb-cursor.so.0"])
    monkeypatch.setattr(system_libraries.shutil, "which", lambda name: None)  # no notify-send

    def qt_started(*args: object) -> None:
        raise AssertionError("Qt was started, which would abort with its own message")

    monkeypatch.setattr(app, "QApplication", qt_started)
    with caplog.at_level(logging.ERROR):
        assert app.main([]) == 1
    assert "sudo apt-get install libxcb-cursor0" in caplog.text
