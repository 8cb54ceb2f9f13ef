"""The app's settings: a frozen dataclass saved as JSON in the platformdirs config folder."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from core.paths import APP_NAME
from core.throttle import (
    MAX_DUTY_CYCLE,
    MIN_DUTY_CYCLE,
    DonationPolicy,
    PolicyError,
    WeeklySchedule,
)

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
SNOOZE_CHOICES_H = (1, 3, 6)  # hours offered by the Snooze buttons


@dataclass(frozen=True)
class AppSettings:
    """Everything the app remembers between runs; change it with `dataclasses.replace`."""

    connection: str = ""  # the invite code or database URL last connected to ("" none)
    local_demo: bool = False  # the last connection was "Try it locally"
    donating: bool = False  # donating when the app last closed: start again on launch
    device: str = "auto"  # auto | cpu | cuda:N | mps
    threads: int | None = None  # CPU threads per unit; None: the worker's fair share
    name: str = ""  # name on the leaderboard; "" means this computer's name
    duty_cycle: float = 1.0  # share of wall time spent computing, 0.1..1.0
    idle_only: bool = False  # compute only while nobody uses the computer
    idle_after_s: float = 120.0  # seconds without input that count as idle
    schedule: tuple[tuple[int, int, int], ...] | None = None  # (weekday, start min, end min)
    snooze_until: float | None = None  # epoch seconds; no computing until then
    start_at_login: bool = False  # launch (into the tray) when the user logs in
    notifications: bool = True  # desktop notifications for failures
    told_close_to_tray: bool = False  # the "still donating in the tray" note was shown
    renamed_from: str = ""  # the name before a rename made while not connected: the run's
    # worker rows are renamed at the next connection, so the volunteer stays one identity

    def snoozed(self, now: float | None = None) -> bool:
        """Whether a snooze is still running."""
        current = time.time() if now is None else now
        return self.snooze_until is not None and self.snooze_until > current


def config_dir() -> Path:
    """Where settings live: GANFRIENDS_CONFIG_DIR, else the platformdirs user config folder."""
    return Path(os.environ.get("GANFRIENDS_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME))


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings(path: Path | None = None) -> AppSettings:
    """Read the settings; a missing file gives the defaults, a broken one is set aside."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        broken = path.with_suffix(".broken.json")
        log.warning(
            "settings at %s unreadable (%s); moved to %s, using defaults", path, exc, broken
        )
        try:
            path.replace(broken)
        except OSError as move_error:
            log.warning("could not move the broken settings aside: %s", move_error)
        return AppSettings()
    return settings_from_dict(data if isinstance(data, dict) else {})


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    """Write the settings atomically (a crash mid-write leaves the old file), owner-only."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # The connection may hold an invite code with a password: readable by this user only.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(settings), handle, indent=2, sort_keys=True)
    os.replace(temporary, path)


def settings_from_dict(data: dict[str, Any]) -> AppSettings:
    """Settings from parsed JSON: unknown keys are dropped, wrong values fall back to defaults."""
    defaults = AppSettings()
    values: dict[str, Any] = {}
    for field in fields(AppSettings):
        if field.name not in data:
            continue
        value = _checked(field.name, data[field.name], getattr(defaults, field.name))
        if value is not _INVALID:
            values[field.name] = value
        else:
            log.warning("ignoring setting %s=%r: not a valid value", field.name, data[field.name])
    return dataclasses.replace(defaults, **values)


_INVALID = object()


def _checked(name: str, value: Any, default: Any) -> Any:
    if name == "schedule":
        return _schedule(value)
    if name in ("threads", "snooze_until"):
        if value is None:
            return None
        kind: type = int if name == "threads" else float
        return _number(value, kind)
    if isinstance(default, bool):
        return value if isinstance(value, bool) else _INVALID
    if isinstance(default, float):
        number = _number(value, float)
        if number is _INVALID:
            return number
        if name == "duty_cycle":
            return min(MAX_DUTY_CYCLE, max(MIN_DUTY_CYCLE, number))
        return number if number > 0 else _INVALID
    if isinstance(default, str):
        return value if isinstance(value, str) else _INVALID
    return _INVALID


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _INVALID
    if kind is int:
        return int(value) if float(value).is_integer() and value >= 1 else _INVALID
    return float(value)


def _schedule(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, list) for item in value):
        return _INVALID
    try:
        return WeeklySchedule(tuple((item[0], item[1], item[2]) for item in value)).windows
    except (PolicyError, IndexError):
        return _INVALID


def donation_policy(settings: AppSettings) -> DonationPolicy:
    """The worker's policy from the app settings."""
    schedule = None if settings.schedule is None else WeeklySchedule(settings.schedule)
    return DonationPolicy(
        snooze_until=settings.snooze_until,
        duty_cycle=settings.duty_cycle,
        idle_only=settings.idle_only,
        idle_after_s=settings.idle_after_s,
        schedule=schedule,
    )
