"""Before Qt opens a window on Linux: name the missing system libraries and how to install them.

Without them Qt aborts with "could not load the Qt platform plugin xcb", which names no
package. `ldd` of the wheel's xcb plugin lists every library the loader cannot find; each is
mapped to its Debian/Ubuntu package, and the app says which command installs them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

LDD_TIMEOUT_S = 10.0
INSTALL_DOC = "the Linux section of docs/install.md"
# The libraries the wheel's Qt xcb plugin loads from the system, and the Debian/Ubuntu package
# of each; installers/build_deb.py lists the same packages as the .deb's Depends.
SONAME_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Whether Qt will open its windows through X11 (xcb) with this environment."""
    requested = env.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        return requested.split(";")[0].split(":")[0] == "xcb"
    # Unset: on a Wayland session Qt tries its Wayland plugin first.
    return not (env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland")


def not_found(ldd_output: str) -> list[str]:
    """The libraries `ldd` could not find ("libfoo.so.1 => not found"), once each, in order."""
    names: list[str] = []
    for line in ldd_output.splitlines():
        name, _, where = line.strip().partition(" => ")
        if where.strip() == "not found" and name not in names:
            names.append(name)
    return names


def install_hint(missing: list[str]) -> str:
    """A sentence naming the missing libraries and the command that installs them."""
    packages = [SONAME_PACKAGES[name] for name in missing if name in SONAME_PACKAGES]
    unknown = [name for name in missing if name not in SONAME_PACKAGES]
    lines = [
        "ganfriends cannot open its window: the system libraries Qt needs for X11 are "
        f"missing ({', '.join(missing)}).",
    ]
    if packages:
        lines.append(
            f"On Debian or Ubuntu install them with: sudo apt-get install {' '.join(packages)}"
        )
    if unknown:
        lines.append(f"Install the packages that provide {', '.join(unknown)}.")
    lines.append(f"Then start ganfriends again (see {INSTALL_DOC}).")
    return "\n".join(lines)


def xcb_plugin() -> Path | None:
    """The xcb platform plugin of the installed PySide6 wheel, if there is one."""
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_window_libraries(env: Mapping[str, str] | None = None) -> list[str]:
    """What the xcb plugin cannot load here; [] off Linux, off X11 or when `ldd` cannot tell."""
    if not sys.platform.startswith("linux") or not uses_xcb(os.environ if env is None else env):
        return []
    plugin = xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return []
    try:
        done = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=LDD_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:  # cannot tell: let Qt try
        log.warning("could not check the window system libraries: %s", exc)
        return []
    return not_found(done.stdout)


def say_missing(message: str) -> None:
    """Tell the person, also when the app was started from a menu with no terminal."""
    log.error("%s", message)  # the console (when there is one) and the log file
    notify = shutil.which("notify-send")
    if notify is not None:  # a desktop notification needs no Qt window
        try:
            subprocess.run(
                [notify, "--app-name=ganfriends", "ganfriends cannot start", message],
                timeout=LDD_TIMEOUT_S,
                check=False,
                capture_output=True,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not show a notification: %s", exc)
