"""Samples are rendered beside the closes: a slow evaluation never holds the next version back,
every due sample is still stored, and a sample's failure reaches the coordinator's loop."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from coordinator import samples
from coordinator.loop import Coordinator
from coordinator.samples import Sampled
from core.store import DatabaseUnavailable
from tests.coordinator.harness import make_tiny_run
from tests.coordinator.simulate import LocalWorker, run_to


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(samples, "QUALITY_IMAGES", 16)


def step_to(coordinator: Coordinator, worker: LocalWorker, version: int) -> None:
    """`run_to` without its final wait for the samples."""
    deadline = time.monotonic() + 60
    while coordinator.version < version:
        assert time.monotonic() < deadline, f"version {version} not reached"
        worker.work_one()
        coordinator.step()


def test_closes_go_on_while_a_sample_renders(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, sample_every=2)
    coordinator = Coordinator(run.store())
    worker = LocalWorker(run, run.store(), "w")
    rendering, finish = threading.Event(), threading.Event()
    render = coordinator._sample
    taken: list[int] = []

    def slow_sample(version: int, params: Mapping[str, torch.Tensor]) -> Sampled:
        rendering.set()
        assert finish.wait(60)
        taken.append(version)
        return render(version, params)

    coordinator._samples._take = slow_sample
    step_to(coordinator, worker, 2)
    assert rendering.wait(10)
    step_to(coordinator, worker, 3)  # version 2's sample is still rendering
    assert taken == []
    finish.set()
    run_to(coordinator, [worker], 4)
    coordinator.wait_for_samples()
    assert taken == [2, 4]
    store = run.store()
    assert [s.version for s in store.samples(10)] == [4, 2]
    # Rendered from the weights version 4 was published with, as one taken now is:
    rendered = (store.samples(1)[0].png, store.samples(1)[0].swd)
    again = coordinator.take_sample()
    assert rendered == (again.png, again.swd)


def test_a_failed_sample_is_raised_in_the_loop(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, sample_every=2)
    coordinator = Coordinator(run.store())
    worker = LocalWorker(run, run.store(), "w")

    def lost(version: int, params: Mapping[str, torch.Tensor]) -> Sampled:
        raise DatabaseUnavailable("the database went away")

    coordinator._samples._take = lost
    step_to(coordinator, worker, 2)
    rendering = coordinator._samples._thread
    assert rendering is not None
    rendering.join(10)
    with pytest.raises(DatabaseUnavailable, match="went away"):
        coordinator.step()
    coordinator.step()  # raised once: the loop goes on


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_a_sample_renders_at_the_lowest_priority_and_the_loop_keeps_its_own() -> None:
    def own_priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = own_priority()
    if before >= samples.SAMPLE_NICE:
        pytest.skip(f"this process already runs at nice {before}")
    seen: dict[str, int] = {}

    def take(version: int, params: Mapping[str, torch.Tensor]) -> None:
        seen["sample"] = own_priority()
        with ThreadPoolExecutor(max_workers=1) as pool:  # as the quality figure's sorts
            seen["sort"] = pool.submit(own_priority).result()

    background = samples.BackgroundSample(take)
    background.start(1, {})
    background.wait()
    assert seen == {"sample": samples.SAMPLE_NICE, "sort": samples.SAMPLE_NICE}
    assert own_priority() == before
