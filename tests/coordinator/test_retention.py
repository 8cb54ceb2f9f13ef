"""Retention: the run database does not grow with the number of versions trained."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordinator.loop import Coordinator
from tests.coordinator.harness import make_tiny_run
from tests.coordinator.simulate import LocalWorker, run_to, sqlite_size

pytestmark = pytest.mark.slow

EARLY, LATE = 20, 200  # versions at the two measurements


def row_counts(path: Path) -> dict[str, int]:
    tables = ("model_versions", "results", "work_units", "samples")
    with sqlite3.connect(path) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    conn.close()
    return counts


def test_database_size_does_not_grow_with_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    # Every retention cap is reached by EARLY, so both sizes are steady-state sizes;
    # checkpoint_every=50 makes checkpoints 0, 50, 100 … that only keep_checkpoints bounds.
    # One small unit per version keeps 200 versions fast; retention is per version, not unit.
    run = make_tiny_run(
        tmp_path,
        images_per_work_unit=4,
        num_workunits_per_update=1,
        sample_every=10,
        keep_samples=2,
        checkpoint_every=50,
        keep_checkpoints=2,
    )
    store = run.store()
    coordinator = Coordinator(store)
    worker = LocalWorker(run, store, "w")

    run_to(coordinator, [worker], EARLY)
    early_disk, early_used = sqlite_size(run.path)
    run_to(coordinator, [worker], LATE, timeout_s=300)
    late_disk, late_used = sqlite_size(run.path)

    assert late_used <= 2 * early_used, (early_used, late_used)
    assert late_disk <= 2 * early_disk, (early_disk, late_disk)
    counts = row_counts(run.path)
    # keep_versions newest + keep_checkpoints + the best graded version (it may be among them)
    assert counts["model_versions"] <= 3 + 2 + 1
    assert counts["results"] == 0  # a close deletes its version's results
    assert counts["work_units"] <= 2 * run.settings.num_workunits_per_update
    # keep_samples, plus the grid taken after a close, plus the best version's
    assert counts["samples"] <= 2 + 1 + 1
