"""A process's start-up objects leave the collector's walks; its garbage is collected first."""

from __future__ import annotations

import gc
import weakref

from core.collector import freeze_startup_objects


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_live_objects_are_frozen_and_garbage_cycles_collected_first() -> None:
    live = [_Node() for _ in range(1000)]
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
    cycle = weakref.ref(a)
    del a, b
    frozen_before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert cycle() is None, "garbage alive at start-up was frozen, not collected"
        assert gc.get_freeze_count() >= frozen_before + len(live)
    finally:
        gc.unfreeze()  # the test process collects as before
