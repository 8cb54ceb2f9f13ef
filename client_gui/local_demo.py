"""Try it locally: the demo run in the user data folder, served by a background coordinator.

The coordinator runs as its own process (`python -m coordinator.cli serve`): a process
boundary, so the desktop app never imports the coordinator package. The database is the one
`ganfriends-coordinator demo` uses, so either can carry on a run the other started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from client_gui.child_guard import GuardedChild
from core.paths import data_dir, demo_db_url, log_dir
from core.store import NoRun, StoreError, open_store, sqlite_path

log = logging.getLogger(__name__)

INIT_TIMEOUT_S = 600.0  # creating the demo run reads or generates its images: seconds, not minutes
STOP_TIMEOUT_S = 10.0  # seconds the coordinator gets to stop cleanly before it is killed
# The local demo's image sets (`init --dataset` values), as `ganfriends-coordinator demo`'s:
# the Noto emoji shipped with the app, or 10,000 procedural shapes.
DEMO_DATASETS = {"emoji": "emoji", "synthetic": "synthetic:10000"}
DEMO_DATASET = "synthetic"  # the default; GANFRIENDS_DEMO_DATASET=emoji chooses the Noto emoji
DATASET_ENV = "GANFRIENDS_DEMO_DATASET"
PID_FILE = "local-coordinator.pid"

LOCAL_SAMPLE_EVERY = 50  # versions between sample grids, as the command-line demo: each grid
# and its quality figure cost the coordinator more than the versions between them (at 10 the
# local coordinator used as much CPU as its worker)
OLD_LOCAL_SAMPLE_EVERY = 10  # what earlier releases gave the local demo run
POLL_S = 0.25  # the coordinator's idle passes: 4 a second, not 20, to leave the CPU to the worker


class LocalDemoError(Exception):
    """The local demo could not be prepared or started; the message says what happened."""


class LocalDemo:
    """The local demo run and the coordinator process that serves it."""

    def __init__(
        self, url: str | None = None, python: str = sys.executable, dataset: str | None = None
    ) -> None:
        self.url = url or demo_db_url()
        self.dataset = dataset or os.environ.get(DATASET_ENV) or DEMO_DATASET
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._guard: GuardedChild | None = None  # ties the coordinator to this app's life
        self._adopted_pid: int | None = None  # a coordinator an earlier app session left running
        path = sqlite_path(self.url)
        assert path is not None, "the local demo is an SQLite database"
        self.path = path

    def ensure_run(self) -> None:
        """Create the demo run unless the database already holds one (blocks for seconds)."""
        if self._has_run():
            self._apply_local_settings(only_from=OLD_LOCAL_SAMPLE_EVERY)  # an older release's
            return
        if self.dataset not in DEMO_DATASETS:
            raise LocalDemoError(
                f"{self.dataset!r} is not a demo dataset: set {DATASET_ENV} to "
                f"{' or '.join(DEMO_DATASETS)}"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            *self._coordinator(),
            "init",
            "--db",
            self.url,
            "--preset",
            "demo",
            "--dataset",
            DEMO_DATASETS[self.dataset],
            "--name",
            "local demo",
        ]
        log.info("creating the local demo run: %s", " ".join(command))
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=INIT_TIMEOUT_S,
                env=_quiet_env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LocalDemoError(f"Could not create the local demo run: {exc}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise LocalDemoError(f"Could not create the local demo run: {last}")
        self._apply_local_settings()

    def _apply_local_settings(self, only_from: int | None = None) -> None:
        """The local demo's sampling; with `only_from`, only a run sampling that often."""
        store = open_store(self.url)
        try:
            current = store.get_run().settings.get("sample_every")
            if current != LOCAL_SAMPLE_EVERY and only_from in (None, current):
                store.update_settings({"sample_every": LOCAL_SAMPLE_EVERY})
        finally:
            store.dispose()

    def _has_run(self) -> bool:
        if not self.path.is_file():
            return False
        try:
            # create=True migrates a demo database an older release made: it is ours to upgrade.
            store = open_store(self.url, create=True)
        except StoreError as exc:
            raise LocalDemoError(
                f"The local demo database at {self.path} cannot be used ({exc}); "
                "delete it to start a new demo."
            ) from None
        try:
            store.get_run()
            return True
        except NoRun:
            return False
        finally:
            store.dispose()

    def start(self) -> None:
        """Start the coordinator (or adopt the one an earlier session left running)."""
        if self.alive:
            return
        previous = _read_pid(self._pid_path())
        if previous is not None and _is_our_coordinator(previous):
            log.info("adopting the local coordinator left running (pid %d)", previous)
            self._adopted_pid = previous
            return
        directory = log_dir()
        directory.mkdir(parents=True, exist_ok=True)
        if self._guard is not None:  # the coordinator it guarded died: start afresh
            self._guard.close()
        with open(directory / "local-coordinator.log", "ab") as output:
            self._guard = GuardedChild(
                "coordinator.cli",
                ["serve", "--db", self.url, "--poll-s", str(POLL_S)],
                python=self._python,
                env=_quiet_env(),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._process = self._guard.process
        self._pid_path().write_text(str(self._process.pid))
        log.info("local coordinator started (pid %d)", self._process.pid)

    @property
    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._adopted_pid is not None and _pid_alive(self._adopted_pid)

    @property
    def pid(self) -> int | None:
        """The coordinator's process id while this app runs it (adopted ones: theirs)."""
        if self._process is not None:
            return self._process.pid
        return self._adopted_pid

    @property
    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the coordinator: SIGTERM (it finishes its step), then a kill after timeout_s."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("local coordinator did not stop in %.0f s; killing it", timeout_s)
                    self._process.kill()
                    self._process.wait()
            self._process = None
            if self._guard is not None:
                self._guard.close()
                self._guard = None
        elif self._adopted_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._adopted_pid, signal.SIGTERM)
            self._adopted_pid = None
        self._pid_path().unlink(missing_ok=True)

    def _coordinator(self) -> list[str]:
        return [self._python, "-m", "coordinator.cli"]

    def _pid_path(self) -> Path:
        return (self.path.parent if self.path.parent.exists() else data_dir()) / PID_FILE


def _quiet_env() -> dict[str, str]:
    # One intra-op thread: the coordinator's share of the work is small, and the cores belong
    # to the worker (and to the volunteer's own programs).
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: never adopt
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's: not ours
        return False
    return True


def _is_our_coordinator(pid: int) -> bool:
    if not _pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no /proc (Windows, macOS): a live pid from our file is trusted
        return sys.platform != "linux"
    return b"coordinator.cli" in cmdline.read_bytes() and b"serve" in cmdline.read_bytes()
