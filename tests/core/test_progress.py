"""Progress on long work: a bar on a terminal, a plain line every half minute in a log."""

from __future__ import annotations

import io

from core.progress import LOG_EVERY_S, CountProgress
from tests.stand_ins import Clock, Terminal


def count(progress: CountProgress, clock: Clock, items: int, every_s: float) -> None:
    with progress:
        for _ in range(items):
            clock.now += every_s
            progress.update()


def test_a_log_is_told_every_half_minute_how_far_and_how_long_is_left() -> None:
    stream, clock = io.StringIO(), Clock()
    count(
        CountProgress(100, "ingesting images", "images", stream=stream, clock=clock), clock, 95, 1
    )
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    # at 30 s, 60 s and 90 s, then the closing line at 95 s
    assert len(lines) == int(95 // LOG_EVERY_S) + 1, lines
    assert lines[0] == "ingesting images: 30 of 100 images (30%), 00:30, about 01:10 left"
    assert lines[-1] == "ingesting images: 95 of 100 images (95%), 01:35, about 00:05 left"


def test_short_work_leaves_a_log_alone() -> None:
    stream, clock = io.StringIO(), Clock()
    count(
        CountProgress(1000, "ingesting images", "images", stream=stream, clock=clock),
        clock,
        1000,
        0.01,
    )
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_bar_and_nothing_is_shown_unless_asked() -> None:
    terminal, clock = Terminal(), Clock()
    count(
        CountProgress(40, "ingesting images", "images", stream=terminal, clock=clock), clock, 40, 1
    )
    assert "40/40" in terminal.getvalue() and "ingesting images" in terminal.getvalue()
    for stream in (Terminal(), io.StringIO()):
        quiet = CountProgress(40, "ingesting", "images", shown=False, stream=stream, clock=clock)
        count(quiet, clock, 40, 1)
        assert stream.getvalue() == ""
