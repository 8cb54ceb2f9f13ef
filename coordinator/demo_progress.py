"""The demo's progress: a tqdm bar on a terminal, a plain line every half minute in a log.

With `--minutes` the bar counts seconds, so tqdm's own rate would read "1.00s/s"; it shows the
time left instead, and the postfix carries what matters: the version, images/s and the quality
figure. Where stderr is not a terminal (CI, `nohup`, a redirected log) tqdm would still write a
carriage-return update twice a second into one endless line, so a line is printed instead.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from coordinator.loop import Published
from core.progress import LOG_EVERY_S, is_terminal

REFRESH_S = 0.5  # how often a terminal's bar is redrawn
TIME_BAR_FORMAT = "{l_bar}{bar}| {elapsed}<{remaining}{postfix}"


class DemoProgress:
    """Progress over versions (`rounds`) or seconds (`minutes`); images/s and SWD shown."""

    def __init__(
        self,
        *,
        rounds: int | None,
        minutes: float | None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._rounds = rounds
        self._total_s = None if rounds is not None else (minutes or 0) * 60
        self._interactive = is_terminal(self._stream)
        self._started = clock()
        self._shown_at: float | None = None
        self.images = 0
        self.versions = 0  # published since the start of this demo
        self.version = 0
        self.swd: float | None = None
        self._bar: tqdm | None = None
        if self._interactive:
            self._bar = tqdm(
                total=rounds if rounds is not None else int(self._total_s or 0),
                unit="version" if rounds is not None else "s",
                bar_format=None if rounds is not None else TIME_BAR_FORMAT,
                dynamic_ncols=True,
                file=self._stream,
                mininterval=REFRESH_S,
            )

    def published(self, p: Published) -> None:
        self.images += p.images
        self.versions += 1
        self.version = p.version
        if self._bar is not None and self._rounds is not None:
            self._bar.update(1)

    def tick(self) -> None:
        """Called every coordinator pass: redraws at most every REFRESH_S (LOG_EVERY_S in a log)."""
        now = self._clock()
        every = REFRESH_S if self._interactive else LOG_EVERY_S
        if self._shown_at is not None and now - self._shown_at < every:
            return
        self._shown_at = now
        self._show(now)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a bar must never hide the real outcome
            if self._bar is not None:
                self._bar.close()
            else:
                self._show(self._clock())

    def _show(self, now: float) -> None:
        elapsed = now - self._started
        status = f"version {self.version}, {self.images / max(elapsed, 1e-9):.0f} images/s, "
        status += "SWD " + ("—" if self.swd is None else f"{self.swd:.1f}")
        if self._bar is not None:
            if self._total_s is not None:
                self._bar.n = min(self._bar.total, int(elapsed))
            self._bar.set_postfix_str(status)  # redraws the bar
            return
        if self._total_s is not None:
            shown = min(elapsed, self._total_s)
            where = f"{tqdm.format_interval(shown)} of {tqdm.format_interval(self._total_s)}"
        else:
            where = f"{tqdm.format_interval(elapsed)}, {self.versions} of {self._rounds} rounds"
        print(f"demo {where}: {status}", file=self._stream, flush=True)
