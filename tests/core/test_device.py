"""Device selection and the default thread count of workers sharing a computer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from core import device
from core.device import (
    DeviceError,
    default_threads,
    live_local_workers,
    register_local_worker,
    select_device,
)


def test_cpu_and_auto_resolve_here():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_device_names_are_refused(spec):
    with pytest.raises(DeviceError, match="unknown device"):
        select_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this computer has a CUDA GPU")
def test_cuda_without_a_gpu_says_why():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        select_device("cuda:0")


def test_workers_on_one_computer_share_its_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "cpu_count", lambda: 8)
    register_local_worker(tmp_path)  # this process
    assert default_threads(tmp_path) == 8
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f"{sleeper.pid}.pid").write_text(str(sleeper.pid))
        assert default_threads(tmp_path) == 4  # two workers: half the cores each
    finally:
        sleeper.kill()
        sleeper.wait()
    assert default_threads(tmp_path) == 8  # the dead worker's pid file no longer counts
    assert live_local_workers(tmp_path) == [os.getpid()]


def test_never_fewer_than_one_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "cpu_count", lambda: 1)
    register_local_worker(tmp_path)
    (tmp_path / "1.pid").write_text("1")  # pid 1 is always alive
    assert default_threads(tmp_path) == 1
