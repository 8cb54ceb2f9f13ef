"""Database size after 500 versions ÷ after 50: retention keeps the run database from growing.

A run of the default 32×32 model with one 64-image unit per version, driven in this process: a
fake worker (its own `Store`) claims each unit and submits real-shaped random gradients, and
the coordinator validates, closes and prunes as `serve` does (sample grids every 25 versions,
the default). Sizes: SQLite's file plus its WAL after a TRUNCATE checkpoint, and the pages in
use (the free list left out); PostgreSQL's `pg_database_size`, with autovacuum left to do its
work as on a real server (no manual VACUUM), plus the largest tables.

    .venv/bin/python -m benchmarks.db_size [--backend sqlite|postgresql|both] [--early 50 --late 500]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import text

from benchmarks.close_latency import fake_payload, run_version
from benchmarks.harness import BACKENDS, bench_database, create_bench_run, temp_environment
from coordinator.loop import Coordinator
from core.config import RunSettings
from core.model import ModelConfig
from core.store import Store, sqlite_path

MIB = 1 << 20
TARGET_RATIO = 2.0  # "within a small factor": the late size at most this × the early one


def measure_size(store: Store, url: str) -> tuple[int, str]:
    """(bytes, a line of detail) of the run database now."""
    path = sqlite_path(url)
    if path is not None:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page = conn.execute("PRAGMA page_size").fetchone()[0]
            used = (
                conn.execute("PRAGMA page_count").fetchone()[0]
                - conn.execute("PRAGMA freelist_count").fetchone()[0]
            ) * page
        on_disk = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        return on_disk, f"{used / MIB:.1f} MiB in use"
    with store.session() as conn:
        size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        tables = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(relid) AS bytes "
                "FROM pg_statio_user_tables ORDER BY bytes DESC LIMIT 4"
            )
        ).all()
    detail = ", ".join(f"{t.relname} {t.bytes / MIB:.1f} MiB" for t in tables)
    return size, detail


def measure(backend: str, early: int, late: int) -> float:
    model = ModelConfig()
    settings = RunSettings(images_per_work_unit=64, num_workunits_per_update=1)
    payload = fake_payload(model, 0)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ganfriends-bench-")))
        stack.enter_context(
            temp_environment(GANFRIENDS_CACHE_DIR=str(tmp), GANFRIENDS_LOG_DIR=str(tmp))
        )
        url = stack.enter_context(bench_database(backend, tmp / "run"))
        run = create_bench_run(tmp / "run", model, settings, images=1024, url=url)
        coordinator_store, worker = run.store(), run.store()
        stack.callback(coordinator_store.close)
        stack.callback(worker.close)
        coordinator = Coordinator(coordinator_store)
        stack.callback(coordinator.watchdog.stop)
        worker_id = worker.register_worker("fake", "bench", "cpu")
        sizes = {}
        started = time.perf_counter()
        for target in (early, late):
            while coordinator.version < target:
                run_version(coordinator, worker, worker_id, payload)
            while coordinator.step():  # the idle pass that tidies
                pass
            sizes[target] = measure_size(coordinator_store, url)
            size, detail = sizes[target]
            print(
                f"  {backend}: after {target} versions {size / MIB:.1f} MiB ({detail}); "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    ratio = sizes[late][0] / sizes[early][0]
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(
        f"{backend}: size after {late} versions ÷ after {early}: {ratio:.2f} "
        f"({verdict} <= {TARGET_RATIO})"
    )
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.db_size", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument("--early", type=int, default=50)
    parser.add_argument("--late", type=int, default=500)
    args = parser.parse_args(argv)
    print(
        f"db_size: default 32×32 model, one 64-image unit per version, {RunSettings().sample_every=}"
    )
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    for backend in backends:
        measure(backend, args.early, args.late)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
