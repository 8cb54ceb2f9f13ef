"""Precision of the quality figure: its noise at fixed weights against its change over training.

The reference trainer trains the demo model (demo settings) on a real image set (the Noto emoji
of ../shared/datasets, or `--dataset synthetic`) and keeps the weights every `--every` versions.
Each kept checkpoint is then evaluated as the coordinator does (BatchNorm calibrated, the
sliced Wasserstein distance of generated against real images), `--seeds` times per variant with
a different evaluation seed each (another real subset, other latent noise, other patches and
directions). Their standard deviation is the figure's noise: the coordinator's evaluation is
deterministic (fixed subset, fixed noise, fixed seed), but which fixed choice it made is as
arbitrary as any of these. It is printed beside the change between checkpoints `--every`
versions apart, and the time of one evaluation on this machine.

    .venv/bin/python -m benchmarks.quality_noise [--versions 300] [--every 50] [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from coordinator.demo import DEMO_MODEL, DEMO_SETTINGS
from core.data import DatasetError, IngestReport, ingest_images, shard_images, synthetic_images
from core.model import gan_from_parameters
from core.quality import fixed_noise, sliced_wasserstein
from core.reference import initial_state, train_version
from core.training import calibrate_gan, intra_op_threads

EMOJI = "../shared/datasets/noto-emoji-64.zip"  # beside the repository, run from its root


@dataclass(frozen=True)
class Variant:
    """One way to compute the figure."""

    name: str
    images: int  # real and generated images compared
    patches_per_image: int  # 7×7 descriptors per image per pyramid level


VARIANTS = (
    Variant("512 images × 64 patches", 512, 64),
    Variant("2048 images × 16 patches", 2048, 16),
    Variant("2048 images × 64 patches", 2048, 64),
)


def load_images(dataset: str) -> Tensor:
    if dataset == "synthetic":
        return synthetic_images(10_000, DEMO_MODEL.image_size, 0)
    report = IngestReport()
    shards = ingest_images(Path(dataset), DEMO_MODEL.image_size, report, progress=False)
    return torch.cat([shard_images(s) for s in shards])


@dataclass(frozen=True)
class Seeds:
    """Where each random choice of an evaluation comes from; all equal in the coordinator."""

    real: int  # which real images
    noise: int  # which latent vectors
    patches: int  # which patches and projection directions
    calibration: int  # the BatchNorm calibration's noise

    @classmethod
    def all(cls, seed: int) -> Seeds:
        return cls(seed, seed, seed, seed)


def evaluate(params: dict[str, Tensor], images: Tensor, variant: Variant, seeds: Seeds) -> float:
    """The figure as the coordinator computes it (Seeds.all(run seed)), or with other seeds."""
    gen = torch.Generator().manual_seed(seeds.real)
    count = min(variant.images, images.shape[0])
    real = images[torch.randperm(images.shape[0], generator=gen)[:count].sort().values]
    gan = gan_from_parameters(DEMO_MODEL, params)
    calibrate_gan(gan, real[:256], seed=seeds.calibration)
    with torch.no_grad():
        fake = gan.G(fixed_noise(DEMO_MODEL, variant.images, seeds.noise + 1))
    return sliced_wasserstein(
        real, fake, seed=seeds.patches, patches_per_image=variant.patches_per_image
    )


def sources(params: dict[str, Tensor], images: Tensor, variant: Variant, count: int) -> None:
    """The relative std at fixed weights with one source of randomness varied at a time."""
    base = DEMO_SETTINGS.seed
    for field in ("real", "noise", "patches", "calibration"):
        figures = [
            evaluate(params, images, variant, replace(Seeds.all(base), **{field: base + 7919 * i}))
            for i in range(count)
        ]
        mean, std = statistics.fmean(figures), statistics.stdev(figures)
        print(f"  only the {field:<12} varies: {mean:7.1f} ± {std:5.1f} ({100 * std / mean:.1f} %)")


def train(images: Tensor, versions: int, every: int) -> dict[int, dict[str, Tensor]]:
    state, kept = initial_state(DEMO_MODEL, DEMO_SETTINGS), {}
    started = time.perf_counter()
    with intra_op_threads(DEMO_SETTINGS.compute_threads):
        while state.version < versions:
            state, _ = train_version(state, DEMO_MODEL, DEMO_SETTINGS, images)
            if state.version % every == 0:
                kept[state.version] = state.params
                print(f"  trained {state.version} versions [{time.perf_counter() - started:.0f} s]")
    return kept


def report_variant(
    variant: Variant, kept: dict[int, dict[str, Tensor]], images: Tensor, seeds: int
) -> None:
    print(f"\n{variant.name}:")
    stds, changes, times = [], [], []
    stored: list[float] = []
    for version, params in kept.items():
        figures = []
        for seed in range(seeds):
            start = time.perf_counter()
            seeds_i = Seeds.all(DEMO_SETTINGS.seed + 7919 * seed)
            figures.append(evaluate(params, images, variant, seeds_i))
            times.append(time.perf_counter() - start)
        again = evaluate(params, images, variant, Seeds.all(DEMO_SETTINGS.seed))
        assert again == figures[0], "two evaluations of the same weights differ"
        mean, std = statistics.fmean(figures), statistics.stdev(figures)
        stds.append(std / mean)
        if stored:
            changes.append(abs(figures[0] - stored[-1]) / stored[-1])
        stored.append(figures[0])
        print(
            f"  version {version:>5}: stored figure {figures[0]:7.1f}; over {seeds} evaluation "
            f"seeds {mean:7.1f} ± {std:5.1f} ({100 * std / mean:4.1f} %)"
        )
    noise = statistics.fmean(stds)
    change = statistics.median(changes) if changes else float("nan")
    print(
        f"  noise (relative std at fixed weights, mean over checkpoints): {100 * noise:.1f} %; "
        f"median change between checkpoints: {100 * change:.1f} % = {change / noise:.1f} × "
        f"the noise; one evaluation {statistics.median(times):.2f} s (median)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality_noise", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dataset", default=EMOJI, help=f"image folder/zip, or synthetic (default {EMOJI})"
    )
    parser.add_argument("--versions", type=int, default=300, help="versions to train")
    parser.add_argument("--every", type=int, default=50, help="versions between checkpoints")
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds per checkpoint")
    parser.add_argument(
        "--variants", default="", help="comma-separated indices of VARIANTS (default: all)"
    )
    parser.add_argument(
        "--sources",
        action="store_true",
        help="at the last checkpoint, vary one source of randomness at a time",
    )
    args = parser.parse_args(argv)
    try:
        images = load_images(args.dataset)
    except DatasetError as exc:
        raise SystemExit(f"quality_noise: {exc}") from None
    print(
        f"{images.shape[0]} images of {args.dataset}; demo model and settings, "
        f"{torch.get_num_threads()} thread(s) for evaluation"
    )
    kept = train(images, args.versions, args.every)
    picked = [VARIANTS[int(i)] for i in args.variants.split(",") if i] or list(VARIANTS)
    for variant in picked:
        if args.sources:
            print(f"\n{variant.name}, version {max(kept)}:")
            sources(kept[max(kept)], images, variant, args.seeds)
        else:
            report_variant(variant, kept, images, args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
