"""Run uv and report download progress in bytes, with a heartbeat so silence never looks like a hang."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HEARTBEAT_S = 3.0  # seconds between "still working" lines
_SIZE_RE = re.compile(r"^Downloading (\S+) \(([\d.]+)\s*([KMG]i?B|B)\)\s*$")
_DONE_RE = re.compile(r"^Downloaded (\S+)\s*$")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}

Report = Callable[[str], None]


def human(n: float) -> str:
    """Bytes as `1.23 GB` (decimal units, as download sizes are usually shown)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def tree_size(root: Path) -> int:
    """Total size of the files under `root` (0 if it does not exist)."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # uv renames temporary folders while we walk
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


@dataclass
class DownloadTally:
    """Bytes announced and finished, from uv's `Downloading x (size)` / `Downloaded x` lines."""

    announced: dict[str, float] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)

    def feed(self, line: str) -> str | None:
        """Account one uv output line; returns a progress line to show, if any."""
        text = line.strip()
        if m := _SIZE_RE.match(text):
            self.announced[m.group(1)] = float(m.group(2)) * _UNITS[m.group(3)]
            return f"downloading {m.group(1)} ({human(self.announced[m.group(1)])})"
        if m := _DONE_RE.match(text):
            self.finished.add(m.group(1))
            return f"downloaded {m.group(1)}: {self.summary()}"
        return None

    def done_bytes(self) -> float:
        """Bytes of the packages whose download finished."""
        return sum(size for name, size in self.announced.items() if name in self.finished)

    def summary(self) -> str:
        """`1.20 GB of 4.80 GB (3 of 20 large packages)`."""
        total = sum(self.announced.values())
        return (
            f"{human(self.done_bytes())} of {human(total)} "
            f"({len(self.finished)} of {len(self.announced)} large packages)"
        )


def run_uv(
    cmd: Sequence[str], report: Report, cache_dir: Path, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run uv, relaying progress lines and a heartbeat; returns (exit code, its whole output)."""
    tally = DownloadTally()
    start = time.monotonic()
    base = tree_size(cache_dir)
    stop = threading.Event()

    def heartbeat() -> None:
        last = (start, base)
        while not stop.wait(HEARTBEAT_S):
            now, size = time.monotonic(), tree_size(cache_dir)
            rate = (size - last[1]) / max(now - last[0], 1e-6)
            last = (now, size)
            what = tally.summary() if tally.announced else "resolving and checking packages"
            report(
                f"[{int(now - start)} s] {what}; {human(size - base)} written to the "
                f"package cache ({human(max(rate, 0))}/s)"
            )

    thread = threading.Thread(target=heartbeat, name="uv-heartbeat", daemon=True)
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
    )
    thread.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            shown = tally.feed(line)
            if shown:
                report(shown)
        code = proc.wait()
    finally:
        stop.set()
        if proc.poll() is None:  # we are being interrupted: do not leave uv running alone
            proc.terminate()
            proc.wait()
    thread.join()
    return code, "".join(lines)
