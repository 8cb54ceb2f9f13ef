"""Quality figure (sliced Wasserstein distance on image patches), sample grids and fixed noise."""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from core.model import ModelConfig

QUALITY_IMAGES = 512  # real and generated images the coordinator's quality figure compares
# The figure's relative standard deviation at fixed weights: the evaluation is deterministic
# (fixed real subset, latent noise, patches, directions and BatchNorm calibration), but which
# subset and seeds it fixes is arbitrary; over other choices the figure of one checkpoint varies
# by this fraction (demo model, Noto emoji and synthetic sets: python -m benchmarks.quality_noise).
QUALITY_RELATIVE_STD = 0.025

# Multi-scale SWD of Karras et al. 2018 ("Progressive Growing of GANs", appendix D).
_MIN_LEVEL_RES = 16  # pixels: the Laplacian pyramid stops at this resolution
_PATCH = 7  # pixels per side of each neighbourhood descriptor
_PATCHES_PER_IMAGE = 64  # descriptors drawn per image per level
_REPEATS = 4  # sets of random directions ...
_DIRS_PER_REPEAT = 128  # ... of this many directions each
_SCALE = 1e3  # the paper reports SWD × 10^3
_GRID_PADDING = 2  # pixels between images in a sample grid

# 5-tap binomial filter of the Burt & Adelson Laplacian pyramid (separable: applied per axis)
_BINOMIAL = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


def sliced_wasserstein(
    real: Tensor, fake: Tensor, *, seed: int = 0, patches_per_image: int = _PATCHES_PER_IMAGE
) -> float:
    """Multi-scale sliced Wasserstein distance ×1e3 between two image sets; lower is closer.

    `real` and `fake` are (N, C, H, W), uint8 or float in [-1, 1], with the same C, H, W (N may
    differ). Each set becomes a Laplacian pyramid down to 16×16; at every level 7×7 patches are
    drawn, normalised per channel with the mean and std of both sets pooled (Karras et al.
    normalise each set on its own, which hides colour shifts), and compared along 4 × 128 random
    unit directions by the mean gap between sorted projections. Levels are averaged. Two
    samples of one distribution score near, not at, zero (patch sampling noise).
    Deterministic for a given `seed`.
    """
    a, b = _as_unit_float(real), _as_unit_float(fake)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"image sets differ in (C, H, W): {tuple(a.shape)} vs {tuple(b.shape)}")
    if min(a.shape[-2:]) < _PATCH:
        raise ValueError(f"images must be at least {_PATCH}×{_PATCH} pixels, got {tuple(a.shape)}")
    gen = torch.Generator().manual_seed(seed)
    count = patches_per_image * min(len(a), len(b))  # equal counts, so sorted values pair up
    distances = []
    for level_a, level_b in zip(_laplacian_pyramid(a), _laplacian_pyramid(b), strict=True):
        patches_a, patches_b = _patches(level_a, count, gen), _patches(level_b, count, gen)
        patches_a, patches_b = _normalise(patches_a, patches_b)
        distances.append(_sorted_projection_distance(patches_a, patches_b, gen))
    return _SCALE * sum(distances) / len(distances)


def quality_std(swd: float) -> float:
    """The standard deviation of a quality figure `swd` (for a ± band around the curve)."""
    return QUALITY_RELATIVE_STD * swd


def sample_grid_png(images: Tensor, nrow: int | None = None) -> bytes:
    """PNG bytes of `images` (B, C, H, W), float in [-1, 1] or uint8, tiled `nrow` per row.

    `nrow` defaults to ceil(sqrt(B)); images are separated by 2 black pixels (a single image
    comes back without a border, as torchvision's make_grid does).
    """
    pixels = _as_uint8(images)
    if nrow is None:
        nrow = math.ceil(math.sqrt(len(pixels)))
    grid = make_grid(pixels, nrow=nrow, padding=_GRID_PADDING)  # (3, H', W') uint8
    buffer = io.BytesIO()
    Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def fixed_noise(cfg: ModelConfig, count: int, seed: int) -> Tensor:
    """The same latent vectors (count, latent_dim, 1, 1) for a given seed, to compare versions."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(count, cfg.latent_dim, 1, 1, generator=gen)


def _check_images(images: Tensor) -> None:
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(
            f"expected a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}"
        )
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float in [-1, 1], not {images.dtype}")


def _as_unit_float(images: Tensor) -> Tensor:
    """float32 in [-1, 1], (N, C, H, W)."""
    _check_images(images)
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images.float() / 127.5 - 1.0
    return images.float()


def _as_uint8(images: Tensor) -> Tensor:
    _check_images(images)
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images
    return ((images.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def _blur(x: Tensor, stride: int = 1, gain: float = 1.0) -> Tensor:
    """Binomial 5×5 blur with mirrored borders, (N, C, H, W) → (N, C, H/s, W/s).

    The kernel is separable: five shifted slices per axis, which on CPU beats a 5×5 convolution.
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")  # (N, C, H+4, W+4)
    rows = torch.zeros_like(padded[..., :h:stride, :])  # (N, C, H/s, W+4)
    for k, tap in enumerate(_BINOMIAL):
        rows += (tap * gain) * padded[..., k : k + h : stride, :]
    out = torch.zeros_like(rows[..., :w:stride])  # (N, C, H/s, W/s)
    for k, tap in enumerate(_BINOMIAL):
        out += tap * rows[..., k : k + w : stride]
    return out


def _upsample(x: Tensor) -> Tensor:
    """Zero-insertion ×2 then a blur with gain 4 (N, C, H, W) → (N, C, 2H, 2W)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)


def _laplacian_pyramid(images: Tensor) -> list[Tensor]:
    """Band-pass levels from full resolution down, ending with the 16×16 low-pass image."""
    levels = []
    current = images
    while min(current.shape[-2:]) > _MIN_LEVEL_RES:
        smaller = _blur(current, stride=2)
        levels.append(current - _upsample(smaller)[..., : current.shape[-2], : current.shape[-1]])
        current = smaller
    levels.append(current)
    return levels


def _patches(level: Tensor, count: int, gen: torch.Generator) -> Tensor:
    """`count` random 7×7 neighbourhoods, (count, 7, 7, C); every image used equally if possible."""
    n, _, h, w = level.shape
    if count % n == 0:
        image = torch.arange(n).repeat(count // n)
    else:
        image = torch.randint(0, n, (count,), generator=gen)
    offsets = torch.arange(_PATCH)
    rows = torch.randint(0, h - _PATCH + 1, (count, 1), generator=gen) + offsets  # (count, 7)
    cols = torch.randint(0, w - _PATCH + 1, (count, 1), generator=gen) + offsets  # (count, 7)
    channels_last = level.permute(0, 2, 3, 1)  # (N, H, W, C)
    return channels_last[image[:, None, None], rows[:, :, None], cols[:, None, :]]


def _normalise(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Subtract the per-channel mean, divide by the per-channel std, both over a and b together."""
    std, mean = torch.std_mean(torch.cat([a, b]), dim=(0, 1, 2))  # (C,) each
    scale = 1.0 / std.clamp_min(1e-8)  # a flat channel must not divide by zero
    return ((a - mean) * scale).flatten(1), ((b - mean) * scale).flatten(1)  # (count, 7·7·C)


def _sorted_projection_distance(a: Tensor, b: Tensor, gen: torch.Generator) -> float:
    """Mean |sorted(a·d) − sorted(b·d)| over random unit directions d (1-D Wasserstein-1)."""
    directions = torch.randn(a.shape[1], _REPEATS * _DIRS_PER_REPEAT, generator=gen)
    directions /= directions.norm(dim=0, keepdim=True)  # (D, 512) unit columns
    # (512, count): one row per direction, sorted along the contiguous last dimension. numpy's
    # vectorised sort is several times faster than torch.sort here, and it releases the GIL,
    # so the two sets sort on two cores at once.
    projections = [(directions.T @ x.T).numpy() for x in (a, b)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        proj_a, proj_b = pool.map(lambda p: np.sort(p, axis=1), projections)
    gaps = np.abs(np.subtract(proj_a, proj_b, out=proj_a), out=proj_a)  # in place: 64 MB each
    # the mean over 4 repeats of the mean over 128 directions equals the mean over all 512
    return float(gaps.mean())
