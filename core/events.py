"""What the worker engine reports, as plain data: importable without torch (the desktop app)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


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
