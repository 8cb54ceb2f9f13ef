"""`serve`'s lines: the first version at once, then one line a minute, the rest at the stop."""

from __future__ import annotations

import io

from coordinator.loop import Published
from coordinator.published_lines import PublishedLines
from core.training import UnitMetrics
from tests.stand_ins import Clock


def test_a_version_every_half_second_prints_a_line_a_minute() -> None:
    stream, clock = io.StringIO(), Clock()
    lines = PublishedLines(stream=stream, clock=clock)
    for version in range(1, 301):  # 150 s of versions of 128 images, two a second
        clock.now += 0.5
        parked = 1 if version in (150, 151) else 0
        lines.published(Published(version, UnitMetrics(0.5, 1.25, 0.6, 0.4), 128, parked, 0.01))
    lines.close()
    assert stream.getvalue().splitlines() == [
        "published version 1: d_loss 0.500 g_loss 1.250",
        "published versions 2–121 in the last 60 s (256 images/s); version 121: d_loss 0.500 "
        "g_loss 1.250",
        "published versions 122–241 in the last 60 s (256 images/s); version 241: d_loss 0.500 "
        "g_loss 1.250; 2 units parked",
        "published versions 242–300 in the last 30 s (256 images/s); version 300: d_loss 0.500 "
        "g_loss 1.250",
    ]
    lines.close()
    assert len(stream.getvalue().splitlines()) == 4  # nothing left to tell
