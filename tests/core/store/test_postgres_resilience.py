"""PostgreSQL going away: connection settings, errors that say "retry", and reconnecting.

A terminated session, a restarted server (fast or immediate) or a dropped connection
mid-transaction must surface as `DatabaseUnavailable` (never a raw driver error, never a
hang), and the same `Store` must work again once the server is back.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, select

from core.store import (
    DatabaseUnavailable,
    Store,
    binary_copy,
    housekeeping,
    make_engine,
    open_store,
)
from core.store.binary_copy import insert_bytes, read_bytes
from core.store.engine import pg_connect_args
from core.store.errors import translate_db_error
from core.store.schema import result_uploads, run
from tests.postgres import ENDS_SESSIONS, PostgresServer, is_psycopg2_copy_noise

from .factories import METRICS, create_test_run

pytestmark = ENDS_SESSIONS


@pytest.fixture
def pg_url(postgres_server: PostgresServer, pg_database: str) -> str:
    postgres_server.make_durable(pg_database)
    return postgres_server.database_url(pg_database)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = open_store(pg_url, create=True)
    create_test_run(store, units=3)
    yield store
    store.dispose()


def dsn_parameters(store: Store) -> dict[str, str]:
    with store.session() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        return dict(raw.get_dsn_parameters())


def test_connections_time_out_and_keep_alive(pg_store: Store) -> None:
    params = dsn_parameters(pg_store)
    expected = {key: str(value) for key, value in pg_connect_args().items()}
    assert {key: params.get(key) for key in expected} == expected
    assert expected["tcp_user_timeout"] == "30000" and expected["keepalives"] == "1"
    with pg_store.session() as conn:
        name = conn.exec_driver_sql(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).scalar()
    assert str(name).startswith("ganfriends:")


def test_libpq_settings_in_the_url_win_over_the_defaults(pg_url: str) -> None:
    store = Store(make_engine(pg_url + "?tcp_user_timeout=4000&application_name=lab-pc-7"))
    try:
        params = dsn_parameters(store)
    finally:
        store.dispose()
    assert (params["tcp_user_timeout"], params["application_name"]) == ("4000", "lab-pc-7")
    assert params["keepalives_idle"] == str(pg_connect_args()["keepalives_idle"])


@pytest.mark.parametrize(
    "driver_error",
    [
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        psycopg2.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg2.errors.CannotConnectNow("the database system is starting up"),
        psycopg2.OperationalError(
            'connection to server at "10.0.0.1", port 5432 failed: Connection refused'
        ),
        psycopg2.OperationalError("could not receive data from server: Connection timed out"),
        psycopg2.InterfaceError("connection already closed"),
    ],
    ids=["closed", "terminated", "starting", "refused", "timed-out", "already-closed"],
)
def test_lost_connections_mean_retry(driver_error: psycopg2.Error) -> None:
    error = sa_exc.DBAPIError.instance("SELECT 1", None, driver_error, psycopg2.Error)
    translated = translate_db_error(error, make_url("postgresql+psycopg2://u:secret@db/run"))
    assert isinstance(translated, DatabaseUnavailable)
    assert "retry" in str(translated) and "secret" not in str(translated)


def test_terminated_mid_transaction_is_database_unavailable_then_recovers(
    pg_store: Store, postgres_server: PostgresServer, pg_database: str
) -> None:
    with pytest.raises(DatabaseUnavailable), pg_store.session() as conn:
        conn.execute(select(run.c.version)).scalar_one()
        postgres_server.terminate_sessions(pg_database)
        conn.execute(select(run.c.version)).scalar_one()
    assert pg_store.get_run().version == 0  # the same store, a new connection


def test_terminated_mid_copy_is_database_unavailable_then_recovers(
    pg_store: Store, postgres_server: PostgresServer, pg_database: str
) -> None:
    """COPY runs beside SQLAlchemy; its driver errors must be translated all the same."""
    with pytest.raises(DatabaseUnavailable), pg_store.session() as conn:
        postgres_server.terminate_sessions(pg_database)
        read_bytes(conn, run.c.name, run.c.id == 1)
    with pytest.raises(DatabaseUnavailable), pg_store.session() as conn:
        postgres_server.terminate_sessions(pg_database)
        insert_bytes(conn, result_uploads, {"lease_token": "t"}, "payload", b"x" * 100)
    weights, _, _ = pg_store.version_weights(0)
    assert weights == b"w0"


def test_terminated_while_a_copy_sends_its_data_is_database_unavailable(
    pg_store: Store,
    postgres_server: PostgresServer,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psycopg2 reports this case to sys.excepthook as well, before it raises; that report,
    and only it, is what `tests.postgres.ENDS_SESSIONS` lets the session-ending tests pass."""
    read = binary_copy._RowReader.read

    def read_after_the_session_ended(self: binary_copy._RowReader, size: int = -1) -> bytes:
        postgres_server.terminate_sessions(pg_database)
        time.sleep(0.2)  # the server has closed the socket before the data goes out
        return read(self, size)

    monkeypatch.setattr(binary_copy._RowReader, "read", read_after_the_session_ended)
    reports: list[BaseException] = []
    hook, sys.excepthook = sys.excepthook, lambda kind, error, tb: reports.append(error)
    try:
        with pytest.raises(DatabaseUnavailable), pg_store.session() as conn:
            insert_bytes(conn, result_uploads, {"lease_token": "t"}, "payload", b"x" * 100)
    finally:
        sys.excepthook = hook
    monkeypatch.undo()
    assert reports and all(is_psycopg2_copy_noise(error) for error in reports), reports
    assert not is_psycopg2_copy_noise(SystemError("returned a result with an exception set"))
    assert pg_store.version_weights(0)[0] == b"w0"  # the same store works again


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restarted_server_is_reconnected_to(
    pg_store: Store, postgres_server: PostgresServer, mode: str
) -> None:
    if postgres_server.data_dir is None:
        pytest.skip("the server is not ours to restart (GANFRIENDS_TEST_PG_URL)")
    worker = pg_store.register_worker("w", "h", "cpu")
    lease = pg_store.claim(worker)
    assert lease is not None
    pg_store.wait_for_work(0.01)  # the LISTEN connection dies with the restart too
    postgres_server.restart(mode)
    # Pooled connections died with the server: pre-ping replaces them on checkout.
    assert pg_store.submit(lease, b"g" * 1000, "fp32", 4, METRICS, 0.1) > 0
    assert pg_store.wait_for_work(0.05) is False
    [result] = pg_store.new_results(10)
    assert pg_store.result_payload(result.id) == b"g" * 1000


def test_tidy_losing_the_server_after_its_transaction_is_database_unavailable(
    pg_store: Store, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tidying vacuums outside any transaction; a server lost there must mean "retry" too.

    (A raw driver error from that VACUUM once ended `ganfriends-coordinator serve`.)
    """
    if postgres_server.data_dir is None:
        pytest.skip("the server is not ours to stop (GANFRIENDS_TEST_PG_URL)")

    def stop_the_server(_engine: object) -> None:  # runs between the deletes and the VACUUM
        postgres_server.pg_ctl("stop", "-m", "fast", "-w")

    monkeypatch.setattr(housekeeping, "checkpoint", stop_the_server)
    try:
        with pytest.raises(DatabaseUnavailable):
            pg_store.tidy()
    finally:
        postgres_server.restart("fast")  # starts the stopped server again
    monkeypatch.undo()
    pg_store.tidy()  # the same store, new connections
    assert pg_store.get_run().version == 0
