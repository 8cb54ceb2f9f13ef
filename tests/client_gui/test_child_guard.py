"""Children of the app end with it: the pipe launcher, and the real app killed mid-donation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client_gui import local_demo
from client_gui.child_guard import GuardedChild
from client_gui.local_demo import LocalDemo
from tests.coordinator.harness import wait_for

posix_only = pytest.mark.skipif(os.name != "posix", reason="the pipe guard is POSIX's")
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
SLEEPER = "tests.client_gui.sleep_forever"
PARENT = (
    "import sys, time\n"
    "from client_gui.child_guard import GuardedChild\n"
    f"child = GuardedChild({SLEEPER!r}, [])\n"
    "print(child.process.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def gone(pid: int) -> bool:
    """Ended (a zombie nobody reaped counts: it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


@posix_only
def test_closing_the_guard_ends_the_child():
    child = GuardedChild(SLEEPER, [])
    time.sleep(0.5)
    assert child.process.poll() is None
    child.close()
    assert child.process.wait(10) == -signal.SIGTERM


@posix_only
@linux_only
def test_the_child_ends_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    time.sleep(0.5)
    assert not gone(child_pid)
    parent.kill()
    parent.wait()
    wait_for(lambda: gone(child_pid), timeout_s=10)


@pytest.mark.slow
@linux_only
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_app_ends_the_coordinator_and_the_worker(tmp_path, monkeypatch, sig):
    """The real app, donating on the local demo, is killed: nothing it started lives on."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(Path.cwd()))
    for name, folder in (
        ("GANFRIENDS_CONFIG_DIR", "config"),
        ("GANFRIENDS_DATA_DIR", "data"),
        ("GANFRIENDS_CACHE_DIR", "cache"),
        ("GANFRIENDS_LOG_DIR", "logs"),
        ("XDG_CONFIG_HOME", "xdg"),
    ):
        env[name] = str(tmp_path / folder)
        monkeypatch.setenv(name, str(tmp_path / folder))
    # The demo run, made small beforehand.
    monkeypatch.setitem(local_demo.DEMO_DATASETS, "synthetic", "synthetic:256")
    LocalDemo().ensure_run()
    (tmp_path / "config").mkdir()
    settings = {"local_demo": True, "donating": True, "threads": 1, "device": "cpu"}
    (tmp_path / "config" / "settings.json").write_text(json.dumps(settings))
    app = subprocess.Popen(
        [sys.executable, "-m", "client_gui.app", "--minimized"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: set[int] = set()
    try:

        def started() -> bool:
            commands = [command_line(pid) for pid in descendants(app.pid)]
            coordinator = any(b"coordinator.cli" in c and b"serve" in c for c in commands)
            worker = any(b"multiprocessing" in c and b"spawn_main" in c for c in commands)
            return coordinator and worker

        wait_for(started, timeout_s=90)
        time.sleep(3)  # the worker imports torch and claims a unit
        children = descendants(app.pid)
        app.send_signal(sig)
        app.wait(30)
        wait_for(lambda: all(gone(pid) for pid in children), timeout_s=30)
    finally:
        if app.poll() is None:
            app.kill()
        for pid in children:  # a failed run leaves nothing behind either
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
