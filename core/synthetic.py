"""The synthetic dataset's pixels: gradients with saturated shapes, from a counter-based hash.

Image i depends only on (seed, i), so any slice renders alone, on any machine and numpy version
(`core.data.synthetic_images` checks the arguments and renders in chunks of RENDER_CHUNK).
"""

from __future__ import annotations

import numpy as np

# Background gradients use muted colours, shapes use saturated ones, so shapes always stand out.
_BACKGROUNDS = np.array(
    [
        [0.10, 0.12, 0.22],  # night blue
        [0.84, 0.80, 0.66],  # sand
        [0.16, 0.30, 0.20],  # forest
        [0.52, 0.55, 0.60],  # slate grey
        [0.34, 0.20, 0.30],  # plum
        [0.72, 0.84, 0.90],  # pale sky
    ],
    dtype=np.float32,
)
_SHAPE_COLOURS = np.array(
    [
        [0.92, 0.10, 0.10],  # red
        [0.10, 0.78, 0.20],  # green
        [0.15, 0.30, 0.95],  # blue
        [0.98, 0.85, 0.05],  # yellow
        [0.90, 0.15, 0.80],  # magenta
        [1.00, 0.50, 0.00],  # orange
    ],
    dtype=np.float32,
)
_CIRCLE, _SQUARE, _TRIANGLE = 0, 1, 2
_DRAWS_PER_IMAGE = 16  # uniforms reserved per image (13 used); fixed so images never share draws
RENDER_CHUNK = 512  # images rendered at once: bounds the float32 scratch memory
_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's Weyl increment


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective avalanche on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, start: int, count: int) -> np.ndarray:
    """(count, _DRAWS_PER_IMAGE) float64 in [0, 1); row i depends only on (seed, start + i)."""
    key = _mix64(np.array([seed], dtype=np.uint64))
    first = (start * _DRAWS_PER_IMAGE + 1) % 2**64
    counters = np.arange(count * _DRAWS_PER_IMAGE, dtype=np.uint64) + np.uint64(first)
    bits = _mix64(key + counters * _GAMMA)  # SplitMix64 outputs number `counters` from `key`
    return ((bits >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(count, -1)


def _pick(u: np.ndarray, n: int) -> np.ndarray:
    """Map uniforms in [0, 1) to integers 0 … n-1."""
    return np.minimum((u * n).astype(np.int64), n - 1)


def render(u: np.ndarray, size: int) -> np.ndarray:
    """Draw one image per row of uniforms `u`: uint8 (N, 3, size, size)."""
    n_bg, n_fg = len(_BACKGROUNDS), len(_SHAPE_COLOURS)
    top = _BACKGROUNDS[_pick(u[:, 0], n_bg)]  # (N, 3)
    bottom = _BACKGROUNDS[(_pick(u[:, 0], n_bg) + 1 + _pick(u[:, 1], n_bg - 1)) % n_bg]
    centres = np.arange(size, dtype=np.float32) + 0.5  # pixel centres, in pixels
    t = (centres / size)[None, None, :, None]  # (1, 1, S, 1): 0 at the top, 1 at the bottom
    img = top[:, :, None, None] * (1 - t) + bottom[:, :, None, None] * t  # (N, 3, S, 1)
    img = np.repeat(img, size, axis=3)  # (N, 3, S, S)
    first_colour = _pick(u[:, 4], n_fg)
    colours = (first_colour, (first_colour + 1 + _pick(u[:, 9], n_fg - 1)) % n_fg)
    present = (np.ones(len(u), dtype=bool), u[:, 2] < 0.5)  # a second shape in half the images
    for slot in (0, 1):
        base = 3 + 5 * slot  # uniforms base … base+4 describe this shape
        radius = size * (0.14 + 0.14 * u[:, base + 2])  # (N,) in pixels
        cx = radius + u[:, base + 3] * (size - 2 * radius)  # keep the shape mostly inside
        cy = radius + u[:, base + 4] * (size - 2 * radius)
        dist = _signed_distance(_pick(u[:, base], 3), cx, cy, radius, centres)  # (N, S, S)
        alpha = np.clip(0.5 - dist, 0.0, 1.0) * present[slot][:, None, None]  # 1-pixel AA edge
        colour = _SHAPE_COLOURS[colours[slot]][:, :, None, None]  # (N, 3, 1, 1)
        img += alpha[:, None] * (colour - img)
    return np.rint(img * 255).astype(np.uint8)


def _signed_distance(
    kind: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, centres: np.ndarray
) -> np.ndarray:
    """Approximate signed pixel distance to each image's shape: (N, S, S), negative inside."""
    dx = (centres[None, None, :] - cx[:, None, None]).astype(np.float32)  # (N, 1, S)
    dy = (centres[None, :, None] - cy[:, None, None]).astype(np.float32)  # (N, S, 1)
    r = r.astype(np.float32)[:, None, None]
    out = np.empty((len(kind), len(centres), len(centres)), dtype=np.float32)
    for shape in (_CIRCLE, _SQUARE, _TRIANGLE):
        sel = kind == shape  # compute each image's own shape only
        x, y, rr = dx[sel], dy[sel], r[sel]
        if shape == _CIRCLE:
            out[sel] = np.sqrt(x * x + y * y) - rr
        elif shape == _SQUARE:
            out[sel] = np.maximum(np.abs(x), np.abs(y)) - 0.85 * rr
        else:  # upward equilateral triangle, circumradius 1.35 r, shifted to centre its box
            big = 1.35 * rr
            y = y + 0.25 * big
            edges = np.maximum(y, np.maximum(-0.866 * x - 0.5 * y, 0.866 * x - 0.5 * y))
            out[sel] = edges - 0.5 * big
    return out
