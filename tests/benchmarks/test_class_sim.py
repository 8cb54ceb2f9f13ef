"""The class simulation's stand-in compute: valid results, and out of reach of every user; one
simulation at a time on a machine."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmarks.class_sim import network, profiles
from benchmarks.class_sim.__main__ import run_config
from benchmarks.class_sim.standin import StandInUnits
from coordinator import presets
from coordinator.loop import Coordinator
from core.cache import ShardCache
from core.worker import WorkerEngine, WorkerOptions
from tests.coordinator.harness import make_tiny_run
from tests.factories import TINY_MODEL

ROOT = Path(__file__).resolve().parents[2]


def test_stand_in_results_pass_the_coordinators_validation(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path)  # 3 units per version
    intervals: list[tuple[float, float, int]] = []
    kind = StandInUnits(run.settings, 0.001, lambda s, e, n: intervals.append((s, e, n)))
    options = WorkerOptions("sim", "h", torch.device("cpu"), threads=1, max_units=3)
    engine = WorkerEngine(run.store, ShardCache(tmp_path / "c"), options, kind_for=lambda s: kind)
    assert engine.run() == 3
    coordinator = Coordinator(run.store())
    coordinator.step()
    assert coordinator.version == 1  # all three accepted: names, shapes, finite, norm bound
    assert [n for _, _, n in intervals] == [12, 12, 12]
    assert all(end - start >= 0.012 for start, end, _ in intervals)  # 1 ms per image


def test_the_stand_in_is_out_of_reach_of_every_command_and_the_app() -> None:
    # No shipped package may import the benchmarks (an import-linter contract, run by
    # scripts/test) …
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert any(
        c.get("forbidden_modules") == ["benchmarks"]
        and set(c["source_modules"]) == {"core", "coordinator", "client_gui"}
        for c in contracts["contracts"]
    )
    # … and the package that users install does not contain them.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "benchmarks*" not in packages["packages"]["find"]["include"]
    # The worker command offers no way to choose what a unit computes.
    help_text = subprocess.run(
        [sys.executable, "-m", "core.worker_cli", "--help"], capture_output=True, text=True
    ).stdout
    assert "stand" not in help_text.lower() and "kind" not in help_text.lower()


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_profiles_are_ordered_as_devices_are(profile: str) -> None:
    seconds = profiles.seconds_per_image(profile, TINY_MODEL)
    assert 0 < seconds < 1
    if profile != "cpu1":
        assert seconds < profiles.seconds_per_image("cpu1", TINY_MODEL)


def _args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = dict(
        preset=None,
        image_size=64,
        images_per_unit=256,
        inner_steps=1,
        units_per_volunteer=1,
        weights_precision=None,
        precision=None,
        set=[],
    )
    return argparse.Namespace(**(values | given))


def test_a_class_runs_in_its_presets_precisions_unless_told_otherwise() -> None:
    _, settings = run_config(_args(preset="class"), 8)
    assert (settings.weights_precision, settings.precision) == ("bf16", "bf16")
    assert settings.inner_steps == presets.CLASS_SETTINGS.inner_steps
    _, told = run_config(_args(preset="class", weights_precision="fp32", precision="fp32"), 8)
    assert (told.weights_precision, told.precision) == ("fp32", "fp32")
    _, plain = run_config(_args(), 8)
    assert (plain.weights_precision, plain.precision) == ("fp32", "fp32")
    assert plain.num_workunits_per_update == 8


def test_set_changes_the_presets_settings_after_the_class_size() -> None:
    change = ["inner_steps=64,images_per_work_unit=4096", "num_workunits_per_update=16"]
    _, settings = run_config(_args(preset="class", set=change), 32)
    assert (settings.inner_steps, settings.images_per_work_unit) == (64, 4096)
    assert settings.num_workunits_per_update == 16  # --set wins over N x units per volunteer
    assert settings.outer_lr == presets.CLASS_SETTINGS.outer_lr  # the rest stays the preset's
    with pytest.raises(SystemExit, match="RunSettings key"):
        run_config(_args(preset="class", set=["inner_stepz=64"]), 32)


def test_a_second_simulation_on_the_machine_is_refused_before_it_touches_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The namespaces have fixed names: a second simulation's set-up tore down the first one's,
    # whose volunteers then waited on dead connections and never finished.
    monkeypatch.setattr(network, "LOCK_FILE", tmp_path / "class-sim.lock")
    monkeypatch.setattr(network.os, "geteuid", lambda: 0)  # as root, as a simulation runs
    touched: list[str] = []  # nothing of the machine's network may be touched
    monkeypatch.setattr(network, "teardown", lambda: touched.append("teardown"))

    def built(*_: object) -> Iterator[None]:
        touched.append("built")
        yield None

    monkeypatch.setattr(network, "_built", built)
    with (
        network._alone(),  # a simulation running
        pytest.raises(SystemExit, match="another class simulation is running"),
        network.topology("none", 4),
    ):
        pass
    assert touched == []
    with network._alone():  # and once it has finished, the next one may run
        pass
