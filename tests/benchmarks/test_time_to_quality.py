"""Time to quality: the speedup's arithmetic on hand-made curves, and the curve cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import demo_settings
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


def test_the_speedup_is_the_rate_ratio_over_the_images_ratio() -> None:
    # 10x the images/s, 2,000 images against the baseline's 300: 1.5 = 10 ÷ (2,000 / 300).
    result = ttq.compare(ALONE, 100.0, [(1000, 40.0), (2000, 19.0)], 1000.0, 0.05)
    assert (result.rate_ratio, result.baseline_images) == (10.0, 300)
    assert result.images_ratio == pytest.approx(2000 / 300)
    assert "10.0x the images/s ÷ 6.67x the images (300 alone)" in result.describe()
    never = ttq.compare(ALONE, 100.0, [(1000, 40.0), (4000, 25.0)], 1000.0, 0.05)
    assert "over 13.3x the images: 300 alone" in never.describe()  # its curve's 4,000 images


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
    with pytest.raises(ValueError, match="class's curve has no figure"):
        ttq.compare(ALONE, 100.0, [], 1000.0, 0.05)


def test_a_curve_is_shown_at_doubling_marks_with_its_best_so_far() -> None:
    curve = [(90, 50.0), (100, 40.0), (150, 45.0), (210, 20.0), (500, 30.0), (900, 35.0)]
    # 100 → 40; 200: first at or past is 210; 400: 500, which also passes nothing else; 800: 900.
    assert ttq.at_marks(curve, first=100) == [
        (100, 40.0, 40.0), (200, 20.0, 20.0), (400, 30.0, 20.0), (800, 35.0, 20.0)
    ]  # fmt: skip
    assert ttq.at_marks([(50, 1.0)], first=100) == []


def test_the_horizon_is_whole_baseline_versions_within_the_cap() -> None:
    per_version = DEMO_SETTINGS.images_per_work_unit * DEMO_SETTINGS.num_workunits_per_update
    assert ttq.horizon_images(1000.0, 60.0, 10_000) == 10_000 // per_version * per_version
    assert ttq.horizon_images(1000.0, 0.05, 10**9) == 3000 // per_version * per_version


def test_a_longer_curve_continues_the_cached_one_and_equals_a_curve_computed_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 128 images per version, a figure every 128: three versions in two legs and in one.
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "legs"))
    first = ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 128, every=128)
    legs = ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 384, every=128)
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "whole"))
    whole = ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 384, every=128)
    assert [seen for seen, _ in whole] == [128, 256, 384]
    assert legs == whole and legs[:1] == first  # the figures bitwise: the trainer's own state
    assert len({figure for _, figure in whole}) == 3  # three versions, three distinct figures


def test_a_cached_curve_answers_shorter_and_equal_requests_without_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path))
    whole = ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 256, every=128)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained although the cache holds the curve")

    monkeypatch.setattr(demo_settings, "train_version", no_training)
    assert ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 256, every=128) == whole
    # 200 images end within the second version: both of its figures, none beyond.
    assert ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 200, every=128) == whole
    assert ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 100, every=128) == whole[:1]
    with pytest.raises(AssertionError, match="trained"):  # other inputs are another curve
        ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "emoji", 128, every=128)


def test_an_interrupted_curve_continues_from_its_last_figure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "whole"))
    whole = ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 384, every=128)
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "killed"))
    trained = demo_settings.train_version
    versions: list[int] = []

    def killed_in_the_third_version(state, *args, **kwargs):
        versions.append(state.version)
        if len(versions) == 3:
            raise KeyboardInterrupt
        return trained(state, *args, **kwargs)

    monkeypatch.setattr(demo_settings, "train_version", killed_in_the_third_version)
    with pytest.raises(KeyboardInterrupt):
        ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 384, every=128)
    versions.clear()

    def counted(state, *args, **kwargs):
        versions.append(state.version)
        return trained(state, *args, **kwargs)

    monkeypatch.setattr(demo_settings, "train_version", counted)
    assert ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 384, every=128) == whole
    assert versions == [2]  # only the version the interruption lost


def test_a_curve_process_whose_parent_is_gone_stops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(ttq, "_parent", os.getppid())  # the parent still there: trains
    assert len(ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 128, every=128)) == 1
    monkeypatch.setattr(ttq, "_parent", os.getppid() + 1)  # reparented: another parent

    def exit_now(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(ttq.os, "_exit", exit_now)  # the real one would end the test run
    with pytest.raises(SystemExit):
        ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 256, every=128)
    # The first version's figure stays cached; nothing of the second was trained.
    monkeypatch.setattr(ttq, "_parent", None)
    monkeypatch.setattr(demo_settings, "train_version", lambda *a, **k: pytest.fail("trained"))
    assert len(ttq.quality_curve(DEMO_MODEL, DEMO_SETTINGS, "synthetic", 128, every=128)) == 1


def test_curves_are_for_the_demo_model_only() -> None:
    with pytest.raises(ValueError, match="demo model"):
        ttq.quality_curve(TINY_MODEL, DEMO_SETTINGS, "synthetic", 256)


def test_class_sim_curves_only_fills_the_cache_without_a_class(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.class_sim.__main__ import main

    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path))
    argv = ["--preset", "class", "--volunteers", "1", "--curves-only", "--quality-images", "256",
            "--class-quality-images", "1024"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    # Both curves are shorter than the spacing of their figures: trained, saved, no figure yet.
    assert out.count(f"no figure yet (one every {ttq.CURVE_EVERY:,} images)") == 2
    saved = list((tmp_path / "class_sim" / "curves").glob("*.safetensors"))
    assert len(saved) == 2  # the baseline's (two 128-image versions) and the class's (one)


def test_curves_only_prints_the_images_each_best_figure_cost_against_one_computer() -> None:
    from benchmarks.class_sim.__main__ import images_ratios

    alone = [(100_000, 500.0), (120_000, 300.0)]
    other = [(131_072, 600.0), (200_000, 400.0), (262_144, 450.0), (600_000, 250.0)]
    # At 131k its best is 600 (alone: 100k images, 1.3x); at 262k 400, after 200k images
    # (alone 120k: 1.7x); at 524k (its point at 600k) 250, which one computer never reached.
    assert images_ratios(other, alone) == (
        "images to that figure ÷ one computer alone's: 600 after 0.13M: 1.3x, "
        "400 after 0.20M: 1.7x, 250 after 0.60M: not in the curve alone"
    )
    assert demo_settings.first_reached(other, 400.0) == 200_000
    assert demo_settings.first_reached(alone, 100.0) is None
