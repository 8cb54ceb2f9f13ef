"""Queue throughput (claims + submits per second) and claim latency, PostgreSQL and SQLite.

Throughput: N simulated workers — threads of this process, each with its own `Store` (its own
connection pool) — claim a unit and submit a small payload (64 bytes) in a loop for a fixed
time; the figure is completed claim+submit pairs per second. Version 0 holds more units than
can be done in that time, so nobody idles. Claim latency: one worker claims one unit at a time
from a queue that also holds 100 000 finished units; p50 and p99 of `Store.claim` (its whole
transaction, as a worker sees it).

PostgreSQL is a throwaway cluster started with tests.postgres.PostgresServer (fsync and
synchronous_commit off: the queue, not the disk, is measured; a production server with
synchronous commit pays one WAL flush per transaction on top). SQLite is a WAL file in a temp
folder (synchronous=NORMAL, as the store sets it). The client threads share this machine's
cores and Python's GIL with each other and with the server, so the figures are lower bounds of
what the database itself sustains.

    .venv/bin/python -m benchmarks.queue_throughput [--workers 32,128] [--seconds 5]
        [--backends postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.store import Store, UnitSpec, make_engine, open_store
from core.store.rows import ShardData
from tests.core.store.factories import add_finished_units
from tests.postgres import PostgresServer

PAYLOAD = bytes(64)  # a small result payload
METRICS = {"d_loss": 0.7, "g_loss": 1.3, "d_real": 0.6, "d_fake": 0.4}
UNITS_PER_WORKER = 400  # designated units per simulated worker: more than it can do in time
FINISHED_UNITS = 100_000  # finished units in the table while claim latency is measured
LATENCY_CLAIMS = 1000  # claims timed for the latency figure
WARMUP_S = 1.0  # seconds of work before counting starts


@dataclass(frozen=True)
class Throughput:
    backend: str
    workers: int
    pairs_per_s: float  # claim + submit pairs completed per second
    errors: int


@dataclass(frozen=True)
class Latency:
    backend: str
    p50_ms: float
    p99_ms: float
    mean_ms: float


def new_run(url: str, units: int) -> None:
    """A run with `units` designated units in version 0 (long leases, no backups)."""
    store = open_store(url, create=True)
    try:
        store.create_run(
            name="bench",
            model_config={},
            settings={"lease_s": 3600.0, "backup_after_s": 1e9},
            shards=[ShardData(0, 8, 32, bytes(10), "0" * 64)],
            weights=b"w",
            weights_sha256="0" * 64,
            optimizer_state=b"",
            first_units=[UnitSpec(i, i, [0, 1, 2, 3]) for i in range(units)],
        )
    finally:
        store.dispose()


def measure_throughput(url: str, backend: str, workers: int, seconds: float) -> Throughput:
    """Pairs per second with `workers` threads hammering one fresh run."""
    new_run(url, workers * UNITS_PER_WORKER)
    counting = threading.Event()
    stop = threading.Event()
    done = [0] * workers
    errors = [0] * workers
    ready = threading.Barrier(workers + 1)

    def work(index: int) -> None:
        store = Store(make_engine(url))
        try:
            worker = store.register_worker(f"w{index}", "bench", "cpu")
            ready.wait()
            while not stop.is_set():
                try:
                    lease = store.claim(worker)
                    if lease is None:
                        break  # out of units: the run was too small for the time
                    store.submit(lease, PAYLOAD, "fp32", 4, METRICS, 0.0)
                except Exception:  # counted and reported: a benchmark must not stop on one
                    errors[index] += 1
                    continue
                if counting.is_set():
                    done[index] += 1
        finally:
            store.dispose()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    ready.wait()
    time.sleep(WARMUP_S)
    counting.set()
    started = time.perf_counter()
    time.sleep(seconds)
    counted = sum(done)
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(60)
    return Throughput(backend, workers, counted / elapsed, sum(errors))


def measure_latency(url: str, backend: str) -> Latency:
    """Claim latency with FINISHED_UNITS finished units in the table."""
    new_run(url, LATENCY_CLAIMS)
    store = Store(make_engine(url))
    try:
        add_finished_units(store, FINISHED_UNITS, first_index=LATENCY_CLAIMS)
        with store.session() as conn:
            if backend == "postgresql":
                conn.exec_driver_sql("ANALYZE work_units")
        worker = store.register_worker("latency", "bench", "cpu")
        timings = []
        for _ in range(LATENCY_CLAIMS):
            started = time.perf_counter()
            lease = store.claim(worker)
            timings.append(time.perf_counter() - started)
            assert lease is not None, "the latency run ran out of units"
    finally:
        store.dispose()
    timings.sort()
    return Latency(
        backend,
        p50_ms=1e3 * timings[len(timings) // 2],
        p99_ms=1e3 * timings[int(len(timings) * 0.99) - 1],
        mean_ms=1e3 * statistics.fmean(timings),
    )


@contextmanager
def databases(backend: str) -> Iterator[Iterator[str]]:
    """Fresh, empty database URLs of one backend, one per `next()`."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ganfriends-bench-") as tmp:
            yield (f"sqlite:///{Path(tmp) / f'run{i}.db'}" for i in range(1000))
        return
    server = PostgresServer.start()
    try:
        yield (server.database_url(server.create_database()) for _ in range(1000))
    finally:
        server.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="32,128", help="simulated worker counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="counted seconds per figure")
    parser.add_argument("--backends", default="postgresql,sqlite")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    counts = [int(text) for text in args.workers.split(",")]
    throughputs: list[Throughput] = []
    latencies: list[Latency] = []
    for backend in args.backends.split(","):
        with databases(backend) as urls:
            for workers in counts:
                throughputs.append(measure_throughput(next(urls), backend, workers, args.seconds))
                print(f"  {backend}: {workers} workers measured", file=sys.stderr, flush=True)
            latencies.append(measure_latency(next(urls), backend))
    print(
        f"queue_throughput: {args.seconds:.0f} s counted per figure after {WARMUP_S:.0f} s warm-up"
    )
    print(f"{'backend':<11} {'workers':>7} {'claim+submit/s':>15} {'errors':>7}")
    for row in throughputs:
        print(f"{row.backend:<11} {row.workers:>7} {row.pairs_per_s:>15.0f} {row.errors:>7}")
    print(
        f"claim latency with {FINISHED_UNITS:,} finished units ({LATENCY_CLAIMS} claims, one worker)"
    )
    print(f"{'backend':<11} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for lat in latencies:
        print(f"{lat.backend:<11} {lat.p50_ms:>8.2f} {lat.p99_ms:>8.2f} {lat.mean_ms:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
