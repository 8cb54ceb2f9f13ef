"""Time to quality: the speedup's arithmetic on hand-made curves, and the curve cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.class_sim import time_to_quality as ttq
from coordinator.demo import DEMO_MODEL, DEMO_SETTINGS
from tests.factories import TINY_MODEL

# One computer at 100 images/s: 3 s (300 images) of horizon at 0.05 minutes.
ALONE = [(100, 50.0), (200, 30.0), (300, 20.0), (400, 10.0)]


def test_the_speedup_is_the_baselines_seconds_to_its_best_over_the_others() -> None:
    # Best within 300 images: 20.0, first reached after 3 s. The class reaches 20.0 (≤) after
    # 2,000 images at 1,000 images/s: 2 s.
    other = [(1000, 40.0), (2000, 19.0), (3000, 5.0)]
    assert ttq.compare(ALONE, 100.0, other, 1000.0, 0.05).speedup == pytest.approx(1.5)


def test_the_baseline_beyond_the_horizon_does_not_count() -> None:
    # At 0.1 minutes (600 images) the target is 10.0, after 4 s; the class reaches it after 3 s.
    other = [(1000, 40.0), (2000, 19.0), (3000, 5.0)]
    assert ttq.compare(ALONE, 100.0, other, 1000.0, 0.1).speedup == pytest.approx(4 / 3)


def test_the_first_time_at_the_best_figure_counts_not_the_last_figure() -> None:
    noisy = [(100, 50.0), (200, 15.0), (300, 25.0)]  # best 15.0 after 2 s, worse afterwards
    other = [(500, 20.0), (1000, 15.0)]  # equal is reached: 1 s at 1,000 images/s
    assert ttq.compare(noisy, 100.0, other, 1000.0, 0.05).speedup == pytest.approx(2.0)


def test_a_class_that_never_reaches_the_figure_has_no_speedup() -> None:
    other = [(1000, 40.0), (2000, 20.5)]
    assert ttq.compare(ALONE, 100.0, other, 1000.0, 0.05).speedup is None
    # It would need more than its curve's 2,000 images (2 s): less than 3 s ÷ 2 s.
    result = ttq.compare(ALONE, 100.0, other, 1000.0, 0.05)
    assert result.speedup_below == pytest.approx(1.5)
    assert "speedup < 1.50" in result.describe()


def test_a_class_that_reaches_the_figure_has_no_bound() -> None:
    result = ttq.compare(ALONE, 100.0, [(2000, 19.0)], 1000.0, 0.05)
    assert result.speedup_below is None and "speedup 1.50" in result.describe()


def test_a_baseline_without_a_figure_in_the_horizon_is_an_error() -> None:
    with pytest.raises(ValueError, match="no figure within"):
        ttq.compare(ALONE, 100.0, ALONE, 100.0, 0.01)  # 60 images


def test_the_horizon_is_whole_baseline_versions_within_the_cap() -> None:
    per_version = DEMO_SETTINGS.images_per_work_unit * DEMO_SETTINGS.num_workunits_per_update
    assert ttq.horizon_images(1000.0, 60.0, 10_000) == 10_000 // per_version * per_version
    assert ttq.horizon_images(1000.0, 0.05, 10**9) == 3000 // per_version * per_version


def test_a_curve_is_computed_once_per_inputs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path))
    calls: list[int] = []

    def fake_curve(settings, images, total: int, every, grids) -> list[tuple[int, float]]:
        calls.append(total)
        return [(total, 1.0 * len(calls))]

    monkeypatch.setattr(ttq, "curve", fake_curve)
    monkeypatch.setattr(ttq, "load_images", lambda spec: None)
    first = ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 256)
    assert ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 256) == first == [(256, 1.0)]
    ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "emoji", 256)  # another input: computed
    assert calls == [256, 256]
    with pytest.raises(ValueError, match="demo model"):
        ttq.quality_curve(TINY_MODEL, DEMO_SETTINGS, "synthetic", 256)
