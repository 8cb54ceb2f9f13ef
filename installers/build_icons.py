"""Render the app icon (installers/assets/ganfriends.svg) to PNG sizes, a Windows .ico and a
macOS .icns."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from build_contract import INSTALLERS, BuildError, require_tool, run_tool
from PIL import Image

ICON_SVG = INSTALLERS / "assets" / "ganfriends.svg"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)  # hicolor theme sizes, pixels
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # Windows: 256 is the largest an .ico holds


@dataclass(frozen=True)
class IconSet:
    """The rendered icons: one PNG per size, plus the .ico and the .icns."""

    pngs: dict[int, Path]  # edge length in pixels -> PNG
    svg: Path
    ico: Path
    icns: Path


def render_png(size: int, dest: Path, svg: Path = ICON_SVG) -> Path:
    """Render `svg` to a square PNG of `size` pixels with rsvg-convert."""
    tool = require_tool("rsvg-convert", "librsvg2-bin")
    run_tool([tool, "--width", str(size), "--height", str(size), "-o", str(dest), str(svg)])
    return dest


def build_icons(out: Path, svg: Path = ICON_SVG) -> IconSet:
    """Render every icon size into `out` (created) and assemble ganfriends.ico and .icns."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = {size: render_png(size, out / f"ganfriends-{size}.png", svg) for size in PNG_SIZES}
    big = render_png(1024, out / "ganfriends-1024.png", svg)
    with Image.open(big) as source:
        source.load()
        ico = out / "ganfriends.ico"
        source.save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES])
        icns = out / "ganfriends.icns"
        source.save(icns, format="ICNS")  # Pillow writes 16..512 and @2x from the 1024 px source
    big.unlink()
    return IconSet(pngs=pngs, svg=svg, ico=ico, icns=icns)


def main(argv: list[str] | None = None) -> int:
    """CLI: build_icons.py --out DIR renders every icon into DIR."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the icons")
    args = parser.parse_args(argv)
    try:
        icons = build_icons(args.out)
    except BuildError as exc:
        print(f"build_icons: {exc}", file=sys.stderr)
        return 1
    print(f"{len(icons.pngs)} PNGs, {icons.ico.name} and {icons.icns.name} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
