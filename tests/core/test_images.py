"""core.images: every image mode scaled correctly, ICC profiles, transparency, size limits."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from core import images
from core.data import IngestReport, ingest_images, shard_images
from core.images import TOO_LARGE, TOO_SMALL, ImageSkipped, load_image

SIZE = 16  # training size; the files below are 16×16, so resizing keeps uniform colours exact


def encoded(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def stored(data: bytes, background: tuple[int, int, int] = images.WHITE) -> np.ndarray:
    """What ingestion stores for one file: uint8 (3, SIZE, SIZE)."""
    return load_image(io.BytesIO(data), SIZE, background)


def centre(pixels: np.ndarray, x: int = SIZE // 2) -> tuple[int, ...]:
    """The colour of the pixel in the middle row, column x."""
    return tuple(int(v) for v in pixels[:, SIZE // 2, x])


def swapped_primaries_profile() -> bytes:
    """The sRGB profile with its red and blue primaries swapped: sRGB red in it is blue."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack_from(">I", data, 128)
    entries = {}
    for i in range(count):
        at = 132 + 12 * i
        entries[bytes(data[at : at + 4])] = at
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    data[red + 4 : red + 12], data[blue + 4 : blue + 12] = (
        data[blue + 4 : blue + 12],
        data[red + 4 : red + 12],
    )
    return bytes(data)


# ---------------------------------------------------------------- modes and scaling


def grey(mode: str, value: float) -> Image.Image:
    return Image.new(mode, (SIZE, SIZE), value)


def sixteen_bit_png() -> bytes:
    return encoded(Image.fromarray(np.full((SIZE, SIZE), 20000, dtype=np.uint16)))


# (file, expected RGB at the centre), each computed by hand:
MODES: dict[str, tuple[Callable[[], bytes], tuple[int, int, int]]] = {
    "1": (lambda: encoded(grey("1", 1)), (255, 255, 255)),
    "L": (lambda: encoded(grey("L", 77)), (77, 77, 77)),
    # 20000 / 65535 × 255 = 77.8
    "I;16": (sixteen_bit_png, (78, 78, 78)),
    # big-endian 16-bit grey: 50000 / 65535 × 255 = 194.6
    "I;16B": (lambda: encoded(grey("I;16B", 50000), "TIFF"), (195, 195, 195)),
    # 32-bit integer grey, read as 16-bit: 40000 / 65535 × 255 = 155.6; above 65535 clips
    "I": (lambda: encoded(grey("I", 40000), "TIFF"), (156, 156, 156)),
    "I clipped": (lambda: encoded(grey("I", 70000), "TIFF"), (255, 255, 255)),
    # float grey in 0…1: 0.25 × 255 = 63.75
    "F": (lambda: encoded(grey("F", 0.25), "TIFF"), (64, 64, 64)),
    # half-transparent grey 100 over white: (100·128 + 255·127 + 127) // 255 = 177
    "LA": (lambda: encoded(Image.new("LA", (SIZE, SIZE), (100, 128))), (177, 177, 177)),
    "P": (lambda: encoded(Image.new("RGB", (SIZE, SIZE), (10, 20, 30)).quantize(4)), (10, 20, 30)),
    # (255 − C)(255 − K) / 255 per channel: 205·195/255, 155·195/255, 105·195/255
    "CMYK": (
        lambda: encoded(Image.new("CMYK", (SIZE, SIZE), (50, 100, 150, 60)), "TIFF"),
        (157, 119, 80),
    ),
    "RGB": (lambda: encoded(Image.new("RGB", (SIZE, SIZE), (10, 200, 30))), (10, 200, 30)),
    # red in a profile whose red primary is sRGB's blue is sRGB blue
    "RGB + ICC": (
        lambda: encoded(
            Image.new("RGB", (SIZE, SIZE), (255, 0, 0)), icc_profile=swapped_primaries_profile()
        ),
        (0, 0, 255),
    ),
    "RGBA + ICC": (
        lambda: encoded(
            Image.new("RGBA", (SIZE, SIZE), (255, 0, 0, 255)),
            icc_profile=swapped_primaries_profile(),
        ),
        (0, 0, 255),
    ),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_is_scaled_to_hand_computed_values(mode: str) -> None:
    make, expected = MODES[mode]
    data = make()
    opened = Image.open(io.BytesIO(data))
    assert opened.mode == mode.split()[0]  # the file really has the mode under test
    pixels = stored(data)
    assert pixels.shape == (3, SIZE, SIZE) and pixels.dtype == np.uint8
    assert (pixels == np.array(expected, dtype=np.uint8)[:, None, None]).all(), centre(pixels)


def test_a_folder_of_every_mode_is_ingested(tmp_path: Path) -> None:
    names = sorted(MODES)
    for i, mode in enumerate(names):
        make, _ = MODES[mode]
        # the suffix only selects candidates; the content decides the decoder (TIFF or PNG)
        (tmp_path / f"{i:02d}.png").write_bytes(make())
    report = IngestReport()
    shards = list(ingest_images(tmp_path, SIZE, report, progress=False))
    assert report.images == len(names) and report.skipped == 0
    got = shard_images(shards[0]).numpy()
    for i, mode in enumerate(names):
        assert centre(got[i]) == MODES[mode][1], mode


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("BMP", {}), ("GIF", {}), ("WEBP", {"lossless": True}), ("TIFF", {}), ("PNG", {})],
)
def test_lossless_formats_keep_their_colours(fmt: str, params: dict[str, object]) -> None:
    data = encoded(Image.new("RGB", (SIZE, SIZE), (10, 200, 30)), fmt, **params)
    assert centre(stored(data)) == (10, 200, 30)


def test_a_cmyk_jpeg_is_converted() -> None:
    data = encoded(Image.new("CMYK", (SIZE, SIZE), (50, 100, 150, 60)), "JPEG", quality=95)
    assert np.allclose(centre(stored(data)), (157, 119, 80), atol=3)


def test_an_unusable_icc_profile_is_ignored() -> None:
    data = encoded(Image.new("RGB", (SIZE, SIZE), (10, 200, 30)), icc_profile=b"not a profile")
    assert centre(stored(data)) == (10, 200, 30)


# ---------------------------------------------------------------- transparency


def transparent_images(junk: tuple[int, int, int]) -> dict[str, bytes]:
    """Files whose left half is opaque (or half-transparent) and right half fully transparent,
    with `junk` as the colour hidden under the transparent half."""
    half = SIZE // 2
    rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
    rgba[:, :half] = (200, 40, 60, 255)
    rgba[:, half:] = (*junk, 0)
    la = np.zeros((SIZE, SIZE, 2), dtype=np.uint8)
    la[:, :half] = (90, 255)
    la[:, half:] = (junk[1], 0)
    palette = Image.new("P", (SIZE, SIZE), 0)
    palette.putpalette([200, 40, 60, *junk, 0, 0, 0])
    palette.paste(1, (half, 0, SIZE, SIZE))
    rgb_key = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    rgb_key[:, :half] = (200, 40, 60)
    rgb_key[:, half:] = junk
    return {
        "RGBA": encoded(Image.fromarray(rgba, "RGBA")),
        "LA": encoded(Image.fromarray(la, "LA")),
        # tRNS as bytes (one alpha per palette entry, a partial one so Pillow keeps the bytes):
        # what Pillow warns about when converting to RGB
        "P, tRNS bytes": encoded(palette, transparency=b"\xff\x00\x80"),
        "P, tRNS index": encoded(palette, transparency=1),
        "RGBA WebP": encoded(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True),
        "RGB colour key": encoded(Image.fromarray(rgb_key), transparency=junk),
    }


@pytest.mark.parametrize("kind", list(transparent_images((0, 0, 0))))
@pytest.mark.parametrize("background", [(255, 255, 255), (0, 0, 0), (30, 60, 90)])
def test_colour_under_transparent_pixels_never_reaches_the_data(
    kind: str,
    background: tuple[int, int, int],
    recwarn: pytest.WarningsRecorder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    green = stored(transparent_images((0, 255, 0))[kind], background)
    magenta = stored(transparent_images((255, 0, 255))[kind], background)
    assert np.array_equal(green, magenta)  # the hidden colour changes nothing at all
    assert centre(green, SIZE - 3) == background  # the transparent side is background
    assert not recwarn.list, [str(w.message) for w in recwarn.list]
    assert capsys.readouterr() == ("", "")


def test_the_bytes_transparency_case_is_the_one_pillow_warns_about() -> None:
    """Guard for the test above: a plain RGB conversion of that file warns and shows the junk."""
    data = transparent_images((0, 255, 0))["P, tRNS bytes"]
    with pytest.warns(UserWarning, match="Transparency expressed in bytes"):
        naive = Image.open(io.BytesIO(data)).convert("RGB")
    assert naive.getpixel((SIZE - 1, 0)) == (0, 255, 0)


def test_ingest_stores_no_hidden_colour_and_prints_no_warning(
    tmp_path: Path, recwarn: pytest.WarningsRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    for junk, folder in (((0, 255, 0), "green"), ((255, 0, 255), "magenta")):
        (tmp_path / folder).mkdir()
        for i, data in enumerate(transparent_images(junk).values()):
            (tmp_path / folder / f"{i}.png").write_bytes(data)
    shards = {}
    for folder in ("green", "magenta"):
        report = IngestReport()
        (shard,) = ingest_images(tmp_path / folder, SIZE, report, progress=False)
        assert report.images == 6 and report.skipped == 0
        shards[folder] = shard
    assert shards["green"].data == shards["magenta"].data
    assert not recwarn.list
    assert "Warning" not in capsys.readouterr().err


# ---------------------------------------------------------------- sizes


def test_oversized_images_are_skipped_without_a_library_warning(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recwarn: pytest.WarningsRecorder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    (tmp_path / "a_warned.png").write_bytes(encoded(Image.new("RGB", (50, 50))))  # > limit
    (tmp_path / "b_refused.png").write_bytes(encoded(Image.new("RGB", (70, 70))))  # > 2 × limit
    (tmp_path / "c_fine.png").write_bytes(encoded(Image.new("RGB", (40, 40))))
    report = IngestReport()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        shards = list(ingest_images(tmp_path, SIZE, report, progress=False))
    assert report.images == 1 and len(shards) == 1
    assert report.by_reason == {TOO_LARGE: 2}
    assert report.names_by_reason[TOO_LARGE] == ["a_warned.png", "b_refused.png"]
    assert not recwarn.list
    assert capsys.readouterr().err == ""


def test_too_small_images_are_skipped() -> None:
    with pytest.raises(ImageSkipped, match="under half the training size") as info:
        stored(encoded(Image.new("RGB", (SIZE // 2 - 1, 40))))
    assert info.value.reason == TOO_SMALL
    assert centre(stored(encoded(Image.new("RGB", (SIZE // 2, 40), (1, 2, 3))))) == (1, 2, 3)
