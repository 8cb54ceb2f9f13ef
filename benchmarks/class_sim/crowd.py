"""The class's volunteers: worker engines in threads of a child process (or several).

Every volunteer is the real worker engine logged in as its own invited role, in its own thread
(setns(2) puts the thread, and the threads it starts, in its network namespace). The threads
live in `processes` child processes, one by default. More processes would seem closer to a
class, where every volunteer has its own computer, but here they all share two cores with the
server and the coordinator: once the volunteers no longer take turns on one GIL, their burst
of downloads and decodes after every publish takes both cores from the close's critical path
(2026-12-06, 32 volunteers: one process 0.61-0.67 of the pure compute rate, four 0.58-0.60,
eight 0.47-0.52). `--processes` is for machines with cores to spare.

Each process records when every unit's (stand-in) compute started and ended, by the wall
clock, in a file of its own in `intervals`: what `timeline.py` reads.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path

import torch

from benchmarks.class_sim import network
from benchmarks.class_sim.standin import StandInUnits
from core.cache import ShardCache
from core.collector import freeze_startup_objects
from core.config import RunSettings
from core.store import open_store
from core.worker import WorkerEngine, WorkerOptions

STOP_WAIT_S = 60.0


@dataclass(frozen=True)
class VolunteerSpec:
    """What a volunteer's process needs to start it."""

    index: int
    url: str  # its invite's database URL
    netns: str
    seconds_per_image: float
    settings: RunSettings
    cache: Path
    intervals: Path  # a folder: its process writes "volunteer start end" lines (wall clock) there


class Crowd:
    """The volunteers of `specs` in `processes` child processes; `stop()` ends them all."""

    def __init__(self, specs: list[VolunteerSpec], processes: int) -> None:
        context = multiprocessing.get_context("spawn")  # no forked copy of this process's threads
        self._stop = context.Event()
        groups = [specs[i::processes] for i in range(min(processes, len(specs)))]
        self._processes = [
            context.Process(target=_volunteer_process, args=(group, self._stop), daemon=True)
            for group in groups
        ]

    def start(self) -> None:
        for process in self._processes:
            process.start()

    def check(self) -> None:
        """SystemExit if a volunteers' process ended before it was told to."""
        for process in self._processes:
            if process.exitcode is not None:
                raise SystemExit(f"a volunteers' process stopped (exit {process.exitcode})")

    def stop(self) -> None:
        self._stop.set()
        for process in self._processes:
            process.join(STOP_WAIT_S)
            if process.is_alive():
                process.kill()
                process.join()


def _volunteer_process(specs: list[VolunteerSpec], stop: Event) -> None:
    computed: list[str] = []  # list.append is atomic: the engines' threads share it
    to_wall = time.time() - time.monotonic()  # the stand-in times by the monotonic clock
    engines = [_engine(spec, computed, to_wall) for spec in specs]
    freeze_startup_objects()  # as `ganfriends-worker` does before its engine runs
    threads = [
        threading.Thread(
            target=_run_in, args=(spec.netns, engine), daemon=True, name=f"volunteer-{spec.index}"
        )
        for spec, engine in zip(specs, engines, strict=True)
    ]
    for thread in threads:
        thread.start()
    stop.wait()
    for engine in engines:
        engine.stop()
    for thread in threads:
        thread.join(STOP_WAIT_S)
    if specs:
        (specs[0].intervals / f"{os.getpid()}.txt").write_text("".join(computed))


def _engine(spec: VolunteerSpec, computed: list[str], to_wall: float) -> WorkerEngine:
    def record(start: float, end: float, images: int) -> None:
        computed.append(f"{spec.index} {start + to_wall:.4f} {end + to_wall:.4f}\n")

    kind = StandInUnits(spec.settings, spec.seconds_per_image, record)
    options = WorkerOptions(f"v{spec.index}", f"sim{spec.index}", torch.device("cpu"), threads=1)
    return WorkerEngine(
        functools.partial(open_store, spec.url), ShardCache(spec.cache), options,
        kind_for=lambda settings: kind,
    )  # fmt: skip


def _run_in(netns: str, engine: WorkerEngine) -> None:
    network.enter(netns)
    engine.run()
