"""Download the pinned uv wheel from PyPI, check its sha256 and extract the uv binary."""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import json
import os
import re
import shutil
import stat
import sys
import urllib.request
import zipfile
from pathlib import Path

PINS_PATH = Path(__file__).resolve().parent / "uv_pins.json"
CACHE_DIR = Path(
    os.environ.get("GANFRIENDS_INSTALLERS_CACHE", Path.home() / ".cache" / "ganfriends-installers")
)
SIMPLE_INDEX = "https://pypi.org/simple/uv/"

# Which PyPI wheel of uv serves each platform key (a regex on the wheel's platform tag).
PLATFORM_TAGS: dict[str, str] = {
    "linux-x86_64": r"^manylinux_2_17_x86_64\.manylinux2014_x86_64$",
    "linux-aarch64": r"^manylinux_2_17_aarch64\.manylinux2014_aarch64\.musllinux_1_1_aarch64$",
    "windows-x86_64": r"^win_amd64$",
    "macos-arm64": r"^macosx_11_0_arm64$",
    "macos-x86_64": r"^macosx_10_12_x86_64$",
}


class FetchUvError(RuntimeError):
    """The pinned uv wheel could not be fetched, verified or unpacked."""


def load_pins(path: Path = PINS_PATH) -> dict:
    """Read uv_pins.json: {"version": ..., "platforms": {key: {"url", "sha256", "filename"}}}."""
    return json.loads(path.read_text(encoding="utf-8"))


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _download(url: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FetchUvError(
            f"could not download {url}: {exc}; check the network access to files.pythonhosted.org"
        ) from exc
    tmp.replace(dest)


def cached_wheel(key: str, pins: dict | None = None, cache_dir: Path = CACHE_DIR) -> Path:
    """The verified wheel for platform `key`, downloaded into the cache on first use."""
    pins = pins or load_pins()
    try:
        entry = pins["platforms"][key]
    except KeyError:
        known = ", ".join(sorted(pins["platforms"]))
        raise FetchUvError(f"unknown platform {key!r}; choose one of: {known}") from None
    wheel = cache_dir / "uv-wheels" / entry["filename"]
    wheel.parent.mkdir(parents=True, exist_ok=True)
    if not wheel.exists() or sha256_of(wheel) != entry["sha256"]:
        _download(entry["url"], wheel)
    got = sha256_of(wheel)
    if got != entry["sha256"]:
        wheel.unlink()
        raise FetchUvError(
            f"{entry['filename']}: sha256 {got} does not match the pin {entry['sha256']} "
            "in installers/uv_pins.json; the download was corrupted or tampered with, retry"
        )
    return wheel


def extract_uv(wheel: Path, dest: Path, windows: bool) -> Path:
    """Extract the uv binary (uv.exe on Windows) from the wheel's .data/scripts into `dest`."""
    name = "uv.exe" if windows else "uv"
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if re.fullmatch(r"uv-[^/]+\.data/scripts/" + name, m)]
        if len(members) != 1:
            raise FetchUvError(f"{wheel.name} holds no single {name} binary: {members}")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / name
        # Written beside the target and renamed over it: a uv already running from `target`
        # keeps its file ("text file busy" otherwise), and nobody sees half a binary.
        partial = dest / f".{name}.{os.getpid()}.partial"
        with zf.open(members[0]) as src, partial.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(partial, target)
    return target


def fetch_uv(key: str, dest: Path, cache_dir: Path = CACHE_DIR) -> Path:
    """Download (cached) and verify the pinned uv wheel for `key`; extract the binary to `dest`."""
    wheel = cached_wheel(key, cache_dir=cache_dir)
    return extract_uv(wheel, dest, windows=key.startswith("windows"))


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def pin(version: str, cache_dir: Path = CACHE_DIR) -> dict:
    """Build the pins for uv `version`: each platform's wheel URL from PyPI's simple index,
    its sha256 computed from a real download (and checked against the index's own digest)."""
    with urllib.request.urlopen(SIMPLE_INDEX, timeout=60) as resp:
        parser = _Links()
        parser.feed(resp.read().decode("utf-8"))
    platforms: dict[str, dict[str, str]] = {}
    for key, tag_re in PLATFORM_TAGS.items():
        for href in parser.hrefs:
            url, _, fragment = href.partition("#")
            filename = url.rsplit("/", 1)[-1]
            m = re.fullmatch(rf"uv-{re.escape(version)}-py3-none-(.+)\.whl", filename)
            if m and re.match(tag_re, m.group(1)):
                wheel = cache_dir / "uv-wheels" / filename
                wheel.parent.mkdir(parents=True, exist_ok=True)
                if not wheel.exists():
                    _download(url, wheel)
                digest = sha256_of(wheel)
                if fragment and fragment != f"sha256={digest}":
                    raise FetchUvError(f"{filename}: downloaded sha256 differs from PyPI's")
                platforms[key] = {"filename": filename, "url": url, "sha256": digest}
                break
        else:
            raise FetchUvError(f"uv {version} has no PyPI wheel for {key}")
    return {"version": version, "source": "PyPI wheels of uv", "platforms": platforms}


def main(argv: list[str] | None = None) -> int:
    """CLI: fetch_uv.py --platform KEY --dest DIR (prints the binary's path), or --pin VERSION."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--platform", choices=sorted(PLATFORM_TAGS), help="platform key")
    parser.add_argument("--dest", type=Path, help="folder to extract uv / uv.exe into")
    parser.add_argument("--pin", metavar="VERSION", help="rewrite uv_pins.json for this uv release")
    args = parser.parse_args(argv)
    try:
        if args.pin:
            pins = pin(args.pin)
            PINS_PATH.write_text(json.dumps(pins, indent=2) + "\n", encoding="utf-8")
            print(f"pinned uv {args.pin} in {PINS_PATH}")
            return 0
        if not args.platform or not args.dest:
            parser.error("--platform and --dest are required (or --pin VERSION)")
        print(fetch_uv(args.platform, args.dest))
    except FetchUvError as exc:
        print(f"fetch_uv: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
