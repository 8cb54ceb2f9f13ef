"""Payload size and rounding error per gradient precision for the 64×64, 64-feature DCGAN."""

from __future__ import annotations

import argparse
import time

from torch import Tensor

from core.codec import PRECISIONS, decode_tensors, encode_tensors, global_norm, payload_bytes
from core.data import synthetic_images
from core.model import ModelConfig, build_gan, parameter_manifest
from core.training import unit_gradients

CFG = ModelConfig(image_size=64, latent_dim=100, g_features=64, d_features=64)


def realistic_gradients(images: int, batch_size: int, seed: int) -> dict[str, Tensor]:
    """G and D gradients of one work unit of synthetic images at freshly initialised weights."""
    gan = build_gan(CFG, seed)
    unit = synthetic_images(images, CFG.image_size, seed=seed)
    return unit_gradients(gan, unit, seed, batch_size).grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64, help="images in the work unit")
    parser.add_argument("--batch-size", type=int, default=32, help="BatchNorm micro-batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    manifest = parameter_manifest(CFG)
    grads = realistic_gradients(args.images, args.batch_size, args.seed)
    count = sum(t.numel() for t in grads.values())
    print(f"{CFG}: {len(grads)} tensors, {count:,} values, ‖g‖ = {global_norm(grads):.4g}")
    header = f"{'precision':>9} {'bytes':>12} {'MiB':>7} {'rel. error':>11} {'flushed':>8}"
    print(f"{header} {'encode':>8} {'decode':>8}")
    for precision in PRECISIONS:
        start = time.perf_counter()
        data = encode_tensors(grads, precision)
        encoded = time.perf_counter()
        out = decode_tensors(data, manifest, precision=precision, max_bytes=len(data))
        decoded = time.perf_counter()
        assert len(data) == payload_bytes(manifest, precision)
        error = global_norm({n: out[n] - g for n, g in grads.items()}) / global_norm(grads)
        # non-zero gradient values that the precision rounds to zero (fp16 underflow)
        flushed = sum(int(((out[n] == 0) & (g != 0)).sum()) for n, g in grads.items())
        print(
            f"{precision:>9} {len(data):>12,} {len(data) / 2**20:>7.2f} {error:>11.2e} {flushed:>8,}"
            f" {1e3 * (encoded - start):>6.0f}ms {1e3 * (decoded - encoded):>6.0f}ms"
        )


if __name__ == "__main__":
    main()
