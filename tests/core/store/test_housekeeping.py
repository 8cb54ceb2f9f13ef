"""What the idle coordinator's `tidy` deletes, and the SQLite file layout made for big blobs.

The close and the verdicts leave dropped payloads and old optimizer states behind on purpose
(deleting them walks every page of a 24 MiB blob); `tidy` must delete exactly those, and never
a payload the coordinator still reads.
"""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from sqlalchemy import event, select, text, update

from core.store import DamagedData, Store, StoreError, binary_copy, make_engine, open_store
from core.store.engine import SQLITE_PAGE_SIZE, alembic_config, sqlite_path
from core.store.schema import optimizer_states, result_payloads

from .factories import close, create_test_run, work_one


def _payload_ids(store: Store) -> set[int]:
    with store.session() as conn:
        return set(conn.execute(select(result_payloads.c.result_id)).scalars())


def test_tidy_deletes_dropped_payloads_and_keeps_the_ones_still_read(store: Store) -> None:
    create_test_run(store, units=3)
    worker = store.register_worker("w", "h", "cpu")
    accepted, rejected, waiting = (work_one(store, worker, bytes([n]) * 64) for n in range(3))
    store.resolve_result(accepted, "accepted")
    store.resolve_result(rejected, "rejected", "bad")
    with pytest.raises(StoreError, match="no payload"):
        store.result_payload(rejected)  # unreadable at once, before any tidy

    assert store.tidy() == 1
    assert _payload_ids(store) == {accepted, waiting}
    assert store.result_payload(accepted) == bytes([0]) * 64
    assert store.result_payload(waiting) == bytes([2]) * 64
    assert store.tidy() == 0


def test_tidy_deletes_closed_versions_payloads_and_pruned_versions_optimizer_states(
    store: Store,
) -> None:
    create_test_run(store, units=3, keep_versions=1, keep_checkpoints=1)
    worker = store.register_worker("w", "h", "cpu")
    for version in (0, 1):
        for _ in range(3):
            store.resolve_result(work_one(store, worker), "accepted")
        close(store, version)
    assert store.optimizer_state() == (2, b"adam2")

    assert store.tidy() == 6
    assert _payload_ids(store) == set()
    with store.session() as conn:
        kept = list(conn.execute(select(optimizer_states.c.version)).scalars())
    # Version 1 was pruned; the newest and the checkpoint (0) keep theirs: full states to
    # roll back to.
    assert sorted(kept) == [0, 2]
    assert store.optimizer_state_versions() == {0, 2}
    assert store.optimizer_state() == (2, b"adam2")  # what a restarted coordinator loads


def test_a_new_sqlite_database_uses_big_pages(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    open_store(url, create=True).dispose()
    path = sqlite_path(url)
    assert path is not None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_upgrading_from_0003_moves_payloads_and_optimizer_state(db_url: str, tmp_path) -> None:
    """A run created before revision 0004 keeps its pending result and its Adam state."""
    (tmp_path / "db").mkdir(exist_ok=True)
    config = alembic_config()
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO optimizer_state (id, version, state) VALUES (1, 7, :state)"),
                {"state": b"adam7"},
            )
            connection.exec_driver_sql(
                "INSERT INTO workers (id, name, hostname, device, created_at, last_seen, state) "
                "VALUES (1, 'w', 'h', 'cpu', 0, 0, 'idle')"
            )
            connection.exec_driver_sql(
                "INSERT INTO work_units (id, version, unit_index, copy, seed, sample_indices, "
                "sample_count, status, created_at) VALUES (1, 7, 0, 0, 1, '', 1, 'submitted', 0)"
            )
            connection.execute(
                text(
                    "INSERT INTO results (id, unit_id, version, unit_index, worker_id, payload, "
                    "precision, claimed_samples, compute_s, status, submitted_at) "
                    "VALUES (5, 1, 7, 0, 1, :payload, 'fp32', 1, 1.0, 'new', 0)"
                ),
                {"payload": b"grads"},
            )
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with engine.connect() as connection:
            moved = connection.execute(select(result_payloads)).all()
            states = connection.execute(select(optimizer_states)).all()
            results_columns = connection.exec_driver_sql("SELECT * FROM results").keys()
        assert [(row.result_id, bytes(row.payload)) for row in moved] == [(5, b"grads")]
        assert [(row.version, bytes(row.state)) for row in states] == [(7, b"adam7")]
        assert "payload" not in results_columns
        with engine.begin() as connection:  # and back down again
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        with engine.connect() as connection:
            payload = connection.exec_driver_sql("SELECT payload FROM results").scalar_one()
            state = connection.exec_driver_sql("SELECT state FROM optimizer_state").scalar_one()
        assert (bytes(payload), bytes(state)) == (b"grads", b"adam7")
    finally:
        engine.dispose()


def test_many_payloads_are_read_in_one_query_each_checked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_test_run(store, units=3)
    worker = store.register_worker("w", "h", "cpu")
    first, damaged, third = (work_one(store, worker, bytes([n]) * 5000) for n in range(3))
    with store.session() as conn:  # one bit of the middle result flipped in storage
        conn.execute(
            update(result_payloads)
            .where(result_payloads.c.result_id == damaged)
            .values(payload=bytes([1]) * 2500 + bytes([0]) + bytes([1]) * 2499)
        )
    statements: list[str] = []  # SQLite's queries (PostgreSQL's COPY bypasses SQLAlchemy)
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    copies: list[int] = []  # PostgreSQL's: each COPY stream is parsed once
    parse = binary_copy.parse_rows

    def counted(stream: memoryview | bytes, columns: int) -> list[list[memoryview | None]]:
        copies.append(columns)
        return parse(stream, columns)

    monkeypatch.setattr(binary_copy, "parse_rows", counted)
    read = store.result_payloads([third, damaged, first])
    assert sum("result_payloads" in s for s in statements) + len(copies) == 1
    assert read[first] == bytes([0]) * 5000 and read[third] == bytes([2]) * 5000
    assert isinstance(read[damaged], DamagedData)  # in its place: the others still count
    assert f"row {damaged} of result_payloads" in str(read[damaged])
    store.resolve_result(first, "rejected", "bad")
    with pytest.raises(StoreError, match=f"result {first} has no payload"):
        store.result_payloads([third, first])
