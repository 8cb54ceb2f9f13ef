"""Progress on long work: a tqdm bar on a terminal, a plain line every half minute in a log.

Where stderr is not a terminal (CI, `nohup`, a redirected log, a lab's service) tqdm either
disables itself or writes carriage-return updates into one endless line; a plain line now and
then is what such a log can show.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

LOG_EVERY_S = 30.0  # how often a plain progress line is printed where there is no terminal


def is_terminal(stream: TextIO) -> bool:
    """A terminal a bar can be drawn on: a pseudo-terminal of no size (`script` without one)
    would show tqdm's bar as nothing at all."""
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):  # closed, or not a file at all
        return False
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (ValueError, OSError):  # a stand-in terminal without a descriptor: trust isatty
        return True


class CountProgress:
    """Counts `total` items: a bar on a terminal; elsewhere "desc: 1,024 of 50,000 (2%), …"
    every LOG_EVERY_S, and a last line at the end if any was printed before it; nothing at all
    unless `shown`. `done`: items already done (skipped before the work began)."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        *,
        done: int = 0,
        shown: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._total = total
        self._desc = desc
        self._unit = unit
        self._done = done
        self._started = self._shown_at = clock()
        self._lines = 0
        self._last_shown = done  # the count the last line showed
        self._shown = shown
        self._bar: tqdm | None = None
        if shown and is_terminal(self._stream):
            self._bar = tqdm(total=total, initial=done, desc=desc, unit=unit, file=self._stream)

    def __enter__(self) -> CountProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self._clock()
        if self._shown and now - self._shown_at >= LOG_EVERY_S:
            self._shown_at = now
            self._show(now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._lines and self._done != self._last_shown:  # a log told of the work hears its end
            self._show(self._clock())

    def _show(self, now: float) -> None:
        elapsed = now - self._started
        line = f"{self._desc}: {self._done:,} of {self._total:,} {self._unit}"
        if self._total:
            line += f" ({self._done / self._total:.0%})"
        line += f", {tqdm.format_interval(elapsed)}"
        if 0 < self._done < self._total:
            left = elapsed * (self._total - self._done) / self._done
            line += f", about {tqdm.format_interval(left)} left"
        print(line, file=self._stream, flush=True)
        self._lines += 1
        self._last_shown = self._done
