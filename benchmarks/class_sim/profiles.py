"""Device profiles: seconds of compute per training image for the simulated volunteers.

- `cpu1`: one core of this machine, MEASURED: the real `unit_gradients` of the run's model on
  one 16-image micro-batch with one thread, best of 3 (cached per model in the user cache).
- `laptop`: a 4-core laptop, derived: `cpu1` / 3.2 (80 % parallel efficiency on 4 cores).
- `gpu`: a consumer GPU (RTX 3060 class: 12.7 TFLOPS fp32), derived: the model's training FLOPs
  per image (3 × its forward FLOPs, counted with torch's FLOP counter) at 35 % of the card's
  peak. No GPU is available here; the figure is an estimate, stated as one.
"""

from __future__ import annotations

import json
import time

import torch

from core.model import ModelConfig, build_gan
from core.paths import cache_dir
from core.training import intra_op_threads, unit_gradients

LAPTOP_SPEEDUP = 3.2  # 4 cores at 80 % parallel efficiency, relative to one core
GPU_PEAK_FLOPS = 12.7e12  # RTX 3060 fp32 peak
GPU_UTILISATION = 0.35  # share of peak a small-batch DCGAN reaches (an assumption)
PROFILES = ("cpu1", "laptop", "gpu")


def seconds_per_image(profile: str, model: ModelConfig) -> float:
    if profile == "cpu1":
        return _measured_cpu1(model)
    if profile == "laptop":
        return _measured_cpu1(model) / LAPTOP_SPEEDUP
    if profile == "gpu":
        return _training_flops_per_image(model) / (GPU_PEAK_FLOPS * GPU_UTILISATION)
    raise SystemExit(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")


def parse_mix(text: str, volunteers: int) -> list[str]:
    """`laptop` or `laptop:24,gpu:8` → one profile per volunteer (mix shares scaled to N)."""
    parts = [p.partition(":") for p in text.split(",")]
    weights = [(name, float(count or 1)) for name, _, count in parts]
    total = sum(w for _, w in weights)
    out: list[str] = []
    for name, weight in weights:
        out += [name] * round(volunteers * weight / total)
    return (out + [weights[-1][0]] * volunteers)[:volunteers]


def _measured_cpu1(model: ModelConfig) -> float:
    path = cache_dir() / "class_sim" / f"cpu1-{model.image_size}-{model.g_features}.json"
    if path.exists():
        return float(json.loads(path.read_text())["seconds_per_image"])
    gan = build_gan(model, 0)
    images = torch.randint(0, 256, (16, model.channels, model.image_size, model.image_size))
    best = float("inf")
    with intra_op_threads(1):
        for _ in range(3):
            start = time.perf_counter()
            unit_gradients(gan, images.to(torch.uint8), 1, 16)
            best = min(best, time.perf_counter() - start)
    value = best / 16
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds_per_image": value, "measured_at": time.time()}))
    return value


def _training_flops_per_image(model: ModelConfig) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    gan = build_gan(model, 0)
    z = torch.randn(1, model.latent_dim, 1, 1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        gan.D(gan.G(z))  # G forward, D on a fake; D on a real image costs the same again
    forward = counter.get_total_flops()
    d_only = forward - _g_flops(model)
    return 3.0 * (forward + d_only)


def _g_flops(model: ModelConfig) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    gan = build_gan(model, 0)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        gan.G(torch.randn(1, model.latent_dim, 1, 1))
    return float(counter.get_total_flops())
