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


@dataclasses.dataclass(frozen=True)
class TimeToQuality:
    """One class against the baseline, to the best figure the baseline reaches in the horizon."""

    target: float  # that figure (SWD, lower is better)
    baseline_s: float  # simulated seconds the baseline first reaches it
    images: int | None  # training images at which the class first reaches it (None: never)
    seconds: float  # the class's simulated seconds to it, or to its curve's end if never

    @property
    def speedup(self) -> float | None:
        return None if self.images is None else self.baseline_s / self.seconds

    @property
    def speedup_below(self) -> float | None:
        """When the class never reaches the figure: the speedup is less than this."""
        return self.baseline_s / self.seconds if self.images is None else None

    def describe(self) -> str:
        alone = f"quality {self.target:.1f} alone after {self.baseline_s:.1f} s"
        if self.images is None:
            return f"{alone}; not reached by the class in {self.seconds:.1f} s: speedup < " + (
                f"{self.speedup_below:.2f}"
            )
        return (f"{alone}, by the class after {self.images:,} images, {self.seconds:.1f} s: "
                f"speedup {self.speedup:.2f}")  # fmt: skip


def compare(
    baseline: Curve, baseline_images_per_s: float, other: Curve, images_per_s: float,
    minutes: float,
) -> TimeToQuality:  # fmt: skip
    """When the baseline (at `baseline_images_per_s`) and `other` (at `images_per_s`) reach the
    best figure the baseline reaches within `minutes`."""
    budget = minutes * 60.0 * baseline_images_per_s  # images the baseline computes in the horizon
    within = [(seen, figure) for seen, figure in baseline if seen <= budget]
    if not within:
        raise ValueError(f"the baseline curve has no figure within {budget:,.0f} images")
    seen, target = min(within, key=lambda point: point[1])  # min keeps the first of equals
    reached = next((n for n, figure in other if figure <= target), None)
    images = other[-1][0] if reached is None else reached
    return TimeToQuality(target, seen / baseline_images_per_s, reached, images / images_per_s)


def horizon_images(images_per_s: float, minutes: float, cap: int) -> int:
    """The baseline's images in `minutes` at most `cap`, in whole versions of the baseline."""
    per_version = (
        BASELINE_SETTINGS.images_per_work_unit * BASELINE_SETTINGS.num_workunits_per_update
    )
    return min(cap, int(minutes * 60 * images_per_s)) // per_version * per_version


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
