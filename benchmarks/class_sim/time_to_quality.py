"""Time to quality: one laptop alone against a class, in simulated seconds to the same figure.

Quality per training image comes from the reference trainer (`core.reference`, the
distributed run's math in one process; the figure of `benchmarks.demo_settings.quality`),
cached with the trainer's state at the curve's end so that a longer horizon continues a
shorter one instead of starting again (60 minutes of one laptop are millions of images, hours
of this machine's trainer). Seconds per image come from the simulation (a class's measured
useful images/s) or from the laptop profile's pure compute rate (the baseline: no claiming, no
uploads, no waiting for a close, which favours the baseline and makes the speedup
conservative).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from benchmarks.demo_settings import first_reached, load_images, measured_versions
from coordinator.demo import DEMO_DATASETS, DEMO_MODEL, DEMO_SETTINGS
from core.config import RunSettings
from core.model import ModelConfig
from core.paths import cache_dir
from core.reference import TrainState, initial_state
from core.training import AdamState

Curve = list[tuple[int, float]]  # (training images seen, quality figure: SWD, lower is better)

BASELINE_SETTINGS = DEMO_SETTINGS  # one computer, synchronous: exact 64-image gradient units
CURVE_EVERY = 8192  # training images between quality figures (at most one per version)
_parent: int | None = None  # in a curve process of `quality_curves`: the process it works for


@dataclasses.dataclass(frozen=True)
class TimeToQuality:
    """One class against the baseline, to the best figure the baseline reaches in the horizon.

    The speedup is the product of two ratios: the class's images/s over the baseline's
    (`rate_ratio`, at most N × its scaling efficiency) and the baseline's images to the
    figure over the class's (1 / `images_ratio`). A 16× speedup with 32 volunteers at
    efficiency 0.8 (rate ratio 25.6) allows the class at most 1.6× the baseline's images.
    """

    target: float  # that figure (SWD, lower is better)
    baseline_images: int  # training images at which the baseline first reaches it
    baseline_rate: float  # the baseline's images/s
    images: int | None  # training images at which the class first reaches it (None: never)
    class_images: int  # `images`, or the class's curve's last images if it never reaches it
    rate: float  # the class's useful images/s

    @property
    def baseline_s(self) -> float:
        """Simulated seconds the baseline first reaches the figure."""
        return self.baseline_images / self.baseline_rate

    @property
    def seconds(self) -> float:
        """The class's simulated seconds to the figure, or to its curve's end if never."""
        return self.class_images / self.rate

    @property
    def rate_ratio(self) -> float:
        return self.rate / self.baseline_rate

    @property
    def images_ratio(self) -> float:
        """The class's images to the figure ÷ the baseline's (when the class never reaches it,
        its curve's images ÷ the baseline's: the ratio is more than this)."""
        return self.class_images / self.baseline_images

    @property
    def speedup(self) -> float | None:
        return None if self.images is None else self.baseline_s / self.seconds

    @property
    def speedup_below(self) -> float | None:
        """When the class never reaches the figure: the speedup is less than this."""
        return self.baseline_s / self.seconds if self.images is None else None

    def describe(self) -> str:
        alone = f"quality {self.target:.1f} alone after {self.baseline_s:.1f} s"
        rates = f"{self.rate_ratio:.1f}x the images/s"
        if self.images is None:
            return (f"{alone}; not reached by the class in {self.seconds:.1f} s: speedup < "
                    f"{self.speedup_below:.2f} ({rates}, over {self.images_ratio:.1f}x the "
                    f"images: {self.baseline_images:,} alone)")  # fmt: skip
        return (f"{alone}, by the class after {self.images:,} images, {self.seconds:.1f} s: "
                f"speedup {self.speedup:.2f} = {rates} ÷ {self.images_ratio:.2f}x the images "
                f"({self.baseline_images:,} alone)")  # fmt: skip


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
    if not other:
        raise ValueError(f"the class's curve has no figure (one every {CURVE_EVERY:,} images)")
    seen, target = min(within, key=lambda point: point[1])  # min keeps the first of equals
    reached = first_reached(other, target)
    images = other[-1][0] if reached is None else reached
    return TimeToQuality(target, seen, baseline_images_per_s, reached, images, images_per_s)


def at_marks(curve: Curve, first: int = 131_072) -> list[tuple[int, float, float]]:
    """(mark, figure, best so far) at the first figure at or past `first`, 2 × `first`, …
    (doubling) up to the curve's end: how `--curves-only` and benchmarks/README.md show it."""
    points, mark, best = [], first, float("inf")
    for seen, figure in curve:
        best = min(best, figure)
        if seen >= mark:
            points.append((mark, figure, best))
            while mark <= seen:
                mark *= 2
    return points


def horizon_images(images_per_s: float, minutes: float, cap: int) -> int:
    """The baseline's images in `minutes` at most `cap`, in whole versions of the baseline."""
    per_version = (
        BASELINE_SETTINGS.images_per_work_unit * BASELINE_SETTINGS.num_workunits_per_update
    )
    return min(cap, int(minutes * 60 * images_per_s)) // per_version * per_version


def quality_curve(
    model: ModelConfig, settings: RunSettings, dataset: str, images: int, *,
    every: int = CURVE_EVERY,
) -> Curve:  # fmt: skip
    """The reference trainer's quality figure at the first version at or past each multiple of
    `every` training images, up to `images` (one per version when versions are larger).

    Cached per model, settings, dataset and `every`, with the trainer's state at the curve's
    end: a longer curve of the same inputs continues where the last one stopped (also after
    an interrupted run), and a shorter one is a prefix of it.
    """
    if model != DEMO_MODEL:
        raise ValueError("quality curves are computed for the 32×32 demo model only")
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    end = -(-images // per_version) * per_version  # whole versions: at or past `images`
    path = _cache_path(model, settings, dataset, every)
    state, figures = _load(path, model, settings)
    if state.version * per_version < end:
        if state.version:
            print(f"quality curve: {images:,} images of {dataset}, continued from "
                  f"{state.version * per_version:,} …", flush=True)  # fmt: skip
        else:
            print(f"quality curve: {images:,} images of {dataset}, {per_version:,} per version "
                  f"({settings.inner_steps} inner steps per unit) …", flush=True)  # fmt: skip
        state, figures = _extend(path, state, figures, settings, dataset, every, end)
    return [(seen, figure) for seen, figure in figures if seen <= end]


def _extend(
    path: Path, start: TrainState, figures: Curve, settings: RunSettings, dataset: str,
    every: int, end: int,
) -> tuple[TrainState, Curve]:  # fmt: skip
    images = load_images(DEMO_DATASETS[dataset])
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    state = start
    bar = tqdm(total=end, initial=start.version * per_version, unit="img", unit_scale=True,
               desc="quality curve", disable=None)  # fmt: skip
    with bar:
        for state, measured in measured_versions(start, settings, images, end, every):
            bar.update(per_version)
            if measured is not None:
                figures = [*figures, (state.version * per_version, measured[0])]
                _save(path, state, figures)
                bar.set_postfix(quality=f"{figures[-1][1]:.1f}")
            if _parent is not None and os.getppid() != _parent:  # killed, not interrupted
                print("quality curve: the process that asked for it has ended; cached up to "
                      "its last figure", file=sys.stderr, flush=True)  # fmt: skip
                os._exit(1)  # an orphaned pool worker: nothing of it is waited for
    _save(path, state, figures)
    return state, figures


def _load(path: Path, model: ModelConfig, settings: RunSettings) -> tuple[TrainState, Curve]:
    """The cached curve and the trainer's state at its end; a fresh start when none is."""
    if not path.exists():
        return initial_state(model, settings), []
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
    params = {n.removeprefix("params."): t for n, t in tensors.items() if n.startswith("params.")}
    adam = {n.removeprefix("adam."): t for n, t in tensors.items() if n.startswith("adam.")}
    state = TrainState(int(meta["version"]), int(meta["cursor"]), params,
                       AdamState.from_tensors(int(meta["adam_step"]), adam))  # fmt: skip
    return state, [(int(seen), float(figure)) for seen, figure in json.loads(meta["curve"])]


def _save(path: Path, state: TrainState, figures: Curve) -> None:
    """The curve and the state it ends at, replacing the last file only once written whole."""
    tensors = {f"params.{n}": t.contiguous() for n, t in state.params.items()}
    tensors.update({f"adam.{n}": t.contiguous() for n, t in state.adam.to_tensors().items()})
    meta = {"version": str(state.version), "cursor": str(state.cursor),
            "adam_step": str(state.adam.step), "curve": json.dumps(figures)}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata=meta)
    os.replace(partial, path)


def _cache_path(model: ModelConfig, settings: RunSettings, dataset: str, every: int) -> Path:
    inputs = {"model": dataclasses.asdict(model), "settings": settings.to_dict(),
              "dataset": dataset, "every": every}  # fmt: skip
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "class_sim" / "curves" / f"{key}.safetensors"


def quality_curves(
    model: ModelConfig, jobs: Sequence[tuple[RunSettings, int]], dataset: str
) -> list[Curve]:
    """`quality_curve` of each (settings, images), the missing ones in parallel processes (one
    per core: each trainer runs on `compute_threads` threads, one in every preset)."""
    unique = list(dict.fromkeys(jobs))  # one process per curve file
    workers = min(len(unique), os.cpu_count() or 1)
    if workers <= 1:
        curves = [quality_curve(model, settings, dataset, images) for settings, images in unique]
    else:
        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_work_for, initargs=(os.getpid(),)
        ) as pool:
            futures = [pool.submit(quality_curve, model, s, dataset, n) for s, n in unique]
            curves = [future.result() for future in futures]
    return [curves[unique.index(job)] for job in jobs]


def _work_for(parent: int) -> None:
    """A curve process stops when the one that started it is gone (a kill skips the pool's
    shutdown), instead of training on for hours beside a new run of the same curve."""
    global _parent
    _parent = parent
