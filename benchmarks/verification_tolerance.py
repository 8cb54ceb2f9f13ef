"""How far two honest computations of one unit differ, against the verification tolerance.

One unit of the default model (the demo's too) and of a 64×64 model is computed on this machine's CPU with 1
and with 2 intra-op threads (and on CUDA against the CPU when a GPU is present), and compared as
the coordinator compares two volunteers' results: relative L2 difference of the payloads in
each precision (core/verification.py). Printed with the tolerance and the margin (tolerance /
difference): the tolerance must stay well above every honest figure, or honest volunteers on
other hardware would be outvoted.

    .venv/bin/python -m benchmarks.verification_tolerance
"""

from __future__ import annotations

import torch

from coordinator.demo import DEMO_MODEL
from core.codec import quantize
from core.data import synthetic_images
from core.model import ModelConfig, build_gan
from core.training import intra_op_threads, unit_gradients
from core.verification import TOLERANCE, relative_difference

IMAGES = 64
BATCH = 16


def one_unit(config: ModelConfig, threads: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    gan = build_gan(config, seed=3).to(device)
    images = synthetic_images(IMAGES, config.image_size, seed=3).to(device)
    with intra_op_threads(threads):
        grads = unit_gradients(gan, images, seed=11, batch_size=BATCH).grads
    return {name: g.detach().cpu().clone() for name, g in grads.items()}


def main() -> None:
    pairs = []
    models = (("32×32 (default, demo)", DEMO_MODEL), ("64×64", ModelConfig(image_size=64)))
    for label, config in models:
        base = one_unit(config, 1)
        pairs.append((f"{label}: CPU 1 vs 2 threads", base, one_unit(config, 2)))
        if torch.cuda.is_available():
            pairs.append((f"{label}: CPU vs CUDA", base, one_unit(config, 1, "cuda")))
    print(f"{'pair':<40} {'precision':>9} {'difference':>11} {'tolerance':>9} {'margin':>7}")
    for name, a, b in pairs:
        for precision in ("fp32", "bf16", "fp16"):
            qa, qb = quantize(a, precision), quantize(b, precision)
            diff = relative_difference(qa, qb)
            margin = "∞" if diff == 0 else f"{TOLERANCE[precision] / diff:.0f}×"
            print(f"{name:<40} {precision:>9} {diff:>11.2e} {TOLERANCE[precision]:>9g} {margin:>7}")


if __name__ == "__main__":
    main()
