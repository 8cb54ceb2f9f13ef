"""A real PostgreSQL server's refusals reach the volunteer as plain sentences."""

from __future__ import annotations

import pytest

from client_gui.connection import ConnectionProblem, check_connection
from core.invite import Invite, encode_invite
from core.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def problem(text: str) -> str:
    with pytest.raises(ConnectionProblem) as caught:
        check_connection(text)
    return str(caught.value)


def test_wrong_password_revoked_and_no_run(postgres_server, pg_database):
    role = f"{pg_database}_ada"
    admin = postgres_server.connect(pg_database)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'right'")

        def invite(password: str) -> str:
            server = Invite(
                postgres_server.host, postgres_server.port, pg_database, role, password, "disable"
            )
            return encode_invite(server)

        assert "refused the password" in problem(invite("wrong"))
        assert "not a ganfriends run" in problem(invite("right"))  # no tables yet
        owner_url = postgres_server.database_url(pg_database)
        open_store(owner_url, create=True).dispose()
        assert "holds no run yet" in problem(owner_url)
        with admin.cursor() as cur:
            cur.execute(f'ALTER ROLE "{role}" NOLOGIN')  # what `revoke` does first
        assert "no longer accepts this invite" in problem(invite("right"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP OWNED BY "{role}"')
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()
