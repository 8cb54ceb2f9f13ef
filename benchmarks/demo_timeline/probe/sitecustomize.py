"""Imported by every Python process started with this folder on PYTHONPATH (benchmarks.demo_timeline).

When GANFRIENDS_TIMELINE names a file, the methods in TARGETS are wrapped as their modules are
imported: each call appends "pid name start end thread_cpu_s" to the file. Measurement only;
no command or app puts this folder on the path.
"""

from __future__ import annotations

import functools
import gc
import importlib.abc
import importlib.util
import os
import sys
import threading
import time
from typing import Any

TARGETS = {
    "core.worker": [("WorkerEngine", n) for n in ("_fetch", "_load_version", "_compute", "_submit")]
    + [("WorkerEngine", "_wait_for_work")],
    "core.store.store_workers": [("WorkersMixin", "claim")],
    "core.shards": [("ShardFetcher", "images")],
    "core.store.store_run": [
        ("RunMixin", "publish_version"),
        ("RunMixin", "store_optimizer_state"),
    ],
    "coordinator.loop": [("Coordinator", n) for n in ("step", "_validate", "_close")],
    "core.store.store_coordinator": [
        ("CoordinatorMixin", n)
        for n in ("tidy", "expire_leases", "resolve_result", "accept_results")
    ],
}
_lock = threading.Lock()


def _wrap(cls: Any, name: str, out: Any) -> None:
    function = getattr(cls, name)
    label = f"{cls.__name__}.{name}"

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start, cpu = time.time(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            line = f"{os.getpid()} {label} {start:.6f} {time.time():.6f} "
            line += f"{time.thread_time() - cpu:.6f}\n"
            with _lock:
                out.write(line)

    setattr(cls, name, timed)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the TARGETS modules as usual, then wraps their methods once they have run."""

    def __init__(self, out: Any) -> None:
        self._out = out

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in TARGETS:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, out = spec.loader, self._out
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            for cls_name, name in TARGETS[fullname]:
                _wrap(getattr(module, cls_name), name, out)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _time_collections(out: Any) -> None:
    """Log each collection of the cyclic garbage collector's oldest generation as a call."""
    started: list[tuple[float, float]] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append((time.time(), time.thread_time()))
        elif started:
            start, cpu = started.pop()
            with _lock:
                out.write(
                    f"{os.getpid()} gc.collect(2) {start:.6f} {time.time():.6f} "
                    f"{time.thread_time() - cpu:.6f}\n"
                )

    gc.callbacks.append(callback)


if os.environ.get("GANFRIENDS_TIMELINE"):
    # Open for the life of the process: one line per call, line-buffered.
    _out = open(os.environ["GANFRIENDS_TIMELINE"], "a", buffering=1)  # noqa: SIM115
    sys.meta_path.insert(0, _Finder(_out))
    _time_collections(_out)
