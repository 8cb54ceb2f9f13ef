"""Where things live: the platform key, the lock for a variant, the shipped wheel, the data dir."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from ganfriends_bootstrap.detect import Detection


class BootstrapError(RuntimeError):
    """A failure the volunteer can act on; the message says what to do next."""


class LockNotFound(BootstrapError):
    """The app dir has no lock file for this platform and variant."""


def platform_key(system: str | None = None, machine: str | None = None) -> str:
    """`linux-x86_64`, `windows-x86_64`, `macos-arm64`, … for this (or the given) machine."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    os_name = {"Linux": "linux", "Windows": "windows", "Darwin": "macos"}.get(
        system, system.lower()
    )
    arch = {
        "amd64": "x86_64",
        "x64": "x86_64",
        "aarch64": "arm64" if os_name == "macos" else "aarch64",
    }
    return f"{os_name}-{arch.get(machine, machine)}"


def lock_path(app_dir: Path, key: str, variant: str) -> Path:
    """The lock file name for (platform, variant): `locks/<key>-<variant>.txt`."""
    return app_dir / "locks" / f"{key}-{variant}.txt"


@dataclass(frozen=True)
class LockChoice:
    """The lock to install, its variant, and a note when detection's first pick had no lock."""

    variant: str
    path: Path
    note: str | None


def select_lock(app_dir: Path, key: str, detection: Detection) -> LockChoice:
    """The first candidate variant that has a lock in `app_dir`; LockNotFound names the files."""
    missing: list[Path] = []
    for variant in detection.candidates:
        path = lock_path(app_dir, key, variant)
        if path.is_file():
            note = None
            if missing:
                note = (
                    f"no lock for {detection.variant} in this build ({missing[0]}); using {variant}"
                )
            return LockChoice(variant, path, note)
        missing.append(path)
    shown = ", ".join(str(p) for p in missing)
    raise LockNotFound(
        f"this GANfriends build has no environment for {key} ({detection.variant}): missing {shown}. "
        "Download the installer made for this computer from the GANfriends release page, "
        "or pass --variant with one of the variants present in locks/"
    )


def shipped_wheel(app_dir: Path) -> Path:
    """The single `wheels/ganfriends-*.whl` of the app dir."""
    wheels = sorted((app_dir / "wheels").glob("ganfriends-*.whl"))
    if len(wheels) != 1:
        raise BootstrapError(
            f"expected exactly one ganfriends wheel in {app_dir / 'wheels'}, found {len(wheels)}; "
            "the installation is damaged: reinstall GANfriends"
        )
    return wheels[0]


def uv_binary(app_dir: Path) -> Path:
    """The uv shipped in the app dir (GANFRIENDS_UV overrides it, for development)."""
    override = os.environ.get("GANFRIENDS_UV")
    path = Path(override) if override else app_dir / ("uv.exe" if os.name == "nt" else "uv")
    if not path.is_file():
        raise BootstrapError(
            f"{path} is missing; the installation is damaged: reinstall GANfriends"
        )
    return path


def data_home(system: str | None = None) -> Path:
    """The ganfriends folder in the user's data dir; GANFRIENDS_HOME overrides it."""
    if os.environ.get("GANFRIENDS_HOME"):
        return Path(os.environ["GANFRIENDS_HOME"])
    system = system or platform.system()
    if system == "Windows":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ganfriends"
    if system == "Darwin":
        return Path.home() / "Library" / "Application Support" / "ganfriends"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "ganfriends"
