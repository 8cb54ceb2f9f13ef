"""Throughput of the unit-gradient code vs a plain textbook PyTorch DCGAN training loop.

Same machine, same model, same micro-batch, same thread count, interleaved rounds; prints
images/s of both and their ratio (target: ≥ 0.97, i.e. not slower).

    .venv/bin/python benchmarks/unit_gradient_speed.py [--image-size 32|64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from core.model import ModelConfig, build_gan
from core.training import unit_gradients


def textbook_loop(gan, images: torch.Tensor, batch_size: int, opt_d, opt_g) -> None:
    """The DCGAN tutorial's loop: a D step then a G step per micro-batch."""
    for start in range(0, images.shape[0], batch_size):
        real = images[start : start + batch_size].float() / 127.5 - 1
        z = torch.randn(real.shape[0], gan.config.latent_dim, 1, 1)
        opt_d.zero_grad()
        out = gan.D(real)
        loss_real = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        fake = gan.G(z)
        out = gan.D(fake.detach())
        loss_fake = F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
        (loss_real + loss_fake).backward()
        opt_d.step()
        opt_g.zero_grad()
        out = gan.D(fake)
        F.binary_cross_entropy_with_logits(out, torch.ones_like(out)).backward()
        opt_g.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64, choices=(32, 64))
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--unit", type=int, default=256, help="images per work unit")
    parser.add_argument("--batch", type=int, default=64, help="micro-batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(args.image_size, 100, args.features, args.features)
    images = torch.randint(
        0, 256, (args.unit, 3, args.image_size, args.image_size), dtype=torch.uint8
    )
    ours, base = build_gan(cfg, 0), build_gan(cfg, 0)
    opt_d = torch.optim.Adam(base.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(base.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    unit_gradients(ours, images[: args.batch], 0, args.batch)  # warm-up
    textbook_loop(base, images[: args.batch], args.batch, opt_d, opt_g)
    t_ours, t_base = [], []
    for r in range(args.rounds):  # interleaved so drift in machine load hits both alike
        t0 = time.perf_counter()
        unit_gradients(ours, images, r, args.batch)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        textbook_loop(base, images, args.batch, opt_d, opt_g)
        t_base.append(time.perf_counter() - t0)
    ips_ours = args.unit / statistics.median(t_ours)
    ips_base = args.unit / statistics.median(t_base)
    print(
        f"model {args.image_size}x{args.image_size}, features {args.features}, micro-batch "
        f"{args.batch}, unit {args.unit} images, {args.threads} threads, {args.rounds} rounds"
    )
    print(f"textbook DCGAN loop : {ips_base:8.1f} images/s")
    print(f"unit_gradients      : {ips_ours:8.1f} images/s")
    print(f"ratio               : {ips_ours / ips_base:8.3f}  (target >= 0.97)")


if __name__ == "__main__":
    main()
