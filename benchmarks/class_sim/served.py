"""The class's coordinator: the real `ganfriends-coordinator serve`, in its own process.

A coordinator thread inside the simulation's process would share one GIL with 8-32 volunteer
threads: every database round trip of its close then waits for the interpreter behind them
(py-spy at 32 volunteers: the coordinator's thread never idle, a third of it in pool pings and
small transactions). On a real server it has a process, and cores, of its own; so here.
What it published is read back from the database like `status` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from core.store import MetricsRow, Store, open_store

STOP_WAIT_S = 60.0


class ServedCoordinator:
    """`serve` on the run at `url` (logs in `folder`); `stop()` ends it as Ctrl-C does."""

    def __init__(self, url: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._output = folder / "serve.out"
        env = dict(os.environ, GANFRIENDS_LOG_DIR=str(folder / "logs"))
        with self._output.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "coordinator.cli", "serve", "--db", url],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.store: Store = open_store(url)

    def version(self) -> int:
        return self.store.get_run().version

    def closes(self, first: int, end: int) -> list[MetricsRow]:
        """What the closes of versions first … end - 1 measured (their metrics rows)."""
        return [m for m in self.store.metrics(first) if first <= m.version < end]

    def cpu_s(self) -> float:
        """CPU seconds the coordinator's process has used (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")

    def check(self) -> None:
        """SystemExit with the end of its output if the coordinator has stopped."""
        if self.process.poll() is not None:
            tail = self._output.read_text(errors="replace").splitlines()[-15:]
            raise SystemExit(
                f"the coordinator stopped (exit {self.process.returncode}):\n" + "\n".join(tail)
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.store.dispose()
