"""Python's cyclic garbage collector, told which objects live as long as the process.

A full collection walks every object the collector tracks. After a worker or coordinator has
imported torch, SQLAlchemy and the rest, that is ~370,000 objects and ~180 ms on one core, and
a worker's unit (or the coordinator's close) stood still meanwhile: the demo saw one every few
seconds (benchmarks.demo_timeline, its `gc.collect(2)` row). The modules, classes and functions
alive once a process has started live until it ends, so they are collected once and then
frozen (`gc.freeze`): full collections walk only what was made afterwards.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect the garbage made so far, then keep every object alive now out of the
    collector's walks. For a process's entry point, once it has started up; a later call
    freezes the objects made since, which is harmless."""
    gc.collect()
    gc.freeze()
