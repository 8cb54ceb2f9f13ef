"""Real small and read-only filesystems for tests of full disks and unwritable files.

Both mount a tmpfs, which needs root (the test containers run as root); without it the tests
that need one are skipped. A permission bit is no test for root, who writes through it.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


@contextmanager
def small_disk(folder: Path, size_mb: int) -> Iterator[Path]:
    """`folder` as a filesystem of `size_mb` MiB, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def make_read_only(folder: Path) -> None:
    """Remount a `small_disk` read-only: nobody, root included, can write under it."""
    _mount("-o", "remount,ro", str(folder))


def make_writable(folder: Path) -> None:
    _mount("-o", "remount,rw", str(folder))


def fill(folder: Path) -> Path:
    """Fill the filesystem under `folder` to the last byte; the file to delete to free it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        size = 1 << 20
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                size //= 2  # full at this size: go on with smaller writes down to one byte
    finally:
        os.close(fd)
    return filler
