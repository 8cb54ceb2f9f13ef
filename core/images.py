"""One image file to square sRGB pixels: every Pillow mode, ICC profiles, transparency, size limits.

Rules, in order: the file must be one of FORMATS; an image over Pillow's pixel limit is skipped
as too large and one whose shorter side is under half the training size as too small; EXIF
orientation is applied; colour is scaled to 8 bits (16-bit and 32-bit integer grey as 0…65535,
float grey as 0…1, both clipped) and converted to sRGB with the file's ICC profile if it has one;
transparent pixels (alpha channels, palette or colour-key transparency) are composited onto one
background colour, so nothing hidden under them survives; then the centre square is resized.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageCms, ImageOps

log = logging.getLogger(__name__)

# Pillow decoders allowed (fewer decoders, less attack surface); the first frame of an animation.
FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF")
SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"})
WHITE = (255, 255, 255)  # the default background under transparent pixels
MIN_SIDE_FRACTION = 0.5  # images whose shorter side is below this × image_size are too small

# Why an image was not used: the keys of an ingest report's counts.
UNREADABLE = "unreadable"
TOO_SMALL = "too small"
TOO_LARGE = "too large"
_ALPHA_MODES = ("RGBA", "LA", "PA")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I" (32-bit) read as 16-bit grey
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageSkipped(Exception):
    """An image that cannot be used; `reason` is UNREADABLE, TOO_SMALL or TOO_LARGE."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def load_image(
    fp: IO[bytes], image_size: int, background: tuple[int, int, int] = WHITE
) -> np.ndarray:
    """Decode one image file and return its centre square resized: uint8 (3, S, S).

    Raises ImageSkipped for an image that is too large or too small; Pillow's own errors for a
    file that cannot be decoded. No Pillow warning escapes: they are logged at debug level.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(fp, formats=FORMATS) as image:
                _check_size(image.size, image_size)
                image.draft(None, (2 * image_size, 2 * image_size))  # JPEG: decode at 1/2…1/8
                rgb = to_srgb(ImageOps.exif_transpose(image), image.info, background)
        except Image.DecompressionBombError:
            raise ImageSkipped(TOO_LARGE, _too_large_text()) from None
    for warning in caught:  # DecompressionBombWarning is handled by _check_size
        log.debug("Pillow warned: %s", warning.message)
    return square(rgb, image_size)


def square(rgb: Image.Image, image_size: int) -> np.ndarray:
    """The centre square of an RGB image resized to image_size: uint8 (3, S, S)."""
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    small = rgb.resize((image_size, image_size), Image.Resampling.LANCZOS, box=box)
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1)  # (S, S, 3) → (3, S, S)


def to_srgb(
    image: Image.Image, info: dict, background: tuple[int, int, int] = WHITE
) -> Image.Image:
    """An RGB image in sRGB, transparent pixels composited onto `background`.

    `info` is the decoded file's info (its ICC profile and transparency), which some
    conversions drop.
    """
    if image.mode in ("P", "PA") or (image.mode in ("L", "RGB") and "transparency" in info):
        # RGBA keeps every kind of palette transparency, including the bytes form that any
        # other conversion warns about and drops.
        image = image.convert("RGBA")
    alpha = None
    if image.mode in _ALPHA_MODES:
        alpha = np.asarray(image.getchannel("A"))  # (H, W) uint8
        image = image.convert("L" if image.mode == "LA" else "RGB")
    colour = _with_profile(_eight_bit(image), info.get("icc_profile"))
    if alpha is None:
        return colour
    return _composite(colour, alpha, background)


def _check_size(size: tuple[int, int], image_size: int) -> None:
    width, height = size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageSkipped(TOO_LARGE, f"{width}×{height} pixels, {_too_large_text()}")
    if min(width, height) < MIN_SIDE_FRACTION * image_size:
        raise ImageSkipped(
            TOO_SMALL,
            f"{width}×{height} pixels, under half the training size of {image_size}",
        )


def _too_large_text() -> str:
    limit = Image.MAX_IMAGE_PIXELS or 0
    return (
        f"more than {limit / 1e6:.0f} million pixels (Pillow's limit against decompression bombs)"
    )


def _eight_bit(image: Image.Image) -> Image.Image:
    """Modes "1", L, I;16*, I, F, RGB, CMYK, YCbCr, … → L, RGB or CMYK with 8-bit channels."""
    if image.mode in _SIXTEEN_BIT:
        grey = np.asarray(image).astype(np.float64).clip(0, 65535) * (255 / 65535)
        return Image.fromarray(np.rint(grey).astype(np.uint8), "L")
    if image.mode == "F":
        grey = np.nan_to_num(np.asarray(image, dtype=np.float64)).clip(0.0, 1.0) * 255
        return Image.fromarray(np.rint(grey).astype(np.uint8), "L")
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("L", "RGB", "CMYK"):
        return image
    return image.convert("RGB")  # YCbCr, HSV, LAB …; a mode Pillow cannot convert is unreadable


def _with_profile(image: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB in sRGB: through the embedded ICC profile if there is a usable one."""
    if icc:
        try:
            converted = ImageCms.applyTransform(image, _to_srgb_transform(icc, image.mode))
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            log.debug("ignoring an unusable ICC profile: %s", exc)
        else:
            assert converted is not None  # inPlace=False always returns the new image
            return converted
    return image if image.mode == "RGB" else image.convert("RGB")


@functools.lru_cache(maxsize=16)
def _to_srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    """Building a transform costs ~7 ms, applying it to one image ~1: a folder of photos from
    one camera shares one profile."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(source, _SRGB, mode, "RGB")


def _composite(
    colour: Image.Image, alpha: np.ndarray, background: tuple[int, int, int]
) -> Image.Image:
    """colour × alpha + background × (1 − alpha), rounded; alpha 0 gives exactly the background."""
    rgb = np.asarray(colour, dtype=np.uint32)  # (H, W, 3)
    a = alpha.astype(np.uint32)[..., None]  # (H, W, 1)
    under = np.array(background, dtype=np.uint32)  # (3,)
    mixed = (rgb * a + under * (255 - a) + 127) // 255
    return Image.fromarray(mixed.astype(np.uint8), "RGB")
