"""Fixtures shared by every test package: the PostgreSQL server the harness starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway cluster for the whole run (or GANFRIENDS_TEST_PG_URL's server)."""
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the test server; its name. Dropped afterwards."""
    name = postgres_server.create_database()
    yield name
    postgres_server.drop_database(name)
