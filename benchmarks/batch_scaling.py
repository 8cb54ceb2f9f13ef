"""Larger global batches (more units per version) at an equal number of images: which lr rule.

A class keeps every volunteer busy only if a version has at least as many units as it has
volunteers, so the global batch (images per Adam step) grows with the class. This trains the
demo model on the demo's synthetic data with the reference trainer (the distributed run's math
in one process, independent of machine load) at 2, 8 and 32 units per version, with the
learning rate kept constant or scaled by the square root of the batch ratio (Adam's usual rule;
linear scaling is SGD's), and prints the quality figure (sliced Wasserstein distance, lower is
better) every `--every` images.

    .venv/bin/python -m benchmarks.batch_scaling [--images 51200] [--every 12800]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence

from benchmarks.demo_settings import curve
from coordinator.demo import DEMO_MODEL, DEMO_SETTINGS, DEMO_SYNTHETIC_IMAGES
from core.config import RunSettings
from core.data import synthetic_images

UNITS = (2, 8, 32)  # units per version compared (the demo's units are its images per unit)


def variants(base: RunSettings) -> list[tuple[str, RunSettings]]:
    """(label, settings) for every units-per-version count and lr rule compared."""
    out = []
    for units in UNITS:
        ratio = units / base.num_workunits_per_update
        rules = {"constant": base.lr, "sqrt": base.lr * math.sqrt(ratio)}
        if units == base.num_workunits_per_update:
            rules = {"constant": base.lr}
        for rule, lr in rules.items():
            settings = dataclasses.replace(base, num_workunits_per_update=units, lr=lr)
            images = units * base.images_per_work_unit
            out.append((f"{images:>5} images/step, lr {rule} ({lr:.2g})", settings))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.batch_scaling", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=int, default=51_200, help="training images per run")
    parser.add_argument("--every", type=int, default=12_800, help="images between quality figures")
    args = parser.parse_args(argv)
    images = synthetic_images(DEMO_SYNTHETIC_IMAGES, DEMO_MODEL.image_size, 0)
    rows = []
    for label, settings in variants(DEMO_SETTINGS):
        print(label, flush=True)
        figures = [q for _, q in curve(settings, images, args.images, args.every, None)]
        rows.append((label, figures))
    print(f"\nquality (SWD, lower is better) every {args.every:,} images, demo model, synthetic:")
    for label, figures in rows:
        print(f"  {label}: " + "  ".join(f"{f:7.1f}" for f in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
