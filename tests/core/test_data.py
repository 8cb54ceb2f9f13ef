"""Tests for core.data: the synthetic dataset, shards, and folder/zip ingestion."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import data
from core.data import (
    DatasetError,
    IngestReport,
    Shard,
    ingest_images,
    parse_dataset_spec,
    shard_images,
    synthetic_images,
    synthetic_shards,
    verify_shard,
)

# ---------------------------------------------------------------- factories


def image_bytes(size: tuple[int, int], fmt: str, colour: tuple[int, ...] = (200, 30, 60)) -> bytes:
    """An encoded image of the given (width, height); mode follows the colour's length."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[len(colour)]
    buf = io.BytesIO()
    Image.new(mode, size, colour if len(colour) > 1 else colour[0]).save(buf, format=fmt)
    return buf.getvalue()


def noisy_png(size: tuple[int, int], seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def ingest_all(
    source: Path, image_size: int = 16, shard_size: int = 1024
) -> tuple[list[Shard], IngestReport]:
    report = IngestReport()
    shards = list(ingest_images(source, image_size, report, shard_size, progress=False))
    return shards, report


def halves_png(size: tuple[int, int]) -> bytes:
    """Left half black, right half white."""
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[:, size[0] // 2 :] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Five good images of assorted sizes, formats and modes, one corrupt, plus ignored files."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.png").write_bytes(image_bytes((40, 30), "PNG"))
    (root / "b.JPG").write_bytes(image_bytes((50, 80), "JPEG", (10, 200, 10)))
    (root / "sub" / "c.jpeg").write_bytes(image_bytes((33, 33), "JPEG", (120,)))  # grayscale
    (root / "sub" / "deeper" / "d.PNG").write_bytes(image_bytes((8, 90), "PNG", (1, 2, 3, 128)))
    (root / "sub" / "e.png").write_bytes(halves_png((300, 200)))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"AppleDouble junk")
    return root


# ---------------------------------------------------------------- synthetic dataset


def test_synthetic_dtype_shape_and_determinism() -> None:
    a = synthetic_images(50, 32, seed=7)
    assert a.dtype == torch.uint8 and a.shape == (50, 3, 32, 32)
    assert torch.equal(a, synthetic_images(50, 32, seed=7))
    assert not torch.equal(a, synthetic_images(50, 32, seed=8))


def test_synthetic_slice_regenerates_alone() -> None:
    whole = synthetic_images(1200, 32, seed=3)  # spans more than one render chunk
    assert torch.equal(synthetic_images(7, 32, seed=3, start=509), whole[509:516])
    assert torch.equal(synthetic_images(1, 32, seed=3, start=1199), whole[1199:])


# sha256 of known-good renders; a change here changes every run's dataset, so bump it knowingly.
PINNED_RENDERS = [
    ((4, 32, 0, 0), "1fa1d8ea177f295b2b1aeda9809d7642656ff0fdf690b7278bab556c515a2f11"),
    ((3, 64, 12345, 777), "2772ed7ec7b1c2f5def29c95f2143631d5ac7f86b4adbdfca9d91a4016489946"),
]


@pytest.mark.parametrize(("args", "digest"), PINNED_RENDERS)
def test_synthetic_pinned_values(args: tuple[int, int, int, int], digest: str) -> None:
    """The dataset must not drift between versions or machines: runs and caches depend on it."""
    count, size, seed, start = args
    images = synthetic_images(count, size, seed, start)
    assert hashlib.sha256(images.numpy().tobytes()).hexdigest() == digest


def test_synthetic_has_structure() -> None:
    images = synthetic_images(200, 32, seed=11).float()
    per_image_std = images.flatten(1).std(dim=1)
    assert per_image_std.min() > 10  # never a flat image
    distinct = {bytes(img.to(torch.uint8).numpy().tobytes()) for img in images}
    assert len(distinct) == len(images)
    # Saturated shapes: most images have a pixel with one channel high and another low.
    spread = images.amax(dim=1) - images.amin(dim=1)  # (N, S, S)
    assert (spread.flatten(1).amax(dim=1) > 150).float().mean() > 0.9


def test_synthetic_shards_boundaries_and_checksums() -> None:
    shards = list(synthetic_shards(2500, 8, seed=5, shard_size=1000))
    assert [s.count for s in shards] == [1000, 1000, 500]
    assert [s.index for s in shards] == [0, 1, 2]
    for shard in shards:
        verify_shard(shard)
    joined = torch.cat([shard_images(s) for s in shards])
    assert torch.equal(joined, synthetic_images(2500, 8, seed=5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": -1, "image_size": 32, "seed": 0},
        {"count": 1, "image_size": 0, "seed": 0},
        {"count": 1, "image_size": 32, "seed": -1},
        {"count": 1, "image_size": 32, "seed": 0, "start": -3},
    ],
)
def test_synthetic_rejects_bad_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(DatasetError, match="must be"):
        synthetic_images(**kwargs)


def test_synthetic_shards_rejects_bad_arguments_eagerly() -> None:
    with pytest.raises(DatasetError, match="shard_size"):
        synthetic_shards(10, 32, seed=0, shard_size=0)  # no next(): the error is immediate


# ---------------------------------------------------------------- shards


def test_shard_images_round_trip_and_copy() -> None:
    shard = next(synthetic_shards(3, 8, seed=1))
    images = shard_images(shard)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.uint8
    images.zero_()  # the tensor is the caller's; the shard's bytes must stay intact
    verify_shard(shard)


def test_shard_images_rejects_wrong_length() -> None:
    shard = next(synthetic_shards(3, 8, seed=1))
    short = dataclasses.replace(shard, data=shard.data[:-1])
    with pytest.raises(DatasetError, match="bytes where"):
        shard_images(short)


def test_shard_images_rejects_wrong_sha256() -> None:
    shard = next(synthetic_shards(3, 8, seed=1))
    flipped = bytes([shard.data[0] ^ 1]) + shard.data[1:]
    with pytest.raises(DatasetError, match="sha256"):
        shard_images(dataclasses.replace(shard, data=flipped))


def test_verify_shard_rejects_empty_shard() -> None:
    empty = Shard(index=0, count=0, image_size=8, data=b"", sha256="")
    with pytest.raises(DatasetError, match="positive"):
        verify_shard(empty)


# ---------------------------------------------------------------- dataset spec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("synthetic", ("synthetic", 10_000)),
        ("synthetic:5000", ("synthetic", 5000)),
        (" synthetic:1 ", ("synthetic", 1)),
        ("/data/img_align_celeba.zip", ("path", Path("/data/img_align_celeba.zip"))),
        ("photos", ("path", Path("photos"))),
    ],
)
def test_parse_dataset_spec(spec: str, expected: tuple[str, object]) -> None:
    assert parse_dataset_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "synthetic:",
        "synthetic:abc",
        "synthetic:0",
        "synthetic:-5",
        "synthetic:99999999999",
    ],
)
def test_parse_dataset_spec_rejects(spec: str) -> None:
    with pytest.raises(DatasetError):
        parse_dataset_spec(spec)


# ---------------------------------------------------------------- folder ingestion


def test_ingest_folder(mixed_folder: Path) -> None:
    shards, report = ingest_all(mixed_folder, image_size=16)
    assert report.images == 5 and report.skipped == 1
    assert len(report.skipped_examples) == 1 and report.skipped_examples[0].startswith(
        "corrupt.jpg:"
    )
    assert len(shards) == 1
    shard = shards[0]
    assert (shard.index, shard.count, shard.image_size) == (0, 5, 16)
    verify_shard(shard)
    images = shard_images(shard)
    assert images.shape == (5, 3, 16, 16)
    # Sorted by relative path: a.png, b.JPG, sub/c.jpeg, sub/deeper/d.PNG, sub/e.png; d is
    # half-transparent (1, 2, 3) over white: (c·128 + 255·127 + 127) // 255.
    expected_centres = [(200, 30, 60), (10, 200, 10), (120, 120, 120), (128, 128, 129)]
    for img, colour in zip(images, expected_centres, strict=False):
        assert torch.allclose(img[:, 8, 8].float(), torch.tensor(colour).float(), atol=6)
    assert images[4].float().std() > 100  # the black/white halves survived the resize


def test_ingest_folder_is_streaming(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(image_bytes((10, 10), "PNG", (i, 0, 0)))
    report = IngestReport()
    shards = ingest_images(tmp_path, 8, report, shard_size=2, progress=False)
    assert report.images == 0  # nothing decoded before the first shard is asked for
    assert next(shards).count == 2
    assert report.images == 2  # only the first shard's images were decoded
    assert [s.count for s in shards] == [2, 1]


def test_ingest_shard_boundaries(tmp_path: Path) -> None:
    for i in range(2500):
        (tmp_path / f"{i:05d}.png").write_bytes(image_bytes((4, 4), "PNG", (i % 256, i // 256, 0)))
    shards, report = ingest_all(tmp_path, image_size=4, shard_size=1000)
    assert [s.count for s in shards] == [1000, 1000, 500]
    assert [s.index for s in shards] == [0, 1, 2]
    assert report.images == 2500 and report.skipped == 0


@pytest.mark.parametrize("size", [(90, 30), (30, 90), (91, 31)])
def test_centre_crop_is_centred(tmp_path: Path, size: tuple[int, int]) -> None:
    """Red margins on the long side, blue centre square: the crop must keep only the blue."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    side = min(size)
    left, top = (width - side) // 2, (height - side) // 2
    pixels[top : top + side, left : left + side] = (0, 0, 255)
    Image.fromarray(pixels).save(tmp_path / "flag.png")
    (shard,), _ = ingest_all(tmp_path, image_size=16)
    image = shard_images(shard)[0].float()
    assert image[2].mean() > 240 and image[0].mean() < 15


def test_ingest_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="no images found"):
        ingest_images(tmp_path, 16, IngestReport(), progress=False)


def test_ingest_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        ingest_images(tmp_path / "nowhere", 16, IngestReport(), progress=False)


def test_ingest_text_file(tmp_path: Path) -> None:
    text = tmp_path / "list.txt"
    text.write_text("a.jpg\nb.jpg\n")
    with pytest.raises(DatasetError, match=r"neither a folder nor a \.zip"):
        ingest_images(text, 16, IngestReport(), progress=False)


def test_ingest_all_unreadable(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.png"):
        (tmp_path / name).write_bytes(b"garbage" * 20)
    report = IngestReport()
    with pytest.raises(DatasetError, match="none of the 2 images"):
        list(ingest_images(tmp_path, 16, report, progress=False))
    assert report.skipped == 2


def test_ingest_truncated_jpeg_is_skipped(tmp_path: Path) -> None:
    whole = noisy_png((64, 64), seed=2)
    buf = io.BytesIO()
    Image.open(io.BytesIO(whole)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "ok.png").write_bytes(whole)
    _, report = ingest_all(tmp_path)
    assert report.images == 1 and report.skipped == 1
    assert report.skipped_examples[0].startswith("cut.jpg:")


def test_ingest_decodes_only_the_allowed_formats(tmp_path: Path) -> None:
    """Content decides, not the name: a PNG called .jpg is fine, a PPM called .png is skipped."""
    (tmp_path / "png_named.jpg").write_bytes(image_bytes((12, 12), "PNG"))
    (tmp_path / "ppm_named.png").write_bytes(image_bytes((12, 12), "PPM"))
    _, report = ingest_all(tmp_path)
    assert report.images == 1 and report.skipped == 1
    assert report.skipped_examples == [
        "ppm_named.png: unreadable (not a recognisable image of a supported type)"
    ]


# ---------------------------------------------------------------- zip ingestion


def celeba_zip(path: Path, good: int, corrupt: list[int]) -> Path:
    """A zip laid out like img_align_celeba.zip, with macOS junk and a few corrupt members."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("img_align_celeba/", b"")
        for i in range(1, good + len(corrupt) + 1):
            name = f"img_align_celeba/{i:06d}.jpg"
            if i in corrupt:
                archive.writestr(name, b"\xff\xd8\xff not really a jpeg")
            else:
                archive.writestr(name, image_bytes((178, 218), "JPEG", (i * 20, 40, 90)))
        archive.writestr("__MACOSX/img_align_celeba/._000001.jpg", b"resource fork")
        archive.writestr("img_align_celeba/.DS_Store", b"finder junk")
    return path


def test_ingest_celeba_zip(tmp_path: Path) -> None:
    source = celeba_zip(tmp_path / "img_align_celeba.zip", good=5, corrupt=[3])
    shards, report = ingest_all(source, image_size=32, shard_size=4)
    assert report.images == 5 and report.skipped == 1
    assert report.skipped_examples[0].startswith("img_align_celeba/000003.jpg:")
    assert [s.count for s in shards] == [4, 1]
    images = torch.cat([shard_images(s) for s in shards])
    assert images.shape == (5, 3, 32, 32)
    reds = images[:, 0, 16, 16].tolist()  # members 1, 2, 4, 5, 6 in name order
    assert reds == pytest.approx([20, 40, 80, 100, 120], abs=6)


def test_ingest_zip_skips_oversized_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = celeba_zip(tmp_path / "celeba.zip", good=2, corrupt=[])
    with zipfile.ZipFile(source, "a") as archive:
        archive.writestr("img_align_celeba/000999.png", noisy_png((200, 200), seed=3))
    monkeypatch.setattr(data, "MAX_MEMBER_BYTES", 20_000)  # > the small JPEGs, < the noisy PNG
    _, report = ingest_all(source)
    assert report.images == 2 and report.skipped == 1
    assert "too large" in report.skipped_examples[0]


def test_ingest_zip_with_bad_member_crc(tmp_path: Path) -> None:
    """Damaged compressed bytes inside an otherwise valid zip skip that member only."""
    source = celeba_zip(tmp_path / "celeba.zip", good=3, corrupt=[])
    raw = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("img_align_celeba/000002.jpg")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[middle] ^= 0xFF
    source.write_bytes(bytes(raw))
    _, report = ingest_all(source)
    assert report.images == 2 and report.skipped == 1


def test_ingest_corrupt_zip(tmp_path: Path) -> None:
    broken = tmp_path / "img_align_celeba.zip"
    broken.write_bytes(b"PK\x03\x04 this archive was cut short")
    with pytest.raises(DatasetError, match="not a readable zip"):
        ingest_images(broken, 16, IngestReport(), progress=False)


def test_ingest_zip_without_images(tmp_path: Path) -> None:
    source = tmp_path / "docs.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(DatasetError, match="no images found"):
        ingest_images(source, 16, IngestReport(), progress=False)


# ---------------------------------------------------------------- links, names and the summary


def test_linked_folders_are_followed_and_a_loop_is_reported(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.png").write_bytes(image_bytes((20, 20), "PNG", (1, 2, 3)))
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(image_bytes((20, 20), "PNG"))
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)  # followed
    (root / "sub" / "again").symlink_to(elsewhere, target_is_directory=True)  # read once
    (root / "sub" / "back").symlink_to(root, target_is_directory=True)  # a loop
    (root / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)  # a loop via a parent
    (root / "gone.png").symlink_to(tmp_path / "deleted.png")  # a link to nothing
    shards, report = ingest_all(root)
    assert report.images == 2 and shards[0].count == 2
    assert report.by_reason == {
        data.LINK_LOOP: 2,
        data.DUPLICATE_FOLDER: 1,
        "unreadable": 1,
    }
    assert report.names_by_reason[data.LINK_LOOP] == ["sub/back", "sub/up"]
    assert report.names_by_reason[data.DUPLICATE_FOLDER] == ["sub/again"]
    assert report.found == 3 and report.skipped == 1  # gone.png; folders are not images
    summary = "\n".join(report.summary())
    assert "3 images found, 2 used, 1 skipped" in summary
    assert "link loop: 2 (sub/back, sub/up)" in summary


def test_a_name_that_is_not_utf8_is_reported_safely(tmp_path: Path) -> None:
    (tmp_path / "good.png").write_bytes(image_bytes((20, 20), "PNG"))
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.png"), "wb") as broken:
        broken.write(b"not an image")
    _, report = ingest_all(tmp_path)
    assert report.images == 1
    assert report.names_by_reason["unreadable"] == ["caf\\xe9.png"]  # the byte, escaped
    "\n".join(report.summary()).encode("utf-8")  # printable by any UTF-8 console


def test_summary_counts_every_reason_with_the_first_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "EXAMPLES_PER_REASON", 2)
    for i in range(3):
        (tmp_path / f"bad{i}.png").write_bytes(b"junk")
        (tmp_path / f"small{i}.png").write_bytes(image_bytes((3, 3), "PNG"))
    (tmp_path / "ok.png").write_bytes(image_bytes((20, 20), "PNG"))
    _, report = ingest_all(tmp_path)
    assert report.summary() == [
        "7 images found, 1 used, 6 skipped",
        "  unreadable: 3 (bad0.png, bad1.png, …)",
        "  too small: 3 (small0.png, small1.png, …)",
    ]


def test_a_file_used_twice_is_a_duplicate(tmp_path: Path) -> None:
    photo = image_bytes((20, 20), "PNG", (9, 8, 7))
    (tmp_path / "a.png").write_bytes(photo)
    (tmp_path / "b.png").write_bytes(image_bytes((20, 20), "PNG", (9, 8, 6)))
    (tmp_path / "copy of a.png").write_bytes(photo)
    (tmp_path / "junk1.png").write_bytes(b"junk")
    (tmp_path / "junk2.png").write_bytes(b"junk")  # the same junk: unreadable, not a duplicate
    shards, report = ingest_all(tmp_path)
    assert report.images == 2 and shards[0].count == 2
    assert report.by_reason == {"duplicate": 1, "unreadable": 2}
    assert "copy of a.png: duplicate (the same bytes as a.png)" in report.skipped_examples


def test_a_folder_file_over_the_size_limit_is_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "big.png").write_bytes(noisy_png((200, 200), seed=3))
    (tmp_path / "small.png").write_bytes(image_bytes((20, 20), "PNG"))
    monkeypatch.setattr(data, "MAX_MEMBER_BYTES", 20_000)
    _, report = ingest_all(tmp_path)
    assert report.images == 1 and report.names_by_reason == {"too large": ["big.png"]}


def test_all_images_unusable_names_the_reasons(tmp_path: Path) -> None:
    (tmp_path / "tiny.png").write_bytes(image_bytes((3, 3), "PNG"))
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"unreadable: 1 \(bad.png\); too small: 1"):
        ingest_all(tmp_path)
