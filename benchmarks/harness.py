"""Shared pieces of the distributed-training benchmarks: temp runs, worker processes, readings."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from coordinator.loop import Coordinator
from coordinator.runs import RunPlan, create_run
from core.config import RunSettings
from core.model import ModelConfig
from core.store import Store, open_store

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_STOP_S = 15.0  # seconds a worker gets to exit after SIGTERM before it is killed


BACKENDS = ("sqlite", "postgresql")


@contextlib.contextmanager
def bench_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty run database: an SQLite file in `directory`, or a fresh database on
    a throwaway PostgreSQL cluster (the test suite's, `tests.postgres`), removed afterwards."""
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{directory / 'run.db'}"
        return
    if backend != "postgresql":
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    from tests.postgres import PostgresServer  # the benchmarks' only use of the test harness

    server = PostgresServer.start()
    try:
        yield server.database_url(server.create_database())
    finally:
        server.stop()


@dataclass(frozen=True)
class BenchRun:
    """A run created in a temporary database for one benchmark."""

    url: str  # sqlite:///…/run.db or a PostgreSQL URL
    directory: Path  # the temp dir holding the database, caches and logs
    model: ModelConfig
    settings: RunSettings

    def store(self) -> Store:
        """A new store (own connection pool) on the run's database."""
        return open_store(self.url)


def create_bench_run(
    directory: Path, model: ModelConfig, settings: RunSettings, images: int, url: str | None = None
) -> BenchRun:
    """Create a run on `images` synthetic images at `url` (default: `directory`/run.db, which
    must not exist yet); caches and logs go under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{directory / 'run.db'}"
    store = open_store(url, create=True)
    try:
        create_run(store, RunPlan("bench", model, settings, ("synthetic", images)), progress=False)
    finally:
        store.close()
    return BenchRun(url, directory, model, settings)


def worker_env(run: BenchRun, name: str) -> dict[str, str]:
    """Environment of one worker process: its own cache (shards, registry) and log folders."""
    return dict(
        os.environ,
        GANFRIENDS_CACHE_DIR=str(run.directory / f"cache-{name}"),
        GANFRIENDS_LOG_DIR=str(run.directory / f"logs-{name}"),
    )


def start_worker(
    run: BenchRun,
    name: str,
    *,
    threads: int,
    device: str = "cpu",
    stderr_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `python -m core.worker_cli` on the run; its messages go to `stderr_path` if given.

    Without `stderr_path` the worker runs with --quiet and its stderr is discarded.
    """
    command = [sys.executable, "-m", "core.worker_cli", "--db", run.url]
    command += ["--threads", str(threads), "--name", name, "--device", device]
    if stderr_path is None:
        command.append("--quiet")
    # The file is inherited by the child; closing our copy right away is safe.
    with contextlib.ExitStack() as stack:
        stderr = (
            stack.enter_context(stderr_path.open("wb"))
            if stderr_path is not None
            else subprocess.DEVNULL
        )
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=worker_env(run, name),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def stop_workers(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each worker (it abandons its unit and exits), then wait; kill stragglers."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServingCoordinator:
    """A coordinator serving in a thread of this process, as `ganfriends-coordinator serve`."""

    def __init__(self, coordinator: Coordinator, poll_s: float = 0.05) -> None:
        self.coordinator = coordinator
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._thread = threading.Thread(target=self._serve, name="coordinator", daemon=True)

    def _serve(self) -> None:
        try:
            self.coordinator.serve(self._stop, self._poll_s)
        except BaseException as exc:  # reported by the benchmark's main thread, not lost
            self.error = exc
            raise

    def __enter__(self) -> ServingCoordinator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def wait_until(
    done: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    procs: Sequence[subprocess.Popen[bytes]] = (),
    serving: ServingCoordinator | None = None,
) -> None:
    """Poll `done` until true; fail early if a worker process or the coordinator thread died."""
    deadline = time.monotonic() + timeout_s
    while not done():
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a worker process exited early while waiting for {what}: {dead}")
        if serving is not None and not serving.alive:
            raise RuntimeError(f"the coordinator stopped while waiting for {what}: {serving.error}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.05)


# Readings ------------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> str:
    """'median (min–max, n=…)' of a few measurements, to show how noisy they were."""
    return f"{statistics.median(values):.3g} (min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"


def proc_status_kib(field: str) -> int | None:
    """A `VmRSS`/`VmHWM`-style field of /proc/self/status in KiB; None where there is no /proc."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0); False if not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def temp_environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block (e.g. this process's cache dir)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
