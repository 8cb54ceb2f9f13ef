"""Demo settings compared by sample quality at an equal number of training images.

The reference trainer (the distributed run's math in one process, `core.reference`) trains the
demo model on the demo's synthetic dataset with the current demo settings and with the previous
ones (128-image units, lr 5e-4), and prints the quality figure (multi-scale sliced Wasserstein
distance, as the coordinator computes it: BatchNorm calibrated, fixed noise, the same 512 real
images) every `--every` images. Being about images seen, not seconds, the figures do not depend
on the machine's load; the demo's wall-clock speed (`./scripts/demo`) decides how many images
five minutes buy.

    .venv/bin/python -m benchmarks.demo_settings [--images 102400] [--every 12800]
    .venv/bin/python -m benchmarks.demo_settings --images 153600 --try beta2=0.99 --try lr=2e-3

`--try KEY=VALUE` compares variants of the current settings (one changed key each) instead of
the previous settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence

import torch

from coordinator.demo import DEMO_DATASET, DEMO_MODEL, DEMO_SETTINGS
from core.config import RunSettings
from core.data import synthetic_images
from core.model import gan_from_parameters
from core.quality import fixed_noise, sliced_wasserstein
from core.reference import TrainState, initial_state, train_version
from core.training import calibrate_gan, intra_op_threads

PREVIOUS = dataclasses.replace(DEMO_SETTINGS, images_per_work_unit=128, lr=5e-4)
QUALITY_IMAGES = 512  # as coordinator.loop


def quality(state: TrainState, real: torch.Tensor, seed: int) -> float:
    gan = gan_from_parameters(DEMO_MODEL, state.params)
    calibrate_gan(gan, real[:256], seed=seed)
    with torch.no_grad():
        fake = gan.G(fixed_noise(DEMO_MODEL, QUALITY_IMAGES, seed + 1))
    return sliced_wasserstein(real, fake, seed=seed)


def curve(settings: RunSettings, images: torch.Tensor, total: int, every: int) -> list[float]:
    """The quality figure after every `every` training images, up to `total`."""
    gen = torch.Generator().manual_seed(settings.seed)
    picks = torch.randperm(images.shape[0], generator=gen)[:QUALITY_IMAGES].sort().values
    real = images[picks]
    per_version = settings.images_per_work_unit * settings.num_workunits_per_update
    state, figures, started = initial_state(DEMO_MODEL, settings), [], time.perf_counter()
    with intra_op_threads(settings.compute_threads):
        while state.version * per_version < total:
            state, _ = train_version(state, DEMO_MODEL, settings, images)
            seen = state.version * per_version
            if seen % every == 0:
                figures.append(quality(state, real, settings.seed))
                print(
                    f"  {seen:>7,} images ({state.version} versions): quality "
                    f"{figures[-1]:.1f}  [{time.perf_counter() - started:.0f} s]",
                    flush=True,
                )
    return figures


def variant(change: str) -> tuple[str, RunSettings]:
    """`KEY=VALUE` → (that text, the demo settings with that one key changed)."""
    key, sep, text = change.partition("=")
    fields = {f.name: f for f in dataclasses.fields(RunSettings)}
    if not sep or key not in fields:
        raise SystemExit(f"--try takes KEY=VALUE with a RunSettings key, not {change!r}")
    current = getattr(DEMO_SETTINGS, key)
    try:
        value = type(current)(text)
    except ValueError:
        raise SystemExit(f"--try {change}: {text!r} is not a {type(current).__name__}") from None
    return change, dataclasses.replace(DEMO_SETTINGS, **{key: value})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_settings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=int, default=102_400, help="training images per run")
    parser.add_argument(
        "--every",
        type=int,
        default=12_800,
        help="images between quality figures (a multiple of every setting's images per version)",
    )
    parser.add_argument(
        "--try",
        dest="changes",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compare the current settings with this one change (repeatable); "
        "without it, with the previous settings",
    )
    args = parser.parse_args(argv)
    others = [variant(change) for change in args.changes] or [("previous", PREVIOUS)]
    images = synthetic_images(DEMO_DATASET[1], DEMO_MODEL.image_size, 0)
    results = {}
    for name, settings in (("current", DEMO_SETTINGS), *others):
        print(
            f"{name}: units of {settings.images_per_work_unit} × "
            f"{settings.num_workunits_per_update}, lr {settings.lr:g}, "
            f"betas ({settings.beta1:g}, {settings.beta2:g})"
        )
        results[name] = curve(settings, images, args.images, args.every)
    best = {name: min(figures) for name, figures in results.items()}
    for name, _ in others:
        print(
            f"best quality within {args.images:,} images: current {best['current']:.1f}, {name} "
            f"{best[name]:.1f} (lower is better; ratio {best['current'] / best[name]:.2f}); "
            f"last: current {results['current'][-1]:.1f}, {name} {results[name][-1]:.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
