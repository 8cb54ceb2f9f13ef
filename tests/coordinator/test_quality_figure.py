"""The coordinator's quality figure: the same weights give the same figure, and its ± band."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator import cli, samples
from coordinator.loop import Coordinator
from core.quality import QUALITY_RELATIVE_STD
from tests.coordinator.harness import make_tiny_run
from tests.coordinator.simulate import LocalWorker, run_to


def test_two_evaluations_of_the_same_weights_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixed real subset, noise, patches, directions and calibration: a second coordinator
    (its own empty shard cache, so the real images are fetched again) computes the same figure."""
    monkeypatch.setattr(samples, "QUALITY_IMAGES", 16)  # a subset of the 60 images
    run = make_tiny_run(tmp_path)
    figures = []
    for attempt in range(2):
        monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / f"cache{attempt}"))
        store = run.store()
        try:
            sampled = Coordinator(store).take_sample()
        finally:
            store.dispose()
        figures.append((sampled.swd, sampled.png))
    assert figures[0] == figures[1]
    assert figures[0][0] > 0


def test_status_shows_the_figure_with_its_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))
    run = make_tiny_run(tmp_path)
    store = run.store()
    try:
        swd = Coordinator(store).take_sample().swd
    finally:
        store.dispose()
    assert cli.main(["status", "--db", run.url]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("quality"))
    assert line.endswith(f"{swd:.1f} ± {QUALITY_RELATIVE_STD * swd:.1f}")


def test_status_names_the_best_version_and_how_to_go_back_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))
    run = make_tiny_run(tmp_path, num_workunits_per_update=1, sample_every=1, keep_versions=1)
    store = run.store()
    try:
        coordinator, worker = Coordinator(store), LocalWorker(run, store, "w")
        run_to(coordinator, [worker], 3)
        store.set_metric_swd(2, 1.0)  # version 3 graded far better than any other will be
        run_to(coordinator, [worker], 6)
        best, kept = store.best_quality(), [v.version for v in store.versions()]
    finally:
        store.dispose()
    assert best == (3, 1.0)
    assert 3 in kept and 4 not in kept  # kept although keep_versions is 1
    assert cli.main(["status", "--db", run.url]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("best quality"))
    assert line.endswith("1.0 at version 3 (kept; to go back to it: ganfriends-coordinator "
                         "rollback --to 3)")  # fmt: skip
