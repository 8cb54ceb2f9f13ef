"""The one-command demo: outputs written, weights independent of --workers (up to 3), and a
new run sized for 4 workers or more."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from coordinator import demo
from coordinator.cli import main
from coordinator.demo import DEMO_SETTINGS, demo_settings_for
from core.config import RunSettings
from core.export import load_model
from core.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def run_demo(tmp_path, monkeypatch, workers: int):
    monkeypatch.setenv("GANFRIENDS_DATA_DIR", str(tmp_path / f"data{workers}"))
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / f"cache{workers}"))
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))
    out = tmp_path / f"out{workers}"
    assert main(["demo", "--workers", str(workers), "--rounds", "3", "--out", str(out)]) == 0
    return out


def test_demo_writes_its_outputs_and_weights_do_not_depend_on_workers(
    tmp_path, monkeypatch, capsys
):
    one = run_demo(tmp_path, monkeypatch, 1)
    two = run_demo(tmp_path, monkeypatch, 2)
    for out in (one, two):
        assert (out / "latest.png").read_bytes().startswith(b"\x89PNG")
        assert (out / "training.png").read_bytes().startswith(b"\x89PNG")
    gan_one, version_one = load_model(one / "model.safetensors")
    gan_two, version_two = load_model(two / "model.safetensors")
    assert version_one == version_two == 3
    params_one, params_two = dict(gan_one.named_parameters()), dict(gan_two.named_parameters())
    assert all(torch.equal(params_one[n], params_two[n]) for n in params_one)
    assert "finished at version 3" in capsys.readouterr().out
    store = open_store(f"sqlite:///{tmp_path / 'data2' / 'demo.db'}")
    assert store.metrics()[-1].swd is not None  # the plot's quality curve has its point


def test_a_demo_run_made_for_4_workers_has_4_units_of_the_same_step() -> None:
    assert demo_settings_for(1) == demo_settings_for(3) == DEMO_SETTINGS
    wide = demo_settings_for(4)
    assert demo_settings_for(8) == wide
    assert (wide.num_workunits_per_update, wide.images_per_work_unit, wide.batch_size) == (
        4,
        32,
        32,
    )
    per_step = DEMO_SETTINGS.num_workunits_per_update * DEMO_SETTINGS.images_per_work_unit
    assert wide.num_workunits_per_update * wide.images_per_work_unit == per_step == 128
    assert (
        dataclasses.replace(
            wide, images_per_work_unit=64, batch_size=64, num_workunits_per_update=2
        )
        == DEMO_SETTINGS
    )


def test_the_demo_sizes_a_new_run_for_its_workers_and_says_when_a_resumed_one_is_not(
    tmp_path, capsys
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    store = demo._open_or_create(url, None, 4)
    assert RunSettings.from_dict(store.get_run().settings) == demo_settings_for(4)
    store.dispose()
    assert "4 units of 32 images" in capsys.readouterr().err
    store = demo._open_or_create(url, None, 4)  # resumed as it is, no note
    store.dispose()
    assert "note:" not in capsys.readouterr().err
    store = demo._open_or_create(url, None, 6)
    store.dispose()
    assert "2 of the 6 workers wait every version" in capsys.readouterr().err
