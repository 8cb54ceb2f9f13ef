"""Try it locally: the demo run is created once and served by a coordinator process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from client_gui import local_demo
from client_gui.local_demo import LocalDemo, LocalDemoError
from core.store import open_store
from tests.coordinator.harness import wait_for

pytestmark = pytest.mark.slow


@pytest.mark.skipif(sys.platform != "linux", reason="adoption checks /proc/PID/cmdline")
def test_demo_run_is_created_served_adopted_and_stopped(tmp_path, monkeypatch):
    monkeypatch.setitem(local_demo.DEMO_DATASETS, "synthetic", "synthetic:256")  # fewer images
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = LocalDemo(url)
    demo.ensure_run()
    store = open_store(url)
    run = store.get_run()
    store.dispose()
    expected = ("local demo", 256, local_demo.LOCAL_SAMPLE_EVERY)
    assert (run.name, run.dataset_size, run.settings["sample_every"]) == expected
    demo.ensure_run()  # a second time: the run is kept, not made again
    demo.start()
    again = LocalDemo(url)
    try:
        assert demo.alive
        assert demo._process is not None
        cmdline = Path(f"/proc/{demo._process.pid}/cmdline")
        wait_for(lambda: b"serve" in cmdline.read_bytes(), timeout_s=10)  # exec has happened
        assert f"--poll-s\0{local_demo.POLL_S}".encode() in cmdline.read_bytes()
        # A new app session finds the coordinator the last one left running and adopts it.
        again.start()
        assert again.alive and again._process is None
    finally:
        demo.stop()
        again.stop()
    assert not demo.alive and not (tmp_path / local_demo.PID_FILE).exists()


def test_a_broken_demo_database_says_to_delete_it(tmp_path):
    path = tmp_path / "demo.db"
    path.write_bytes(b"this is not a database")
    with pytest.raises(LocalDemoError, match="delete it to start a new demo"):
        LocalDemo(f"sqlite:///{path}").ensure_run()
