"""The bridge turns worker events into signals on the GUI thread, and notices a dead worker."""

from __future__ import annotations

from client_gui.background import BackgroundRunner
from client_gui.worker_bridge import WorkerBridge, WorkerConfig
from core.events import WorkerEvent

CONFIG = WorkerConfig("sqlite:///x.db", "cpu", 1, "tester")


def make_bridge(qtbot, fake_workers):
    runner = BackgroundRunner()
    bridge = WorkerBridge(runner, fake_workers)
    bridge.start(CONFIG)
    assert bridge.running and bridge.state == "starting"
    qtbot.waitUntil(lambda: bool(fake_workers.made) and fake_workers.last.alive, timeout=2000)
    return bridge, fake_workers.last, runner


def test_events_become_signals(qtbot, fake_workers):
    bridge, process, _ = make_bridge(qtbot, fake_workers)
    assert process.calls[0][0] == "policy" and process.calls[1] == ("start", None)
    process.queued += [
        WorkerEvent("state", "computing", "Computing unit 3 — 0%", unit_index=3, progress=0.0),
        WorkerEvent("progress", "computing", "Computing unit 3 — 20%", progress=0.2),
        WorkerEvent("progress", "computing", "Computing unit 3 — 40%", progress=0.4),
    ]
    with qtbot.waitSignal(bridge.progress_changed, timeout=2000) as progress:
        pass
    # Two progress events in one poll: only the newest is shown.
    assert progress.args == [0.4, "Computing unit 3 — 40%"]
    assert bridge.state == "computing" and bridge.progress == 0.4
    done = WorkerEvent(
        "unit_finished",
        "idle",
        "Finished unit 3 in 1.0 s",
        version=0,
        unit_index=3,
        images=12,
        compute_s=1.0,
        metrics={"d_loss": 1.3, "g_loss": 0.7},
    )
    process.queued.append(done)
    with qtbot.waitSignal(bridge.unit_finished, timeout=2000) as finished:
        pass
    assert finished.args == [done]


def test_connection_lost_is_said_once_per_outage(qtbot, fake_workers):
    bridge, process, _ = make_bridge(qtbot, fake_workers)
    lost: list[str] = []
    bridge.connection_lost.connect(lost.append)
    process.queued += [
        WorkerEvent("error", "error", "Cannot use the database (down); retrying in 1 s"),
        WorkerEvent("error", "error", "Cannot use the database (down); retrying in 2 s"),
    ]
    bridge.poll()
    assert lost == ["Cannot use the database (down); retrying in 1 s"]
    process.queued += [
        WorkerEvent("state", "idle", "Waiting: no work right now"),
        WorkerEvent("error", "error", "Cannot use the database (down again); retrying in 1 s"),
    ]
    bridge.poll()
    assert len(lost) == 2


def test_a_worker_that_dies_is_reported(qtbot, fake_workers):
    bridge, process, _ = make_bridge(qtbot, fake_workers)
    process.die()
    with qtbot.waitSignal(bridge.worker_stopped, timeout=2000) as stopped:
        pass
    assert "stopped unexpectedly" in stopped.args[0]
    assert not bridge.running and bridge.state == "error"


def test_shutdown_while_the_process_is_being_made_never_starts_it(qtbot, fake_workers):
    bridge = WorkerBridge(BackgroundRunner(), fake_workers)
    bridge.start(CONFIG)
    called = []
    bridge.shutdown(lambda: called.append(True))
    assert called == [True] and not bridge.running
    qtbot.waitUntil(lambda: bool(fake_workers.made), timeout=2000)
    qtbot.wait(100)
    assert fake_workers.last.calls == []  # made, but never started


def test_shutdown_stops_in_the_background_and_calls_back(qtbot, fake_workers):
    bridge, process, _ = make_bridge(qtbot, fake_workers)
    called = []
    bridge.shutdown(lambda: called.append(True))
    qtbot.waitUntil(lambda: called == [True], timeout=5000)
    assert ("stop", 10.0) in process.calls
    assert not bridge.running and bridge.state == "stopped"


def test_a_device_error_is_kept_and_not_called_a_lost_connection(qtbot, fake_workers):
    bridge, process, _ = make_bridge(qtbot, fake_workers)
    lost: list[str] = []
    stopped: list[str] = []
    bridge.connection_lost.connect(lost.append)
    bridge.worker_stopped.connect(stopped.append)
    message = "Cannot compute on 'cuda:3': there is no GPU cuda:3; this computer has 1"
    process.queued.append(WorkerEvent("error", "error", message))
    bridge.poll()
    process.die()  # then it exits on its own
    qtbot.waitUntil(lambda: stopped == [message], timeout=2000)
    assert lost == [] and bridge.message == message
