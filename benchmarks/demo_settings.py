"""Demo and default settings compared by sample quality at an equal number of training images.

The reference trainer (the distributed run's math in one process, `core.reference`) trains the
demo model (the default model too: 32×32, 32 maps) on a dataset (`--dataset`, by default the
demo's) with base settings (`--base demo`: the demo preset; `--base default`: `RunSettings()`)
and with the previous demo settings (128-image units, lr 5e-4) or variants of the base
(`--try KEY=VALUE`; `--try K1=V1,K2=V2` changes keys together), and prints the quality
figure (multi-scale sliced Wasserstein distance, as the coordinator computes it: BatchNorm
calibrated, fixed noise, the same 512 real images) every `--every` images, and the images
each needed to reach `--level`.
Being about images seen, not seconds, the figures do not depend on the machine's load; the
demo's wall-clock speed (`./scripts/demo`) decides how many images five minutes buy.
`--grids DIR` saves each measured sample grid as a PNG, to look at.

    .venv/bin/python -m benchmarks.demo_settings [--images 102400] [--every 12800]
    .venv/bin/python -m benchmarks.demo_settings --images 153600 --try beta2=0.99 --try lr=2e-3
    .venv/bin/python -m benchmarks.demo_settings --dataset synthetic:10000 --base default --try lr=1e-3
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from coordinator.demo import DEMO_DATASET, DEMO_DATASETS, DEMO_MODEL, DEMO_SETTINGS
from core.config import RunSettings
from core.data import (
    IngestReport,
    ingest_images,
    parse_dataset_spec,
    shard_images,
    synthetic_images,
)
from core.model import gan_from_parameters
from core.quality import fixed_noise, sample_grid_png, sliced_wasserstein
from core.reference import TrainState, initial_state, train_version
from core.training import calibrate_gan, intra_op_threads

PREVIOUS = dataclasses.replace(DEMO_SETTINGS, images_per_work_unit=128, lr=5e-4)
BASES = {"demo": DEMO_SETTINGS, "default": RunSettings()}
QUALITY_IMAGES = 512  # as coordinator.loop
GRID_IMAGES = 64  # images in a saved sample grid, as coordinator.loop


def load_images(spec: str) -> torch.Tensor:
    """The training images of a --dataset value, uint8 (N, 3, S, S) at the demo model's size."""
    kind, value = parse_dataset_spec(spec)
    if kind == "synthetic":
        assert isinstance(value, int)
        return synthetic_images(value, DEMO_MODEL.image_size, 0)
    assert isinstance(value, Path)
    shards = ingest_images(value, DEMO_MODEL.image_size, IngestReport(), progress=False)
    return torch.cat([shard_images(shard) for shard in shards])


def quality(state: TrainState, real: torch.Tensor, seed: int) -> tuple[float, torch.Tensor]:
    """The quality figure and the first GRID_IMAGES samples of the fixed noise."""
    gan = gan_from_parameters(DEMO_MODEL, state.params)
    calibrate_gan(gan, real[:256], seed=seed)
    with torch.no_grad():
        fake = gan.G(fixed_noise(DEMO_MODEL, QUALITY_IMAGES, seed + 1))
    return sliced_wasserstein(real, fake, seed=seed), fake[:GRID_IMAGES]


def quality_images(images: torch.Tensor, seed: int) -> torch.Tensor:
    """The real images every quality figure of a run with this seed compares against."""
    gen = torch.Generator().manual_seed(seed)
    return images[torch.randperm(images.shape[0], generator=gen)[:QUALITY_IMAGES].sort().values]


def measured_versions(
    state: TrainState, settings: RunSettings, images: torch.Tensor, end: int, every: int
) -> Iterator[tuple[TrainState, tuple[float, torch.Tensor] | None]]:
    """Train version by version from `state` until `end` images are seen, yielding each
    version's state with `quality` at the first version at or past each multiple of `every`
    training images (None at the versions between; every version when versions are larger)."""
    real = quality_images(images, settings.seed)
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    mark = (state.version * per_version // every + 1) * every  # the next multiple not yet passed
    with intra_op_threads(settings.compute_threads):
        while state.version * per_version < end:
            state, _ = train_version(state, DEMO_MODEL, settings, images)
            seen = state.version * per_version
            measured = None
            if seen >= mark:
                mark = (seen // every + 1) * every
                measured = quality(state, real, settings.seed)
            yield state, measured


def curve(
    settings: RunSettings, images: torch.Tensor, total: int, every: int, grids: Path | None
) -> list[tuple[int, float]]:
    """(images seen, quality figure) about every `every` training images, up to `total`."""
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    figures, started = [], time.perf_counter()
    start = initial_state(DEMO_MODEL, settings)
    for state, measured in measured_versions(start, settings, images, total, every):
        if measured is None:
            continue
        seen, (figure, fake) = state.version * per_version, measured
        figures.append((seen, figure))
        if grids is not None:
            (grids / f"{seen:07d}.png").write_bytes(sample_grid_png(fake))
        print(
            f"  {seen:>7,} images ({state.version} versions): quality "
            f"{figure:.1f}  [{time.perf_counter() - started:.0f} s]",
            flush=True,
        )
    return figures


def variant(base: RunSettings, change: str) -> tuple[str, RunSettings]:
    """`KEY=VALUE[,KEY=VALUE…]` → (that text, the base settings with those keys changed)."""
    fields = {f.name: f for f in dataclasses.fields(RunSettings)}
    values: dict[str, Any] = {}
    for part in change.split(","):
        key, sep, text = part.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--try takes KEY=VALUE with a RunSettings key, not {part!r}")
        current = getattr(base, key)
        try:
            values[key] = type(current)(text)
        except ValueError:
            raise SystemExit(f"--try {part}: {text!r} is not a {type(current).__name__}") from None
    return change, dataclasses.replace(base, **values)


def first_reached(figures: Sequence[tuple[int, float]], level: float) -> int | None:
    """The images seen at the first measurement at or below `level` (None: never)."""
    return next((seen for seen, figure in figures if figure <= level), None)


def images_to(level: float, figures: list[tuple[int, float]]) -> str:
    """The images seen at the first measurement at or below `level`, or "not reached"."""
    reached = first_reached(figures, level)
    return "not reached" if reached is None else f"{reached:,}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_settings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=int, default=102_400, help="training images per run")
    parser.add_argument(
        "--every",
        type=int,
        default=12_800,
        help="images between quality figures (measured at the first version at or past each multiple)",
    )
    parser.add_argument(
        "--dataset",
        default=DEMO_DATASETS[DEMO_DATASET],
        help="emoji, synthetic[:N], a folder or a .zip (default: the demo's)",
    )
    parser.add_argument(
        "--base", choices=sorted(BASES), default="demo", help="settings to vary (default demo)"
    )
    parser.add_argument(
        "--level", type=float, default=200.0, help="quality level to count images to (default 200)"
    )
    parser.add_argument("--grids", type=Path, help="save every measured sample grid under DIR")
    parser.add_argument(
        "--try",
        dest="changes",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="compare the base settings with this change (repeatable; commas join keys "
        "changed together); "
        "without it, the demo settings with the previous ones",
    )
    parser.add_argument(
        "--only-tries", action="store_true", help="train only the --try variants, not the base"
    )
    args = parser.parse_args(argv)
    base = BASES[args.base]
    others = [variant(base, change) for change in args.changes] or [("previous", PREVIOUS)]
    images = load_images(args.dataset)
    print(f"dataset {args.dataset}: {images.shape[0]:,} images; base settings: {args.base}")
    runs = others if args.only_tries else [("current", base), *others]
    results = {}
    for name, settings in runs:
        print(
            f"{name}: units of {settings.images_per_work_unit} × "
            f"{settings.num_workunits_per_update}, lr {settings.lr:g}, "
            f"betas ({settings.beta1:g}, {settings.beta2:g})"
        )
        grids = None
        if args.grids is not None:
            grids = args.grids / name.replace("=", "-")
            grids.mkdir(parents=True, exist_ok=True)
        results[name] = curve(settings, images, args.images, args.every, grids)
    for name, figures in results.items():
        print(
            f"{name}: best quality {min(f for _, f in figures):.1f}, last {figures[-1][1]:.1f} "
            f"within {args.images:,} images; images to quality {args.level:g}: "
            f"{images_to(args.level, figures)} (lower quality figures are better)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
