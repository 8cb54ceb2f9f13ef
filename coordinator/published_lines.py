"""What `serve` prints of the versions it publishes: the first at once, then a line a minute.

A demo-sized run publishes several versions a second; a line for each would flood the
journal of a coordinator run as a service, as a headless worker's units would (core.events).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from core.events import TALLY_EVERY_S

if TYPE_CHECKING:  # coordinator.loop loads torch: the commands that print import it late
    from coordinator.loop import Published


class PublishedLines:
    """Prints "published version 1: d_loss … g_loss …", then at most one line a minute."""

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = TALLY_EVERY_S,
    ) -> None:
        self._stream = sys.stdout if stream is None else stream
        self._clock = clock
        self._every_s = every_s
        self._told_at = clock() - every_s  # the first version is told at once
        self._untold: list[Published] = []

    def published(self, published: Published) -> None:
        self._untold.append(published)
        self._tell(final=False)

    def close(self) -> None:
        """Tell what is still untold (the versions since the last line)."""
        self._tell(final=True)

    def _tell(self, *, final: bool) -> None:
        now, untold = self._clock(), self._untold
        if not untold or (now - self._told_at < self._every_s and not final):
            return
        last = untold[-1]
        losses = f"d_loss {last.metrics.d_loss:.3f} g_loss {last.metrics.g_loss:.3f}"
        if len(untold) == 1:
            line = f"published version {last.version}: {losses}"
        else:
            span_s = max(now - self._told_at, 1e-9)
            rate = sum(p.images for p in untold) / span_s
            line = (
                f"published versions {untold[0].version:,}–{last.version:,} in the last "
                f"{span_s:.0f} s ({rate:,.0f} images/s); version {last.version:,}: {losses}"
            )
        parked = sum(p.parked for p in untold)
        if parked:
            line += f"; {parked} unit{'s' if parked > 1 else ''} parked"
        print(line, file=self._stream, flush=True)
        self._told_at, self._untold = now, []
