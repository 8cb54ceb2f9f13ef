"""What a pipelined protocol would cost in quality: each version's gradients taken at older weights.

A demo version waits ~50 ms for its path (upload, validation, close, the next download) beside
~150 ms of compute (benchmarks.demo_timeline). A pipeline of depth 2 would hide it: the units of
version v+1 would be computed at the weights of version v-1 while version v closes, so workers
never wait for a close. This measures the price with the reference trainer's own math (unit
plan, payload precision, Adam step) on the demo's settings, the gradients of version v taken
at the weights of version v - `delay`: the quality figure at equal images for each delay.
A what-if: no protocol change is implied. Load-independent (the figures are the trainer's).

    .venv/bin/python -m benchmarks.stale_gradients [--delay 0,1] [--images 128000] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence

import torch

from benchmarks.demo_settings import QUALITY_IMAGES, load_images, quality
from coordinator.demo import DEMO_DATASET, DEMO_DATASETS, DEMO_MODEL, DEMO_SETTINGS
from core.config import RunSettings
from core.model import ModelConfig
from core.reference import TrainState, initial_state, train_version
from core.training import intra_op_threads


def train_stale(
    model: ModelConfig,
    settings: RunSettings,
    images: torch.Tensor,
    delay: int,
    versions: int,
    on_version: Callable[[TrainState], None] | None = None,
) -> TrainState:
    """`versions` versions of the reference trainer's math with each version's gradients taken
    at the weights of `delay` versions before (the initial weights while there are none)."""
    state = initial_state(model, settings)
    history = [state.params]  # the weights of the last delay + 1 versions, oldest first
    with intra_op_threads(settings.compute_threads):
        for _ in range(versions):
            state, _ = train_version(state, model, settings, images, computed_at=history[0])
            history = [*history, state.params][-(delay + 1) :]
            if on_version is not None:
                on_version(state)
    return state


def curve(
    settings: RunSettings, images: torch.Tensor, delay: int, total: int, every: int
) -> list[tuple[int, float]]:
    """(images seen, quality figure) about every `every` images of the demo model, gradients
    `delay` versions stale (0: the reference trainer's own training)."""
    gen = torch.Generator().manual_seed(settings.seed)
    real = images[torch.randperm(images.shape[0], generator=gen)[:QUALITY_IMAGES].sort().values]
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    figures: list[tuple[int, float]] = []
    mark, started = every, time.perf_counter()

    def measure(state: TrainState) -> None:
        nonlocal mark
        seen = state.version * per_version
        if seen >= mark:  # the first version at or past each multiple of `every`
            mark += every
            figure, _ = quality(state, real, settings.seed)
            figures.append((seen, figure))
            print(
                f"  delay {delay}: {seen:>7,} images, quality {figure:.1f}  "
                f"[{time.perf_counter() - started:.0f} s]",
                flush=True,
            )

    versions = -(-total // per_version)
    train_stale(DEMO_MODEL, settings, images, delay, versions, measure)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stale_gradients", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--delay", default="0,1", help="versions of staleness to compare")
    parser.add_argument("--images", type=int, default=128_000, help="training images per run")
    parser.add_argument("--every", type=int, default=25_600, help="images between figures")
    parser.add_argument("--lr", type=float, default=DEMO_SETTINGS.lr)
    args = parser.parse_args(argv)
    settings = dataclasses.replace(DEMO_SETTINGS, lr=args.lr)
    images = load_images(DEMO_DATASETS[DEMO_DATASET])
    results = {
        delay: curve(settings, images, delay, args.images, args.every)
        for delay in (int(d) for d in args.delay.split(","))
    }
    print(f"quality figure (lower is better), demo settings, lr {args.lr:g}:")
    for delay, figures in results.items():
        shown = " / ".join(f"{figure:.0f}" for _, figure in figures)
        print(f"  delay {delay}: {shown}  (every {args.every:,} images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
