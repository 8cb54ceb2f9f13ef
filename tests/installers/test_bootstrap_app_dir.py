"""build_app_dir stages exactly the contract's files, and the zipapp runs on its own."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

INSTALLERS = Path(__file__).resolve().parents[2] / "installers"
sys.path.insert(0, str(INSTALLERS))

import fetch_uv  # noqa: E402
from build_app_dir import BuildError, build_app_dir, build_pyz  # noqa: E402

pytestmark = pytest.mark.slow  # builds the ganfriends wheel with uv


@pytest.mark.parametrize(
    ("key", "binary", "locks"),
    [
        ("windows-x86_64", "uv.exe", ["windows-x86_64-cpu.txt"]),
        ("macos-arm64", "uv", ["macos-arm64-mps.txt"]),
        ("linux-x86_64", "uv", ["linux-x86_64-cpu.txt", "linux-x86_64-cu130.txt"]),
    ],
)
def test_app_dir_holds_exactly_the_contract(
    key: str, binary: str, locks: list[str], tmp_path: Path
) -> None:
    app = build_app_dir(key, tmp_path / "app")
    files = sorted(str(p.relative_to(app)) for p in app.rglob("*") if p.is_file())
    wheel = "wheels/ganfriends-0.1.0-py3-none-any.whl"
    assert files == sorted(
        [binary, "ganfriends-bootstrap.pyz", "VERSION", wheel, *(f"locks/{n}" for n in locks)]
    )
    assert (app / "VERSION").read_text() == "0.1.0\n"
    pinned = fetch_uv.load_pins()["platforms"][key]["sha256"]
    assert fetch_uv.sha256_of(fetch_uv.cached_wheel(key)) == pinned
    with zipfile.ZipFile(app / "wheels" / "ganfriends-0.1.0-py3-none-any.whl") as whl:
        names = whl.namelist()
    assert "client_gui/app.py" in names and "core/store/migrations/env.py" in names
    assert not any(n.startswith(("tests/", "installers/")) for n in names)


def test_platform_without_locks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no locks for linux-aarch64"):
        build_app_dir("linux-aarch64", tmp_path / "app")


def test_zipapp_is_stdlib_only_and_runs(tmp_path: Path) -> None:
    pyz = build_pyz(tmp_path / "ganfriends-bootstrap.pyz")
    with zipfile.ZipFile(pyz) as zf:
        assert "__main__.py" in zf.namelist()
        assert not any("__pycache__" in n for n in zf.namelist())
    # -I -S: no site-packages at all, so only the standard library is importable
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(pyz), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "--variant" in done.stdout, done.stderr
