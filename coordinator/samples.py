"""Sample grids and quality figures: rendered and stored, beside the closes, not between them.

An evaluation (a grid and the sliced Wasserstein distance over 512 images) takes seconds; a
version of a small run closes in a fraction of one. Taken inside the close, every sample held
the next close back and left every worker waiting for it (the demo: ~1.5 s every 50 versions).
Here each runs in its own thread from the weights the close published (tensors that are never
changed in place), at most one at a time; its error is raised in the coordinator's own thread
at the next look, so a lost database or a full disk is handled like any other.

The evaluation's thread (and the sort threads it starts) runs at the lowest CPU priority
where the system sets priority per thread (Linux): the workers' units and the coordinator's
own closes take the cores first. At the default priority it took a core from a worker for
seconds every `sample_every` versions, and the demo's versions after each sample took 2-5
times their usual 0.23 s (benchmarks.demo_compute_share, benchmarks/README.md).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from core.cache import ShardCache
from core.model import ModelConfig, gan_from_parameters
from core.paths import cache_dir
from core.quality import QUALITY_IMAGES, fixed_noise, sample_grid_png, sliced_wasserstein
from core.shards import ShardFetcher
from core.store import Store
from core.training import calibrate_gan

log = logging.getLogger(__name__)

SAMPLE_GRID_IMAGES = 64  # images in a sample grid
SAMPLE_NICE = 19  # the evaluation thread's nice value: the lowest priority

Result = TypeVar("Result")


@dataclass(frozen=True)
class Sampled:
    version: int
    swd: float
    png: bytes


class SampleRenderer:
    """Renders a version's sample grid and quality figure and stores both."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._reals: torch.Tensor | None = None  # the quality figure's real images, once read

    def render(
        self,
        version: int,
        params: Mapping[str, torch.Tensor],
        model: ModelConfig,
        seed: int,
        dataset_size: int,
    ) -> Sampled:
        """The grid and the figure of `version` with its weights `params`, stored."""
        gan = gan_from_parameters(model, params)
        real = self._quality_reals(seed, dataset_size)
        calibrate_gan(gan, real[:256], seed=seed)
        with torch.no_grad():
            grid = gan.G(fixed_noise(model, SAMPLE_GRID_IMAGES, seed))
            fake = gan.G(fixed_noise(model, QUALITY_IMAGES, seed + 1))
        swd = sliced_wasserstein(real, fake, seed=seed)
        png = sample_grid_png(grid)
        self._store.add_sample(version, png, swd)
        if version > 0:  # metrics row v-1 is the close that produced version v
            self._store.set_metric_swd(version - 1, swd)
        return Sampled(version, swd, png)

    def _quality_reals(self, seed: int, dataset_size: int) -> torch.Tensor:
        if self._reals is None:
            gen = torch.Generator().manual_seed(seed)
            count = min(QUALITY_IMAGES, dataset_size)
            picks = torch.randperm(dataset_size, generator=gen)[:count].sort().values.tolist()
            fetcher = ShardFetcher(self._store, ShardCache(cache_dir() / "coordinator"))
            self._reals = fetcher.images(picks)
        return self._reals


def lower_this_threads_priority() -> None:
    """Give the calling thread, and the threads it starts later, the nice value SAMPLE_NICE.

    Linux only: there a thread is a task with a priority of its own, and a new thread takes
    its creator's. Elsewhere the call to set it would name the whole process or, with a
    thread's id, an unrelated one, so the thread keeps its priority."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SAMPLE_NICE)
        except OSError as exc:  # never a reason to skip a sample
            log.debug("could not lower the sample thread's priority: %s", exc)


class BackgroundSample(Generic[Result]):
    """One evaluation at a time in its own thread; `take(version, params)` does the work."""

    def __init__(self, take: Callable[[int, Mapping[str, torch.Tensor]], Result]) -> None:
        self._take = take
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, version: int, params: Mapping[str, torch.Tensor]) -> None:
        """Evaluate `version` in the background; first waits for the one before, if any."""
        self.wait()
        self._thread = threading.Thread(
            target=self._run, args=(version, params), name=f"sample-{version}", daemon=True
        )
        self._thread.start()

    def check(self) -> None:
        """Raise the error of a finished evaluation, if it failed."""
        if self._thread is not None and not self._thread.is_alive():
            self.wait()

    def wait(self) -> None:
        """Wait for the evaluation in flight, if any; raise its error."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self, version: int, params: Mapping[str, torch.Tensor]) -> None:
        lower_this_threads_priority()
        try:
            self._take(version, params)
        except BaseException as exc:  # raised again in the coordinator's thread (`wait`)
            self._error = exc
