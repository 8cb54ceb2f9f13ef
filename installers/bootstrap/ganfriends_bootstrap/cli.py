"""The bootstrapper's command line: detect, select the lock, build the environment, test, launch."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ganfriends_bootstrap import detect as detection
from ganfriends_bootstrap.environment import (
    DEFAULT_INDEX_URL,
    EnvPaths,
    Stamp,
    build_env,
    is_current,
    remove_env,
    sha256_file,
    write_stamp,
)
from ganfriends_bootstrap.locks import (
    BootstrapError,
    data_home,
    platform_key,
    select_lock,
    shipped_wheel,
    uv_binary,
)
from ganfriends_bootstrap.selftest import run_self_test


def _split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    # Everything after the first "--" goes to ganfriends-worker untouched.
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _default_app_dir() -> Path | None:
    # Run as <appdir>/ganfriends-bootstrap.pyz: the app dir is the zipapp's folder.
    here = Path(sys.argv[0]).resolve()
    return here.parent if here.suffix == ".pyz" else None


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse bootstrapper options; returns them and the worker's arguments (after `--`)."""
    own, rest = _split_argv(argv)
    p = argparse.ArgumentParser(
        prog="ganfriends-bootstrap",
        description="Install GANfriends' private environment on first run, then start the app.",
    )
    p.add_argument("--app-dir", type=Path, default=_default_app_dir(), help="installed app dir")
    p.add_argument("--variant", default="auto", choices=["auto", *detection.VARIANTS])
    p.add_argument("--repair", action="store_true", help="delete and rebuild the environment")
    p.add_argument("--no-launch", action="store_true", help="prepare the environment only")
    p.add_argument("--self-test", action="store_true", help="run the self-test (no launch)")
    p.add_argument("--worker", action="store_true", help="run ganfriends-worker ARGS after --")
    p.add_argument(
        "--index-url",
        default=os.environ.get("GANFRIENDS_INDEX_URL", DEFAULT_INDEX_URL),
        help="package index (default PyPI; GANFRIENDS_INDEX_URL)",
    )
    args = p.parse_args(own)
    if args.app_dir is None:
        p.error("--app-dir is required when not run as ganfriends-bootstrap.pyz")
    if rest and not args.worker:
        p.error("arguments after -- are for --worker only")
    return args, rest


class _Reporter:
    """Prints progress lines and keeps them in <home>/bootstrap.log for support requests."""

    def __init__(self, log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("a", encoding="utf-8")

    def __call__(self, line: str) -> None:
        print(f"ganfriends: {line}", flush=True)
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        self._log.flush()

    def close(self) -> None:
        self._log.close()


@contextlib.contextmanager
def single_instance(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on <home>/bootstrap.lock: two launches never build at once."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "bootstrap.lock").open("a+b") as f:
        if sys.platform == "win32":
            import msvcrt

            while True:
                try:
                    f.seek(0)
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)  # itself retries for 10 s
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def prepare(args: argparse.Namespace, paths: EnvPaths, report: _Reporter) -> str:
    """Bring the environment up to date (a fast no-op when it is); returns the variant."""
    found = detection.detect(override=args.variant)
    key = platform_key()
    choice = select_lock(args.app_dir, key, found)
    report(f"{key}, variant {choice.variant}: {found.reason}")
    if choice.note:
        report(choice.note)
    wheel = shipped_wheel(args.app_dir)
    want = Stamp(sha256_file(choice.path), sha256_file(wheel), choice.variant)
    if args.repair:
        report(f"repair: deleting {paths.env}")
        remove_env(paths)
    if is_current(paths, want) and not args.self_test:
        report("environment up to date")
        return choice.variant
    started = time.monotonic()
    if not is_current(paths, want):
        build_env(uv_binary(args.app_dir), choice.path, wheel, paths, args.index_url, report)
    run_self_test(paths.python(), choice.variant, report)
    write_stamp(paths, want)
    report(f"environment ready in {time.monotonic() - started:.0f} s")
    return choice.variant


def launch(paths: EnvPaths, worker_args: list[str] | None) -> int:
    """Replace this process with the GUI, or with ganfriends-worker when worker_args is a list."""
    name = "ganfriends" if worker_args is None else "ganfriends-worker"
    exe = paths.script(name)
    argv = [str(exe), *(worker_args or [])]
    if not exe.is_file():
        raise BootstrapError(f"{exe} is missing; run GANfriends with --repair")
    if os.name == "nt":  # Windows has no real exec: wait for the child and pass its code on
        return subprocess.call(argv)
    os.execv(argv[0], argv)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    """Entry point of ganfriends-bootstrap.pyz."""
    if sys.version_info < (3, 11):  # noqa: UP036 - the .pyz may be run by any python
        print("ganfriends: the bootstrapper needs Python 3.11 or newer", file=sys.stderr)
        return 2
    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    paths = EnvPaths(data_home())
    report = _Reporter(paths.home / "bootstrap.log")
    try:
        with single_instance(paths.home):
            prepare(args, paths, report)
    except BootstrapError as exc:
        report(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        report("interrupted; the next start resumes the installation")
        return 130
    finally:
        report.close()
    if args.no_launch or args.self_test:
        return 0
    try:
        return launch(paths, rest if args.worker else None)
    except BootstrapError as exc:
        print(f"ganfriends: error: {exc}", file=sys.stderr)
        return 1
