"""Time to quality: one laptop alone against a class, in simulated seconds to the same figure.

Quality per training image comes from the reference trainer (`core.reference`, the
distributed run's math in one process, through `benchmarks.demo_settings.curve`); seconds
per image from the simulation (a class's measured useful images/s) or from the laptop
profile's pure compute rate (the baseline: no claiming, no uploads, no waiting for a close,
which favours the baseline and makes the speedup conservative).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from benchmarks.demo_settings import curve, load_images
from coordinator.demo import DEMO_DATASETS, DEMO_MODEL, DEMO_SETTINGS
from core.config import RunSettings
from core.model import ModelConfig
from core.paths import cache_dir

Curve = list[tuple[int, float]]  # (training images seen, quality figure: SWD, lower is better)

BASELINE_SETTINGS = DEMO_SETTINGS  # one computer, synchronous: exact 64-image gradient units
CURVE_POINTS = 32  # quality figures per curve (at most one per version)


def time_to_quality_speedup(
    baseline: Curve, baseline_images_per_s: float, other: Curve, images_per_s: float,
    minutes: float,
) -> float | None:  # fmt: skip
    """The baseline's seconds to the best quality it reaches within `minutes`, ÷ the seconds
    `other` needs to reach that quality at `images_per_s`; None if `other` never reaches it."""
    budget = minutes * 60.0 * baseline_images_per_s  # images the baseline computes in the horizon
    within = [(seen, figure) for seen, figure in baseline if seen <= budget]
    if not within:
        raise ValueError(f"the baseline curve has no figure within {budget:,.0f} images")
    seen, target = first_best(within)
    baseline_s = seen / baseline_images_per_s
    reached = images_to(target, other)
    return None if reached is None else baseline_s / (reached / images_per_s)


def first_best(figures: Curve) -> tuple[int, float]:
    """The first point at the curve's best (lowest) figure."""
    return min(figures, key=lambda point: point[1])  # min keeps the first of equal figures


def images_to(target: float, figures: Curve) -> int | None:
    """The images seen at the first figure at or below `target` (None: never)."""
    return next((seen for seen, figure in figures if figure <= target), None)


def horizon_images(images_per_s: float, minutes: float, cap: int) -> int:
    """The baseline's images in `minutes` at most `cap`, in whole versions of the baseline."""
    per_version = (
        BASELINE_SETTINGS.images_per_work_unit * BASELINE_SETTINGS.num_workunits_per_update
    )
    return min(cap, int(minutes * 60 * images_per_s)) // per_version * per_version


def explain(
    baseline: Curve, baseline_images_per_s: float, other: Curve, images_per_s: float
) -> str:
    """One line: the baseline's best figure on its curve, when each reaches it (or a bound)."""
    seen, target = first_best(baseline)
    alone_s = seen / baseline_images_per_s
    reached = images_to(target, other)
    if reached is None:  # the class needs more than its curve's images: a bound
        last = other[-1][0]
        return (f"quality {target:.1f} (alone after {alone_s:.1f} s) not reached in {last:,} "
                f"images (best {min(f for _, f in other):.1f}): speedup < "
                f"{alone_s / (last / images_per_s):.2f}")  # fmt: skip
    class_s = reached / images_per_s
    return (f"quality {target:.1f}: alone after {alone_s:.1f} s, the class after {reached:,} "
            f"images, {class_s:.1f} s: speedup {alone_s / class_s:.2f}")  # fmt: skip


def quality_curve(model: ModelConfig, settings: RunSettings, dataset: str, images: int) -> Curve:
    """The reference trainer's quality curve over `images` training images, about
    CURVE_POINTS figures (one per version when versions are larger); cached per inputs."""
    if model != DEMO_MODEL:
        raise ValueError("quality curves are computed for the 32×32 demo model only")
    every = max(1, images // CURVE_POINTS)
    path = _cache_path(model, settings, dataset, images, every)
    if path.exists():
        return [
            (int(seen), float(figure)) for seen, figure in json.loads(path.read_text())["curve"]
        ]
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    print(f"quality curve: {images:,} images of {dataset}, {per_version:,} per version "
          f"({settings.inner_steps} inner steps per unit) …", flush=True)  # fmt: skip
    started = time.perf_counter()
    figures = curve(settings, load_images(DEMO_DATASETS[dataset]), images, every, None)
    print(f"quality curve done in {time.perf_counter() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset": dataset, "images": images, "every": every,
                                "settings": settings.to_dict(), "curve": figures}))  # fmt: skip
    return figures


def _cache_path(model: ModelConfig, settings: RunSettings, dataset: str, images: int,
                every: int) -> Path:  # fmt: skip
    inputs = {"model": dataclasses.asdict(model), "settings": settings.to_dict(),
              "dataset": dataset, "images": images, "every": every}  # fmt: skip
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "class_sim" / "curves" / f"{key}.json"
