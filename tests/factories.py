"""Small models, settings and data shared by the tests."""

from __future__ import annotations

import torch

from core.config import RunSettings
from core.model import ModelConfig

TINY_MODEL = ModelConfig(image_size=32, latent_dim=8, g_features=4, d_features=4)


def tiny_settings(**changes: object) -> RunSettings:
    values: dict[str, object] = {
        "images_per_work_unit": 12,
        "num_workunits_per_update": 3,
        "batch_size": 4,
        "seed": 7,
    }
    values.update(changes)
    return RunSettings.from_dict(values)


def random_images(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 (count, 3, size, size) noise images: enough for gradient-math tests."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), generator=gen, dtype=torch.uint8)
