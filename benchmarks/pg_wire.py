"""Bytes on the wire per work unit ÷ payload bytes, PostgreSQL, binary COPY against hex bytea.

A loopback TCP proxy (tests.tcp_proxy) sits between the store and a throwaway server
(tests.postgres.PostgresServer) and counts every byte each way: SQL text, protocol framing,
answers. For a model of each size it measures

- upload: `Store.submit` of one fp32 gradient payload (what a worker sends per unit);
- download: `Store.version_weights` (once per version per worker) and `Store.shard` of a
  1024-image shard (once per worker, then cached);
- one whole unit as a worker does it: claim, weights, shard, heartbeat, submit;

and, as the baseline, the same bytes moved as psycopg2 moves bytea by default (a bytea
parameter, a plain SELECT), which sends and receives them as hex text.

    .venv/bin/python -m benchmarks.pg_wire
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select

from core.model import ModelConfig, parameter_manifest
from core.store import Store, UnitSpec, make_engine, open_store
from core.store.rows import ShardData
from core.store.schema import model_versions, result_uploads
from tests.factories import TINY_MODEL
from tests.postgres import PostgresServer
from tests.tcp_proxy import TcpProxy

MODELS = {
    "tiny 32×32": TINY_MODEL,
    "DCGAN 64×64": ModelConfig(image_size=64, latent_dim=100, g_features=64, d_features=64),
}
SHARD_IMAGES = 1024
METRICS = {"d_loss": 0.7, "g_loss": 1.3, "d_real": 0.6, "d_fake": 0.4}


@dataclass(frozen=True)
class Reading:
    model: str
    what: str
    payload_bytes: int
    binary_bytes: int  # wire bytes the store moves (binary COPY)
    hex_bytes: int | None  # wire bytes of the same transfer as a plain bytea parameter/column


def fp32_bytes(cfg: ModelConfig) -> int:
    """Size of one fp32 tensor per parameter of the model (weights, or one gradient payload)."""
    return sum(4 * math.prod(shape) for shape, _ in parameter_manifest(cfg).values())


def measure(server: PostgresServer, name: str, cfg: ModelConfig) -> list[Reading]:
    size = fp32_bytes(cfg)
    weights, payload = os.urandom(size), os.urandom(size)
    shard = os.urandom(SHARD_IMAGES * 3 * cfg.image_size**2)
    url = server.database_url(server.create_database())
    direct = open_store(url, create=True)
    direct.create_run(
        name="wire",
        model_config={},
        settings={},
        shards=[ShardData(0, SHARD_IMAGES, cfg.image_size, shard, "0" * 64)],
        weights=weights,
        weights_sha256="0" * 64,
        optimizer_state=b"",
        first_units=[UnitSpec(i, i, [0, 1, 2, 3]) for i in range(4)],
    )
    direct.dispose()
    with TcpProxy((server.host, server.port)) as proxy:
        store = Store(make_engine(url.replace(f":{server.port}/", f":{proxy.port}/")))
        try:
            return _readings(store, proxy, name, weights, payload, shard)
        finally:
            store.dispose()


def _readings(
    store: Store, proxy: TcpProxy, name: str, weights: bytes, payload: bytes, shard: bytes
) -> list[Reading]:
    worker = store.register_worker("wire", "bench", "cpu")  # the pool's connection is open now

    def counted(action: Callable[[], object], direction: str) -> int:
        proxy.reset_counts()
        action()
        return proxy.up_bytes if direction == "up" else proxy.down_bytes

    first = store.claim(worker)
    assert first is not None
    upload = counted(lambda: store.submit(first, payload, "fp32", 4, METRICS, 1.0), "up")
    upload_hex = counted(lambda: _plain_insert(store, payload), "up")
    weights_down = counted(lambda: store.version_weights(0), "down")
    weights_hex = counted(lambda: _plain_select(store), "down")
    shard_down = counted(lambda: store.shard(0), "down")

    proxy.reset_counts()  # one unit, as a fresh worker does it
    lease = store.claim(worker)
    assert lease is not None
    store.version_weights(0)
    store.shard(0)
    store.heartbeat(lease)
    store.submit(lease, payload, "fp32", 4, METRICS, 1.0)
    unit_up, unit_down = proxy.up_bytes, proxy.down_bytes
    return [
        Reading(name, "upload: submit", len(payload), upload, upload_hex),
        Reading(name, "download: weights", len(weights), weights_down, weights_hex),
        Reading(name, "download: shard", len(shard), shard_down, None),
        Reading(name, "unit, sent", len(payload), unit_up, None),
        Reading(name, "unit, received", len(weights) + len(shard), unit_down, None),
    ]


def _plain_insert(store: Store, payload: bytes) -> None:
    """The payload as a bytea parameter (psycopg2 sends it as a hex literal); rolled back."""
    with store.engine.connect() as conn, conn.begin() as transaction:
        conn.execute(insert(result_uploads).values(lease_token="hex", owner="x", payload=payload))
        transaction.rollback()


def _plain_select(store: Store) -> None:
    """The weights as a plain SELECT result (text format: hex)."""
    with store.engine.connect() as conn:
        conn.execute(select(model_versions.c.weights).where(model_versions.c.version == 0)).one()


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # no options
    server = PostgresServer.start()
    try:
        readings = [r for name, cfg in MODELS.items() for r in measure(server, name, cfg)]
    finally:
        server.stop()
    print("pg_wire: bytes on the wire ÷ payload bytes (counted by a TCP proxy, both directions)")
    print(f"{'model':<12} {'transfer':<19} {'payload':>12} {'wire':>12} {'ratio':>6} {'hex':>6}")
    for r in readings:
        hex_ratio = "" if r.hex_bytes is None else f"{r.hex_bytes / r.payload_bytes:.3f}"
        print(
            f"{r.model:<12} {r.what:<19} {r.payload_bytes:>12,} {r.binary_bytes:>12,} "
            f"{r.binary_bytes / r.payload_bytes:>6.3f} {hex_ratio:>6}"
        )
    print(
        "ratio: what the store moves (binary COPY); hex: the same bytes as a bytea parameter / "
        "plain SELECT.\nunit, sent: claim + heartbeat + submit ÷ the gradient payload; unit, "
        "received: claim + weights + shard + heartbeat + submit ÷ (weights + shard)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
