"""What donating costs this computer: the app, its worker and the local coordinator together.

The usage cap ("compute at most 50 % of the time") is the worker's duty cycle, but the app
and the local demo's coordinator use the CPU too. The meter reads the CPU time of all three
(from /proc on Linux; elsewhere only what the app knows of itself) over the last half minute,
so the Donate page can show the measured share next to the target and the worker's duty cycle
can be lowered by the others' part.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

WINDOW_S = 30.0  # seconds the measured share covers
TICKS_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) process `pid` has used; None where it cannot be read."""
    if pid is None:
        return None
    if pid == os.getpid():
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS_S


@dataclass(frozen=True)
class Usage:
    """CPU over the last `WINDOW_S`, in cores (1.0: one core all the time)."""

    total: float  # the app, the worker and the local coordinator together
    worker: float  # the worker alone
    seconds: float  # how long this covers

    @property
    def worker_fraction(self) -> float:
        """The worker's part of the total (1.0 when nothing else is measured)."""
        return 1.0 if self.total <= 0 else min(1.0, self.worker / self.total)


class UsageMeter:
    """Samples of cumulative CPU seconds; `usage()` compares the newest with WINDOW_S ago."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, float]] = deque()  # (at, total s, worker s)
        self._last: dict[int, float] = {}  # pid → CPU seconds at the last sample
        self._total = 0.0  # CPU seconds counted so far, processes that came and went included
        self._worker = 0.0

    def sample(self, now: float, worker_pid: int | None, other_pids: list[int | None]) -> None:
        """Add what each process used since the last sample (a new pid starts from now)."""
        for pid, is_worker in [(worker_pid, True), *[(p, False) for p in other_pids]]:
            used = process_cpu_s(pid)
            if pid is None or used is None:
                continue
            delta = max(0.0, used - self._last.get(pid, used))
            self._last[pid] = used
            self._total += delta
            if is_worker:
                self._worker += delta
        self._samples.append((now, self._total, self._worker))
        while len(self._samples) > 2 and self._samples[1][0] <= now - WINDOW_S:
            self._samples.popleft()

    def usage(self) -> Usage | None:
        """The share over the last WINDOW_S (None until two samples a few seconds apart)."""
        if len(self._samples) < 2:
            return None
        (t0, total0, worker0), (t1, total1, worker1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 2.0:
            return None
        return Usage((total1 - total0) / (t1 - t0), (worker1 - worker0) / (t1 - t0), t1 - t0)


def capped_duty_cycle(cap: float, usage: Usage | None, minimum: float) -> float:
    """The worker's duty cycle so that everything together stays within `cap`."""
    if cap >= 1.0 or usage is None:
        return cap
    return max(minimum, round(cap * usage.worker_fraction, 2))
