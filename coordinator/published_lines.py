"""What `serve` prints of the versions it publishes: the first at once, then a line a minute.

A demo-sized run publishes several versions a second; a line for each would flood the
journal of a coordinator run as a service, as a headless worker's units would (core.events).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from core.events import TALLY_EVERY_S, Tally

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
        self._versions: Tally[Published] = Tally(every_s)

    def published(self, published: Published) -> None:
        self._versions.add(published)
        self._tell(final=False)

    def close(self) -> None:
        """Tell what is still untold (the versions since the last line)."""
        self._tell(final=True)

    def _tell(self, *, final: bool) -> None:
        now, since = self._clock(), self._versions.told_at
        versions = self._versions.take(now, final=final)
        if not versions:
            return
        last = versions[-1]
        losses = f"d_loss {last.metrics.d_loss:.3f} g_loss {last.metrics.g_loss:.3f}"
        if len(versions) == 1:
            line = f"published version {last.version}: {losses}"
        else:
            span_s = max(now - since, 1e-9)
            rate = sum(p.images for p in versions) / span_s
            line = (
                f"published versions {versions[0].version:,}–{last.version:,} in the last "
                f"{span_s:.0f} s ({rate:,.0f} images/s); version {last.version:,}: {losses}"
            )
        parked = sum(p.parked for p in versions)
        if parked:
            line += f"; {parked} unit{'s' if parked > 1 else ''} parked"
        print(line, file=self._stream, flush=True)
