"""Idle time: each desktop's readout is parsed right, and a missing method says so."""

from __future__ import annotations

import os

import pytest

from client_gui import idle


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


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X server (Xvfb)")
def test_x11_screen_saver_extension_measures_idle_time():
    probe = idle.detect_idle_probe()
    assert probe.method == "X11 screen saver extension"
    seconds = probe.measure()
    assert seconds is not None and seconds >= 0
