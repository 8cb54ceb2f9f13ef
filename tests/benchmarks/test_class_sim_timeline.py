"""The class simulation's timeline: per-version figures from compute intervals and publishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.class_sim.timeline import read_intervals, timeline


def test_a_version_is_measured_from_its_publish_to_the_next() -> None:
    publishes = [100.0, 104.0, 108.0]
    intervals = [
        # version 1: volunteer 0 starts at +0.2 and takes 2 units, volunteer 1 at +0.6 and 1
        (0, 100.2, 101.2), (0, 101.3, 102.3), (1, 100.6, 101.6),
        # version 2: both start at +0.1 and take one unit each, the last ends at +3.0
        (0, 104.1, 106.0), (1, 104.1, 107.0),
        (1, 109.0, 109.5),  # after the last publish: no next publish, not counted
    ]  # fmt: skip
    figures = timeline(publishes, intervals)
    assert figures is not None
    assert figures.versions == 2
    assert figures.period_s == pytest.approx(4.0)
    # starts: version 1 (0.2, 0.4, 0.6), version 2 (0.1, 0.1, 0.1): medians of each
    assert figures.start_s == pytest.approx((0.15, 0.25, 0.35))
    # done: version 1 median of (2.3, 1.6) = 1.95, last 2.3; version 2 (2.0, 3.0) → 2.5, 3.0
    assert figures.done_s == pytest.approx(((1.95 + 2.5) / 2, (2.3 + 3.0) / 2))
    assert figures.to_publish_s == pytest.approx(((4 - 2.3) + (4 - 3.0)) / 2)
    assert figures.units_per_volunteer == {1: 3, 2: 1}
    assert "0.15 / 0.25 / 0.35" in figures.describe()


def test_nothing_computed_between_publishes_gives_no_timeline() -> None:
    assert timeline([1.0, 2.0], [(0, 3.0, 4.0)]) is None


def test_intervals_are_read_from_every_process_file(tmp_path: Path) -> None:
    (tmp_path / "11.txt").write_text("0 1.5 2.5\n3 2.0 2.25\n")
    (tmp_path / "12.txt").write_text("1 1.75 2.0\n")
    assert sorted(read_intervals(tmp_path)) == [(0, 1.5, 2.5), (1, 1.75, 2.0), (3, 2.0, 2.25)]
