"""How long nobody has touched this computer, measured the way each desktop allows.

Linux X11: the XScreenSaver extension (libXss, through ctypes). Linux Wayland or a text
console: systemd-logind's IdleSinceHint (`loginctl`). Windows: GetLastInputInfo. macOS:
`ioreg -c IOHIDSystem` HIDIdleTime. Where none works, `measure()` gives None and the app
says "idle time unknown here". Every probe may block for a moment (a subprocess), so the app
calls them from a background thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

SUBPROCESS_TIMEOUT_S = 2.0  # a probe that hangs longer is treated as "unknown"
UNKNOWN = "idle time unknown here"


@dataclass(frozen=True)
class IdleProbe:
    """One way of measuring idle time; `measure()` returns seconds, or None when it failed."""

    method: str  # shown to the user: "X11 screen saver extension", …
    measure: Callable[[], float | None]


def detect_idle_probe() -> IdleProbe:
    """The best probe this desktop supports, or one that always answers None."""
    candidates: list[Callable[[], IdleProbe | None]]
    if sys.platform == "win32":
        candidates = [_windows_probe]
    elif sys.platform == "darwin":
        candidates = [_macos_probe]
    elif os.environ.get("WAYLAND_DISPLAY"):
        # XWayland's screen saver extension only sees X clients: logind knows better here.
        candidates = [_logind_probe, _x11_probe]
    else:
        candidates = [_x11_probe, _logind_probe]
    for make in candidates:
        try:
            probe = make()
        except OSError as exc:  # a library or tool that is present but broken
            log.info("idle probe %s unusable: %s", make.__name__, exc)
            continue
        if probe is not None and probe.measure() is not None:
            log.info("measuring idle time with %s", probe.method)
            return probe
    return IdleProbe(UNKNOWN, lambda: None)


def describe_idle(seconds: float | None, method: str) -> str:
    """A one-line readout for the Donate page."""
    if seconds is None:
        return f"Idle time unknown here ({method}): only-when-idle computes anyway"
    return f"Idle for {format_seconds(seconds)} (measured with {method})"


def format_seconds(seconds: float) -> str:
    """'35 s', '4 min 10 s', '2 h 14 min'."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


# X11 ---------------------------------------------------------------------------------------
class _XScreenSaverInfo(ctypes.Structure):
    _fields_ = [
        ("window", ctypes.c_ulong),
        ("state", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("til_or_since", ctypes.c_ulong),
        ("idle", ctypes.c_ulong),  # milliseconds since the last input
        ("event_mask", ctypes.c_ulong),
    ]


def _x11_probe() -> IdleProbe | None:
    if not os.environ.get("DISPLAY"):
        return None
    x11_name = ctypes.util.find_library("X11")
    xss_name = ctypes.util.find_library("Xss")
    if not x11_name or not xss_name:
        return None
    x11 = ctypes.cdll.LoadLibrary(x11_name)
    xss = ctypes.cdll.LoadLibrary(xss_name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(_XScreenSaverInfo)
    xss.XScreenSaverQueryInfo.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(_XScreenSaverInfo),
    ]
    display = x11.XOpenDisplay(None)
    if not display:
        return None
    info = xss.XScreenSaverAllocInfo()
    root = x11.XDefaultRootWindow(display)

    def measure() -> float | None:
        # The display connection stays open for the app's lifetime: one per probe, reused.
        if not xss.XScreenSaverQueryInfo(display, root, info):
            return None
        return float(info.contents.idle) / 1000.0

    return IdleProbe("X11 screen saver extension", measure)


# logind ------------------------------------------------------------------------------------
def _logind_probe() -> IdleProbe | None:
    loginctl = shutil.which("loginctl")
    session = os.environ.get("XDG_SESSION_ID")
    if loginctl is None or not session:
        return None

    def measure() -> float | None:
        output = _run([loginctl, "show-session", session, "-p", "IdleHint", "-p", "IdleSinceHint"])
        return None if output is None else parse_logind(output, time.time())

    return IdleProbe("systemd-logind IdleSinceHint", measure)


def parse_logind(output: str, now: float) -> float | None:
    """Idle seconds from `loginctl show-session -p IdleHint -p IdleSinceHint` output."""
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    hint = values.get("IdleHint")
    if hint == "no":
        return 0.0
    since = values.get("IdleSinceHint", "")
    if hint != "yes" or not since.isdigit() or int(since) == 0:
        return None  # the desktop does not report idleness to logind
    return max(0.0, now - int(since) / 1e6)  # IdleSinceHint is in microseconds


# Windows -----------------------------------------------------------------------------------
class _LastInputInfo(ctypes.Structure):
    _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint)]


def _windows_probe() -> IdleProbe | None:
    user32 = ctypes.windll.user32  # type: ignore[attr-defined]
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    kernel32.GetTickCount.restype = ctypes.c_uint

    def measure() -> float | None:
        info = _LastInputInfo()
        info.cbSize = ctypes.sizeof(info)
        if not user32.GetLastInputInfo(ctypes.byref(info)):
            return None
        # Both tick counts wrap every 49.7 days; the unsigned difference stays right.
        return ((kernel32.GetTickCount() - info.dwTime) & 0xFFFFFFFF) / 1000.0

    return IdleProbe("Windows GetLastInputInfo", measure)


# macOS -------------------------------------------------------------------------------------
_HID_IDLE = re.compile(r'"HIDIdleTime"\s*=\s*(\d+)')


def _macos_probe() -> IdleProbe | None:
    ioreg = shutil.which("ioreg")
    if ioreg is None:
        return None

    def measure() -> float | None:
        output = _run([ioreg, "-c", "IOHIDSystem", "-d", "4"])
        return None if output is None else parse_ioreg(output)

    return IdleProbe("macOS IOHIDSystem HIDIdleTime", measure)


def parse_ioreg(output: str) -> float | None:
    """Idle seconds from `ioreg -c IOHIDSystem` output (HIDIdleTime is in nanoseconds)."""
    match = _HID_IDLE.search(output)
    return None if match is None else int(match.group(1)) / 1e9


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", command[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None
