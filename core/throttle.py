"""Donation policy: when this computer may compute, and if not, a plain sentence saying why."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MIN_DUTY_CYCLE = 0.1  # below this a unit's lease would mostly be spent resting between units
MAX_DUTY_CYCLE = 1.0


class PolicyError(ValueError):
    """A donation setting or schedule that cannot be used; the message says what is allowed."""


@dataclass(frozen=True)
class WeeklySchedule:
    """Allowed compute time as weekly windows, in the computer's local time.

    A window whose end is not after its start runs past midnight into the next day, and from
    Sunday into Monday: (6, 1320, 120) allows Sunday 22:00 to Monday 02:00.
    """

    windows: tuple[tuple[int, int, int], ...]  # (weekday 0=Mon..6, start minute, end minute)

    def __post_init__(self) -> None:
        for window in self.windows:
            _check_window(window)

    def allows(self, at: datetime) -> bool:
        """Whether `at` falls inside one of the windows."""
        minute = _minute_of_week(at)
        return any(
            (minute - _start_of(window)) % MINUTES_PER_WEEK < _length_of(window)
            for window in self.windows
        )

    def next_start(self, at: datetime) -> tuple[int, int] | None:
        """(weekday, minute of day) of the first window start after `at`; None with no windows."""
        if not self.windows:
            return None
        minute = _minute_of_week(at)
        first = min(self.windows, key=lambda w: (_start_of(w) - minute - 1) % MINUTES_PER_WEEK)
        return first[0], first[1]

    def to_json(self) -> str:
        return json.dumps({"windows": [list(window) for window in self.windows]})

    @classmethod
    def from_json(cls, text: str) -> WeeklySchedule:
        """Parse `to_json` output; PolicyError when it is not a valid schedule."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"the schedule is not valid JSON ({exc}); set it again") from None
        return cls._from_data(data)

    @classmethod
    def _from_data(cls, data: Any) -> WeeklySchedule:
        if not isinstance(data, dict) or not isinstance(data.get("windows"), list):
            raise PolicyError('a schedule must look like {"windows": [[weekday, start, end], ...]}')
        windows = []
        for item in data["windows"]:
            if not isinstance(item, list) or len(item) != 3:
                raise PolicyError(f"a schedule window must be [weekday, start, end], not {item!r}")
            windows.append((item[0], item[1], item[2]))
        return cls(tuple(windows))


def _check_window(window: tuple[int, int, int]) -> None:
    if len(window) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in window):
        raise PolicyError(
            f"a schedule window is (weekday, start, end) in whole numbers: {window!r}"
        )
    weekday, start, end = window
    if not 0 <= weekday <= 6:
        raise PolicyError(f"weekday must be 0 (Monday) to 6 (Sunday), not {weekday}")
    if not 0 <= start < MINUTES_PER_DAY or not 0 <= end <= MINUTES_PER_DAY:
        raise PolicyError(
            f"window {window!r}: start must be a minute 0..1439 and end a minute 0..1440"
        )
    if start == end:
        raise PolicyError(f"window {window!r} is empty; use start 0 and end 1440 for a whole day")


def _minute_of_week(at: datetime) -> int:
    return at.weekday() * MINUTES_PER_DAY + at.hour * 60 + at.minute


def _start_of(window: tuple[int, int, int]) -> int:
    return window[0] * MINUTES_PER_DAY + window[1]


def _length_of(window: tuple[int, int, int]) -> int:
    _, start, end = window
    return end - start if end > start else end + MINUTES_PER_DAY - start


@dataclass(frozen=True)
class DonationPolicy:
    """The volunteer's limits on donating, as set in the app."""

    snooze_until: float | None = None  # epoch seconds; paused until then
    duty_cycle: float = 1.0  # share of wall time computing, 0.1..1.0
    idle_only: bool = False  # compute only while the user is idle
    idle_after_s: float = 120.0  # idle this long counts as idle
    schedule: WeeklySchedule | None = None  # None: any time

    def __post_init__(self) -> None:
        for name in ("snooze_until", "duty_cycle", "idle_after_s"):
            value = getattr(self, name)
            if value is None and name == "snooze_until":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(f"{name} must be a number, not {value!r}")
        if self.schedule is not None and not isinstance(self.schedule, WeeklySchedule):
            raise PolicyError(f"schedule must be a WeeklySchedule or None, not {self.schedule!r}")
        if not MIN_DUTY_CYCLE <= self.duty_cycle <= MAX_DUTY_CYCLE:
            raise PolicyError(
                f"the usage cap must be between 10% and 100% of the time, not {self.duty_cycle:.0%}"
            )
        if not self.idle_after_s > 0:
            raise PolicyError(f"idle_after_s must be more than 0 seconds, not {self.idle_after_s}")

    def to_json(self) -> str:
        data = asdict(self)
        data["schedule"] = None if self.schedule is None else json.loads(self.schedule.to_json())
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> DonationPolicy:
        """Parse `to_json` output; PolicyError when it is not a valid policy."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"the donation settings are not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise PolicyError("the donation settings must be a JSON object")
        known = {"snooze_until", "duty_cycle", "idle_only", "idle_after_s", "schedule"}
        if unknown := sorted(set(data) - known):
            raise PolicyError(f"unknown donation settings {unknown}; allowed: {sorted(known)}")
        schedule = data.get("schedule")
        if schedule is not None:
            data["schedule"] = WeeklySchedule._from_data(schedule)
        try:
            return cls(**data)
        except TypeError as exc:  # e.g. a string where a number belongs
            raise PolicyError(f"invalid donation settings: {exc}") from None


def format_duration(seconds: float) -> str:
    """A countdown for people: '45 s', '14 min', '2 h 14 min', '3 h' (rounded up)."""
    if seconds < 60:
        return f"{max(0, math.ceil(seconds))} s"
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    if hours == 0:
        return f"{minutes} min"
    return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"


def pause_reason(policy: DonationPolicy, now: datetime, idle_s: float | None) -> str | None:
    """None when computing is allowed now, else why not, as a phrase ('snoozed for 2 h 14 min').

    `idle_s` is how long the user has been idle, or None when this desktop cannot tell: then
    idle-only does not hold computing back (the app states that fallback).
    """
    if policy.snooze_until is not None and now.timestamp() < policy.snooze_until:
        return f"snoozed for {format_duration(policy.snooze_until - now.timestamp())}"
    if policy.schedule is not None and not policy.schedule.allows(now):
        upcoming = policy.schedule.next_start(now)
        if upcoming is None:
            return "outside your schedule (it allows no time)"
        weekday, minute = upcoming
        return f"outside your schedule (next: {DAY_NAMES[weekday]} {minute // 60:02d}:{minute % 60:02d})"
    if policy.idle_only and idle_s is not None and idle_s < policy.idle_after_s:
        # whole seconds rounded down: 119.6 s must not read as "idle 120 s of 120 s"
        return f"waiting until you are idle (idle {int(idle_s)} s of {policy.idle_after_s:.0f} s)"
    return None


def rest_after_unit(policy: DonationPolicy, compute_s: float) -> float:
    """Seconds to rest after `compute_s` of work so computing is at most duty_cycle of wall time."""
    # compute / (compute + rest) = duty  ⇒  rest = compute × (1 − duty) / duty
    return max(0.0, compute_s) * (1.0 - policy.duty_cycle) / policy.duty_cycle
