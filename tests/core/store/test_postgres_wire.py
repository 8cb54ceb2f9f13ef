"""bytea on the wire: payloads, weights and shards cross it once (binary COPY), not as hex.

Bytes are counted by a loopback TCP proxy between the store and the server: what a volunteer's
network would carry, framing and SQL text included.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from core.codec import sha256_hex
from core.store import Store, UnitSpec, make_engine, open_store
from core.store.binary_copy import SIGNATURE, CopyFormatError, encode_row, parse_rows
from core.store.rows import ShardData
from core.store.runs import insert_units
from core.store.schema import result_uploads
from tests.postgres import PostgresServer
from tests.tcp_proxy import TcpProxy

from .factories import METRICS, close_metrics, create_test_run

MIB = 1 << 20
MAX_RATIO = 1.1  # wire bytes ÷ payload bytes; hex text would be 2.0


@pytest.fixture
def proxied(postgres_server: PostgresServer, pg_database: str) -> Iterator[tuple[Store, TcpProxy]]:
    """A store on a fresh run whose every byte passes a counting proxy."""
    direct = open_store(postgres_server.database_url(pg_database), create=True)
    shard, weights = os.urandom(MIB), os.urandom(MIB)
    direct.create_run(
        name="wire",
        model_config={},
        settings={},
        shards=[ShardData(0, 8, 32, shard, sha256_hex(shard))],
        weights=weights,
        weights_sha256=sha256_hex(weights),
        optimizer_state=b"",
        first_units=[],
    )
    direct.dispose()
    with TcpProxy((postgres_server.host, postgres_server.port)) as proxy:
        url = postgres_server.database_url(pg_database).replace(
            f":{postgres_server.port}/", f":{proxy.port}/"
        )
        store = Store(make_engine(url))
        yield store, proxy
        store.dispose()


def test_a_submit_sends_the_payload_once(proxied: tuple[Store, TcpProxy]) -> None:
    store, proxy = proxied
    payload = os.urandom(MIB)
    with store.session() as conn:  # one designated unit to claim
        insert_units(conn, 0, [UnitSpec(0, 1, [0, 1, 2, 3])], 0.0)
    worker = store.register_worker("w", "h", "cpu")
    lease = store.claim(worker)
    assert lease is not None
    proxy.reset_counts()
    result_id = store.submit(lease, payload, "fp32", 4, METRICS, 1.0)
    assert proxy.up_bytes / len(payload) < MAX_RATIO
    assert store.result_payload(result_id) == payload
    with store.session() as conn:  # the staging row went with the same transaction
        assert conn.execute(select(func.count()).select_from(result_uploads)).scalar() == 0


def test_a_close_sends_weights_and_adam_state_once(proxied: tuple[Store, TcpProxy]) -> None:
    store, proxy = proxied
    weights, state = os.urandom(MIB), os.urandom(2 * MIB)
    store.get_run()  # a pooled connection exists: its handshake is not counted
    proxy.reset_counts()
    store.close_version(
        0,
        weights=weights,
        weights_sha256=sha256_hex(weights),
        model_config={"image_size": 32},
        optimizer_state=state,
        metrics=close_metrics(0, parked=0),
        next_units=[],
        new_cursor=0,
    )
    assert proxy.up_bytes / (len(weights) + len(state)) < MAX_RATIO
    assert store.version_weights(1)[0] == weights
    assert store.optimizer_state() == (1, state)
    (published,) = [v for v in store.versions() if v.version == 1]
    assert published.sha256 == sha256_hex(weights) and published.is_checkpoint is False
    assert published.created_at > 1e9  # a float8 sent in binary, read back as seconds


def test_downloads_receive_weights_and_shards_once(proxied: tuple[Store, TcpProxy]) -> None:
    store, proxy = proxied
    store.get_run()  # a pooled connection exists: its handshake is not counted
    proxy.reset_counts()
    weights, _, _ = store.version_weights(0)
    assert proxy.down_bytes / len(weights) < MAX_RATIO
    proxy.reset_counts()
    shard = store.shard(0)
    assert proxy.down_bytes / len(shard.data) < MAX_RATIO


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", bytes(range(256)) * 3, b"\\x00'\\\\", b"\xff" * 70_000],
    ids=["empty", "nul", "every-byte", "escapes", "large"],
)
def test_every_byte_value_round_trips(
    postgres_server: PostgresServer, pg_database: str, payload: bytes
) -> None:
    store = open_store(postgres_server.database_url(pg_database), create=True)
    try:
        create_test_run(store, units=1)
        worker = store.register_worker("w", "h", "cpu")
        lease = store.claim(worker)
        assert lease is not None
        assert store.result_payload(store.submit(lease, payload, "fp32", 4, METRICS, 0.1)) == (
            payload
        )
    finally:
        store.dispose()


def test_the_copy_stream_codec_round_trips() -> None:
    def rows(stream: bytes, columns: int) -> list[list[bytes | None]]:
        return [
            [None if f is None else bytes(f) for f in row] for row in parse_rows(stream, columns)
        ]

    assert rows(b"".join(encode_row([b"abc"])), 1) == [[b"abc"]]
    assert rows(b"".join(encode_row([b"", b"\x00\x01"])), 2) == [[b"", b"\x00\x01"]]
    no_rows = SIGNATURE + bytes(8) + b"\xff\xff"
    assert rows(no_rows, 1) == []
    two = SIGNATURE + bytes(8)
    two += b"\x00\x02" + b"\x00\x00\x00\x01a" + b"\xff\xff\xff\xff"  # "a", NULL
    two += b"\x00\x02" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x02bc"  # "", "bc"
    assert rows(two + b"\xff\xff", 2) == [[b"a", None], [b"", b"bc"]]
    with pytest.raises(CopyFormatError, match="1 columns per row, got 2"):
        rows(b"".join(encode_row([b"a", b"b"])), 1)
    with pytest.raises(CopyFormatError, match="signature"):
        rows(b"not a copy stream at all", 1)
