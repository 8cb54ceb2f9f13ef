"""A real bootstrap on Linux through the launch contract: install, no-op, resume, repair, errors.

The first run downloads PyPI's torch with its CUDA libraries (about 2.9 GB, 5 GB installed)
into a persistent uv cache (~/.cache/ganfriends-installers/uv), so later runs only relink.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "installers"))

from build_app_dir import build_app_dir  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the end-to-end bootstrap runs on Linux"),
]
UV_CACHE = Path.home() / ".cache" / "ganfriends-installers" / "uv"
SITE = Path("env") / "lib" / "python3.11" / "site-packages"  # the env is always 3.11


@dataclass(frozen=True)
class Installed:
    """An app dir, the GANFRIENDS_HOME it was installed into, and the first run's figures."""

    app: Path
    home: Path
    first_run_s: float
    first_output: str


def contract_cmd(app: Path, *args: str) -> list[str]:
    """The native launchers' command (installers/README.md, "Launch contract")."""
    uv_run = [str(app / "uv"), "run", "--no-project", "--no-config", "--python", ">=3.11", "--"]
    return [*uv_run, "python", str(app / "ganfriends-bootstrap.pyz"), "--app-dir", str(app), *args]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GANFRIENDS_", "VIRTUAL_ENV"))}
    return {**env, "GANFRIENDS_HOME": str(home), "UV_CACHE_DIR": str(UV_CACHE), **extra}


def bootstrap(inst: Installed, *args: str, timeout: float = 900) -> tuple[int, str, float]:
    start = time.monotonic()
    done = subprocess.run(
        contract_cmd(inst.app, *args),
        env=env_for(inst.home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("bootstrap")
    app = build_app_dir("linux-x86_64", root / "app")
    inst = Installed(app, root / "home", 0.0, "")
    code, out, seconds = bootstrap(inst, "--no-launch")
    assert code == 0, out
    print(f"\nfirst run: {seconds:.1f} s")
    return Installed(app, inst.home, seconds, out)


def test_first_run_creates_the_env_and_passes_the_self_test(installed: Installed) -> None:
    for check in ("torch", "torchvision", "qt", "database", "ganfriends"):
        assert f"self-test {check}: ok" in installed.first_output
    # the installed ganfriends is tested, not this checkout's
    assert f"core at {installed.home / SITE / 'core'}" in installed.first_output
    assert (installed.home / "env" / "ganfriends-stamp.json").is_file()
    assert (installed.home / "env" / "bin" / "ganfriends").is_file()
    assert not (installed.home / "install-in-progress").exists()


def test_second_run_is_a_fast_no_op(installed: Installed) -> None:
    code, out, seconds = bootstrap(installed, "--no-launch")
    print(f"\nsecond run: {seconds:.2f} s")
    assert code == 0 and "environment up to date" in out, out
    assert "installing" not in out and "self-test" not in out
    assert seconds < 5.0


def test_worker_launch_passes_its_arguments(installed: Installed) -> None:
    code, out, _ = bootstrap(installed, "--worker", "--", "--help")
    assert code == 0 and "usage: ganfriends-worker" in out, out


def prune_cache(installed: Installed) -> str:
    """Run `uv cache prune` on the shared test cache; what it said."""
    prune = subprocess.run(
        [str(installed.app / "uv"), "cache", "prune"],
        env=env_for(installed.home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert prune.returncode == 0, prune.stderr
    return prune.stdout + prune.stderr


def test_a_sync_killed_midway_is_resumed(installed: Installed) -> None:
    prune_cache(installed)  # whatever earlier runs left unreferenced
    proc = subprocess.Popen(
        contract_cmd(installed.app, "--repair", "--no-launch"),
        env=env_for(installed.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the kill reaches uv, as a power cut would
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    # --repair deleted the old env before this line; then uv links torch into the new one
    while not (
        "installing the packages" in "".join(lines) and (installed.home / SITE / "torch").exists()
    ):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join(timeout=10)
    assert "self-test" not in "".join(lines)  # killed during the sync, not after it
    assert not (installed.home / "env" / "ganfriends-stamp.json").exists()
    code, out, seconds = bootstrap(installed, "--no-launch")
    print(f"\nresumed run: {seconds:.1f} s")
    assert code == 0, out
    assert "interrupted; resuming" in out and "self-test ganfriends: ok" in out
    assert bootstrap(installed, "--no-launch")[1].count("environment up to date") == 1
    # The resume relinked the cached wheels: no second unpacked copy left unreferenced.
    assert "No unused entries found" in prune_cache(installed)


def test_repair_rebuilds_a_broken_env(installed: Installed) -> None:
    (installed.home / SITE / "torchvision" / "ops" / "boxes.py").unlink()
    code, out, _ = bootstrap(installed, "--self-test")
    assert code == 1 and "self-test check 'torchvision' failed" in out, out
    code, out, seconds = bootstrap(installed, "--repair", "--no-launch")
    print(f"\nrepair run: {seconds:.1f} s")
    assert code == 0 and "repair: deleting" in out, out
    code, out, _ = bootstrap(installed, "--self-test")
    assert code == 0 and "self-test torchvision: ok" in out, out


def test_unreachable_index_says_what_to_do(installed: Installed, tmp_path: Path) -> None:
    # A tiny app dir whose one package is not in the (fresh, empty) cache.
    app = tmp_path / "app"
    (app / "locks").mkdir(parents=True)
    (app / "wheels").mkdir()
    for name in ("uv", "ganfriends-bootstrap.pyz"):
        os.link(installed.app / name, app / name)
    wheel = next((installed.app / "wheels").iterdir())
    os.link(wheel, app / "wheels" / wheel.name)
    (app / "locks" / "linux-x86_64-cpu.txt").write_text(
        "tqdm==4.70.1 --hash=sha256:cefd0eca11b2a37a3aee776544d4f4ae913f02688135b5556b8788dfa474afc4\n"
    )
    env = env_for(tmp_path / "home", UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_TIMEOUT="5")
    env["UV_HTTP_RETRIES"] = "0"
    unroutable = "http://192.0.2.1/simple"  # TEST-NET-1: never routed
    done = subprocess.run(
        contract_cmd(app, "--no-launch", "--variant", "cpu", "--index-url", unroutable),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert f"could not reach the package index {unroutable}" in out
    assert "Next step: check the internet connection" in out
