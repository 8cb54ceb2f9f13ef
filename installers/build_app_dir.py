"""Stage an app dir for one platform: uv, the bootstrapper zipapp, its locks, the wheel, VERSION."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipapp
from pathlib import Path

INSTALLERS = Path(__file__).resolve().parent
REPO = INSTALLERS.parent
sys.path.insert(0, str(INSTALLERS))

from fetch_uv import CACHE_DIR, PLATFORM_TAGS, FetchUvError, fetch_uv  # noqa: E402
from make_locks import LOCKS_DIR, host_key  # noqa: E402

BOOTSTRAP_SRC = INSTALLERS / "bootstrap"
PYZ_NAME = "ganfriends-bootstrap.pyz"
# What the wheel is built from; copied out of the tree so the build leaves no build/ in it.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "core", "coordinator", "client_gui")


class BuildError(RuntimeError):
    """The app dir could not be staged."""


def project_version() -> str:
    """The version in pyproject.toml."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["version"])


def build_pyz(dest: Path) -> Path:
    """Zip installers/bootstrap/ (stdlib only) into an executable zipapp."""
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "src"
        shutil.copytree(
            BOOTSTRAP_SRC / "ganfriends_bootstrap",
            stage / "ganfriends_bootstrap",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        (stage / "__main__.py").write_text(
            "import sys\nfrom ganfriends_bootstrap.cli import main\nsys.exit(main())\n",
            encoding="utf-8",
        )
        if epoch := os.environ.get("SOURCE_DATE_EPOCH"):  # reproducible: fixed zip timestamps
            for path in stage.rglob("*"):
                os.utime(path, (int(epoch), int(epoch)))
        zipapp.create_archive(stage, dest, interpreter="/usr/bin/env python3", compressed=True)
    return dest


def build_wheel(uv: Path, out_dir: Path) -> Path:
    """Build ganfriends-<version>-py3-none-any.whl from a copy of this repository."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for name in WHEEL_SOURCES:
            path = REPO / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                src.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, src / name)
        env = {**os.environ, "UV_CACHE_DIR": str(CACHE_DIR / "uv")}
        cmd = [str(uv), "build", "--no-config", "--wheel", "--out-dir", str(out_dir), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise BuildError(f"building the wheel failed:\n{done.stderr.strip()}")
    wheels = list(out_dir.glob(f"ganfriends-{project_version()}-py3-none-any.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one ganfriends wheel in {out_dir}, found {wheels}")
    return wheels[0]


def build_app_dir(key: str, out: Path) -> Path:
    """Stage the app dir for platform `key` into `out` (emptied first)."""
    locks = sorted(LOCKS_DIR.glob(f"{key}-*.txt"))
    if not locks:
        raise BuildError(f"no locks for {key} in {LOCKS_DIR}; run installers/make_locks.py")
    if out.exists():
        shutil.rmtree(out)
    (out / "locks").mkdir(parents=True)
    (out / "wheels").mkdir()
    fetch_uv(key, out)
    for lock in locks:
        shutil.copy2(lock, out / "locks" / lock.name)
    build_pyz(out / PYZ_NAME)
    # The wheel is pure Python: build it with the host's uv whatever the target platform is.
    host_uv = fetch_uv(host_key(), CACHE_DIR / "bin")
    with tempfile.TemporaryDirectory() as tmp:  # uv build also leaves a .gitignore there
        wheel = build_wheel(host_uv, Path(tmp))
        shutil.copy2(wheel, out / "wheels" / wheel.name)
    (out / "VERSION").write_text(project_version() + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: build_app_dir.py --platform KEY --out DIR; prints the app dir's path."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--platform", required=True, choices=sorted(PLATFORM_TAGS))
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        print(build_app_dir(args.platform, args.out.resolve()))
    except (BuildError, FetchUvError) as exc:
        print(f"build_app_dir: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
