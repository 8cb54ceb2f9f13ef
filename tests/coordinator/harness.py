"""Real runs for integration tests: a tiny run in SQLite, worker processes, a coordinator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from coordinator.loop import Coordinator
from coordinator.runs import RunPlan, create_run
from core.codec import decode_named, quantize
from core.config import RunSettings
from core.data import synthetic_images
from core.model import ModelConfig
from core.reference import reference_train
from core.store import Store, open_store
from tests.factories import TINY_MODEL, tiny_settings

DATASET_IMAGES = 60  # 5 units of 12 per epoch: versions of 3 units cross epoch boundaries


@dataclass(frozen=True)
class TinyRun:
    url: str
    path: Path
    model: ModelConfig
    settings: RunSettings
    env: dict[str, str]  # environment for worker processes (private cache dir)

    def images(self) -> torch.Tensor:
        return synthetic_images(DATASET_IMAGES, self.model.image_size, self.settings.seed)

    def store(self) -> Store:
        return open_store(self.url)


def make_tiny_run(tmp_path: Path, url: str | None = None, **changes: object) -> TinyRun:
    """A run of the tiny model in a new SQLite file under `tmp_path`, or in the empty `url`."""
    settings = tiny_settings(**changes)
    path = tmp_path / "run.db" if url is None else tmp_path
    url = f"sqlite:///{path}" if url is None else url
    store = open_store(url, create=True)
    create_run(
        store, RunPlan("test", TINY_MODEL, settings, ("synthetic", DATASET_IMAGES)), progress=False
    )
    store.close()
    env = dict(
        os.environ,
        GANFRIENDS_CACHE_DIR=str(tmp_path / "cache"),
        GANFRIENDS_LOG_DIR=str(tmp_path / "logs"),
    )
    return TinyRun(url, path, TINY_MODEL, settings, env)


def start_worker(
    run: TinyRun, name: str, *extra: str, threads: str | None = "1"
) -> subprocess.Popen[bytes]:
    """A worker process; `threads=None` starts it as the lab service does, with no --threads."""
    command = [
        sys.executable,
        "-m",
        "core.worker_cli",
        "--db",
        run.url,
        *(["--threads", threads] if threads else []),
        "--name",
        name,
        "--quiet",
        *extra,
    ]
    return subprocess.Popen(command, env=run.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_until(store: Store, version: int, timeout_s: float = 120.0) -> Coordinator:
    """Run a coordinator in this process until `version` is published."""
    coordinator = Coordinator(store)
    deadline = time.monotonic() + timeout_s
    while coordinator.version < version:
        if time.monotonic() > deadline:
            raise TimeoutError(f"version {version} not reached; at {coordinator.version}")
        if not coordinator.step():
            time.sleep(0.01)
    coordinator.wait_for_samples()  # as a serving coordinator does when it stops
    return coordinator


def published_params(store: Store, version: int) -> dict[str, torch.Tensor]:
    """The weights workers compute `version` with (fp32 values, whatever they travel as)."""
    weights, _, _ = store.version_weights(version)
    return {name: t.float() for name, t in decode_named(weights, 1 << 30)[0].items()}


def reference_params(
    run: TinyRun, versions: int, settings_at: Callable[[int], RunSettings] | None = None
) -> dict[str, torch.Tensor]:
    """The reference's weights as published: its master weights in the run's weights_precision."""
    state = reference_train(
        run.model, run.settings, run.images(), versions, settings_at=settings_at
    )
    return quantize(state.params, run.settings.weights_precision)


def assert_bitwise_equal(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    different = [name for name in expected if not torch.equal(got[name], expected[name])]
    assert not different, f"not bitwise equal: {different}"


def wait_for(
    predicate: Callable[[], object], timeout_s: float = 60.0, every_s: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every_s)


class Background:
    """A coordinator serving in a thread of the test process."""

    def __init__(self, store: Store) -> None:
        self.coordinator = Coordinator(store)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.coordinator.serve, args=(self.stop, 0.01), daemon=True
        )

    def __enter__(self) -> Coordinator:
        self.thread.start()
        return self.coordinator

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
