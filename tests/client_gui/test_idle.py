"""Idle time: each desktop's readout is parsed right, and a missing method says so."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from client_gui import idle
from client_gui.screenshots import free_display, wait_for_display


def test_logind_idle_since_hint_in_microseconds():
    out = "IdleHint=yes\nIdleSinceHint=1700000000000000\n"
    assert idle.parse_logind(out, now=1_700_000_042.0) == pytest.approx(42.0)
    assert idle.parse_logind("IdleHint=no\nIdleSinceHint=0\n", now=5.0) == 0.0
    # A desktop that never reports idleness to logind: unknown, not "idle for 54 years".
    assert idle.parse_logind("IdleHint=yes\nIdleSinceHint=0\n", now=5.0) is None


def test_ioreg_hid_idle_time_in_nanoseconds():
    out = '    | |   "HIDIdleTime" = 35123456789\n'
    assert idle.parse_ioreg(out) == pytest.approx(35.123456789)
    assert idle.parse_ioreg("nothing here") is None


def test_readout_states_the_fallback():
    assert idle.describe_idle(None, idle.UNKNOWN).startswith("Idle time unknown here")
    assert idle.describe_idle(125.0, "X11") == "Idle for 2 min 5 s (measured with X11)"
    assert idle.format_seconds(8040) == "2 h 14 min"


def test_no_method_gives_a_probe_that_answers_none(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    probe = idle.detect_idle_probe()
    assert probe.method == idle.UNKNOWN
    assert probe.measure() is None


@pytest.fixture
def x_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An X server: the session's own, or an Xvfb started for the test (required under CI)."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        message = "needs an X server: install Xvfb (Debian: apt-get install xvfb)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    display = free_display()
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_display(display)
        monkeypatch.setenv("DISPLAY", display)
        yield display
    finally:
        server.terminate()
        server.wait(10)


def test_x11_screen_saver_extension_measures_idle_time(x_display: str):
    probe = idle.detect_idle_probe()
    assert probe.method == "X11 screen saver extension"
    seconds = probe.measure()
    assert seconds is not None and seconds >= 0
