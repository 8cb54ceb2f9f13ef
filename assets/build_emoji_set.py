"""Build core/assets/noto-emoji-32.zip: the Noto emoji at 32×32 RGB on white, for the demo.

The source is the 64×64 RGBA PNGs of the Noto Emoji project (Apache License 2.0), as packaged in
the npm package `emoji-datasource-google` 16.0.0 (`img/google/64/`). Each image is composited
onto white at 64×64 (the transparent pixels' hidden colour never shows), then reduced to 32×32
with Lanczos, and stored as an RGB PNG in a zip with fixed timestamps, so the same source and
Pillow version give the same bytes. The 1,880 skin-tone variants (the same picture in five more
skin colours) are left out, and a picture shared by several code points is stored once: each
picture once, half the bytes.

    python assets/build_emoji_set.py /path/to/noto-emoji-64.zip
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path, PurePosixPath

from PIL import Image

SIZE = 32  # pixels: the demo model's image size (coordinator.demo.DEMO_MODEL)
BACKGROUND = (255, 255, 255, 255)  # white, the background the emoji are drawn for
SKIN_TONES = (
    "1f3fb",
    "1f3fc",
    "1f3fd",
    "1f3fe",
    "1f3ff",
)  # modifiers: the same picture 5 more times
ZIP_TIME = (2026, 12, 5, 0, 0, 0)  # fixed member timestamps: reproducible bytes
OUT = Path(__file__).resolve().parent.parent / "core" / "assets" / "noto-emoji-32.zip"


def convert(png: bytes) -> bytes:
    """One RGBA (or palette) emoji PNG → a SIZE×SIZE RGB PNG on white."""
    with Image.open(io.BytesIO(png), formats=("PNG",)) as image:
        rgba = image.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND), rgba).convert("RGB")
    small = flat.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _wanted(name: str) -> bool:
    """A PNG without a skin-tone modifier: each picture once, half the bytes."""
    return name.lower().endswith(".png") and not any(tone in name for tone in SKIN_TONES)


def build(source: Path, out: Path) -> int:
    with zipfile.ZipFile(source) as archive:
        names = sorted(n for n in archive.namelist() if _wanted(PurePosixPath(n).name))
        seen: set[bytes] = set()  # pictures shared by several code points are kept once
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for name in names:
                small = convert(archive.read(name))
                digest = hashlib.sha256(small).digest()
                if digest in seen:
                    continue
                seen.add(digest)
                info = zipfile.ZipInfo(f"emoji/{PurePosixPath(name).name}", ZIP_TIME)
                info.external_attr = 0o644 << 16
                target.writestr(info, small)
    return len(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="noto-emoji-64.zip (64×64 RGBA PNGs)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT}")
    args = parser.parse_args()
    count = build(args.source, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(
        f"wrote {count} images to {args.out} ({args.out.stat().st_size:,} bytes, sha256 {digest})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
