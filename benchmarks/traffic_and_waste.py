"""Bytes moved per work unit, and compute spent on results never used, in SQLite runs.

Part 1 computes the logical traffic of one unit from a run's store: the published weights
(read once per version by each worker), the dataset shards a unit needs (`shard_index`), and the
result payload at fp32/bf16/fp16 (`core.codec.payload_bytes`), for the default 32×32 model and
the 64×64 DCGAN. It also replays the worker's shard-cache policy (64 decoded shards in memory,
a 4 GiB LRU disk cache) over a CelebA-sized dataset to show the steady-state shard downloads.

Part 2 runs live: a coordinator in this process, 2 worker processes, SQLite, ~20 versions in
phases that differ only in `backup_after_s` (straggler cover). Per phase it reports
- wasted compute: images computed whose results were never used, as a share of all images
  computed. From the store: every copy of every unit of each closed version is read when the
  version closes (before retention deletes it), results' verdicts are read as the coordinator
  records them, and `backup`/`expired` events are counted; the workers' own messages
  ("Finished unit", "not needed", "was reassigned") are counted as a cross-check;
- physical I/O: bytes each process read and wrote through the kernel (/proc/PID/io rchar and
  wchar, which include SQLite's WAL and checkpoints) per unit, as a ratio to the logical bytes.

    .venv/bin/python -m benchmarks.traffic_and_waste [--versions 10] [--backup-after 30,0]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import (
    BenchRun,
    ServingCoordinator,
    create_bench_run,
    start_worker,
    stop_workers,
    temp_environment,
    wait_until,
)
from coordinator.loop import Coordinator, Published
from core.cache import DEFAULT_CAP_BYTES
from core.codec import PRECISIONS, payload_bytes
from core.config import RunSettings
from core.model import ModelConfig, parameter_manifest
from core.schedule import plan_unit
from core.shards import MEMORY_SHARDS
from core.store import MetricsRow, ResultRow, Store, UnitRow
from core.store.verdicts import Outcome

MODELS = {
    "32x32 (default)": ModelConfig(),
    "64x64 DCGAN": ModelConfig(image_size=64, latent_dim=100, g_features=64, d_features=64),
}
CELEBA_IMAGES = 202_599  # img_align_celeba.zip
SIMULATED_UNITS = 200  # units replayed through the shard-cache policy
MiB = 2**20


# Part 1: logical traffic from the store ------------------------------------------------------


@dataclass(frozen=True)
class UnitTraffic:
    """Logical bytes of one model's run, as stored."""

    weights: int  # one published version's safetensors bytes
    optimizer: int  # the Adam state the coordinator rewrites every version
    payload: dict[str, int]  # result bytes per precision
    unit_images: int  # bytes of one unit's images (uint8)
    dataset: int  # bytes of all shards
    shard: int  # bytes of one full shard
    shard_images: int  # images per full shard


def logical_traffic(run: BenchRun) -> UnitTraffic:
    """Read the sizes of weights, optimizer state and shards from the run's store."""
    store = run.store()
    try:
        weights, _, _ = store.version_weights(0)
        _, optimizer = store.optimizer_state()
        shards = store.shard_index()
    finally:
        store.close()
    image_bytes = 3 * run.model.image_size**2
    manifest = parameter_manifest(run.model)
    return UnitTraffic(
        weights=len(weights),
        optimizer=len(optimizer),
        payload={p: payload_bytes(manifest, p) for p in PRECISIONS},
        unit_images=run.settings.images_per_work_unit * image_bytes,
        dataset=sum(s.count for s in shards) * image_bytes,
        shard=shards[0].count * image_bytes,
        shard_images=shards[0].count,
    )


def simulate_shard_downloads(
    dataset_size: int, shard_images: int, shard_bytes: int, settings: RunSettings, units: int
) -> list[int]:
    """Bytes one worker downloads for each of `units` consecutive units, replaying the policy of
    `core.shards.ShardFetcher` (in-memory LRU of MEMORY_SHARDS shards) over `core.cache`'s
    LRU disk cache capped at DEFAULT_CAP_BYTES."""
    memory: OrderedDict[int, None] = OrderedDict()
    disk: OrderedDict[int, None] = OrderedDict()
    disk_slots = DEFAULT_CAP_BYTES // shard_bytes
    downloads = []
    for unit in range(units):
        plan = plan_unit(settings.seed, dataset_size, settings.images_per_work_unit, unit)
        fetched = 0
        for index in plan.sample_indices:
            shard = index // shard_images
            if shard in memory:
                memory.move_to_end(shard)
                continue
            if shard in disk:
                disk.move_to_end(shard)
            else:
                fetched += shard_bytes
                while len(disk) >= disk_slots:
                    disk.popitem(last=False)
                disk[shard] = None
            memory[shard] = None
            if len(memory) > MEMORY_SHARDS:
                memory.popitem(last=False)
        downloads.append(fetched)
    return downloads


def print_logical(name: str, run: BenchRun) -> UnitTraffic:
    t = logical_traffic(run)
    s = run.settings
    per_version = s.num_workunits_per_update
    print(f"\n{name}: {run.model}")
    print(
        f"  baseline: the images a unit trains on ({s.images_per_work_unit} images): "
        f"{t.unit_images / MiB:.2f} MiB"
    )
    print(
        f"  weights of a version: {t.weights / MiB:.2f} MiB (x{t.weights / t.unit_images:.1f}); "
        f"each worker reads them once per version it works in: per unit between "
        f"{t.weights / per_version / MiB:.2f} MiB (one worker does all {per_version} units) and "
        f"{t.weights / MiB:.2f} MiB (one unit per worker)"
    )
    payloads = ", ".join(
        f"{p} {b / MiB:.2f} MiB (x{b / t.unit_images:.1f})" for p, b in t.payload.items()
    )
    print(f"  result payload written per unit: {payloads}")
    print(
        f"  coordinator per unit: reads the payload once (twice if it arrives out of unit order, "
        f"once more per cross-check); per version it writes weights + Adam state = "
        f"{(t.weights + t.optimizer) / MiB:.2f} MiB"
    )
    cold = simulate_shard_downloads(
        t.dataset // (3 * run.model.image_size**2), t.shard_images, t.shard, s, 1
    )[0]
    print(
        f"  shards ({t.shard_images} images, {t.shard / MiB:.1f} MiB each): this run's "
        f"{t.dataset / MiB:.1f} MiB dataset is downloaded once per worker and cached; the first "
        f"unit alone needs {cold / MiB:.1f} MiB (x{cold / t.unit_images:.1f})"
    )
    celeb = CELEBA_IMAGES * 3 * run.model.image_size**2
    downloads = simulate_shard_downloads(CELEBA_IMAGES, t.shard_images, t.shard, s, SIMULATED_UNITS)
    steady = statistics.mean(downloads[SIMULATED_UNITS // 2 :])
    fits = "fits" if celeb <= DEFAULT_CAP_BYTES else "does NOT fit"
    print(
        f"  at CelebA size ({CELEBA_IMAGES:,} images = {celeb / 2**30:.2f} GiB, {fits} the "
        f"{DEFAULT_CAP_BYTES / 2**30:.0f} GiB default cache), replaying the worker's cache "
        f"policy over {SIMULATED_UNITS} units: first unit {downloads[0] / MiB:.0f} MiB, "
        f"units {SIMULATED_UNITS // 2}-{SIMULATED_UNITS}: {steady / MiB:.0f} MiB per unit "
        f"(x{steady / t.unit_images:.0f})"
    )
    return t


# Part 2: a live run --------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the store recorded, gathered while the run goes on (rows are deleted at close)."""

    units: dict[int, list[UnitRow]] = field(default_factory=dict)  # closed version → copies
    results: dict[int, ResultRow] = field(default_factory=dict)  # result id → row
    outcomes: dict[int, str] = field(default_factory=dict)  # result id → verdict
    published: list[tuple[float, Published]] = field(default_factory=list)
    payload_reads: int = 0  # bytes of payloads the coordinator read
    io_marks: list[dict[str, tuple[int, int]]] = field(default_factory=list)
    payload_marks: list[int] = field(default_factory=list)  # payload_reads at each io mark


def proc_io(pid: int | str) -> tuple[int, int]:
    """(rchar, wchar) of a process: bytes it read and wrote through syscalls, cache or not."""
    values = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        values[key] = int(value)
    return values["rchar"], values["wchar"]


def instrument(store: Store, ledger: Ledger) -> None:
    """Record every result the coordinator reads, its verdict and the payload bytes it reads."""
    new_results, resolve, payload = store.new_results, store.resolve_result, store.result_payload
    accept = store.accept_results

    def recorded_new(limit: int) -> list[ResultRow]:
        rows = new_results(limit)
        ledger.results.update((row.id, row) for row in rows)
        return rows

    def recorded_resolve(result_id: int, outcome: Outcome, reason: str | None = None) -> Outcome:
        stored = resolve(result_id, outcome, reason)
        ledger.outcomes[result_id] = stored
        return stored

    def recorded_accept(result_ids: Sequence[int]) -> list[int]:
        accepted = accept(result_ids)
        ledger.outcomes.update((result_id, "accepted") for result_id in accepted)
        return accepted

    def recorded_payload(result_id: int) -> bytes:
        data = payload(result_id)
        ledger.payload_reads += len(data)
        return data

    store.new_results = recorded_new  # type: ignore[method-assign]
    store.resolve_result = recorded_resolve  # type: ignore[method-assign]
    store.accept_results = recorded_accept  # type: ignore[method-assign]
    store.result_payload = recorded_payload  # type: ignore[method-assign]


@dataclass(frozen=True)
class Phase:
    backup_after_s: float
    versions: int
    workers: int
    threads: int
    warmup: int


def live_phase(tmp: Path, cfg: ModelConfig, settings: RunSettings, phase: Phase) -> None:
    """Run one phase and print its waste and I/O figures."""
    run = create_bench_run(tmp, cfg, settings, images=2048)
    ledger = Ledger()
    store = run.store()
    names = [f"w{i}" for i in range(phase.workers)]
    logs = {name: tmp / f"{name}.stderr" for name in names}
    procs: list[subprocess.Popen[bytes]] = []

    def io_mark() -> None:
        marks = {"coordinator": proc_io("self")}
        marks.update({n: proc_io(p.pid) for n, p in zip(names, procs, strict=True)})
        ledger.io_marks.append(marks)
        ledger.payload_marks.append(ledger.payload_reads)

    def on_published(p: Published) -> None:
        ledger.published.append((time.perf_counter(), p))
        ledger.units[p.version - 1] = store.version_units(p.version - 1)
        if p.version in (phase.warmup, phase.warmup + phase.versions):
            io_mark()

    instrument(store, ledger)
    coordinator = Coordinator(store, on_published=on_published)
    wanted = phase.warmup + phase.versions
    with temp_environment(GANFRIENDS_CACHE_DIR=str(tmp / "cache-coordinator")):
        procs.extend(
            start_worker(run, n, threads=phase.threads, stderr_path=logs[n]) for n in names
        )
        try:
            with ServingCoordinator(coordinator) as serving:
                wait_until(
                    lambda: len(ledger.published) >= wanted,
                    timeout_s=120.0 * wanted,
                    what=f"{wanted} versions",
                    procs=procs,
                    serving=serving,
                )
        finally:
            stop_workers(procs)
    events = Counter(e.kind for e in store.events(10_000))
    metrics = store.metrics()
    store.close()
    print_waste(ledger, metrics, events, logs)
    print_io(run, ledger, phase)


def print_waste(
    ledger: Ledger, metrics: Sequence[MetricsRow], events: Counter[str], logs: dict[str, Path]
) -> None:
    """Images used vs computed over the closed versions, from the ledger and the store."""
    closed = sorted(ledger.units)
    used = sum(m.images for m in metrics if m.version in ledger.units)
    copies = [u for v in closed for u in ledger.units[v]]
    verdicts: Counter[str] = Counter()
    verdict_images: Counter[str] = Counter()
    for result_id, outcome in ledger.outcomes.items():
        row = ledger.results[result_id]
        if row.version in ledger.units:
            verdicts[outcome] += 1
            verdict_images[outcome] += row.sample_count
    # A copy cancelled after a worker had claimed it: that worker computed it (fully, unless a
    # heartbeat told it to stop first) and its result was refused or never sent.
    abandoned = [u for u in copies if u.status == "cancelled" and u.worker_id is not None]
    abandoned_images = sum(u.sample_count for u in abandoned)
    computed = used + verdict_images["crosscheck"] + verdict_images["rejected"] + abandoned_images
    wasted = computed - used
    first, last = ledger.published[0][0], ledger.published[-1][0]
    print(
        f"  the {len(closed)} closed versions {closed[0]}-{closed[-1]}: {len(copies)} unit copies "
        f"for {sum(1 for u in copies if u.copy == 0)} units, "
        f"{sum(1 for u in copies if u.copy > 0)} of them backup copies (events: backup "
        f"{events['backup']}, expired {events['expired']}, rejected {events['rejected']}, parked "
        f"{events['parked']})"
    )
    print(
        f"  verdicts: accepted {verdicts['accepted']}, cross-check {verdicts['crosscheck']}, "
        f"rejected {verdicts['rejected']}; copies claimed, then cancelled when their version "
        f"closed (computed, result refused or dropped unread): {len(abandoned)}"
    )
    print(
        f"  images used {used}, computed {computed}: wasted {wasted} = "
        f"{wasted / computed:.1%} of all images computed "
        f"({used / (last - first):.0f} used images/s after the first close)"
    )
    _print_worker_view(copies, logs)


_MESSAGES = {
    "finished": re.compile(r"^Finished unit (\d+) "),
    "refused": re.compile(r"^Result for unit (\d+) not needed"),
    "abandoned": re.compile(r"^Unit (\d+) was reassigned"),
}


def _print_worker_view(copies: Sequence[UnitRow], logs: dict[str, Path]) -> None:
    indices = {u.unit_index for u in copies}
    counts: Counter[str] = Counter()
    for path in logs.values():
        for line in path.read_text(errors="replace").splitlines():
            for kind, pattern in _MESSAGES.items():
                match = pattern.match(line)
                if match and int(match.group(1)) in indices:
                    counts[kind] += 1
    print(
        f"  cross-check, the workers' own messages for those units: submitted {counts['finished']} "
        f"(a result submitted just before its version closed is dropped unread), refused after "
        f"computing {counts['refused']}, stopped part-way {counts['abandoned']}"
    )


def print_io(run: BenchRun, ledger: Ledger, phase: Phase) -> None:
    if len(ledger.io_marks) < 2:
        print("  physical I/O: not measured (needs 2 marks)")
        return
    start, end = ledger.io_marks[0], ledger.io_marks[-1]
    versions = range(phase.warmup, phase.warmup + phase.versions)
    units = sum(1 for v in versions for u in ledger.units.get(v, []) if u.worker_id is not None)
    t = logical_traffic(run)
    payload = t.payload[run.settings.precision]
    worker_read = sum(end[n][0] - start[n][0] for n in end if n != "coordinator")
    worker_write = sum(end[n][1] - start[n][1] for n in end if n != "coordinator")
    coord_read = end["coordinator"][0] - start["coordinator"][0]
    coord_write = end["coordinator"][1] - start["coordinator"][1]
    # Logical: each worker reads the weights once per version; a unit's payload is written
    # once by a worker and read twice by the coordinator, which writes weights + Adam state.
    logical_worker_read = phase.workers * phase.versions * t.weights / units
    print(
        f"  physical I/O per claimed unit copy over the units of versions {versions.start}-"
        f"{versions.stop - 1} ({units} copies), measured / logical:"
    )
    print(
        f"    workers read  {worker_read / units / MiB:7.2f} MiB / "
        f"{logical_worker_read / MiB:.2f} MiB weights = x{worker_read / units / logical_worker_read:.1f}"
    )
    print(
        f"    workers write {worker_write / units / MiB:7.2f} MiB / {payload / MiB:.2f} MiB payload "
        f"= x{worker_write / units / payload:.1f}"
    )
    # The payload bytes the coordinator asked the store for (a wrapper counted them).
    coord_logical_read = (ledger.payload_marks[-1] - ledger.payload_marks[0]) / units
    coord_logical_write = phase.versions * (t.weights + t.optimizer) / units
    print(
        f"    coordinator reads  {coord_read / units / MiB:7.2f} MiB / {coord_logical_read / MiB:.2f} "
        f"MiB of payloads it read = x{coord_read / units / coord_logical_read:.1f}"
    )
    print(
        f"    coordinator writes {coord_write / units / MiB:7.2f} MiB / "
        f"{coord_logical_write / MiB:.2f} MiB (weights + Adam per version, per unit) = "
        f"x{coord_write / units / coord_logical_write:.1f}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.traffic_and_waste",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--backup-after",
        default="30,0",
        help="backup_after_s of each live phase, comma-separated (default: 30 = the run "
        "default, then 0 = a backup copy as soon as a worker is idle)",
    )
    parser.add_argument("--versions", type=int, default=10, help="measured versions per phase")
    parser.add_argument("--unit", type=int, default=64, help="images per unit in the live run")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per worker")
    parser.add_argument("--skip-live", action="store_true", help="only part 1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print("traffic_and_waste, part 1: logical bytes per unit, default RunSettings, from the store")
    with tempfile.TemporaryDirectory(prefix="ganfriends-bench-") as tmp:
        for i, (name, cfg) in enumerate(MODELS.items()):
            run = create_bench_run(Path(tmp) / f"static{i}", cfg, RunSettings(), images=4096)
            print_logical(name, run)
        if args.skip_live:
            return 0
        cfg = ModelConfig()
        print(
            f"\npart 2: live runs, {args.workers} worker processes x {args.threads} thread(s), "
            f"{cfg.image_size}x{cfg.image_size} default model, units of {args.unit} images "
            f"(the default is 256; smaller so that {args.versions} versions per phase take about "
            f"a minute here), 4 units per version, other settings default"
        )
        for i, text in enumerate(args.backup_after.split(",")):
            backup = float(text)
            settings = RunSettings(images_per_work_unit=args.unit, backup_after_s=backup)
            phase = Phase(backup, args.versions, args.workers, args.threads, warmup=1)
            print(f"\nbackup_after_s = {backup:g}:", flush=True)
            live_phase(Path(tmp) / f"live{i}", cfg, settings, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
