"""The emoji set shipped in core/assets: what `--dataset emoji` reads, and the script that builds it."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from core.data import (
    SHIPPED_DATASETS,
    IngestReport,
    ingest_images,
    parse_dataset_spec,
    shard_images,
)

ROOT = Path(__file__).resolve().parents[2]
EMOJI_IMAGES = 1892  # Noto emoji without skin-tone variants, each picture once


def build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_emoji_set", ROOT / "assets" / "build_emoji_set.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_emoji_names_the_shipped_zip_with_its_licence() -> None:
    kind, path = parse_dataset_spec("emoji")
    assert (kind, path) == ("path", SHIPPED_DATASETS["emoji"])
    assert isinstance(path, Path) and path.is_file()
    assert path.stat().st_size < 4 * 2**20  # a compact copy: a few MB at most
    assert "Apache License" in (path.parent / "LICENSE-noto-emoji.txt").read_text()
    assert "Noto Emoji" in (path.parent / "NOTICE-noto-emoji.md").read_text()
    assert parse_dataset_spec("./emoji") == ("path", Path("emoji"))  # a folder of that name


def test_the_shipped_emoji_are_32px_rgb_on_white() -> None:
    report = IngestReport()
    shards = ingest_images(SHIPPED_DATASETS["emoji"], 32, report, progress=False)
    images = np.concatenate([shard_images(s).numpy() for s in shards])
    assert images.shape == (EMOJI_IMAGES, 3, 32, 32) and report.skipped == 0
    corners = images[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # (N, 3, 4)
    white = (corners == 255).all(axis=(1, 2))
    assert white.mean() > 0.9  # the background is white, not the colour under transparency
    with zipfile.ZipFile(SHIPPED_DATASETS["emoji"]) as archive:
        names = archive.namelist()
        with Image.open(io.BytesIO(archive.read(names[0]))) as first:
            assert (first.mode, first.size) == ("RGB", (32, 32))
    assert not any("1f3fb" in n or "1f3ff" in n for n in names)  # no skin-tone variants


def _rgba_png(colour_under_transparency: tuple[int, int, int]) -> bytes:
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[..., :3] = colour_under_transparency  # junk colour, fully transparent
    pixels[16:48, 16:48] = (200, 30, 40, 255)  # an opaque red square in the middle
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, format="PNG")
    return out.getvalue()


def test_the_build_composites_onto_white_drops_skin_tones_and_is_reproducible(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("64/", b"")
        archive.writestr("64/1f600.png", _rgba_png((0, 255, 0)))
        archive.writestr("64/1f44b-1f3fd.png", _rgba_png((0, 0, 255)))
    script = build_script()
    assert script.build(source, tmp_path / "a.zip") == 1
    assert script.build(source, tmp_path / "b.zip") == 1
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.namelist() == ["emoji/1f600.png"]
        with Image.open(io.BytesIO(archive.read("emoji/1f600.png"))) as image:
            assert (image.mode, image.size) == ("RGB", (32, 32))
            pixels = np.asarray(image)
    assert (pixels[0, 0] == 255).all()  # white where it was transparent, never the junk green
    assert tuple(pixels[16, 16]) == (200, 30, 40)  # the opaque square is kept


@pytest.mark.parametrize("name", ["emoji", "synthetic"])
def test_every_demo_dataset_is_a_valid_dataset(name: str) -> None:
    from coordinator.demo import DEMO_DATASETS

    kind, value = parse_dataset_spec(DEMO_DATASETS[name])
    assert kind == "synthetic" or (isinstance(value, Path) and value.is_file())
