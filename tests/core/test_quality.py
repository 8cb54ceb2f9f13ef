"""The quality figure (multi-scale sliced Wasserstein distance), sample grids and fixed noise."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from core.data import synthetic_images
from core.model import ModelConfig
from core.quality import (
    QUALITY_RELATIVE_STD,
    fixed_noise,
    quality_std,
    sample_grid_png,
    sliced_wasserstein,
)

SEED = 11  # synthetic dataset seed
HALF = 128  # images per set: enough to separate the cases, cheap enough for a unit test


@pytest.fixture(scope="module")
def halves() -> tuple[Tensor, Tensor]:
    """Two disjoint sets of images from one distribution, uint8 (HALF, 3, 32, 32) each."""
    images = synthetic_images(2 * HALF, 32, seed=SEED)
    return images[:HALF], images[HALF:]


@pytest.fixture(scope="module")
def real_vs_real(halves: tuple[Tensor, Tensor]) -> float:
    return sliced_wasserstein(*halves)


@pytest.fixture(scope="module")
def real_vs_noise(halves: tuple[Tensor, Tensor]) -> float:
    return sliced_wasserstein(halves[0], uniform_noise(HALF))


def uniform_noise(count: int, size: int = 32) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=gen)


def blurred(images: Tensor) -> Tensor:
    return F.avg_pool2d(images.float(), 3, stride=1, padding=1).round().to(torch.uint8)


def colour_shifted(images: Tensor) -> Tensor:
    shift = torch.tensor([40.0, -30.0, 0.0]).view(1, 3, 1, 1)  # redder, less green
    return (images.float() + shift).clamp(0, 255).round().to(torch.uint8)


def test_real_vs_noise_is_far_above_real_vs_real(real_vs_real: float, real_vs_noise: float) -> None:
    assert real_vs_real > 0
    assert real_vs_noise > 5 * real_vs_real
    assert 100 < real_vs_noise < 10_000  # reported ×1e3, as in the paper


@pytest.mark.parametrize("degrade", [blurred, colour_shifted])
def test_degraded_images_score_in_between(
    halves: tuple[Tensor, Tensor],
    real_vs_real: float,
    real_vs_noise: float,
    degrade: Callable[[Tensor], Tensor],
) -> None:
    real, other = halves
    degraded = sliced_wasserstein(real, degrade(other))
    # a colour shift is only visible because descriptors are normalised over both sets pooled
    assert 2 * real_vs_real < degraded < real_vs_noise


def test_deterministic_for_a_seed(halves: tuple[Tensor, Tensor], real_vs_real: float) -> None:
    assert sliced_wasserstein(*halves, seed=0) == real_vs_real
    other_seed = sliced_wasserstein(*halves, seed=1)
    assert other_seed != real_vs_real
    assert other_seed == pytest.approx(real_vs_real, rel=0.5)


def test_uint8_and_float_inputs_agree(halves: tuple[Tensor, Tensor], real_vs_real: float) -> None:
    real, other = halves
    as_float = other.float() / 127.5 - 1.0  # what a generator's tanh output looks like
    assert sliced_wasserstein(real, as_float) == pytest.approx(real_vs_real, rel=1e-5)


def test_sets_of_different_sizes_and_64_pixel_images() -> None:
    images = synthetic_images(200, 64, seed=SEED)
    close = sliced_wasserstein(images[:80], images[80:])  # 80 vs 120 images, 3 pyramid levels
    far = sliced_wasserstein(images[:80], uniform_noise(120, size=64))
    assert 0 < close < far / 5


@pytest.mark.parametrize(
    ("real", "fake", "match"),
    [
        (torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 64, 64), "differ"),
        (torch.zeros(4, 3, 5, 5), torch.zeros(4, 3, 5, 5), "at least"),
        (torch.zeros(3, 32, 32), torch.zeros(3, 32, 32), "batch"),
        (torch.zeros(0, 3, 32, 32), torch.zeros(4, 3, 32, 32), "batch"),
        (torch.zeros(4, 3, 32, 32, dtype=torch.int64), torch.zeros(4, 3, 32, 32), "uint8"),
    ],
)
def test_bad_inputs_are_refused(real: Tensor, fake: Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sliced_wasserstein(real, fake)


# ---------------------------------------------------------------- sample grids


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


@pytest.mark.parametrize(
    ("count", "nrow", "size"),
    [
        (10, None, (4 * 34 + 2, 3 * 34 + 2)),
        (10, 5, (5 * 34 + 2, 2 * 34 + 2)),
        (64, None, (274, 274)),
    ],
)
def test_grid_png_has_the_expected_size(count: int, nrow: int | None, size: tuple) -> None:
    images = torch.rand(count, 3, 32, 32) * 2 - 1
    assert decode_png(sample_grid_png(images, nrow)).size == size  # (width, height)


def test_grid_shows_the_images_where_expected() -> None:
    images = torch.full((4, 3, 8, 8), -1.0)  # black
    images[1, 0] = 1.0  # second image red
    images[3] = 1.0  # fourth image white
    grid = decode_png(sample_grid_png(images))  # 2 × 2 tiles of 8 px, 2 px padding
    assert grid.size == (22, 22)
    assert grid.getpixel((2 + 4, 2 + 4)) == (0, 0, 0)
    assert grid.getpixel((12 + 4, 2 + 4)) == (255, 0, 0)
    assert grid.getpixel((12 + 4, 12 + 4)) == (255, 255, 255)


def test_grid_accepts_uint8_like_float() -> None:
    as_uint8 = synthetic_images(9, 32, seed=SEED)
    as_float = as_uint8.float() / 127.5 - 1.0
    assert sample_grid_png(as_uint8) == sample_grid_png(as_float)


# ---------------------------------------------------------------- fixed noise


def test_fixed_noise_is_fixed_per_seed() -> None:
    cfg = ModelConfig(latent_dim=20)
    noise = fixed_noise(cfg, 16, seed=5)
    assert noise.shape == (16, 20, 1, 1)
    assert torch.equal(noise, fixed_noise(cfg, 16, seed=5))
    assert not torch.equal(noise, fixed_noise(cfg, 16, seed=6))


def test_quality_std_is_the_measured_fraction() -> None:
    assert 0 < QUALITY_RELATIVE_STD < 0.1
    assert quality_std(400.0) == pytest.approx(400.0 * QUALITY_RELATIVE_STD)


def test_fewer_patches_per_image_still_separate_the_cases(
    halves: tuple[Tensor, Tensor], real_vs_noise: float
) -> None:
    few = sliced_wasserstein(*halves, patches_per_image=16)
    assert 0 < few < real_vs_noise / 5
    assert few != sliced_wasserstein(*halves)  # the parameter is used
