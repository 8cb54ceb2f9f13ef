"""The usage cap covers everything donating runs, and the Donate page shows what it measured."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from client_gui.usage_meter import Usage, UsageMeter, capped_duty_cycle
from tests.client_gui.test_window import paste_and_connect, wait_connected
from tests.coordinator.harness import make_tiny_run

BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_meter_adds_up_the_worker_and_the_others():
    worker = subprocess.Popen([sys.executable, "-c", BUSY])
    other = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        meter = UsageMeter()
        assert meter.usage() is None
        for _ in range(4):
            meter.sample(time.monotonic(), worker.pid, [os.getpid(), other.pid, None])
            time.sleep(1.0)
        usage = meter.usage()
        assert usage is not None and usage.seconds >= 2.5
        assert usage.worker > 0.0  # a busy loop (on a machine others share: any share)
        assert usage.total > usage.worker  # the other busy loop counts too
        assert 0.0 < usage.worker_fraction < 1.0
    finally:
        worker.kill()
        other.kill()
        worker.wait()
        other.wait()


def test_the_worker_gets_what_the_others_leave_of_the_cap():
    half_each = Usage(total=1.0, worker=0.5, seconds=30.0)
    assert capped_duty_cycle(0.6, half_each, 0.1) == 0.3
    assert capped_duty_cycle(0.1, half_each, 0.1) == 0.1  # never below the minimum
    assert capped_duty_cycle(1.0, half_each, 0.1) == 1.0  # no cap: nothing to cover
    assert capped_duty_cycle(0.6, None, 0.1) == 0.6  # not measured yet


def test_the_cap_covers_the_coordinator_and_the_page_says_so(
    qtbot, make_window, fake_workers, tmp_path
):
    run = make_tiny_run(tmp_path)
    window = make_window()
    paste_and_connect(qtbot, window, run.url)
    wait_connected(qtbot, window)
    session = window.session
    session.update_settings(duty_cycle=0.6)
    session.start_donating()
    qtbot.waitUntil(lambda: bool(fake_workers.made) and fake_workers.last.alive)
    session.meter.usage = lambda: Usage(total=1.0, worker=0.5, seconds=30.0)
    for _ in range(5):
        session._measure_usage()
    assert fake_workers.last.policy.duty_cycle == 0.3
    shown = window.donate_page.usage_readout.text()
    assert "100% of one core" in shown and "target 60%" in shown and "computes 30%" in shown
    assert session.settings.duty_cycle == 0.6  # the volunteer's own setting is kept
