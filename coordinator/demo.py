"""The one-command demo: embedded SQLite, shipped images, a coordinator and local workers."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coordinator.admin import export_model
from coordinator.demo_progress import DemoProgress
from coordinator.loop import INTRA_OP_THREADS, Coordinator
from coordinator.plot import write_training_plot
from coordinator.runs import RunPlan, check_dataset, create_run
from coordinator.samples import Sampled
from core.collector import freeze_startup_objects
from core.config import RunSettings
from core.model import ModelConfig
from core.paths import data_dir
from core.store import NoRun, RunHeld, RunLock, Store, make_engine, open_store
from core.training import intra_op_threads

DEMO_MODEL = ModelConfig(image_size=32, latent_dim=64, g_features=32, d_features=32)
DEMO_SETTINGS = RunSettings(
    # Small steps, many of them: at 128 images per Adam step the synthetic shapes appear in
    # fewer images than at 256 with lr 5e-4 (quality 144 after 77k images vs 349 after 102k:
    # python -m benchmarks.demo_settings).
    images_per_work_unit=64,  # one micro-batch: ~0.1 s on one core, 2 workers share a version
    num_workunits_per_update=2,
    batch_size=64,
    lr=1e-3,  # 5x DCGAN's 2e-4: with Adam's beta1 0.5 still stable here, and much faster
    compute_threads=1,  # every unit on one thread: no worker's core count changes the weights
    lease_s=30.0,
    backup_after_s=10.0,
    sample_every=50,  # a grid and the quality figure every ~15 s; they cost the workers' cores
)
DEMO_IMAGES_PER_STEP = DEMO_SETTINGS.images_per_work_unit * DEMO_SETTINGS.num_workunits_per_update
WIDE_DEMO_UNITS = 4  # units per version of a demo run made for this many workers or more
# The demo's image sets by name, as `--dataset` specs: the Noto emoji shipped in core/assets
# (assets/build_emoji_set.py) or the procedural shapes (assets/synthetic_recipe.md).
DEMO_SYNTHETIC_IMAGES = 10_000  # the synthetic demo set's size
DEMO_DATASETS = {"emoji": "emoji", "synthetic": f"synthetic:{DEMO_SYNTHETIC_IMAGES}"}
DEMO_DATASET = "synthetic"  # the default: emoji samples are not yet recognisable in 5 minutes (benchmarks/README.md)
WORKER_STOP_S = 10.0  # seconds a worker gets to release its lease and exit


@dataclass(frozen=True)
class DemoOptions:
    workers: int  # local worker processes
    minutes: float | None  # stop after this long (None: only --rounds)
    rounds: int | None  # stop after this many versions in this invocation
    out: Path  # where sample grids, the plot and the model go
    fresh: bool  # start a new run instead of resuming
    dataset: str | None = None  # a DEMO_DATASETS name for a new run (None: DEMO_DATASET)


def demo_db_path() -> Path:
    return data_dir() / "demo.db"


def demo_settings_for(workers: int) -> RunSettings:
    """A new demo run's settings: 128 images per Adam step, as 2 units of 64 or, made for 4
    workers or more, 4 units of 32 (each unit one micro-batch), so that 4 workers all compute.

    At equal images the two reach the same quality (benchmarks.demo_settings, 150k-230k
    images: 76-119 with 4 units, 84-141 with 2). 2 workers keep 2 units: with 4 they would
    claim and upload twice per version (compute share 0.63 against 0.65).
    """
    if workers < WIDE_DEMO_UNITS:
        return DEMO_SETTINGS
    size = DEMO_IMAGES_PER_STEP // WIDE_DEMO_UNITS
    return dataclasses.replace(
        DEMO_SETTINGS,
        images_per_work_unit=size,
        num_workunits_per_update=WIDE_DEMO_UNITS,
        batch_size=size,
    )


def run_demo(opts: DemoOptions) -> int:
    # The workers take the cores; the coordinator's share of the work is small, and a second
    # intra-op thread here would only wait for a core the workers are using.
    with intra_op_threads(INTRA_OP_THREADS):
        return _run_demo(opts)


def _run_demo(opts: DemoOptions) -> int:
    path = demo_db_path()
    url = f"sqlite:///{path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = RunLock(make_engine(url))  # held until this process ends
    if opts.fresh:
        if not lock.acquire():  # never delete the database of a demo that is running
            raise RunHeld(f"another demo or coordinator is using {path}; stop it first")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    store = _open_or_create(url, opts.dataset, opts.workers)
    samples_dir = opts.out / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    bar = DemoProgress(rounds=opts.rounds, minutes=opts.minutes)
    coordinator = Coordinator(
        store,
        on_published=bar.published,
        on_sampled=lambda s: _save_sample(s, samples_dir, bar),
        lock=lock,
    )
    target = coordinator.version + opts.rounds if opts.rounds else None
    print(f"demo database: {path}", file=sys.stderr)
    workers = _start_workers(url, opts.workers, coordinator.settings.compute_threads)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + opts.minutes * 60 if opts.minutes else None
    freeze_startup_objects()
    try:
        while not stop.is_set():
            if target is not None and coordinator.version >= target:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not coordinator.step():
                store.wait_for_results(0.05)  # a submit ends the wait at once
            bar.tick()
            _check_workers(workers)
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop_workers(workers)
        bar.close()
    return _write_outputs(store, coordinator, opts.out, interrupted=stop.is_set())


def _open_or_create(url: str, dataset: str | None, workers: int) -> Store:
    store = open_store(url, create=True)
    try:
        run = store.get_run()
    except NoRun:
        name = dataset or DEMO_DATASET
        settings = demo_settings_for(workers)
        print(
            f"creating the demo run on the {name} dataset "
            f"({settings.num_workunits_per_update} units of {settings.images_per_work_unit} "
            "images per version)…",
            file=sys.stderr,
        )
        plan = RunPlan("demo", DEMO_MODEL, settings, check_dataset(DEMO_DATASETS[name]))
        create_run(store, plan, progress=False)
        return store
    if dataset is not None:
        print(
            f"resuming the demo run of {run.dataset_size:,} images; to train on {dataset} "
            "instead, add --fresh (the current run is deleted)",
            file=sys.stderr,
        )
    units = RunSettings.from_dict(run.settings).num_workunits_per_update
    if workers > units:
        print(
            f"note: this demo run has {units} units per version, so {workers - units} of the "
            f"{workers} workers wait every version; --fresh starts a run sized for them",
            file=sys.stderr,
        )
    return store


def _start_workers(url: str, count: int, threads: int) -> list[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-m",
        "core.worker_cli",
        "--db",
        url,
        "--threads",
        str(threads),
        "--quiet",
    ]
    return [subprocess.Popen([*command, "--name", f"demo-worker-{i + 1}"]) for i in range(count)]


def _check_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() not in (None, 0):
            raise RuntimeError(
                f"a demo worker exited with code {proc.returncode}; see the log in the user log folder"
            )


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # releases its lease at once
    for proc in workers:
        try:
            proc.wait(WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()


def _save_sample(sample: Sampled, folder: Path, bar: DemoProgress) -> None:
    (folder / f"version_{sample.version:06d}.png").write_bytes(sample.png)
    bar.swd = sample.swd


def _write_outputs(store: Store, coordinator: Coordinator, out: Path, *, interrupted: bool) -> int:
    coordinator.finish()  # the optimizer state; the last sample may still be rendering
    samples_dir = out / "samples"
    final = samples_dir / f"version_{coordinator.version:06d}.png"
    if not final.exists():
        sample = coordinator.take_sample()
        final.write_bytes(sample.png)
    (out / "latest.png").write_bytes(final.read_bytes())
    plot = out / "training.png"
    write_training_plot(store.metrics(), plot)
    model = out / "model.safetensors"
    export_model(store, model)
    how = "interrupted" if interrupted else "finished"
    print(f"\n{how} at version {coordinator.version}. Results in {out}/:")
    print(f"  latest.png          the newest sample grid (every grid is in {samples_dir}/)")
    print("  training.png        losses and the quality figure over versions")
    print("  model.safetensors   the trained model (core.export.load_model reads it)")
    print(
        f"resume with: ganfriends-coordinator demo --out {out}   (or serve --db sqlite:///{demo_db_path()})"
    )
    return 0
