"""benchmarks.demo_compute_share: `--set` runs the real demo with the run's settings changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.demo_compute_share import run_demo
from core.config import RunSettings
from core.store import open_store


@pytest.mark.slow
def test_settings_are_changed_before_the_demo_trains(tmp_path: Path) -> None:
    run_demo(str(tmp_path), 1, 0.05, ["num_workunits_per_update=3"])
    store = open_store(f"sqlite:///{tmp_path}/data/demo.db")
    try:
        run = store.get_run()
        # `demo` resumed the run that `init` and `set` made: with --fresh it would have made
        # its own, with the demo's 2 units. (Whether 3 s of demo closed a version, or even
        # registered its worker, depends on the machine's load: not asserted.)
        assert RunSettings.from_dict(run.settings).num_workunits_per_update == 3
    finally:
        store.dispose()
