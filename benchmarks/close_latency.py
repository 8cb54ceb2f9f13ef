"""Close latency of the coordinator, and its memory, for 1 to 64 units per version (64×64 model).

Close latency is the time from the last result of a version being accepted to the next version
being visible to workers. Workers are faked in this process to keep it fast: for each unit a
fake worker (its own Store connection) claims and submits a payload of real-shaped fp32
gradients (random tensors matching `parameter_manifest`), then the coordinator steps once, so
results arrive one at a time as from real workers; the coordinator validates and sums them and
closes the version on the last one. Measured per version:

- `close_s`: the coordinator's own figure (`Published.close_s`, also stored in metrics);
- returned: last accept → `Store.publish_version` returned (the commit, then SQLite's automatic
  WAL checkpoint, which runs inside the committing call after the commit is already visible);
- seen (store): a thread that waits as an idle worker does (`Store.wait_for_work`, which on
  SQLite watches the change counter every 10 ms) and then reads `get_run().version` through its
  own `Store` (BEGIN IMMEDIATE, so a read during the close waits behind its write lock);
- seen (raw): a thread polling with a plain query outside the store (a read-only sqlite3
  connection, whose WAL reads never wait, or an autocommit psycopg2 session):
  when the commit became visible at all.

Memory: before each measured version the process's peak RSS (VmHWM) is reset to its current
RSS (`/proc/self/clear_refs`), and after the close the peak's rise is read: everything the
version needed at once (payload bytes read from SQLite, decoded tensors, the running sum, Adam,
the weights being encoded; the fake worker's share is the same for every unit). Target: ≤ 0.3 s
with 4 units, memory flat in the number of units.

    .venv/bin/python -m benchmarks.close_latency [--units 1,4,16,64] [--versions 5]
        [--backend sqlite|postgresql] [--weights-precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import make_url

from benchmarks.harness import (
    BACKENDS,
    BenchRun,
    bench_database,
    create_bench_run,
    proc_status_kib,
    reset_peak_rss,
    spread,
    temp_environment,
)
from coordinator.loop import Coordinator, Published
from core.codec import decode_tensors, encode_named, encode_tensors
from core.config import RunSettings
from core.model import ModelConfig, build_gan, parameter_manifest, parameters_of
from core.store import Store, sqlite_path
from core.store.verdicts import Outcome
from core.training import AdamState, adam_step

CFG = ModelConfig(image_size=64, latent_dim=100, g_features=64, d_features=64)
TARGET_S = 0.3  # close latency target with 4 units per version
WAKE_WAIT_S = 0.5  # the store poller's longest wait_for_work
RAW_POLL_S = 0.001  # the raw reader's interval
SEEN_TIMEOUT_S = 60.0
GRADIENT_SCALE = 1e-2  # random gradients × this: a norm near 25, well inside the norm bound


@dataclass
class VersionTiming:
    """What one closed version measured (seconds from the last accept unless said)."""

    units: int
    close_s: float  # Published.close_s
    returned_s: float  # Store.publish_version returned (commit, then SQLite's WAL checkpoint)
    seen_store_s: float
    seen_raw_s: float
    transaction_s: float  # the publish_version call alone (its transaction, WAL checkpoint)
    per_result_s: list[float]  # coordinator time per non-final result: validate, add to sum
    floor_s: float  # the baseline, measured right after this version (see compute_floor)
    peak_rss_growth_kib: int | None


@dataclass
class Probe:
    """Timestamps the coordinator's store calls report through its wrapped methods."""

    last_accept: float = 0.0
    transaction: tuple[float, float] = (0.0, 0.0)  # publish_version start, end
    published: list[Published] = field(default_factory=list)


class VersionPoller:
    """A thread noting the perf_counter time at which each new run version was first read."""

    def __init__(self, read_version: Callable[[], int], every_s: float) -> None:
        self._read = read_version
        self._every_s = every_s
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            version = self._read()
            now = time.perf_counter()
            self.seen.setdefault(version, now)
            self._stop.wait(self._every_s)

    def wait_for(self, version: int) -> float:
        deadline = time.monotonic() + SEEN_TIMEOUT_S
        while version not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version} never became visible to the poller")
            time.sleep(0.001)
        return self.seen[version]

    @contextlib.contextmanager
    def running(self) -> Iterator[VersionPoller]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)


def fake_payload(cfg: ModelConfig, seed: int) -> bytes:
    """fp32 safetensors bytes of random tensors shaped exactly like the model's gradients."""
    gen = torch.Generator().manual_seed(seed)
    grads = {
        name: torch.randn(shape, generator=gen, dtype=dtype) * GRADIENT_SCALE
        for name, (shape, dtype) in parameter_manifest(cfg).items()
    }
    return encode_tensors(grads, "fp32")


def instrument(store: Store, probe: Probe) -> None:
    """Wrap the coordinator's store so accepts and the close transaction are timestamped."""
    resolve, accept, publish_version = (
        store.resolve_result,
        store.accept_results,
        store.publish_version,
    )

    def timed_resolve(result_id: int, outcome: Outcome, reason: str | None = None) -> Outcome:
        stored = resolve(result_id, outcome, reason)
        if stored == "accepted":
            probe.last_accept = time.perf_counter()
        return stored

    def timed_accept(result_ids: Sequence[int]) -> list[int]:
        accepted = accept(result_ids)
        if accepted:
            probe.last_accept = time.perf_counter()
        return accepted

    def timed_publish(version: int, **kwargs: object) -> None:
        start = time.perf_counter()
        publish_version(version, **kwargs)  # type: ignore[arg-type]
        probe.transaction = (start, time.perf_counter())

    store.resolve_result = timed_resolve  # type: ignore[method-assign]
    store.accept_results = timed_accept  # type: ignore[method-assign]
    store.publish_version = timed_publish  # type: ignore[method-assign]


def run_version(
    coordinator: Coordinator, worker: Store, worker_id: int, payload: bytes
) -> list[float]:
    """Fake-compute every unit of the current version, stepping the coordinator after each.

    Returns the coordinator's seconds per result (validate + add to the sum), closing excluded.
    """
    version = coordinator.version
    metrics = {"d_loss": 1.3, "g_loss": 0.8, "d_real": 0.5, "d_fake": 0.4}
    per_result = []
    while coordinator.version == version:
        lease = worker.claim(worker_id)
        if lease is None:
            raise RuntimeError(f"version {version} has no unit left to claim but did not close")
        worker.submit(lease, payload, "fp32", len(lease.sample_indices), metrics, 1.0)
        start = time.perf_counter()
        while coordinator.step() and coordinator.version == version:
            pass
        if coordinator.version == version:
            per_result.append(time.perf_counter() - start)
    return per_result


def measure_units(run: BenchRun, units: int, versions: int, payload: bytes) -> list[VersionTiming]:
    """Switch the run to `units` per version, then time `versions` closes at that count."""
    probe = Probe()
    coordinator_store, worker = run.store(), run.store()
    coordinator = Coordinator(coordinator_store, on_published=probe.published.append)
    instrument(coordinator.store, probe)  # the fenced store the coordinator writes through
    worker_id = worker.register_worker(f"fake-{units}", "bench", "cpu")
    # The new count applies from the next close on; one untimed version gets us there.
    coordinator_store.update_settings({"num_workunits_per_update": units})
    run_version(coordinator, worker, worker_id, payload)
    raw = _raw_reader(run.url)
    watcher = run.store()

    def woken_version() -> int:
        watcher.wait_for_work(WAKE_WAIT_S)  # as an idle worker waits
        return watcher.get_run().version

    store_poll = VersionPoller(woken_version, 0.0)
    raw_poll = VersionPoller(lambda: _read_version(raw), RAW_POLL_S)
    timings = []
    with store_poll.running(), raw_poll.running():
        for _ in range(versions):
            assert len(coordinator_store.version_units(coordinator.version)) == units
            rss_before = proc_status_kib("VmRSS") if reset_peak_rss() else None
            per_result = run_version(coordinator, worker, worker_id, payload)
            peak = proc_status_kib("VmHWM")
            published = probe.published[-1]
            accept = probe.last_accept
            timings.append(
                VersionTiming(
                    units=units,
                    close_s=published.close_s,
                    returned_s=probe.transaction[1] - accept,
                    seen_store_s=store_poll.wait_for(published.version) - accept,
                    seen_raw_s=raw_poll.wait_for(published.version) - accept,
                    transaction_s=probe.transaction[1] - probe.transaction[0],
                    per_result_s=per_result,
                    floor_s=compute_floor(run.model, payload),
                    peak_rss_growth_kib=None
                    if rss_before is None or peak is None
                    else peak - rss_before,
                )
            )
    raw.close()
    watcher.close()
    coordinator_store.close()
    worker.close()
    return timings


def _raw_reader(url: str) -> Any:
    """A plain connection outside the store: read-only SQLite (WAL readers never wait) or an
    autocommit psycopg2 session."""
    db_path = sqlite_path(url)
    if db_path is not None:
        return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
    import psycopg2

    conn = psycopg2.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    conn.autocommit = True
    return conn


def _read_version(raw: Any) -> int:
    cursor = raw.cursor()
    try:
        cursor.execute("SELECT version FROM run WHERE id = 1")
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()


def compute_floor(cfg: ModelConfig, payload: bytes) -> float:
    """Seconds of a close's unavoidable work without a database: decoding the last result, the
    Adam step and encoding the weights (the optimizer state is written after the publish).

    Measured after every version, so that a change in the machine's load hits both alike.
    """
    manifest = parameter_manifest(cfg)
    params = parameters_of(build_gan(cfg, 0))
    adam = AdamState.zeros_like(params)
    start = time.perf_counter()
    grads = decode_tensors(payload, manifest, precision="fp32", max_bytes=len(payload))
    new_params, _ = adam_step(params, grads, adam, lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8)
    encode_named(new_params, {"version": "1"})
    return time.perf_counter() - start


def _p50_max(values: Sequence[float]) -> str:
    return f"{statistics.median(values):5.2f} /{max(values):6.2f}"


def report(results: dict[int, list[VersionTiming]]) -> None:
    """One row per units-per-version count; times in seconds after the last accept."""
    columns = (
        ("close_s", 13),
        ("seen (store)", 13),
        ("seen (raw)", 13),
        ("returned", 13),
        ("close call", 10),
        ("seen/floor", 10),
        ("per result", 10),
        ("peak RSS", 9),
    )
    print(" | ".join([f"{'units':>5}", *(f"{name:>{width}}" for name, width in columns)]))
    units_row = ["p50 / max"] * 4 + ["p50", "p50", "p50", "max MiB"]
    print(
        " | ".join(
            [f"{'':>5}", *(f"{u:>{w}}" for u, (_, w) in zip(units_row, columns, strict=True))]
        )
    )
    for units, rows in results.items():
        growth = [r.peak_rss_growth_kib for r in rows if r.peak_rss_growth_kib is not None]
        per_result = [t for r in rows for t in r.per_result_s]
        seen_floor = statistics.median(r.seen_store_s / r.floor_s for r in rows)
        cells = [
            _p50_max([r.close_s for r in rows]),
            _p50_max([r.seen_store_s for r in rows]),
            _p50_max([r.seen_raw_s for r in rows]),
            _p50_max([r.returned_s for r in rows]),
            f"{statistics.median(r.transaction_s for r in rows):10.2f}",
            f"{seen_floor:10.1f}",
            f"{statistics.median(per_result):10.2f}" if per_result else f"{'-':>10}",
            f"{max(growth) / 1024:9.0f}" if growth else f"{'n/a':>9}",
        ]
        print(
            " | ".join(
                [f"{units:>5}", *(f"{c:>{w}}" for c, (_, w) in zip(cells, columns, strict=True))]
            )
        )


def versions_for(units: int, asked: int | None) -> int:
    """Measured versions at a count: --versions, else 5 up to 4 units, 3 up to 16, then 2.

    Each result costs the coordinator ~0.5 s here (SQLite rewrites the 24 MiB row when it
    records the verdict), so a 64-unit version takes about a minute: fewer of them keep the
    whole script near 3 minutes. `--versions 5` measures 5 everywhere (~7 minutes here).
    """
    if asked is not None:
        return asked
    return 5 if units <= 4 else 3 if units <= 16 else 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.close_latency",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--units", default="1,4,16,64", help="units per version to measure")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sqlite",
        help="sqlite (default) or postgresql: a throwaway cluster started from the installed "
        "server binaries (initdb, pg_ctl), as the test suite does",
    )
    parser.add_argument(
        "--weights-precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="the run's weights_precision: bf16 publishes half the bytes (fp32 master weights "
        "go with the optimizer state, written after the publish)",
    )
    parser.add_argument(
        "--versions",
        type=int,
        help="measured versions per units count (default: 5 up to 4 units, 3 up to 16, then 2)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    counts = [int(text) for text in args.units.split(",")]
    payload = fake_payload(CFG, 0)
    print(f"close_latency on {args.backend}, weights {args.weights_precision}: {CFG}")
    print(
        f"fp32 payload {len(payload) / 2**20:.1f} MiB per unit; results arrive one at a time; "
        "a thread waits for work as an idle worker does and reads the run version through a "
        f"Store (seen (store)); another reads it every {RAW_POLL_S * 1e3:.0f} ms with a plain "
        "read (seen (raw))"
    )
    compute_floor(CFG, payload)  # warm-up: first-call costs of the allocator and kernels
    # No sample grids: they are not part of a close.
    settings = RunSettings(sample_every=10**9, weights_precision=args.weights_precision)
    results: dict[int, list[VersionTiming]] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ganfriends-bench-"))
        stack.enter_context(temp_environment(GANFRIENDS_CACHE_DIR=tmp, GANFRIENDS_LOG_DIR=tmp))
        database = stack.enter_context(bench_database(args.backend, Path(tmp) / "run"))
        run = create_bench_run(Path(tmp) / "run", CFG, settings, images=256, url=database)
        for units in counts:
            start = time.perf_counter()
            results[units] = measure_units(run, units, versions_for(units, args.versions), payload)
            took = time.perf_counter() - start
            print(f"  measured {units} units/version in {took:.0f} s", flush=True)
    print(
        "close_s: the coordinator's figure; seen: when a poller first read the new version; "
        "returned: when publish_version returned;\nclose call: the publish_version call alone; "
        "seen/floor: seen (store) / the baseline below; per result: coordinator seconds to validate and "
        "sum one result;\npeak RSS: rise of this process's peak RSS while one version was "
        "processed and closed."
    )
    report(results)
    floors = [r.floor_s for rows in results.values() for r in rows]
    print(
        f"baseline (floor): a close's work without a database (decode 1 result, Adam step, "
        f"encode the weights), measured after every version: {spread(floors)} s"
    )
    four = results.get(4)
    if four:
        seen = statistics.median(r.seen_store_s for r in four)
        verdict = "meets" if seen <= TARGET_S else "MISSES"
        print(
            f"4 units: workers see the new version {seen:.2f} s after the last accept (p50): "
            f"{verdict} the target <= {TARGET_S} s"
        )
    if not reset_peak_rss():
        print("peak RSS: /proc/self/clear_refs is not writable here, so no per-version peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
