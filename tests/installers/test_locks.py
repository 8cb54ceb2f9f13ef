"""Lock hygiene: hashes everywhere, one torch build, no WebEngine, up to date, installable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

INSTALLERS = Path(__file__).resolve().parents[2] / "installers"
sys.path.insert(0, str(INSTALLERS))

import make_locks  # noqa: E402

SPECS = {spec.path.name: spec for spec in make_locks.LOCKS}
FORBIDDEN = re.compile(
    r"^(pyside6-addons|pyside6|pyqt[56]\S*|\S*webengine\S*|pytest\S*|ruff|mypy)=="
)


def requirements(text: str) -> list[tuple[str, list[str]]]:
    """(name==version, its hashes) for each requirement of a lock."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--") else line
        if not line or line.startswith("#"):
            continue
        pin, *rest = line.split()
        out.append((pin, [r for r in rest if r.startswith("--hash=sha256:")]))
    return out


def test_locks_dir_holds_exactly_the_generated_locks() -> None:
    assert sorted(p.name for p in make_locks.LOCKS_DIR.iterdir()) == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_requirement_is_pinned_with_a_hash(name: str) -> None:
    reqs = requirements((make_locks.LOCKS_DIR / name).read_text())
    assert len(reqs) > 20
    for pin, hashes in reqs:
        assert re.fullmatch(r"[a-z0-9._-]+==[^=\s]+", pin), pin
        assert hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes), pin


@pytest.mark.parametrize("name", sorted(SPECS))
def test_torch_and_torchvision_come_from_the_same_build(name: str) -> None:
    pins = dict(
        pin.split("==") for pin, _ in requirements((make_locks.LOCKS_DIR / name).read_text())
    )
    assert (pins["torch"], pins["torchvision"]) == ("2.13.0", "0.28.0")
    # a local tag (+cpu, +cu128) would say which index build it is; both must carry the same one
    local = {v.partition("+")[2] for v in (pins["torch"], pins["torchvision"])}
    assert len(local) == 1
    header = (make_locks.LOCKS_DIR / name).read_text().splitlines()[1]
    assert f"index {SPECS[name].index_url}" in header


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_webengine_addons_or_dev_tools(name: str) -> None:
    pins = [pin for pin, _ in requirements((make_locks.LOCKS_DIR / name).read_text())]
    assert not [p for p in pins if FORBIDDEN.match(p)]
    assert any(p.startswith("pyside6-essentials==") for p in pins)


def test_linux_gpu_packages_only_in_linux_locks() -> None:
    for name in SPECS:
        text = (make_locks.LOCKS_DIR / name).read_text()
        assert ("nvidia-cublas" in text) == name.startswith("linux-"), name


def test_requirements_follow_pyproject_minus_dev() -> None:
    reqs = make_locks.requirements()
    assert "torch===2.13.0" in reqs and "torchvision===0.28.0" in reqs
    assert any(r.startswith("PySide6-Essentials") for r in reqs)
    assert not any(r.startswith(("pytest", "ruff", "mypy")) for r in reqs)


def uv() -> str:
    return make_locks.find_uv()


@pytest.mark.slow
def test_locks_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(INSTALLERS / "make_locks.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def dry_run(name: str, target: Path, macos_min: str | None = None) -> subprocess.CompletedProcess:
    spec = SPECS[name]
    env = {**os.environ, **dict(spec.env)}
    env.setdefault("UV_CACHE_DIR", str(Path.home() / ".cache/ganfriends-installers/uv"))
    if macos_min:
        env["MACOSX_DEPLOYMENT_TARGET"] = macos_min
    cmd = [uv(), "pip", "install", "--no-config", "--dry-run", "--require-hashes"]
    cmd += ["--python-platform", spec.python_platform, "--python-version", "3.11"]
    cmd += ["--index-url", spec.index_url, "--target", str(target)]
    cmd += ["-r", str(spec.path)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["windows-x86_64-cpu.txt", "macos-arm64-mps.txt"])
def test_dry_run_install_for_its_platform(name: str, tmp_path: Path) -> None:
    done = dry_run(name, tmp_path)
    assert done.returncode == 0, done.stderr
    assert " + torch==2.13.0" in done.stderr and " + pyside6-essentials==" in done.stderr
    assert not (tmp_path / "torch").exists()  # a dry run installs nothing


@pytest.mark.slow
def test_macos_lock_needs_macos_14(tmp_path: Path) -> None:
    done = dry_run("macos-arm64-mps.txt", tmp_path, macos_min="13.0")
    assert done.returncode != 0 and "macosx_14_0_arm64" in done.stderr
