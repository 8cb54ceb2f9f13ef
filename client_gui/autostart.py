"""Start at login: an XDG autostart entry (Linux), a Run registry value (Windows), or a
LaunchAgent (macOS), each launching the app minimised into the tray."""

from __future__ import annotations

import logging
import os
import plistlib
import shlex
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY_NAME = "ganfriends"
LAUNCH_AGENT = "org.ganfriends.app"
_RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


class AutostartError(Exception):
    """Start at login could not be changed; the message says what to do instead."""


def launch_command() -> list[str]:
    """The command that starts the app minimised: the installed `ganfriends`, else python -m."""
    installed = shutil.which("ganfriends")
    if installed:
        return [installed, "--minimized"]
    python = sys.executable
    if sys.platform == "win32":  # pythonw: no console window at login
        windowless = Path(python).with_name("pythonw.exe")
        python = str(windowless) if windowless.exists() else python
    return [python, "-m", "client_gui.app", "--minimized"]


def set_start_at_login(enabled: bool) -> None:
    """Add or remove the login entry for this user."""
    try:
        if sys.platform == "win32":
            _windows(enabled)
        elif sys.platform == "darwin":
            _write_or_remove(_launch_agent_path(), _launch_agent() if enabled else None)
        else:
            _write_or_remove(_desktop_entry_path(), _desktop_entry() if enabled else None)
    except OSError as exc:
        raise AutostartError(f"Could not change start at login: {exc}") from None
    log.info("start at login %s", "enabled" if enabled else "disabled")


def is_start_at_login() -> bool:
    """Whether this user's login entry exists."""
    if sys.platform == "win32":
        return _windows_value() is not None
    path = _launch_agent_path() if sys.platform == "darwin" else _desktop_entry_path()
    return path.exists()


def _desktop_entry_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "autostart" / f"{ENTRY_NAME}.desktop"


def _desktop_entry() -> bytes:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=ganfriends\n"
        "Comment=Lend this computer to a shared GAN training run\n"
        f"Exec={shlex.join(launch_command())}\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    ).encode()


def _launch_agent_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT}.plist"


def _launch_agent() -> bytes:
    return plistlib.dumps(
        {"Label": LAUNCH_AGENT, "ProgramArguments": launch_command(), "RunAtLoad": True}
    )


def _write_or_remove(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


if sys.platform == "win32":  # mypy checks this block only for Windows
    import winreg

    def _windows(enabled: bool) -> None:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, _RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            if enabled:
                command = " ".join(f'"{part}"' for part in launch_command())
                winreg.SetValueEx(key, ENTRY_NAME, 0, winreg.REG_SZ, command)
            elif _windows_value() is not None:
                winreg.DeleteValue(key, ENTRY_NAME)

    def _windows_value() -> str | None:
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, _RUN_KEY) as key:
                value, _ = winreg.QueryValueEx(key, ENTRY_NAME)
                return str(value)
        except OSError:
            return None
