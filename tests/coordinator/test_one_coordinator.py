"""One coordinator per run, on SQLite and PostgreSQL, with real `serve` processes.

A second `serve` is refused at once with who holds the run; once the holder dies it starts.
A coordinator frozen (SIGSTOP) while a second one takes over writes nothing when it wakes and
exits with a line naming the new holder; the run ends bitwise equal to the reference trainer.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from coordinator.cli import EXIT_RUN_HELD, main
from coordinator.loop import Coordinator
from core.store import RunLock
from tests.coordinator.harness import (
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
    start_worker,
    stop_processes,
    wait_for,
)
from tests.postgres import ENDS_SESSIONS, PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.integration, *ENDS_SESSIONS]

VERSIONS = 5
LEASE_S = 3.0  # the holder lease in these tests: a coordinator silent this long is replaced

# `ganfriends-coordinator serve` with a short holder lease, so a frozen holder is replaced soon.
SERVE = f"""
import sys
from core.store import fence
fence.HOLDER_LEASE_S = {LEASE_S}
fence.HOLDER_BEAT_S = 0.3
from coordinator.cli import main
sys.exit(main(["serve", "--db", sys.argv[1]]))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> TinyRun:
    if request.param == "sqlite":
        return make_tiny_run(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = request.getfixturevalue("pg_database")
    server.make_durable(database)
    return make_tiny_run(tmp_path, server.database_url(database))


class Serving:
    """A `serve` process whose stderr goes to a file (a pipe could fill and block it)."""

    def __init__(self, run: TinyRun, name: str) -> None:
        self.err = Path(run.env["GANFRIENDS_LOG_DIR"]).parent / f"{name}.stderr"
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVE, run.url],
                env=run.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def exit_code(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the coordinator did not exit; its stderr: {self.stderr()}")


def _holder_pid(run: TinyRun) -> int:
    store = run.store()
    try:
        return store.holder().pid
    finally:
        store.dispose()


def _version(run: TinyRun) -> int:
    store = run.store()
    try:
        return store.get_run().version
    finally:
        store.dispose()


def _freeze_outside_a_write(proc: subprocess.Popen[bytes], run: TinyRun) -> None:
    """SIGSTOP `proc` at a moment it holds no SQLite write lock (it would stop everyone).

    A coordinator frozen inside a PostgreSQL transaction is handled by the takeover (it ends
    the frozen holder's sessions), so there any moment will do.
    """
    for _ in range(200):
        proc.send_signal(signal.SIGSTOP)
        if run.url.startswith("postgresql"):
            return
        probe = sqlite3.connect(run.path, timeout=0.05)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return
        except sqlite3.OperationalError:  # locked: let it finish that transaction first
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        finally:
            probe.close()
    pytest.fail("the coordinator never left its write transaction")


def _finish_and_compare(
    run: TinyRun, serving: Serving, workers: list[subprocess.Popen[bytes]]
) -> None:
    """Let `serving` reach VERSIONS, stop it, and compare the run with the reference."""
    store = run.store()
    try:
        target = max(VERSIONS, store.get_run().version + 2)  # it serves at least two versions
        wait_for(lambda: store.get_run().version >= target, timeout_s=180)
        assert serving.proc.poll() is None, serving.stderr()
        serving.proc.send_signal(signal.SIGTERM)
        assert serving.exit_code(30) == 0, serving.stderr()
        final = store.get_run().version
        got = published_params(store, final)
        published = Counter(e.version for e in store.events(10_000) if e.kind == "published")
        rejected = sum(w.rejected for w in store.workers())
        metrics = [(m.version, m.units, m.parked_units) for m in store.metrics()]
    finally:
        store.dispose()
        stop_processes(workers)
    assert_bitwise_equal(got, reference_params(run, final))
    assert published == Counter(range(1, final + 1))  # each version published exactly once
    assert rejected == 0  # no honest result was refused by a stale coordinator
    units = run.settings.num_workunits_per_update
    assert metrics == [(v, units, 0) for v in range(final)]


def test_a_second_coordinator_is_refused_until_the_first_dies(run: TinyRun) -> None:
    workers = [start_worker(run, f"w{i}") for i in range(2)]
    first = Serving(run, "first")
    try:
        wait_for(lambda: _holder_pid(run) == first.proc.pid, timeout_s=60)
        second = Serving(run, "second")
        assert second.exit_code(30) == EXIT_RUN_HELD
        lines = second.stderr().strip().splitlines()
        assert len(lines) == 1, lines  # one line, no traceback
        assert f"another coordinator serves this run (pid {first.proc.pid} on host" in lines[0]
        assert _holder_pid(run) == first.proc.pid
        wait_for(lambda: _version(run) >= 1, timeout_s=120)
        first.proc.send_signal(signal.SIGKILL)  # a holder that dies frees the run at once
        first.proc.wait()
        third = Serving(run, "third")
        wait_for(lambda: _holder_pid(run) == third.proc.pid, timeout_s=30)
        _finish_and_compare(run, third, workers)
    finally:
        stop_processes([first.proc, *workers, *([third.proc] if "third" in locals() else [])])


@pytest.mark.parametrize("end_sessions", [False, True], ids=["frozen", "frozen+sessions-ended"])
def test_a_frozen_coordinator_that_wakes_after_a_takeover_writes_nothing(
    run: TinyRun, end_sessions: bool, request: pytest.FixtureRequest
) -> None:
    postgres = run.url.startswith("postgresql")
    if end_sessions and not postgres:
        pytest.skip("sessions are PostgreSQL's")
    workers = [start_worker(run, f"w{i}") for i in range(2)]
    first = Serving(run, "first")
    second: Serving | None = None
    try:
        wait_for(lambda: _version(run) >= 1, timeout_s=120)
        _freeze_outside_a_write(first.proc, run)
        if end_sessions:  # its lock and connections die with them: the second takes over at once
            server: PostgresServer = request.getfixturevalue("postgres_server")
            assert server.terminate_sessions(run.url.rsplit("/", 1)[1]) > 0
        else:
            time.sleep(LEASE_S + 0.5)  # past the holder lease: frozen, as far as anyone knows
        second = Serving(run, "second")
        wait_for(lambda: _holder_pid(run) == second.proc.pid, timeout_s=60)
        wait_for(lambda: _version(run) >= 3, timeout_s=120)  # the second serves
        first.proc.send_signal(signal.SIGCONT)
        assert first.exit_code(60) == EXIT_RUN_HELD
        said = first.stderr()
        assert f"another coordinator took this run over (pid {second.proc.pid} on host" in said
        assert "Traceback" not in said
        _finish_and_compare(run, second, workers)
    finally:
        first.proc.send_signal(signal.SIGCONT)
        stop_processes([first.proc, *workers, *([second.proc] if second else [])])


@pytest.mark.parametrize("fresh", [False, True], ids=["resume", "fresh"])
def test_a_demo_on_a_served_database_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fresh: bool,
) -> None:
    monkeypatch.setenv("GANFRIENDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))
    database = tmp_path / "data" / "demo.db"
    database.parent.mkdir()
    run = make_tiny_run(database, f"sqlite:///{database}")
    store = run.store()
    lock = RunLock(store.engine)
    Coordinator(store, lock=lock)  # serving the demo's database
    try:
        args = ["demo", "--rounds", "1", "--out", str(tmp_path / "out")]
        assert main([*args, *(["--fresh"] if fresh else [])]) == EXIT_RUN_HELD
    finally:
        lock.release()
        store.dispose()
    said = capsys.readouterr().err
    if fresh:
        assert f"another demo or coordinator is using {database}" in said
    else:
        assert f"another coordinator serves this run (pid {os.getpid()} on host" in said
    assert database.exists() and run.store().get_run().name == "test"  # nothing deleted
