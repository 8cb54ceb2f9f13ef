"""Local steps (DiLoCo) against exact synchronous units: quality per image and per version.

The reference trainer (the distributed run's math in one process, independent of the
machine's load) trains the demo model on the demo's synthetic set with H inner steps per unit
for H in `--inner` (H = 1 is today's exact gradient unit) at `--units` units per version, and
prints the quality figure (sliced Wasserstein distance, lower is better) every `--every`
images. A unit of a local-steps run has H × the micro-batch images, so every inner step sees
one micro-batch; a version of U units then trains U × H × 64 images while its workers upload
once. Bytes moved per version are the same for every H (one result per unit, the weights once
per worker), so bytes per training image fall by H.

Wall-clock comes from `benchmarks.class_sim` (seconds per version for a profile and network);
this script prints quality per version so that the two can be combined.

    .venv/bin/python -m benchmarks.local_steps [--inner 1,4,16] [--units 8] [--images 102400]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence

import torch

from benchmarks.demo_settings import quality
from coordinator.demo import DEMO_MODEL, DEMO_SETTINGS, DEMO_SYNTHETIC_IMAGES
from core.config import RunSettings
from core.data import synthetic_images
from core.reference import initial_state, train_version
from core.training import intra_op_threads

QUALITY_IMAGES = 512  # as coordinator.loop


def settings_for(
    inner: int, units: int, outer_lr: float = 0.7, outer_momentum: float = 0.9
) -> RunSettings:
    """The demo's settings with H inner steps per unit (each of one micro-batch)."""
    return dataclasses.replace(
        DEMO_SETTINGS,
        inner_steps=inner,
        outer_lr=outer_lr,
        outer_momentum=outer_momentum,
        images_per_work_unit=inner * DEMO_SETTINGS.batch_size if inner > 1 else 64,
        num_workunits_per_update=units,
    )


def run(settings: RunSettings, images: torch.Tensor, total: int, every: int) -> list[tuple]:
    """(images seen, versions, quality) every `every` images up to `total`."""
    gen = torch.Generator().manual_seed(settings.seed)
    picks = torch.randperm(images.shape[0], generator=gen)[:QUALITY_IMAGES].sort().values
    real = images[picks]
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    state, rows, next_report = initial_state(DEMO_MODEL, settings), [], every
    started = time.perf_counter()
    with intra_op_threads(settings.compute_threads):
        while state.version * per_version < total:
            state, _ = train_version(state, DEMO_MODEL, settings, images)
            seen = state.version * per_version
            if seen >= next_report:
                figure = quality(state, real, settings.seed)
                rows.append((seen, state.version, figure))
                print(
                    f"  {seen:>8,} images, {state.version:>4} versions: quality {figure:6.1f}"
                    f"  [{time.perf_counter() - started:.0f} s]",
                    flush=True,
                )
                next_report += every
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.local_steps", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--inner", default="1,4,16", help="inner steps per unit (H) to compare")
    parser.add_argument("--units", default="8", help="units per version (comma-separated)")
    parser.add_argument("--images", type=int, default=102_400, help="training images per run")
    parser.add_argument("--every", type=int, default=16_384, help="images between figures")
    parser.add_argument("--outer-lr", type=float, default=0.7, help="DiLoCo's 0.7 by default")
    parser.add_argument("--outer-momentum", type=float, default=0.9, help="DiLoCo's 0.9")
    args = parser.parse_args(argv)
    images = synthetic_images(DEMO_SYNTHETIC_IMAGES, DEMO_MODEL.image_size, 0)
    table = []
    for units in (int(u) for u in args.units.split(",")):
        for inner in (int(h) for h in args.inner.split(",")):
            settings = settings_for(inner, units, args.outer_lr, args.outer_momentum)
            print(
                f"H={inner}, {units} units/version of {settings.images_per_work_unit} images "
                f"(inner lr {settings.lr:g}, outer lr {settings.outer_lr:g}, "
                f"momentum {settings.outer_momentum:g})",
                flush=True,
            )
            table.append((inner, units, run(settings, images, args.images, args.every)))
    print("\nquality (SWD, lower is better) by images seen; demo model, synthetic set:")
    for inner, units, rows in table:
        cells = "  ".join(f"{seen // 1000:>4}k:{q:6.1f} (v{v})" for seen, v, q in rows)
        print(f"  H={inner:<3} U={units:<3} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
