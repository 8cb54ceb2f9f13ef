"""What the worker engine reports, as plain data: importable without torch (the desktop app).

Also what of it a log tells, the app's event log and a headless worker's console alike:
problems and changes at once, each unit's steps never, finished units in one line a minute.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

UNIT_STEPS = ("downloading", "computing", "uploading")  # each unit's steps: not logged
TALLY_EVERY_S = 60.0  # finished units are told in one line this often
T = TypeVar("T")


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
    (finished units go to a `Tally`): short units would flood a log."""
    if event.kind == "unit_finished":
        return False
    return event.kind == "error" or event.state not in UNIT_STEPS


class Tally(Generic[T]):
    """Routine news told in one line at most every `every_s`: the first item at once, then
    what piled up since (finished units, published versions), so that short ones never flood
    a log."""

    def __init__(self, every_s: float = TALLY_EVERY_S) -> None:
        self._every_s = every_s
        self.told_at = -math.inf  # when the last line was told
        self._items: list[T] = []

    def add(self, item: T) -> None:
        self._items.append(item)

    def take(self, now: float, *, final: bool = False) -> list[T]:
        """The items to tell in one line now: none until `every_s` have passed since the last
        line, unless this is the `final` one."""
        if not self._items or (now - self.told_at < self._every_s and not final):
            return []
        self.told_at, (items, self._items) = now, (self._items, [])
        return items


def units_line(events: list[WorkerEvent]) -> tuple[float, str]:
    """When and what to log of these finished units: one unit's own message, or a count."""
    if len(events) == 1:
        return events[0].at, events[0].message
    versions = [e.version for e in events if e.version is not None]
    span = f"versions {min(versions):,}–{max(versions):,}, " if versions else ""
    images = sum(e.images or 0 for e in events)
    minutes = (events[-1].at - events[0].at) / 60
    during = f"in {minutes:.0f} min" if minutes >= 1.5 else "in the last minute"
    return events[-1].at, f"Finished {len(events):,} units {during} ({span}{images:,} images)"
