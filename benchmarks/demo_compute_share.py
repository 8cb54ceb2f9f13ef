"""The demo's compute share: how much of the wall time its workers spend computing.

Runs the real `ganfriends-coordinator demo --workers N --minutes M --fresh` (its own SQLite
database in a temporary data folder, real worker processes) for each N, then reads the
workers' `compute_s` (`workers --json`, the seconds each spent inside unit computations) and
divides their sum by the seconds the workers existed (each from registering to the last close). A
worker that waits for the next version, downloads, uploads or is descheduled counts as not
computing. Target (issue "Every volunteer busy"): at least 0.8 with 2 and 4 workers.

    .venv/bin/python -m benchmarks.demo_compute_share [--workers 2,4] [--minutes 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

TARGET = 0.8


def run_demo(tmp: str, workers: int, minutes: float, **extra: str) -> dict[str, str]:
    """Run `demo --fresh` once with its data, cache, logs and outputs in `tmp`, and `extra`
    added to its environment; the environment it ran with."""
    env = dict(
        os.environ,
        GANFRIENDS_DATA_DIR=f"{tmp}/data",
        GANFRIENDS_CACHE_DIR=f"{tmp}/cache",
        GANFRIENDS_LOG_DIR=f"{tmp}/logs",
        **extra,
    )
    demo = [sys.executable, "-m", "coordinator.cli", "demo", "--fresh"]
    subprocess.run(
        [*demo, "--workers", str(workers), "--minutes", str(minutes), "--out", f"{tmp}/out"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return env


def measure(workers: int, minutes: float) -> dict[str, float]:
    """Run the demo once with `workers` workers; its compute share and throughput."""
    with tempfile.TemporaryDirectory(prefix="ganfriends-share-") as tmp:
        env = run_demo(tmp, workers, minutes)
        db = Path(tmp) / "data" / "demo.db"
        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "coordinator.cli",
                "workers",
                "--json",
                "--db",
                f"sqlite:///{db}",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        compute_s = sum(w["compute_s"] for w in json.loads(listed))
        alive, _, versions, images = _window(db)
    wall = alive / workers
    return {
        "workers": workers,
        "compute_share": compute_s / alive,
        "versions": versions,
        "images_per_s": images / wall,
        "wall_s": wall,
    }


def _window(db: Path) -> tuple[float, float, int, int]:
    """(workers' summed seconds from registering to the last close, that close, versions
    closed, images trained) from the demo's database."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        last, versions, images = conn.execute(
            "SELECT max(created_at), count(*), sum(images) FROM metrics"
        ).fetchone()
        (alive,) = conn.execute("SELECT sum(? - created_at) FROM workers", (last,)).fetchone()
    finally:
        conn.close()
    return float(alive), float(last), int(versions), int(images)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_compute_share", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workers", default="2,4", help="comma-separated worker counts")
    parser.add_argument("--minutes", type=float, default=1.0, help="demo length per count")
    args = parser.parse_args(argv)
    print(f"demo compute share (Σ compute_s ÷ Σ worker lifetimes), {os.cpu_count()} CPU cores")
    for count in (int(n) for n in args.workers.split(",")):
        row = measure(count, args.minutes)
        verdict = "meets" if row["compute_share"] >= TARGET else "MISSES"
        print(
            f"  {count} workers: compute share {row['compute_share']:.2f} ({verdict} {TARGET}); "
            f"{row['versions']} versions, {row['images_per_s']:.0f} images/s "
            f"over {row['wall_s']:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
