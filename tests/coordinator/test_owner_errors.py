"""Failures outside the program (a full disk, an unwritable path, a read-only or someone else's
database file) reach the owner as one line with a remedy, never as a traceback."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from coordinator import cli, loop
from coordinator.loop import Coordinator
from core.store import DatabaseUnavailable, StoreError, open_store
from tests.coordinator.harness import TinyRun, make_tiny_run, wait_for
from tests.coordinator.simulate import LocalWorker, run_to
from tests.coordinator.test_cli import one_line_error, succeeds
from tests.mounts import fill, make_read_only, small_disk
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def quiet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Logs and caches under tmp_path; no database from the environment; handlers removed."""
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFRIENDS_DB", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def tiny_run(tmp_path: Path) -> TinyRun:
    return make_tiny_run(tmp_path)


# export and samples to a path that cannot be written -------------------------------------------


@pytest.mark.parametrize("command", ["export", "samples"])
def test_writing_under_a_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, tmp_path: Path, command: str
) -> None:
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "out"
    line = one_line_error(capsys, cli.main, [command, "--db", tiny_run.url, "--out", str(out)])
    assert line.startswith(f"ganfriends-coordinator {command}: cannot write {out}: ")
    assert line.endswith("give a path in a folder you can write to")


@pytest.mark.parametrize("command", ["export", "samples"])
def test_writing_to_a_read_only_filesystem_is_one_line(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, tmp_path: Path, command: str
) -> None:
    with small_disk(tmp_path / "ro", 1) as folder:
        make_read_only(folder)
        out = folder / "out"
        argv = [command, "--db", tiny_run.url, "--out", str(out)]
        line = one_line_error(capsys, cli.main, argv)
    assert line == (
        f"ganfriends-coordinator {command}: cannot write {out}: Read-only file system; "
        "give a path in a folder you can write to"
    )


def test_export_to_a_full_disk_says_to_free_space(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "full", 1) as folder:
        fill(folder)
        out = folder / "m.safetensors"
        line = one_line_error(capsys, cli.main, ["export", "--db", tiny_run.url, "--out", str(out)])
        assert not (folder / "m.safetensors.tmp").exists()
    assert line == (
        f"ganfriends-coordinator export: cannot write {out}: No space left on device; "
        f"free space on {folder}"
    )


# Commands that only look leave the database file as it is ----------------------------------------

LOOKING = [
    ["status"],
    ["status", "--json"],
    ["workers"],
    ["export", "--out", "{out}/m.safetensors"],
    ["samples", "--out", "{out}/grids"],
]


def _journal_mode(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


def _to_rollback_journal(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = DELETE")
    finally:
        connection.close()


@pytest.mark.parametrize("argv", LOOKING, ids=lambda argv: argv[0] + "-".join(argv[1:2]))
def test_looking_leaves_a_rollback_journal_file_so(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, tmp_path: Path, argv: list[str]
) -> None:
    _to_rollback_journal(tiny_run.path)
    before = tiny_run.path.read_bytes()
    argv = [a.format(out=tmp_path) for a in argv]
    succeeds(capsys, cli.main, [argv[0], "--db", tiny_run.url, *argv[1:]])
    assert _journal_mode(tiny_run.path) == "delete"
    assert tiny_run.path.read_bytes() == before
    assert not Path(f"{tiny_run.path}-wal").exists()


@pytest.mark.parametrize("journal", ["wal", "delete"])
@pytest.mark.parametrize("argv", LOOKING, ids=lambda argv: argv[0] + "-".join(argv[1:2]))
def test_looking_works_on_a_read_only_filesystem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], journal: str
) -> None:
    with small_disk(tmp_path / "ro", 16) as folder:
        run = make_tiny_run(folder)
        if journal == "delete":
            _to_rollback_journal(run.path)
        assert _journal_mode(run.path) == journal
        make_read_only(folder)
        argv = [a.format(out=tmp_path) for a in argv]
        succeeds(capsys, cli.main, [argv[0], "--db", run.url, *argv[1:]])


def test_looking_writes_nothing_on_postgresql(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_server: PostgresServer,
    pg_database: str,
) -> None:
    """The commands' transactions are read-only there: any write would fail the command."""
    run = make_tiny_run(tmp_path, postgres_server.database_url(pg_database))
    for argv in [*LOOKING, ["volunteers"]]:
        argv = [a.format(out=tmp_path) for a in argv]
        succeeds(capsys, cli.main, [argv[0], "--db", run.url, *argv[1:]])
    with pytest.raises(StoreError, match="read-only transaction"):
        open_store(run.url, read_only=True).set_status("paused")


# A full disk under the database ----------------------------------------------------------------


def _closed_without_tidy(folder: Path) -> tuple[TinyRun, Coordinator, LocalWorker]:
    """A run at version 2 whose last close is still in the WAL (the next idle pass tidies)."""
    run = make_tiny_run(folder)
    coordinator = Coordinator(run.store())
    worker = LocalWorker(run, run.store(), "w")
    run_to(coordinator, [worker], 2)
    coordinator._compaction.wait()  # none still runs when the disk fills up
    return run, coordinator, worker


def test_a_full_disk_at_the_wal_checkpoint_is_disk_full(tmp_path: Path) -> None:
    """The checkpoint runs beside the loop (coordinator/compaction.py), which logs its error."""
    with small_disk(tmp_path / "disk", 24) as folder:
        run, coordinator, _ = _closed_without_tidy(folder)
        filler = fill(folder)
        with pytest.raises(StoreError) as raised:
            coordinator.store.compact()  # the checkpoint must grow run.db
        filler.unlink()
        coordinator.store.compact()  # and works once there is room
    # DiskFull: a DatabaseUnavailable, which `serve` waits out (the test below).
    assert isinstance(raised.value, DatabaseUnavailable)
    assert str(raised.value) == (
        f"disk full while checkpointing the WAL into {run.path}: free space on {folder}"
    )


def test_serve_waits_out_a_full_disk_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "RECONNECT_INITIAL_S", 0.02)
    monkeypatch.setattr(loop, "RECONNECT_MAX_S", 0.05)
    monkeypatch.setattr(loop, "TIDY_EVERY_S", 0.0)
    monkeypatch.setattr(loop, "TIDY_AFTER_CLOSES", 2)
    with small_disk(tmp_path / "disk", 24) as folder:
        _, coordinator, worker = _closed_without_tidy(folder)
        filler = fill(folder)
        stop = threading.Event()
        serving = threading.Thread(target=coordinator.serve, args=(stop, 0.01))
        with caplog.at_level(logging.WARNING, logger="coordinator.loop"):
            serving.start()
            try:
                wait_for(lambda: _retries(caplog) > 0)
                time.sleep(1.0)  # many retries, each failing again
                filler.unlink()
                wait_for(lambda: "the database works again" in caplog.text)
                deadline = time.monotonic() + 60
                while coordinator.version < 4:  # and it goes on serving
                    assert time.monotonic() < deadline
                    worker.work_one()
                    time.sleep(0.01)
            finally:
                stop.set()
                serving.join(30)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [
        # The idle pass's tidy deletes first; its checkpoint runs beside the loop.
        f"disk full while writing to the database: free space on {folder}; "
        "waiting, and going on when it works again",
        "the database works again; continuing at version 2",
    ]


def _retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum("disk full while" in r.getMessage() for r in caplog.records)


def test_a_full_disk_on_the_postgresql_server_is_disk_full(
    postgres_server: PostgresServer, pg_database: str
) -> None:
    """The run's database lives in a tablespace on a small filesystem, which fills up."""
    if postgres_server.data_dir is None:
        pytest.skip("needs the test's own cluster (a tablespace on a small filesystem)")
    place = Path(tempfile.mkdtemp(prefix="ganfriends-pgdisk-"))  # the server's user reaches it
    place.chmod(0o755)
    space = f"space_{pg_database}"
    with small_disk(place / "disk", 24) as folder:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        postgres_server.execute(f"CREATE TABLESPACE {space} LOCATION '{folder}'")
        try:
            postgres_server.execute(f'ALTER DATABASE "{pg_database}" SET TABLESPACE {space}')
            url = postgres_server.database_url(pg_database)
            run = make_tiny_run(place, url, lease_s=2)  # the failed submit's lease ends soon
            store = run.store()
            coordinator = Coordinator(store)
            worker = LocalWorker(run, store, "w")
            run_to(coordinator, [worker], 1)
            filler = fill(folder)
            with pytest.raises(StoreError) as raised:
                run_to(coordinator, [worker], 3)
            filler.unlink()
            run_to(coordinator, [worker], 3)  # room again: it goes on
            coordinator.watchdog.stop()
            store.dispose()
        finally:
            postgres_server.drop_database(pg_database)
            postgres_server.execute(f"DROP TABLESPACE IF EXISTS {space}")
    shutil.rmtree(place)
    assert isinstance(raised.value, DatabaseUnavailable)
    said = str(raised.value)
    assert said.startswith(
        "disk full while writing to the database: free space on the disk of the database "
        "server at postgresql+psycopg2://postgres:***@"
    )
    assert said.endswith(": No space left on device)")


# A PostgreSQL server with every connection slot taken ------------------------------------------

SMALL_MAX_CONNECTIONS = 12


@pytest.fixture(scope="module")
def small_server() -> Iterator[PostgresServer]:
    """A cluster of its own that allows few connections, so a test can take them all."""
    server = PostgresServer.start(max_connections=SMALL_MAX_CONNECTIONS)
    if server.data_dir is None:
        pytest.skip("needs the test's own cluster (GANFRIENDS_TEST_PG_URL names another)")
    yield server
    server.stop()


def _take_every_slot(server: PostgresServer) -> list[Any]:
    taken = []
    while True:
        try:
            taken.append(server.connect())
        except psycopg2.OperationalError as exc:
            assert "too many clients already" in str(exc)
            return taken


@pytest.mark.postgres
def test_serve_waits_for_a_free_connection_slot(
    small_server: PostgresServer, tmp_path: Path
) -> None:
    run = make_tiny_run(tmp_path, small_server.database_url(small_server.create_database()))
    taken = _take_every_slot(small_server)
    command = [sys.executable, "-m", "coordinator.cli", "serve", "--db", run.url]
    serving = subprocess.Popen(command, env=run.env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(serving.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: lines, timeout_s=60)
        time.sleep(2.0)  # it retries meanwhile, and says nothing more
        assert serving.poll() is None, lines
        for connection in taken:
            connection.close()
        wait_for(lambda: any(line.startswith("serving from version 0") for line in lines))
    finally:
        serving.send_signal(signal.SIGTERM)
        code = serving.wait(30)
        reader.join(10)
    assert code == 0, lines
    assert lines[0].startswith(
        "ganfriends-coordinator serve: the database server at postgresql+psycopg2://postgres:***@"
    )
    assert lines[0].endswith(
        "has no free connection slot (FATAL:  sorry, too many clients already); one frees when "
        "another client disconnects, or its administrator raises max_connections; waiting\n"
    )
    assert [line.split(":")[0] for line in lines] == [
        "ganfriends-coordinator serve",
        "serving from version 0; Ctrl-C stops\n",
        "stopped at version 0\n",
    ], lines


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_writing_on_a_read_only_filesystem_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, journal: str
) -> None:
    with small_disk(tmp_path / "ro", 16) as folder:
        run = make_tiny_run(folder)
        if journal == "delete":
            _to_rollback_journal(run.path)
        make_read_only(folder)
        line = one_line_error(capsys, cli.main, ["pause", "--db", run.url])
    verb = "open" if journal == "wal" else "write"  # WAL: its -shm cannot be made
    assert line.startswith(f"ganfriends-coordinator pause: cannot {verb} the database at {run.url}")
    assert line.endswith("on a disk that is not mounted read-only")
