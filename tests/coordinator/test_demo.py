"""The one-command demo, end to end: outputs written, and weights independent of --workers."""

from __future__ import annotations

import pytest
import torch

from coordinator.cli import main
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
