"""Fixtures shared by every test package: the PostgreSQL server the harness starts."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections.abc import Iterator
from types import TracebackType

import pytest

from coordinator.compaction import THREAD_NAME as COMPACTION_THREAD
from coordinator.watchdog import Watchdog
from core.logs import HANDLER_NAME
from tests.postgres import PostgresServer, is_psycopg2_copy_noise


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the PostgreSQL server `postgres` (scripts/test reruns them).

    A test uses it through its fixtures, or as the "postgresql" case of a backend parameter
    whose fixture asks for the server by name (`request.getfixturevalue`).
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "postgres_server" in getattr(item, "fixturenames", ()) or "postgresql" in params:
            item.add_marker(pytest.mark.postgres)


def pytest_report_header() -> str:
    chosen = os.environ.get("GANFRIENDS_TEST_PG_BIN")
    return f"PostgreSQL server binaries: {chosen or 'the installed ones'}"


USER_DIRS = ("GANFRIENDS_DATA_DIR", "GANFRIENDS_CACHE_DIR", "GANFRIENDS_LOG_DIR")


@pytest.fixture(scope="session", autouse=True)
def _user_dirs_of_this_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite never reads or writes the user's own data, cache and log folders (a demo
    database, downloaded shards, a benchmark's calibration); tests that want their own
    folders still set these variables themselves."""
    saved = {name: os.environ.get(name) for name in USER_DIRS}
    root = tmp_path_factory.mktemp("user-dirs")
    for name in USER_DIRS:
        os.environ[name] = str(root / name.removeprefix("GANFRIENDS_").lower())
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway cluster for the whole run (or GANFRIENDS_TEST_PG_URL's server)."""
    server = PostgresServer.start()
    yield server
    server.stop()


THREAD_JOIN_S = 10.0  # a watchdog check or a compaction in flight ends within this


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the test server; its name. Dropped afterwards."""
    name = postgres_server.create_database()
    yield name
    _stop_coordinator_threads()  # before the drop: one mid-check would log the drop's error
    postgres_server.drop_database(name)


@pytest.fixture(autouse=True)
def _no_coordinator_thread_left_behind() -> Iterator[None]:
    """Stop the volunteer watchdogs of coordinators a test dropped.

    A coordinator refers to itself through its parts (bound methods), so only the cycle
    collector frees it and runs the finaliser that stops its watchdog thread; until then that
    thread would keep checking a database the test dropped and log into later tests' output.
    """
    yield
    _stop_coordinator_threads()


def _stop_coordinator_threads() -> None:
    """Stop every coordinator's volunteer watchdog and wait until its thread and any
    background compaction have ended, whether or not the test still holds the coordinator."""
    threads = [t for t in threading.enumerate() if t.name in ("watchdog", COMPACTION_THREAD)]
    if not threads:
        return
    gc.collect()  # a dropped coordinator's finaliser stops its watchdog
    for obj in gc.get_objects():
        if type(obj) is Watchdog:  # not isinstance: it would touch lazy modules
            obj.stop()
    for thread in threads:
        thread.join(timeout=THREAD_JOIN_S)


@pytest.fixture(autouse=True)
def _no_logging_handlers_left_behind() -> Iterator[None]:
    """Remove the handlers a command's `configure_logging` installed during the test.

    They write to the test's captured stderr and its temporary log folder, both gone after it.
    """
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
        handler.close()


@pytest.fixture
def psycopg2_copy_noise_tolerated() -> Iterator[None]:
    """Fail the test for any excepthook call other than `is_psycopg2_copy_noise`."""
    unexpected: list[BaseException] = []
    previous = sys.excepthook

    def hook(
        kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        if not is_psycopg2_copy_noise(error):
            unexpected.append(error)
            previous(kind, error, traceback)

    sys.excepthook = hook
    try:
        yield
    finally:
        sys.excepthook = previous
    assert not unexpected, f"exceptions reached sys.excepthook: {unexpected!r}"
