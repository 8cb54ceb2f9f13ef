"""The worker in its own process against a real SQLite run, and the controller that drives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from coordinator.runs import RunPlan, create_run
from core.cache import ShardCache
from core.model import ModelConfig
from core.store import open_store
from core.throttle import DonationPolicy
from core.worker import WorkerEngine, WorkerEvent, WorkerOptions
from core.worker_process import FINISHED_REASON, Controller, WorkerProcess
from tests.coordinator.harness import make_tiny_run, wait_for
from tests.factories import tiny_settings
from tests.stand_ins import Clock

# Units of ~1-2 s on one CPU thread, so a test can act while one is being computed.
SLOW_MODEL = ModelConfig(image_size=64, latent_dim=32, g_features=32, d_features=32)
SLOW_IMAGES = 256  # 4 units of 64 images: version 0 has work left after a few units


# The controller, against a stand-in engine -----------------------------------------------------
class FakeEngine:
    def __init__(self) -> None:
        self.state = "idle"
        self.calls: list[tuple[str, ...]] = []

    def pause(self, reason: str = "paused by you") -> None:
        self.calls.append(("pause", reason))

    def resume(self) -> None:
        self.calls.append(("resume",))

    def stop(self) -> None:
        self.calls.append(("stop",))


def controller_for(engine: FakeEngine, policy: DonationPolicy, clock: Clock, **kw) -> Controller:
    return Controller(engine, policy, clock=clock, monotonic=clock, **kw)


def test_snooze_pauses_with_a_countdown_and_resumes_when_it_ends():
    engine, clock = FakeEngine(), Clock()
    policy = DonationPolicy(snooze_until=clock.now + 2 * 3600 + 14 * 60)
    controller = controller_for(engine, policy, clock)
    controller.tick()
    controller.tick()  # nothing changed: the engine is not poked again
    assert engine.calls == [("pause", "snoozed for 2 h 14 min")]
    clock.now += 60
    controller.tick()
    assert engine.calls[-1] == ("pause", "snoozed for 2 h 13 min")
    clock.now += 2 * 3600 + 13 * 60
    controller.tick()
    assert engine.calls[-1] == ("resume",)


def test_the_persons_pause_wins_over_the_policy_and_resume_returns_to_it():
    engine, clock = FakeEngine(), Clock()
    controller = controller_for(engine, DonationPolicy(snooze_until=clock.now + 600), clock)
    controller.handle({"command": "pause", "reason": "paused by you"})
    assert engine.calls[-1] == ("pause", "paused by you")
    controller.handle({"command": "resume"})
    assert engine.calls[-1] == ("pause", "snoozed for 10 min")
    controller.handle({"command": "policy", "policy": DonationPolicy().to_json()})
    assert engine.calls[-1] == ("resume",)


def test_idle_only_follows_the_reported_idle_time_as_it_grows():
    engine, clock = FakeEngine(), Clock()
    controller = controller_for(engine, DonationPolicy(idle_only=True), clock, idle_s=100.0)
    controller.tick()
    assert engine.calls == [("pause", "waiting until you are idle (idle 100 s of 120 s)")]
    clock.now += 20  # no new report: still idle, 20 s longer
    controller.tick()
    assert engine.calls[-1] == ("resume",)
    controller.handle({"command": "idle", "seconds": 0.0})  # the person is back
    assert engine.calls[-1] == ("pause", "waiting until you are idle (idle 0 s of 120 s)")
    controller.handle({"command": "idle", "seconds": None})  # this desktop cannot tell
    assert engine.calls[-1] == ("resume",)


def test_finish_pauses_after_the_unit_in_hand_and_at_once_without_one():
    engine, clock = FakeEngine(), Clock()
    controller = controller_for(engine, DonationPolicy(duty_cycle=0.5), clock)
    engine.state = "computing"
    controller.handle({"command": "finish"})
    assert engine.calls == []  # the unit goes on
    assert controller.after_unit(4.0) == 0.0  # no rest: it pauses instead
    assert engine.calls == [("pause", FINISHED_REASON)]
    controller.handle({"command": "resume"})
    assert controller.after_unit(4.0) == pytest.approx(4.0)  # back to the duty cycle
    engine.state = "idle"
    controller.handle({"command": "finish"})
    assert engine.calls[-1] == ("pause", FINISHED_REASON)


def test_a_policy_pause_during_finish_keeps_it_paused_afterwards():
    engine, clock = FakeEngine(), Clock()
    controller = controller_for(engine, DonationPolicy(idle_only=True), clock, idle_s=500.0)
    engine.state = "computing"
    controller.handle({"command": "finish"})
    controller.handle({"command": "idle", "seconds": 0.0})  # the unit is abandoned
    controller.handle({"command": "idle", "seconds": 500.0})
    assert engine.calls[-1] == ("pause", FINISHED_REASON)


def test_a_higher_usage_cap_cuts_the_current_rest_short():
    engine, clock = FakeEngine(), Clock()
    controller = controller_for(engine, DonationPolicy(duty_cycle=0.2), clock)
    assert controller.after_unit(1.0) == pytest.approx(4.0)
    controller.handle({"command": "policy", "policy": DonationPolicy(duty_cycle=0.8).to_json()})
    assert engine.calls == [("resume",)]  # wakes the engine from its rest
    assert controller.after_unit(1.0) == pytest.approx(0.25)


def test_stop_and_unknown_commands():
    engine, clock = FakeEngine(), Clock()
    controller = controller_for(engine, DonationPolicy(), clock)
    assert controller.handle({"command": "dance"}) is True
    assert controller.handle({"command": "stop"}) is False
    assert engine.calls == [("stop",)]


# The engine's rest hook, in this process --------------------------------------------------------
def test_engine_rests_after_each_unit_as_the_hook_says(tmp_path):
    run = make_tiny_run(tmp_path)
    events: list[WorkerEvent] = []
    work: list[float] = []

    def after_unit(work_s: float) -> float:
        work.append(work_s)
        return 0.3

    options = WorkerOptions(
        "t", "h", torch.device("cpu"), threads=1, max_units=3, after_unit=after_unit
    )
    engine = WorkerEngine(run.store, ShardCache(tmp_path / "shards"), options, events.append)
    started = time.monotonic()
    assert engine.run() == 3
    assert len(work) == 2 and all(w > 0 for w in work)  # the third unit ends the run: no rest
    assert time.monotonic() - started >= 0.6
    resting = [e.message for e in events if e.message.startswith("Resting")]
    assert resting == ["Resting 0.3 s to stay within your usage cap"] * 2


# The real process ------------------------------------------------------------------------------
def make_slow_run(tmp_path: Path) -> str:
    settings = tiny_settings(
        images_per_work_unit=64, num_workunits_per_update=4, batch_size=2, lease_s=600.0
    )
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    store = open_store(url, create=True)
    create_run(
        store, RunPlan("slow", SLOW_MODEL, settings, ("synthetic", SLOW_IMAGES)), progress=False
    )
    store.close()
    return url


class Watch:
    """Collects a worker process's events from the test thread."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.events: list[WorkerEvent] = []
        self.seen = 0  # events before this index were looked at by `until`

    def poll(self) -> list[WorkerEvent]:
        new = self.worker.poll_events()
        self.events.extend(new)
        return new

    def until(
        self, predicate: Callable[[WorkerEvent], bool], timeout_s: float = 60.0
    ) -> WorkerEvent:
        """The first event not looked at yet for which `predicate` holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            while self.seen < len(self.events):
                event = self.events[self.seen]
                self.seen += 1
                if predicate(event):
                    return event
            time.sleep(0.02)
        raise TimeoutError(f"no such event; last: {[e.message for e in self.events[-5:]]}")

    def quiet_for(self, seconds: float) -> list[WorkerEvent]:
        """Events that arrive within `seconds` (marked as looked at)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(0.05)
        new, self.seen = self.events[self.seen :], len(self.events)
        return new


def worker_for(url: str, tmp_path: Path, **kw) -> WorkerProcess:
    return WorkerProcess(
        url,
        device="cpu",
        threads=1,
        name="gui",
        cache_dir=tmp_path / "cache",
        log_dir=tmp_path / "logs",
        **kw,
    )


def leased(url: str) -> list[int]:
    return [u.unit_index for u in open_store(url).version_units(0) if u.status == "leased"]


def computing(event: WorkerEvent) -> bool:
    return event.state == "computing"


@pytest.mark.slow
def test_start_runs_units_in_a_low_priority_child_and_stop_ends_it(tmp_path):
    run = make_tiny_run(tmp_path)
    worker = worker_for(run.url, tmp_path)
    worker.set_policy(DonationPolicy(duty_cycle=0.1))
    assert worker.poll_events() == [] and worker.pid is None
    worker.start()
    watch = Watch(worker)
    try:
        assert worker.alive and worker.pid not in (None, os.getpid())
        finished = watch.until(lambda e: e.kind == "unit_finished")
        if hasattr(os, "getpriority"):  # POSIX: the child runs at a lower priority (higher nice)
            ours = os.getpriority(os.PRIO_PROCESS, 0)
            assert os.getpriority(os.PRIO_PROCESS, worker.pid) > ours or ours == 19
        assert finished.images == 12 and finished.metrics and "d_loss" in finished.metrics
        watch.until(lambda e: e.message.startswith("Resting"))  # the 10% usage cap
    finally:
        worker.stop()
    watch.poll()
    assert not worker.alive and worker.pid is None
    assert watch.events[-1].state == "stopped"
    assert not [e for e in watch.events if e.kind == "error"]
    assert {"connecting", "downloading", "computing", "uploading"} <= {
        e.state for e in watch.events
    }
    assert leased(run.url) == []
    assert (tmp_path / "logs" / "ganfriends-worker-process.log").exists()


@pytest.mark.slow
def test_snooze_and_pause_hold_back_new_units(tmp_path):
    url = make_slow_run(tmp_path)
    store = open_store(url)
    worker = worker_for(url, tmp_path)
    worker.set_policy(DonationPolicy(snooze_until=time.time() + 3600))
    worker.start()
    watch = Watch(worker)
    try:
        watch.until(lambda e: e.message == "Paused: snoozed for 1 h")
        assert not [e for e in watch.quiet_for(1.0) if computing(e)]
        worker.set_policy(DonationPolicy())
        unit = watch.until(computing).unit_index
        worker.pause("paused by you")
        watch.until(lambda e: e.message == "Paused: paused by you")
        results = len(store.version_results(0))
        assert leased(url) == []  # the abandoned unit went back at once
        assert not [e for e in watch.quiet_for(1.5) if computing(e) or e.kind == "unit_finished"]
        assert len(store.version_results(0)) == results
        worker.resume()
        watch.until(computing)
        assert not [e for e in watch.events if e.kind == "unit_finished" and e.unit_index == unit]
    finally:
        worker.stop()


@pytest.mark.slow
def test_finish_current_unit_then_stop_releases_the_lease(tmp_path):
    url = make_slow_run(tmp_path)
    store = open_store(url)
    worker = worker_for(url, tmp_path)
    worker.start()
    watch = Watch(worker)
    try:
        first = watch.until(computing).unit_index
        worker.finish_current_unit()
        done = watch.until(lambda e: e.kind == "unit_finished")
        assert done.unit_index == first
        watch.until(lambda e: e.message == f"Paused: {FINISHED_REASON}")
        assert not [e for e in watch.quiet_for(1.0) if computing(e)]
        worker.resume()
        second = watch.until(computing).unit_index
        assert leased(url) == [second]
    finally:
        worker.stop()
    watch.poll()
    assert watch.events[-1].message == "Stopped"
    unit = next(u for u in store.version_units(0) if u.unit_index == second)
    # Released at once, not left to its 600 s lease; the release gives the attempt back.
    assert (unit.status, unit.attempts) == ("pending", 0)


@pytest.mark.slow
def test_a_killed_child_is_reported_once(tmp_path):
    run = make_tiny_run(tmp_path)
    worker = worker_for(run.url, tmp_path)
    worker.start()
    watch = Watch(worker)
    try:
        watch.until(lambda e: e.state == "connecting")
        pid = worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not worker.alive, timeout_s=10)
        last = watch.until(lambda e: e.kind == "error")
        assert last.state == "error"
        assert "stopped unexpectedly" in last.message and "exit code -9" in last.message
        assert "SIGKILL" in last.message
        assert watch.poll() == []  # said once
    finally:
        worker.stop()
    assert watch.poll() == []


@pytest.mark.slow
def test_an_unusable_device_is_an_error_event_not_a_crash(tmp_path):
    run = make_tiny_run(tmp_path)
    worker = WorkerProcess(
        run.url, device="tpu", name="gui", cache_dir=tmp_path / "cache", log_dir=tmp_path / "l"
    )
    worker.start()
    watch = Watch(worker)
    event = watch.until(lambda e: e.kind == "error")
    assert event.message.startswith("Cannot compute on 'tpu': unknown device")
    wait_for(lambda: not worker.alive, timeout_s=20)
    assert watch.quiet_for(0.2) == []  # an orderly end: no "stopped unexpectedly" on top
    worker.stop()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_child_stops_and_releases_its_unit_when_the_app_dies(tmp_path):
    url = make_slow_run(tmp_path)
    ready = tmp_path / "ready"
    script = f"""
import time
from collections.abc import Callable
from pathlib import Path
from core.worker_process import WorkerProcess
if __name__ == "__main__":
    worker = WorkerProcess({url!r}, device="cpu", threads=1, name="orphan",
                           cache_dir=Path({str(tmp_path / "cache")!r}))
    worker.start()
    while True:
        if any(e.state == "computing" for e in worker.poll_events()):
            Path({str(ready)!r}).write_text(str(worker.pid))
        time.sleep(0.05)
"""
    app = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        # Exists but empty for a moment: write_text creates the file, then writes the pid.
        wait_for(lambda: ready.exists() and ready.read_text().strip() != "", timeout_s=60)
        child = int(ready.read_text())
        app.kill()
        app.wait()
        wait_for(lambda: not _alive(child), timeout_s=20)
    finally:
        if app.poll() is None:
            app.kill()
    assert leased(url) == []


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended; only its parent has to reap it
