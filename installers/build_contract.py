"""The app dir every installer packages, and the launch command every launcher runs."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALLERS = Path(__file__).resolve().parent
ROOT = INSTALLERS.parent
APP_ID = "org.ganfriends.ganfriends"  # reverse-DNS id: desktop file, AppStream, icons, macOS
APP_NAME = "ganfriends"
SUMMARY = "Lend this computer to train one shared GAN with friends"
# Reproducible archives: every staged file gets this mtime unless SOURCE_DATE_EPOCH says else.
DEFAULT_EPOCH = 1_700_000_000  # 2023-11-14, seconds since 1970
PYTHON_REQUEST = ">=3.11"  # the interpreter uv provides to the bootstrapper
BOOTSTRAP_PYZ = "ganfriends-bootstrap.pyz"
PLATFORMS = ("linux-x86_64", "linux-aarch64", "windows-x86_64", "macos-arm64", "macos-x86_64")


class BuildError(RuntimeError):
    """An installer could not be built; the message says what to install or fix."""


@dataclass(frozen=True)
class AppDir:
    """A staged app dir (see installers/README.md): what every installer packages."""

    path: Path  # the folder holding uv, the .pyz, locks/, wheels/, VERSION
    version: str  # the ganfriends version, from VERSION
    uv_name: str  # "uv" or "uv.exe"

    def files(self) -> list[str]:
        """Every file below the app dir, as sorted POSIX paths relative to it."""
        return sorted(
            p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
        )


def read_app_dir(path: Path) -> AppDir:
    """Check that `path` has the app dir layout and read its version, or raise BuildError."""
    uv_names = [n for n in ("uv", "uv.exe") if (path / n).is_file()]
    missing = [n for n in (BOOTSTRAP_PYZ, "VERSION") if not (path / n).is_file()]
    if not uv_names:
        missing.append("uv or uv.exe")
    if not list((path / "locks").glob("*")):
        missing.append("locks/*")
    if not list((path / "wheels").glob("ganfriends-*.whl")):
        missing.append("wheels/ganfriends-*.whl")
    if missing:
        raise BuildError(
            f"{path} is not an app dir (missing {', '.join(missing)}); "
            "stage one with: python installers/build_app_dir.py --platform KEY --out DIR"
        )
    version = (path / "VERSION").read_text(encoding="utf-8").strip()
    return AppDir(path=path, version=version, uv_name=uv_names[0])


def launch_args(app_dir: str, uv_name: str, sep: str = "/", extra: Sequence[str] = ()) -> list[str]:
    """The launch contract: uv runs the bootstrapper (with `extra` args) from `app_dir`.

    `app_dir` may be a shell or installer variable (`$APP`, `$INSTDIR`); `sep` joins it to the
    file names inside it.
    """
    return [
        f"{app_dir}{sep}{uv_name}",
        "run",
        "--no-project",
        "--no-config",
        "--python",
        PYTHON_REQUEST,
        "--",
        "python",
        f"{app_dir}{sep}{BOOTSTRAP_PYZ}",
        "--app-dir",
        app_dir,
        *extra,
    ]


def source_date_epoch() -> int:
    """The timestamp given to every packaged file (SOURCE_DATE_EPOCH or DEFAULT_EPOCH)."""
    return int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))


def set_mtimes(tree: Path) -> None:
    """Give every file and folder under `tree` the same mtime, so archives are reproducible."""
    epoch = source_date_epoch()
    for p in [*tree.rglob("*"), tree]:
        os.utime(p, (epoch, epoch), follow_symlinks=False)


def require_tool(name: str, package: str) -> str:
    """The path of command `name`, or BuildError naming the Debian package that provides it."""
    found = shutil.which(name)
    if not found:
        raise BuildError(f"{name} is not installed; on Debian: sudo apt-get install {package}")
    return found


def run_tool(args: Sequence[str], cwd: Path | None = None) -> str:
    """Run a build tool; its stdout, or BuildError with its output when it fails."""
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(
            f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


@contextmanager
def app_dir_for(platform: str, given: Path | None) -> Iterator[AppDir]:
    """The app dir at `given`, or one staged by build_app_dir.py in a temporary folder."""
    if given is not None:
        yield read_app_dir(given)
        return
    builder = INSTALLERS / "build_app_dir.py"
    if not builder.exists():
        raise BuildError(f"{builder} is missing; pass --app-dir DIR with a staged app dir")
    with tempfile.TemporaryDirectory(prefix="ganfriends-appdir-") as tmp:
        out = Path(tmp) / "app"
        run_tool([sys.executable, str(builder), "--platform", platform, "--out", str(out)])
        yield read_app_dir(out)


def add_common_args(parser: argparse.ArgumentParser, platforms: Sequence[str]) -> None:
    """The arguments every installer builder takes: platform, app dir and output folder."""
    parser.add_argument("--platform", choices=list(platforms), default=platforms[0])
    parser.add_argument(
        "--app-dir",
        type=Path,
        help="a staged app dir (default: stage one with build_app_dir.py)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the built files")
