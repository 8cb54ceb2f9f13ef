"""What the worker engine reports, as plain data: importable without torch (the desktop app).

Also what of it a log tells, the app's event log and a headless worker's console alike:
problems and changes at once, each unit's steps never, finished units in one line a minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

UNIT_STEPS = ("downloading", "computing", "uploading")  # each unit's steps: not logged
TALLY_EVERY_S = 60.0  # finished units are told in one line this often


@dataclass(frozen=True)
class WorkerEvent:
    """Something the engine did, as plain data."""

    kind: str  # "state" | "progress" | "unit_finished" | "unit_refused" | "error"
    state: str  # connecting | idle | downloading | computing | uploading | paused | error | stopped
    message: str  # one human sentence: what and why
    at: float = field(default_factory=time.time)
    version: int | None = None
    unit_index: int | None = None
    progress: float | None = None  # 0..1 within the current unit
    images: int | None = None
    compute_s: float | None = None
    metrics: dict[str, float] | None = None


def worth_logging(event: WorkerEvent) -> bool:
    """A problem or a change of what the worker does, not a unit's steps or its finishing
    (finished units go to a `UnitTally`): short units would flood a log."""
    if event.kind == "unit_finished":
        return False
    return event.kind == "error" or event.state not in UNIT_STEPS


class UnitTally:
    """Finished units told once a minute in one line: short units would flood the log."""

    def __init__(self, every_s: float = TALLY_EVERY_S) -> None:
        self._every_s = every_s
        self._told_at = -every_s
        self._events: list[WorkerEvent] = []

    def add(self, event: WorkerEvent) -> None:
        self._events.append(event)

    def line(self, now: float, *, final: bool = False) -> tuple[float, str] | None:
        """When and what to log now, if a minute has passed since the last line or this is
        the `final` one (None: nothing to tell yet)."""
        events = self._events
        if not events or (now - self._told_at < self._every_s and not final):
            return None
        self._told_at, self._events = now, []
        if len(events) == 1:
            return events[0].at, events[0].message
        versions = [e.version for e in events if e.version is not None]
        span = f"versions {min(versions):,}–{max(versions):,}, " if versions else ""
        images = sum(e.images or 0 for e in events)
        minutes = (events[-1].at - events[0].at) / 60
        during = f"in {minutes:.0f} min" if minutes >= 1.5 else "in the last minute"
        return events[-1].at, f"Finished {len(events):,} units {during} ({span}{images:,} images)"
