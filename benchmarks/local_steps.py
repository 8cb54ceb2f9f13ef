"""Local steps against exact synchronous units: quality per training image.

The reference trainer (the distributed run's math in one process, independent of the
machine's load) trains the demo model on the demo's synthetic set with H inner steps per unit
for H in `--inner` (H = 1 is today's exact gradient unit) at `--units` units per version, and
prints the quality figure (sliced Wasserstein distance, lower is better) every `--every`
images. A unit of a local-steps run has H × the micro-batch images, so every inner step sees
one micro-batch; a version of U units then trains U × H × 64 images while its workers upload
once. Bytes moved per version are the same for every H (one result per unit, the weights once
per worker), so bytes per training image fall by H.

By default local steps are the protocol's own (`core.unit_kinds.LocalStepUnits`: inner SGD,
outer Adam); `--inner-opt` and `--outer-opt` swap in the recipes that were compared before it
was adopted (benchmarks/local_step_recipes.py), to redo those measurements.

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

import core.reference
from benchmarks.demo_settings import load_images, quality
from benchmarks.local_step_recipes import INNER, OUTER, Recipe, RecipeUnits
from coordinator.demo import DEMO_MODEL, DEMO_SETTINGS, DEMO_SYNTHETIC_IMAGES
from core.config import RunSettings
from core.reference import initial_state, train_version
from core.training import intra_op_threads
from core.unit_kinds import UnitKind

QUALITY_IMAGES = 512  # as coordinator.loop
DEFAULTS = RunSettings()  # the local-steps settings' defaults


def settings_for(inner: int, units: int, base: RunSettings = DEMO_SETTINGS) -> RunSettings:
    """`base` (the demo's settings) with H inner steps per unit (each of one micro-batch)."""
    return dataclasses.replace(
        base,
        inner_steps=inner,
        images_per_work_unit=inner * base.batch_size if inner > 1 else 64,
        num_workunits_per_update=units,
    )


def use_recipe(recipe: Recipe) -> None:
    """Local-steps runs train with `recipe` instead of the protocol's own local steps."""
    protocol = core.reference.unit_kind

    def kind(settings: RunSettings) -> UnitKind:
        if settings.inner_steps == 1:
            return protocol(settings)
        return RecipeUnits(settings.inner_steps, recipe)

    core.reference.unit_kind = kind


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
                figure, _ = quality(state, real, settings.seed)
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
    parser.add_argument("--inner-lr", type=float, default=DEFAULTS.inner_lr, help="inner SGD lr")
    parser.add_argument("--outer-lr", type=float, default=DEFAULTS.outer_lr)
    parser.add_argument(
        "--outer-momentum", type=float, default=DEFAULTS.outer_momentum, help="Adam β1 / Nesterov μ"
    )
    parser.add_argument("--inner-opt", default="sgd", choices=INNER, help="inner optimizer")
    parser.add_argument("--outer-opt", default="adam", choices=OUTER, help="outer step")
    parser.add_argument(
        "--adam-lr-scale", type=float, default=1.0, help="inner Adam: × lr (0: 1/sqrt(H))"
    )
    parser.add_argument(
        "--dataset",
        default=f"synthetic:{DEMO_SYNTHETIC_IMAGES}",
        help="emoji, synthetic[:N], a folder or a .zip (default: the demo's synthetic set)",
    )
    parser.add_argument("--seed", type=int, default=DEMO_SETTINGS.seed, help="the run's seed")
    args = parser.parse_args(argv)
    recipe = Recipe(args.inner_opt, args.outer_opt, args.adam_lr_scale)
    if not recipe.adopted:
        use_recipe(recipe)
    base = dataclasses.replace(
        DEMO_SETTINGS,
        inner_lr=args.inner_lr,
        outer_lr=args.outer_lr,
        outer_momentum=args.outer_momentum,
        seed=args.seed,
    )
    images = load_images(args.dataset)
    print(f"dataset {args.dataset}: {images.shape[0]:,} images", flush=True)
    table = []
    for units in (int(u) for u in args.units.split(",")):
        for inner in (int(h) for h in args.inner.split(",")):
            settings = settings_for(inner, units, base)
            print(
                f"H={inner}, {units} units/version of {settings.images_per_work_unit} images "
                f"({recipe.inner} inner lr {base.inner_lr:g}, {recipe.outer} outer lr "
                f"{base.outer_lr:g}, momentum/β1 {base.outer_momentum:g}; seed {base.seed})",
                flush=True,
            )
            table.append((inner, units, run(settings, images, args.images, args.every)))
    print(f"\nquality (SWD, lower is better) by images seen; demo model, {args.dataset}:")
    for inner, units, rows in table:
        cells = "  ".join(f"{seen // 1000:>4}k:{q:6.1f} (v{v})" for seen, v, q in rows)
        print(f"  H={inner:<3} U={units:<3} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
