"""Fixtures for the store's contract tests: a backend-parametrised store and a movable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.store import Store, open_store

from .factories import FakeClock

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend for one test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'run.db'}"
    server = request.getfixturevalue("postgres_server")
    return str(server.database_url(request.getfixturevalue("pg_database")))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    opened = open_store(db_url, create=True, clock=clock)
    yield opened
    opened.dispose()
