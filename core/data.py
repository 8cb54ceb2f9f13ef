"""Training images as checksummed uint8 shards: the synthetic dataset and folder/zip ingestion."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePath, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.images import SUFFIXES, TOO_LARGE, UNREADABLE, WHITE, ImageSkipped, load_image
from core.progress import CountProgress
from core.synthetic import RENDER_CHUNK, render, uniforms

log = logging.getLogger(__name__)

SYNTHETIC_DEFAULT_COUNT = 10_000  # images in the "synthetic" dataset when no count is given
MAX_SYNTHETIC_COUNT = 1_000_000  # upper bound for "synthetic:N" (1M images of 64×64 = 12 GB)
IMAGE_SUFFIXES = SUFFIXES  # compared lower-cased
MAX_MEMBER_BYTES = 50 * 1024 * 1024  # zip members larger than this (uncompressed) are skipped
MAX_SKIPPED_EXAMPLES = 5  # "name: reason" lines kept in an IngestReport
EXAMPLES_PER_REASON = 3  # names kept per reason for the summary
DUPLICATE = "duplicate"  # a file with the same bytes as an image already used
LINK_LOOP = "link loop"  # a linked folder that leads back to one of its parents: not followed
DUPLICATE_FOLDER = "folder already read"  # a second link to a folder: its images are read once
UNREADABLE_FOLDER = "unreadable folder"  # os.walk could not list it (permissions)
# Image sets shipped with the package, by the name --dataset accepts (assets/build_emoji_set.py).
SHIPPED_DATASETS = {"emoji": Path(__file__).parent / "assets" / "noto-emoji-32.zip"}


class DatasetError(ValueError):
    """A dataset source or shard is unusable; the message says what to do about it."""


@dataclass(frozen=True)
class Shard:
    """A block of consecutive dataset images, stored as raw uint8 bytes with their checksum."""

    index: int  # 0, 1, 2 … in dataset order
    count: int  # images in this shard
    image_size: int  # pixels per side
    data: bytes  # uint8, C-contiguous (count, 3, image_size, image_size)
    sha256: str  # hex sha256 of data


@dataclass
class IngestReport:
    """Counters filled in while `ingest_images` runs."""

    found: int = 0  # candidate image files
    images: int = 0  # images decoded and stored
    skipped: int = 0  # candidate files that could not be used
    skipped_examples: list[str] = field(default_factory=list)  # first few "name: reason"
    by_reason: dict[str, int] = field(default_factory=dict)  # files or folders, per reason
    names_by_reason: dict[str, list[str]] = field(default_factory=dict)  # the first few of each

    def skip(self, reason: str, name: str, detail: str = "", *, image: bool = True) -> None:
        """Count one skipped image (or, with image=False, a folder not followed)."""
        name = printable(name)
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        names = self.names_by_reason.setdefault(reason, [])
        if len(names) < EXAMPLES_PER_REASON:
            names.append(name)
        if not image:
            log.info("not following %s: %s", name, detail or reason)
            return
        self.skipped += 1
        line = f"{name}: {reason} ({detail})" if detail else f"{name}: {reason}"
        if len(self.skipped_examples) < MAX_SKIPPED_EXAMPLES:
            self.skipped_examples.append(line)
        # One summary line at the end says it all on the console; each file goes to the log file.
        log.info("skipping %s", line)

    def summary(self) -> list[str]:
        """Lines for people: found, used, and each reason for skipping with its first names."""
        lines = [f"{self.found} images found, {self.images} used, {self.skipped} skipped"]
        for reason, count in self.by_reason.items():
            names = self.names_by_reason.get(reason, [])
            more = ", …" if count > len(names) else ""
            lines.append(f"  {reason}: {count} ({', '.join(names)}{more})")
        return lines


def printable(name: str) -> str:
    """A file name as text any console or log can show: undecodable bytes become \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# What Pillow and zipfile raise for a broken or hostile file; anything else is a bug and propagates.
_DECODE_ERRORS = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    ValueError,
    SyntaxError,  # some Pillow plugins signal malformed headers this way
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


# ---------------------------------------------------------------- synthetic dataset


def synthetic_images(count: int, image_size: int, seed: int, start: int = 0) -> torch.Tensor:
    """Render images `start … start+count-1` of the synthetic dataset: uint8 (count, 3, S, S).

    Each image is a vertical two-colour gradient with one or two saturated shapes (circle, square,
    triangle). Image i depends only on (seed, start + i), through a counter-based hash rather than
    numpy's samplers, so any slice can be regenerated alone, on any machine and numpy version.
    """
    _check_at_least(1, image_size=image_size)
    _check_at_least(0, count=count, start=start, seed=seed)
    if seed >= 2**64:
        raise DatasetError(f"seed must be below 2**64, not {seed}")
    out = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    for lo in range(0, count, RENDER_CHUNK):
        hi = min(lo + RENDER_CHUNK, count)
        out[lo:hi] = render(uniforms(seed, start + lo, hi - lo), image_size)
    return torch.from_numpy(out)


def synthetic_shards(
    count: int, image_size: int, seed: int, shard_size: int = 1024
) -> Iterator[Shard]:
    """Yield the synthetic dataset of `count` images as shards of `shard_size` (the last shorter)."""
    _check_at_least(1, count=count, image_size=image_size, shard_size=shard_size)
    return _synthetic_shards(count, image_size, seed, shard_size)


def _synthetic_shards(count: int, image_size: int, seed: int, shard_size: int) -> Iterator[Shard]:
    for index, start in enumerate(range(0, count, shard_size)):
        images = synthetic_images(min(shard_size, count - start), image_size, seed, start)
        yield _make_shard(index, images.numpy())


# ---------------------------------------------------------------- shards


def _make_shard(index: int, images: np.ndarray) -> Shard:
    """Pack uint8 (count, 3, S, S) images into a checksummed Shard."""
    data = np.ascontiguousarray(images, dtype=np.uint8).tobytes()
    return Shard(index, len(images), images.shape[-1], data, hashlib.sha256(data).hexdigest())


def verify_shard(shard: Shard) -> None:
    """Raise DatasetError unless the shard's bytes have the declared size and sha256.

    The message says what is wrong, not what to do: that depends on where the shard came
    from (the store's reader turns it into `DamagedData` with the owner's remedy).
    """
    if shard.count < 1 or shard.image_size < 1:
        raise DatasetError(
            f"shard {shard.index} declares {shard.count} images of {shard.image_size} pixels; "
            "both must be positive: re-create the dataset"
        )
    expected = shard.count * 3 * shard.image_size * shard.image_size
    if len(shard.data) != expected:
        raise DatasetError(
            f"shard {shard.index} is corrupt: {len(shard.data)} bytes where {shard.count}×3×"
            f"{shard.image_size}×{shard.image_size} = {expected} were expected"
        )
    actual = hashlib.sha256(shard.data).hexdigest()
    if actual != shard.sha256:
        raise DatasetError(
            f"shard {shard.index} is corrupt: its sha256 is {actual[:12]}… but "
            f"{shard.sha256[:12]}… was recorded"
        )


def shard_images(shard: Shard) -> torch.Tensor:
    """Verify a shard and return its images as a uint8 (count, 3, S, S) tensor.

    The tensor owns a copy of the bytes, so callers may modify it without touching the shard.
    """
    verify_shard(shard)
    flat = torch.frombuffer(bytearray(shard.data), dtype=torch.uint8)
    return flat.view(shard.count, 3, shard.image_size, shard.image_size)


def parse_dataset_spec(spec: str) -> tuple[str, int | Path]:
    """Parse a --dataset value: "synthetic[:N]" → ("synthetic", N), a shipped set's name
    ("emoji") → ("path", its zip), anything else → ("path", …)."""
    text = spec.strip()
    if not text:
        raise DatasetError(
            "no dataset given: use a folder of images, a .zip of them, emoji or synthetic[:N]"
        )
    if text in SHIPPED_DATASETS:
        return ("path", SHIPPED_DATASETS[text])
    if text == "synthetic":
        return ("synthetic", SYNTHETIC_DEFAULT_COUNT)
    if text.startswith("synthetic:"):
        raw = text.removeprefix("synthetic:")
        try:
            count = int(raw)
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_SYNTHETIC_COUNT:
            raise DatasetError(
                f"{spec!r} is not a valid synthetic dataset: write synthetic:N with N a whole number "
                f"of images from 1 to {MAX_SYNTHETIC_COUNT}, e.g. synthetic:5000"
            )
        return ("synthetic", count)
    return ("path", Path(text).expanduser())


def _check_at_least(minimum: int, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < minimum:
            raise DatasetError(f"{name} must be an integer of at least {minimum}, not {value!r}")


# ---------------------------------------------------------------- ingestion

Reader = Callable[[], bytes]  # reads one candidate image file's bytes


def ingest_images(
    source: Path,
    image_size: int,
    report: IngestReport,
    shard_size: int = 1024,
    progress: bool = True,
    background: tuple[int, int, int] = WHITE,
) -> Iterator[Shard]:
    """Yield shards of the images in a folder or .zip, centre-cropped and resized to image_size.

    Files are the image types of core.images (any case), in sorted relative-path order,
    dotfiles and __MACOSX/ ignored; linked folders are followed, a link loop is reported and
    not followed. Transparent pixels are composited onto `background`. Only one shard is held
    in memory. Images that cannot be used are skipped and counted in `report` by reason. A
    missing, empty or unreadable source raises DatasetError, before the first shard when it can
    be known then.
    """
    _check_at_least(1, image_size=image_size, shard_size=shard_size)
    source = Path(source)
    if not source.exists():
        raise DatasetError(
            f"dataset {source} does not exist: give a folder of images, a .zip of them, "
            "or synthetic[:N]"
        )
    if source.is_dir():
        paths = _folder_candidates(source, report)
        entries: Iterator[tuple[str, Reader]] = _folder_entries(source, paths)
        total = len(paths)
    elif source.is_file() and (source.suffix.lower() == ".zip" or zipfile.is_zipfile(source)):
        members = _zip_candidates(source)
        entries = _zip_entries(source, members)
        total = len(members)
    else:
        raise DatasetError(
            f"dataset {source} is neither a folder nor a .zip file: give a folder of "
            "images, a .zip of them, or synthetic[:N]"
        )
    if total == 0:
        raise DatasetError(
            f"no images found in {source}: expected {_suffix_list()} files (in any subfolder)"
        )
    report.found = total + report.skipped  # broken links were found, and skipped already
    return _ingest(source, entries, image_size, report, shard_size, progress, background)


def _suffix_list() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES))


def _is_hidden(relative: PurePath) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def _is_candidate(relative: PurePath) -> bool:
    return not _is_hidden(relative) and relative.suffix.lower() in IMAGE_SUFFIXES


def _folder_candidates(root: Path, report: IngestReport) -> list[Path]:
    """Candidate files under root, following linked folders, each real folder read once."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()  # (device, inode) of every folder read so far

    def on_error(exc: OSError) -> None:  # an unreadable folder: say so, go on with the rest
        where = Path(exc.filename or root)
        detail = str(exc.strerror or exc)
        report.skip(UNREADABLE_FOLDER, _relative(root, where), detail, image=False)

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=on_error):
        here = Path(folder)
        stat = here.stat()
        seen.add((stat.st_dev, stat.st_ino))
        ancestors = {os.path.realpath(p) for p in [here, *here.parents]}
        dirs.sort()  # walk in a fixed order, so the same link is the one reported
        for name in list(dirs):
            child = here / name
            if _is_hidden(child.relative_to(root)):
                dirs.remove(name)
                continue
            stat = child.stat()  # os.walk listed it as a folder, so it resolves
            if (stat.st_dev, stat.st_ino) in seen or os.path.realpath(child) in ancestors:
                dirs.remove(name)
                reason = LINK_LOOP if os.path.realpath(child) in ancestors else DUPLICATE_FOLDER
                report.skip(reason, _relative(root, child), image=False)
                continue
            seen.add((stat.st_dev, stat.st_ino))
        for name in files:
            path = here / name
            if not _is_candidate(path.relative_to(root)):
                continue
            if path.is_file():
                found.append(path)
            elif path.is_symlink() and not path.exists():
                report.skip(UNREADABLE, _relative(root, path), "a link to nothing")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _folder_entries(root: Path, paths: list[Path]) -> Iterator[tuple[str, Reader]]:
    for path in paths:
        yield path.relative_to(root).as_posix(), partial(_read_file, path)


def _read_file(path: Path) -> bytes:
    with path.open("rb") as file:
        _check_file_size(os.fstat(file.fileno()).st_size)
        return file.read()


def _check_file_size(size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise ImageSkipped(
            TOO_LARGE,
            f"{size / 2**20:.1f} MiB uncompressed, over the {MAX_MEMBER_BYTES / 2**20:.0f} MiB limit",
        )


def _zip_candidates(source: Path) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(source) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(
            f"{source} is not a readable zip file ({exc}); download or create it again"
        ) from exc
    keep = [i for i in infos if not i.is_dir() and _is_candidate(PurePosixPath(i.filename))]
    return sorted(keep, key=lambda i: i.filename)


def _zip_entries(source: Path, members: list[zipfile.ZipInfo]) -> Iterator[tuple[str, Reader]]:
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{source} can no longer be read as a zip file ({exc})") from exc
    with archive:
        for info in members:
            yield info.filename, partial(_read_member, archive, info)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read one member into memory (never to disk), refusing oversized ones."""
    _check_file_size(info.file_size)
    try:
        return archive.read(info)
    # RuntimeError covers encrypted members and NotImplementedError (unsupported compression).
    except (zipfile.BadZipFile, zlib.error, RuntimeError, OSError, EOFError) as exc:
        raise ImageSkipped(UNREADABLE, f"damaged zip member: {exc}") from exc


def _load(
    read: Reader, image_size: int, background: tuple[int, int, int]
) -> tuple[np.ndarray, bytes]:
    """The image's pixels (3, S, S) and a digest of its file's bytes."""
    data = read()
    return load_image(io.BytesIO(data), image_size, background), hashlib.blake2b(
        data, digest_size=16
    ).digest()


def _ingest(
    source: Path,
    entries: Iterator[tuple[str, Reader]],
    image_size: int,
    report: IngestReport,
    shard_size: int,
    progress: bool,
    background: tuple[int, int, int],
) -> Iterator[Shard]:
    buffer = np.empty((shard_size, 3, image_size, image_size), dtype=np.uint8)  # one shard
    filled = index = 0
    first_with: dict[bytes, str] = {}  # file digest → the name of the image used with it
    # Broken links were found, and skipped, before reading: they count as done.
    with CountProgress(
        report.found, "ingesting images", "images", done=report.skipped, shown=progress
    ) as bar:
        for name, read in entries:
            bar.update()
            try:
                pixels, digest = _load(read, image_size, background)
            except ImageSkipped as exc:
                report.skip(exc.reason, name, str(exc))
                continue
            except _DECODE_ERRORS as exc:
                report.skip(UNREADABLE, name, _decode_error_text(exc))
                continue
            if digest in first_with:  # the same file twice would weigh twice in training
                report.skip(DUPLICATE, name, f"the same bytes as {printable(first_with[digest])}")
                continue
            first_with[digest] = name
            buffer[filled] = pixels
            filled += 1
            report.images += 1
            if filled == shard_size:
                yield _make_shard(index, buffer)
                index, filled = index + 1, 0
    if filled:
        yield _make_shard(index, buffer[:filled])
    if report.images == 0:
        reasons = "; ".join(report.summary()[1:]).replace("  ", "")
        raise DatasetError(
            f"none of the {report.found} images in {source} could be used ({reasons}); "
            f"give {_suffix_list()} images of at least {image_size // 2} pixels a side"
        )
    log.info("ingested %d images from %s, skipped %d", report.images, source, report.skipped)


def _decode_error_text(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognisable image of a supported type"
    return str(exc) or type(exc).__name__
