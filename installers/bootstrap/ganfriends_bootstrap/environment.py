"""The private environment: create it with uv, sync it to a lock, stamp it, repair it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ganfriends_bootstrap.locks import BootstrapError
from ganfriends_bootstrap.progress import Report, run_uv

PYTHON_VERSION = "3.11"  # the locks are resolved for this Python
DEFAULT_INDEX_URL = "https://pypi.org/simple"
# Phrases in uv's output that mean the package index could not be reached at all.
NETWORK_ERRORS = (
    "error sending request",
    "failed to fetch",
    "could not connect",
    "connection refused",
    "dns error",
    "failed to lookup address",
    "tcp connect error",
    "network unreachable",
    "operation timed out",
    "request failed after",
)


class NetworkError(BootstrapError):
    """The package index was unreachable."""


@dataclass(frozen=True)
class Stamp:
    """What the environment was built from; equal stamps mean nothing to do."""

    lock_sha256: str
    wheel_sha256: str
    variant: str
    format: int = 1  # bump when the bootstrapper changes how it builds environments


@dataclass(frozen=True)
class EnvPaths:
    """Files under the ganfriends data folder."""

    home: Path

    @property
    def env(self) -> Path:
        """The virtual environment."""
        return self.home / "env"

    @property
    def stamp(self) -> Path:
        """Written last, only after a passing self-test."""
        return self.env / "ganfriends-stamp.json"

    @property
    def in_progress(self) -> Path:
        """Present while a sync runs; outlives the env so an interrupted run is recognised."""
        return self.home / "install-in-progress"

    @property
    def uv_cache(self) -> Path:
        """uv's cache (UV_CACHE_DIR wins): finished downloads survive interruptions."""
        return Path(os.environ.get("UV_CACHE_DIR") or self.home / "cache" / "uv")

    def python(self) -> Path:
        """The environment's interpreter."""
        if os.name == "nt":
            return self.env / "Scripts" / "python.exe"
        return self.env / "bin" / "python"

    def script(self, name: str) -> Path:
        """An entry point installed into the environment (`ganfriends`, `ganfriends-worker`)."""
        if os.name == "nt":
            return self.env / "Scripts" / f"{name}.exe"
        return self.env / "bin" / name


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_stamp(paths: EnvPaths) -> Stamp | None:
    """The stamp, or None when absent or unreadable (a half-written one counts as absent)."""
    try:
        return Stamp(**json.loads(paths.stamp.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def write_stamp(paths: EnvPaths, stamp: Stamp) -> None:
    """Record a finished, self-tested environment and clear the in-progress marker."""
    tmp = paths.stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(stamp)), encoding="utf-8")
    tmp.replace(paths.stamp)
    paths.in_progress.unlink(missing_ok=True)


def is_current(paths: EnvPaths, want: Stamp) -> bool:
    """True when the environment exists and was built from exactly `want`."""
    return paths.python().is_file() and read_stamp(paths) == want


def _force_remove(func: Callable[[str], object], path: str, _exc: object) -> None:
    # Windows refuses to delete read-only files; clear the flag and retry once.
    os.chmod(path, stat.S_IWRITE)
    func(path)


def remove_env(paths: EnvPaths) -> None:
    """Delete the environment (repair); the uv cache is kept so nothing is downloaded again."""
    if paths.env.exists():
        shutil.rmtree(paths.env, onerror=_force_remove)  # onexc is 3.12+


def _uv_env(paths: EnvPaths) -> dict[str, str]:
    env = dict(os.environ)
    env["UV_CACHE_DIR"] = str(paths.uv_cache)
    # A Python that uv has to download stays inside our folder, not the user's uv setup.
    env.setdefault("UV_PYTHON_INSTALL_DIR", str(paths.home / "python"))
    env.pop("VIRTUAL_ENV", None)
    return env


def _check(code: int, output: str, what: str, index_url: str) -> None:
    if code == 0:
        return
    tail = "\n".join(output.strip().splitlines()[-15:])
    if any(phrase in output.lower() for phrase in NETWORK_ERRORS):
        raise NetworkError(
            f"could not reach the package index {index_url} while {what}.\n{tail}\n"
            "Next step: check the internet connection (behind a proxy, set HTTPS_PROXY) and "
            "start GANfriends again; finished downloads are kept and the install resumes."
        )
    raise BootstrapError(
        f"{what} failed (uv exit code {code}):\n{tail}\n"
        "Next step: start GANfriends again; if it fails the same way, run it with --repair."
    )


def build_env(
    uv: Path, lock: Path, wheel: Path, paths: EnvPaths, index_url: str, report: Report
) -> None:
    """Create (or resume) the environment: uv venv, hash-checked sync to `lock`, then the wheel.

    The stamp is removed first and written only by the caller after the self-test, so a run
    killed anywhere in here is recognised next time and redone.
    """
    paths.home.mkdir(parents=True, exist_ok=True)
    interrupted = paths.in_progress.exists()
    paths.in_progress.write_text(str(time.time()), encoding="utf-8")
    paths.stamp.unlink(missing_ok=True)
    env = _uv_env(paths)
    if interrupted:
        report("the previous installation was interrupted; resuming it (downloads are kept)")
        # A package may be half linked: relink all of it into a new environment, from the
        # cache. (`--reinstall` would imply `--refresh`, unpack every wheel again and leave the
        # previous copies in the cache unreferenced: GBs of torch per interruption.)
        remove_env(paths)
    if not paths.python().is_file():
        report(f"creating the environment in {paths.env}")
        cmd = [str(uv), "venv", "--no-config", "--clear", "--python", PYTHON_VERSION]
        code, out = run_uv([*cmd, str(paths.env)], report, paths.uv_cache, env)
        _check(code, out, "creating the environment", index_url)
    report(f"installing the packages of {lock.name} (first run: several GB)")
    sync = [str(uv), "pip", "sync", "--no-config", "--require-hashes", "--index-url", index_url]
    sync += ["--python", str(paths.python())]
    code, out = run_uv([*sync, str(lock)], report, paths.uv_cache, env)
    _check(code, out, "downloading and installing packages", index_url)
    install = [str(uv), "pip", "install", "--no-config", "--no-deps", "--offline"]
    install += ["--reinstall-package", "ganfriends", "--python", str(paths.python()), str(wheel)]
    code, out = run_uv(install, report, paths.uv_cache, env)
    _check(code, out, "installing the ganfriends wheel", index_url)
