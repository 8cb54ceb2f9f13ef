"""Images/s of one worker in a live run (SQLite or PostgreSQL) ÷ the textbook training loop's.

The live run is real: a coordinator serving in a thread of this process, one worker process
(`python -m core.worker_cli`), the default RunSettings (256-image units, micro-batch 64, 4 units
per version, samples every 25 versions). Its rate is the images of the versions published in a
steady window (the first versions are warm-up and skipped) ÷ the window's wall time, taken from
the coordinator's `on_published` callbacks. The baseline is `textbook_loop` from
`benchmarks.unit_gradient_speed` (a D step and a G step per micro-batch, optimizer steps
included) on the same model, micro-batch and thread count, in a child process at the worker's
(lowered) OS priority, measured before and after the live run so that drift in the machine's
load shows. Target: ratio ≥ 0.95.

On a busy machine that direct ratio is dominated by load drift, so two more figures follow:
the share of the window the worker spent computing × `unit_gradients`/textbook from interleaved
rounds (load-robust), and a projection for a quiet machine (the fastest textbook round × that
interleaved ratio, plus the seconds per version the worker did not compute). The non-computing time is split, from the store's
claim and submit times: the bubble between versions, and per unit the fetch/encode/upload time
and the gap to the next claim.

    .venv/bin/python -m benchmarks.worker_efficiency [--image-size 32|64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path

import torch

from benchmarks.harness import (
    BACKENDS,
    REPO_ROOT,
    ServingCoordinator,
    bench_database,
    create_bench_run,
    spread,
    start_worker,
    stop_workers,
    temp_environment,
    wait_until,
)
from benchmarks.unit_gradient_speed import textbook_loop
from coordinator.loop import Coordinator, Published
from coordinator.samples import Sampled
from core.config import RunSettings
from core.data import synthetic_images
from core.device import lower_priority
from core.model import ModelConfig, build_gan
from core.store import ResultRow, Store
from core.training import unit_gradients

TARGET = 0.95
VERSION_TIMEOUT_S = 600.0  # give up if the live run publishes nothing for this long


@dataclass(frozen=True)
class Mark:
    """The coordinator's view right after a version was published."""

    at: float  # perf_counter seconds
    version: int
    images: int  # images whose gradients made this version's step
    close_s: float  # the coordinator's own close figure
    worker_compute_s: float  # the worker's credited compute seconds so far (all versions)
    cpu_s: float  # this process's CPU seconds so far: the coordinator thread's, in effect
    first_claim: float  # time.time() of the first claim of the version just closed
    last_submit: float  # time.time() of the last submit of the version just closed
    in_unit: list[float]  # per unit: claim → submit minus compute (fetch, encode, upload)
    between_units: list[float]  # a unit's submit → the next unit's claim, inside the version


@dataclass(frozen=True)
class LiveResult:
    images_per_s: float
    window_s: float
    images: int
    first_version: int
    last_version: int
    compute_s: float  # worker compute credited in the window
    close_s: float  # Σ Published.close_s in the window
    sample_s: float  # coordinator time spent rendering samples/quality in the window
    coordinator_cpu_s: float  # CPU seconds of this process (the coordinator) in the window
    version_rates: list[float]  # images/s of each version in the window, to show the noise
    bubbles: list[float]  # per version: the previous version's last submit → its first claim
    in_unit: list[float]  # per unit: claim → submit minus compute (fetch, encode, upload)
    between_units: list[float]  # a unit's submit → the next unit's claim, inside a version


def model_for(image_size: int, features: int | None) -> ModelConfig:
    """32×32: ModelConfig's defaults (latent 64, 32 maps); 64×64: the DCGAN paper's (100, 64)."""
    if image_size == 32:
        return ModelConfig(32, 64, features or 32, features or 32)
    return ModelConfig(64, 100, features or 64, features or 64)


# Baseline ------------------------------------------------------------------------------------


def baseline_rounds(
    cfg: ModelConfig, unit: int, batch: int, threads: int, device: str, rounds: int
) -> dict[str, list[float]]:
    """Seconds per `unit` images of the textbook loop and of `unit_gradients`, interleaved.

    One warm-up round of each first; then `rounds` rounds alternating the two, so drift in
    the machine's load hits both alike.
    """
    torch.set_num_threads(threads)
    images = synthetic_images(unit, cfg.image_size, seed=0).to(device)
    gan, ours = build_gan(cfg, 0).to(device), build_gan(cfg, 0).to(device)
    opt_d = torch.optim.Adam(gan.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gan.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    times: dict[str, list[float]] = {"textbook": [], "unit_gradients": []}

    def timed(key: str, r: int, fn: Callable[[], object]) -> None:
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if r > 0:
            times[key].append(time.perf_counter() - start)

    # `with torch.device`: the textbook loop draws its noise with a bare torch.randn
    with torch.device(device):
        for r in range(rounds + 1):
            timed("textbook", r, partial(textbook_loop, gan, images, batch, opt_d, opt_g))
            timed("unit_gradients", r, partial(unit_gradients, ours, images, r, batch))
    return times


def measure_baseline(
    cfg: ModelConfig, unit: int, batch: int, threads: int, device: str, rounds: int
) -> dict[str, list[float]]:
    """`baseline_rounds` in a child process at the worker's OS priority; images/s per round."""
    command = [sys.executable, "-m", "benchmarks.worker_efficiency", "--baseline-json"]
    command += ["--image-size", str(cfg.image_size), "--features", str(cfg.g_features)]
    command += ["--unit", str(unit), "--batch", str(batch), "--threads", str(threads)]
    command += ["--rounds", str(rounds), "--device", device]
    out = subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    seconds = json.loads(out.stdout.strip().splitlines()[-1])
    return {key: [unit / s for s in values] for key, values in seconds.items()}


# Live run ------------------------------------------------------------------------------------


class LiveRecorder:
    """Wraps the coordinator's store and callbacks to note what each version cost."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.marks: list[Mark] = []
        self.sample_times: list[tuple[float, float]] = []  # (end perf_counter, seconds)
        self._results: dict[int, ResultRow] = {}  # unit copy id → its result
        self._new_results = store.new_results
        store.new_results = self._recorded_new_results  # type: ignore[method-assign]

    def _recorded_new_results(self, limit: int) -> list[ResultRow]:
        rows = self._new_results(limit)
        self._results.update((row.unit_id, row) for row in rows)
        return rows

    def on_published(self, p: Published) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        compute = sum(w.compute_s for w in self.store.workers())
        # (claimed, submitted, compute seconds) of each unit copy of the version just closed
        units = sorted(
            (u.leased_at, self._results[u.id].submitted_at, self._results[u.id].compute_s)
            for u in self.store.version_units(p.version - 1)
            if u.leased_at is not None and u.id in self._results
        )
        self.marks.append(
            Mark(
                now,
                p.version,
                p.images,
                p.close_s,
                compute,
                cpu,
                first_claim=units[0][0],
                last_submit=max(submitted for _, submitted, _ in units),
                in_unit=[submitted - claimed - c for claimed, submitted, c in units],
                between_units=[b[0] - a[1] for a, b in pairwise(units)],
            )
        )

    def timing(self, take_sample: Callable[[], Sampled]) -> Callable[[], Sampled]:
        """`take_sample`, timed."""

        def timed_sample() -> Sampled:
            start = time.perf_counter()
            sampled = take_sample()
            self.sample_times.append((time.perf_counter(), time.perf_counter() - start))
            return sampled

        return timed_sample


def live_run(
    cfg: ModelConfig, settings: RunSettings, args: argparse.Namespace, device: str
) -> LiveResult:
    """One worker process and an in-process coordinator; images/s over the steady window."""
    with (
        tempfile.TemporaryDirectory(prefix="ganfriends-bench-") as tmp,
        bench_database(args.backend, Path(tmp)) as database,
    ):
        run = create_bench_run(Path(tmp), cfg, settings, args.dataset_images, url=database)
        store = run.store()
        recorder = LiveRecorder(store)
        with temp_environment(
            GANFRIENDS_CACHE_DIR=str(Path(tmp) / "cache-coordinator"),
            GANFRIENDS_LOG_DIR=str(Path(tmp) / "logs-coordinator"),
        ):
            coordinator = Coordinator(store, on_published=recorder.on_published)
            coordinator.take_sample = recorder.timing(coordinator.take_sample)  # type: ignore[method-assign]
            wanted = args.warmup + args.versions
            worker = start_worker(run, "bench", threads=args.threads, device=device)
            try:
                with ServingCoordinator(coordinator, args.poll) as serving:
                    wait_until(
                        lambda: len(recorder.marks) >= wanted,
                        timeout_s=VERSION_TIMEOUT_S * wanted,
                        what=f"{wanted} versions",
                        procs=[worker],
                        serving=serving,
                    )
            finally:
                stop_workers([worker])
                store.close()
    return _window(recorder.marks, recorder.sample_times, args.warmup)


def _window(
    marks: Sequence[Mark], sample_times: Sequence[tuple[float, float]], warmup: int
) -> LiveResult:
    # Published versions are 1, 2, …: the window runs from the publish of version `warmup`
    # (or the first publish) to the last one, and counts the images of the versions after it.
    start = marks[max(warmup - 1, 0)]
    inside = [m for m in marks if m.version > start.version]
    end = inside[-1]
    images = sum(m.images for m in inside)
    window_s = end.at - start.at
    sample_s = sum(s for at, s in sample_times if start.at < at <= end.at)
    return LiveResult(
        images / window_s,
        window_s,
        images,
        inside[0].version,
        end.version,
        end.worker_compute_s - start.worker_compute_s,
        sum(m.close_s for m in inside),
        sample_s,
        end.cpu_s - start.cpu_s,
        [m.images / (m.at - prev.at) for prev, m in zip([start, *inside], inside, strict=False)],
        # The mark of version k closed version k - 1: the previous mark's version was closed
        # right before it, so this difference is the wait between two versions' units.
        [
            m.first_claim - prev.last_submit
            for prev, m in zip([start, *inside], inside, strict=False)
        ],
        [t for m in inside for t in m.in_unit],
        [t for m in inside for t in m.between_units],
    )


# Report --------------------------------------------------------------------------------------


def bench_device(args: argparse.Namespace, device: str) -> float:
    """Baseline, live run, baseline again on `device`; prints the figures, returns the ratio."""
    cfg = model_for(args.image_size, args.features)
    settings = RunSettings()
    unit, batch = settings.images_per_work_unit, settings.batch_size
    print(
        f"\n[{device}] {cfg.image_size}x{cfg.image_size} model, {cfg.g_features} feature maps, "
        f"latent {cfg.latent_dim}; units of {unit} images, micro-batch {batch}, "
        f"{settings.num_workunits_per_update} units/version, samples every "
        f"{settings.sample_every} versions; {args.threads} thread(s)",
        flush=True,
    )
    before = measure_baseline(cfg, unit, batch, args.threads, device, args.rounds)
    _print_baseline("before", before)
    live = live_run(cfg, settings, args, device)
    after = measure_baseline(cfg, unit, batch, args.threads, device, args.rounds)
    _print_baseline("after ", after)
    base = statistics.median(before["textbook"] + after["textbook"])
    ratio = live.images_per_s / base
    print(
        f"live run, versions {live.first_version}-{live.last_version} "
        f"({live.images} images in {live.window_s:.1f} s): {live.images_per_s:.1f} images/s; "
        f"per version {spread(live.version_rates)} images/s"
    )
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(
        f"ratio live / textbook (median of all textbook rounds, {base:.1f} images/s): "
        f"{ratio:.3f}  ({verdict} target >= {TARGET}; load drift between phases shows here)"
    )
    share = live.compute_s / live.window_s
    pairs = [
        u / t
        for rates in (before, after)
        for u, t in zip(rates["unit_gradients"], rates["textbook"], strict=True)
    ]
    speed = statistics.median(pairs)
    print(
        f"load-robust estimate: worker computing {share:.1%} of the window x unit_gradients / "
        f"textbook {speed:.3f} (per interleaved round pair: {spread(pairs)}) = {share * speed:.3f}"
    )
    # The fastest textbook round is the least disturbed one; unit_gradients runs `speed` × it.
    best_textbook = max(before["textbook"] + after["textbook"])
    versions = len(live.version_rates)
    per_version_images = live.images / versions
    idle_s = (live.window_s - live.compute_s) / versions
    projected = per_version_images / (per_version_images / (best_textbook * speed) + idle_s)
    print(
        f"projection for a quiet machine: a version's {per_version_images:.0f} images at the "
        f"best textbook round ({best_textbook:.0f} images/s) x {speed:.3f}, plus the "
        f"{idle_s:.2f} s per version the worker did not compute: {projected:.0f} images/s = "
        f"{projected / best_textbook:.3f} of the best textbook round"
    )
    per_version = live.window_s / len(live.version_rates)
    print(
        f"not computing, per version ({per_version:.2f} s each on average): the synchronous-update "
        f"bubble from the last submit of a version to the first claim of the next "
        f"{spread(live.bubbles)} s; per unit: claim -> submit minus compute (fetch, encode, "
        f"upload) {spread(live.in_unit)} s, submit -> next claim {spread(live.between_units)} s"
    )
    other = live.window_s - live.compute_s
    print(
        f"the window's other {other:.1f} s: claims, downloads, uploads, waiting for closes; "
        f"coordinator: closes {live.close_s:.2f} s, sample grids {live.sample_s:.2f} s (they "
        f"overlap the worker's next units), CPU {live.coordinator_cpu_s:.1f} s in all "
        f"({live.coordinator_cpu_s / live.window_s:.0%} of one core, taken from the worker's "
        f"cores on a machine as small as this one: not in the estimate above)"
    )
    return ratio


def _print_baseline(when: str, rates: dict[str, list[float]]) -> None:
    print(
        f"{when} the live run: textbook loop {spread(rates['textbook'])} images/s, "
        f"unit_gradients {spread(rates['unit_gradients'])} images/s",
        flush=True,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.worker_efficiency",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--image-size", type=int, default=32, choices=(32, 64))
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sqlite",
        help="the run's database: sqlite (default) or postgresql (a throwaway local cluster)",
    )
    parser.add_argument(
        "--features", type=int, help="feature maps (default: 32 for 32x32, 64 for 64x64)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads of the worker and the baseline"
    )
    parser.add_argument(
        "--device",
        default="both",
        choices=("cpu", "cuda", "both"),
        help="both (default): CPU, then CUDA if this machine has a CUDA GPU",
    )
    parser.add_argument("--warmup", type=int, default=2, help="first versions not measured")
    parser.add_argument("--versions", type=int, default=8, help="versions in the measured window")
    parser.add_argument("--rounds", type=int, default=5, help="baseline rounds before and after")
    parser.add_argument(
        "--dataset-images", type=int, default=2048, help="synthetic images in the run"
    )
    parser.add_argument(
        "--poll", type=float, default=0.05, help="coordinator idle poll in seconds (serve's)"
    )
    # Internal: the baseline's child process (see measure_baseline).
    parser.add_argument("--baseline-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--unit", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.baseline_json:
        lower_priority()  # the worker process lowers its priority the same way
        cfg = model_for(args.image_size, args.features)
        times = baseline_rounds(cfg, args.unit, args.batch, args.threads, args.device, args.rounds)
        print(json.dumps(times))
        return 0
    print(
        f"worker_efficiency: one worker in a live {args.backend} run vs the textbook training loop"
    )
    if args.device in ("cpu", "both"):
        bench_device(args, "cpu")
    if args.device in ("cuda", "both"):
        if torch.cuda.is_available():
            bench_device(args, "cuda")
        else:
            print("\n[cuda] no CUDA GPU here: skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
