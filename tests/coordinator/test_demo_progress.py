"""The demo's progress: no meaningless "s/s" rate on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import re

from coordinator.demo_progress import LOG_EVERY_S, DemoProgress
from coordinator.loop import Published
from core.training import UnitMetrics
from tests.stand_ins import Clock, Terminal


def publish(progress: DemoProgress, version: int, images: int = 128) -> None:
    metrics = UnitMetrics(0.5, 1.5, 0.6, 0.4)
    progress.published(Published(version, metrics, images, 0, 0.01))


def test_a_terminal_shows_the_time_left_and_the_run_but_no_seconds_per_second() -> None:
    stream, clock = Terminal(), Clock()
    progress = DemoProgress(rounds=None, minutes=5, stream=stream, clock=clock)
    clock.now += 10
    publish(progress, 41, images=1280)
    progress.swd = 143.94
    progress.tick()
    progress.close()
    shown = stream.getvalue()
    assert re.search(r"\| \d\d:\d\d<", shown), shown  # elapsed (tqdm's own clock), time left
    assert "version 41, 128 images/s, SWD 143.9" in shown
    assert re.search(r"\d s/s|\ds/s", shown) is None, shown


def test_a_log_gets_a_plain_line_every_half_minute_and_one_at_the_end() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = DemoProgress(rounds=None, minutes=5, stream=stream, clock=clock)
    for second in range(1, 91):  # a pass every second for 90 s
        clock.now += 1
        if second % 2 == 0:
            publish(progress, second // 2)
        progress.tick()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    # at 1 s, then LOG_EVERY_S apart (31 s, 61 s), and the closing line at 90 s
    assert len(lines) == 1 + int(89 // LOG_EVERY_S) + 1, lines
    assert lines[0] == "demo 00:01 of 05:00: version 0, 0 images/s, SWD —"
    assert lines[-1] == "demo 01:30 of 05:00: version 45, 64 images/s, SWD —"


def test_rounds_count_this_demo_s_versions_not_the_run_s() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = DemoProgress(rounds=10, minutes=None, stream=stream, clock=clock)
    clock.now += 4
    for version in (501, 502, 503):  # a resumed run
        publish(progress, version)
    progress.close()
    assert stream.getvalue() == "demo 00:04, 3 of 10 rounds: version 503, 96 images/s, SWD —\n"
