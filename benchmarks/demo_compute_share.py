"""The demo's compute share: how much of the wall time its workers spend computing.

Runs the real `ganfriends-coordinator demo --workers N --minutes M --fresh` (its own SQLite
database in a temporary data folder, real worker processes) for each N, then reads the
workers' `compute_s` (`workers --json`, the seconds each spent inside unit computations) and
divides their sum by the seconds the workers existed (each from registering to the last close). A
worker that waits for the next version, downloads, uploads or is descheduled counts as not
computing. Target (issue "Every volunteer busy"): at least 0.8 with 2 and 4 workers.

`--set KEY=VALUE` tries other settings: the demo's run is then created with `init --preset demo`
and changed with `set` before `demo` (without --fresh) resumes it, so version 0 keeps the
demo's units and every later version has the new settings.

    .venv/bin/python -m benchmarks.demo_compute_share [--workers 2,4] [--minutes 1]
    .venv/bin/python -m benchmarks.demo_compute_share --set num_workunits_per_update=4
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

TARGET = 0.8


def run_demo(
    tmp: str, workers: int, minutes: float, settings: Sequence[str] = (), **extra: str
) -> dict[str, str]:
    """Run the demo once with its data, cache, logs and outputs in `tmp`, and `extra` added to
    its environment (a fresh run, or one with `settings` changed: KEY=VALUE each); the
    environment it ran with."""
    env = dict(
        os.environ,
        GANFRIENDS_DATA_DIR=f"{tmp}/data",
        GANFRIENDS_CACHE_DIR=f"{tmp}/cache",
        GANFRIENDS_LOG_DIR=f"{tmp}/logs",
        **extra,
    )

    def cli(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "coordinator.cli", *args],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    fresh = ["--fresh"]
    if settings:
        Path(tmp, "data").mkdir(parents=True, exist_ok=True)
        db = f"sqlite:///{tmp}/data/demo.db"
        cli("init", "--db", db, "--preset", "demo")
        cli("set", "--db", db, *settings)
        fresh = []  # resume the run just made
    out = ["--out", f"{tmp}/out"]
    cli("demo", *fresh, "--workers", str(workers), "--minutes", str(minutes), *out)
    return env


def measure(workers: int, minutes: float, settings: Sequence[str] = ()) -> dict[str, float]:
    """Run the demo once with `workers` workers (and `settings` changed); its compute share
    and throughput."""
    with tempfile.TemporaryDirectory(prefix="ganfriends-share-") as tmp:
        env = run_demo(tmp, workers, minutes, settings)
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
        periods = _periods(db)
    wall = alive / workers
    median = statistics.median(periods)
    return {
        "workers": workers,
        "compute_share": compute_s / alive,
        "versions": versions,
        "images_per_s": images / wall,
        "wall_s": wall,
        "period_median_s": median,
        "period_mean_s": statistics.mean(periods),
        "long_versions": sum(period > 2 * median for period in periods),
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


def _periods(db: Path) -> list[float]:
    """Seconds between consecutive closes, from the demo's database."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        closes = [t for (t,) in conn.execute("SELECT created_at FROM metrics ORDER BY version")]
    finally:
        conn.close()
    return [later - earlier for earlier, later in itertools.pairwise(closes)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_compute_share", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workers", default="2,4", help="comma-separated worker counts")
    parser.add_argument("--minutes", type=float, default=1.0, help="demo length per count")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a run setting to change from the demo's (repeatable), as `ganfriends-coordinator set`",
    )
    args = parser.parse_args(argv)
    changed = f"; settings changed: {' '.join(args.settings)}" if args.settings else ""
    print(
        f"demo compute share (Σ compute_s ÷ Σ worker lifetimes), {os.cpu_count()} CPU cores"
        + changed
    )
    for count in (int(n) for n in args.workers.split(",")):
        row = measure(count, args.minutes, args.settings)
        verdict = "meets" if row["compute_share"] >= TARGET else "MISSES"
        print(
            f"  {count} workers: compute share {row['compute_share']:.2f} ({verdict} {TARGET}); "
            f"{row['versions']} versions, {row['images_per_s']:.0f} images/s "
            f"over {row['wall_s']:.0f} s; period median {row['period_median_s'] * 1e3:.0f} ms, "
            f"mean {row['period_mean_s'] * 1e3:.0f} ms, {row['long_versions']} versions over "
            "twice the median",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
