"""Seconds to store an Adam state on PostgreSQL under each TOAST storage mode of its column.

The close of a 64×64 version writes a 48 MiB optimizer state (and 24 MiB of weights) as TOAST
chunks; this asks whether the column's storage mode is what makes that slow. One throwaway
server (tests.postgres.PostgresServer, fsync off), a table shaped like `optimizer_states`, and
the store's own binary COPY (`core.store.binary_copy.insert_bytes`) of Adam-like float32 bytes
under: EXTENDED with pglz (PostgreSQL's default: compression is tried), EXTERNAL (never
compressed), and EXTENDED with lz4. The figure is each mode's median ÷ the default's.

    .venv/bin/python -m benchmarks.pg_toast [--mib 48] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, create_engine, func, select

from benchmarks.harness import bench_database
from core.store.binary_copy import insert_bytes

MODES = {
    "EXTENDED, pglz (default)": "ALTER TABLE states ALTER COLUMN state SET STORAGE EXTENDED",
    "EXTERNAL (no compression)": "ALTER TABLE states ALTER COLUMN state SET STORAGE EXTERNAL",
    "EXTENDED, lz4": "ALTER TABLE states ALTER COLUMN state SET COMPRESSION lz4",
}


def adam_like_bytes(mib: int) -> bytes:
    """float32 values of Adam-moment magnitude: what the optimizer state holds."""
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(mib * 2**18, generator=gen) * 1e-3).numpy().tobytes()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pg_toast", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--mib", type=int, default=48, help="size of the state (MiB)")
    parser.add_argument("--repeats", type=int, default=5, help="inserts per mode")
    args = parser.parse_args(argv)
    data = adam_like_bytes(args.mib)
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, bench_database("postgresql", Path(tmp)) as url:
        engine = create_engine(url)
        table = Table(
            "states", MetaData(), Column("version", Integer), Column("state", LargeBinary)
        )
        for mode, alter in MODES.items():
            seconds: list[float] = []
            with engine.begin() as conn:
                table.drop(conn, checkfirst=True)
                table.create(conn)
                conn.exec_driver_sql(alter)
            for version in range(args.repeats):
                with engine.begin() as conn:
                    started = time.perf_counter()
                    insert_bytes(conn, table, {"version": version}, "state", data)
                seconds.append(time.perf_counter() - started)  # the commit included
            with engine.connect() as conn:
                stored = conn.execute(
                    select(func.pg_column_size(table.c.state)).limit(1)
                ).scalar_one()
            medians[mode] = statistics.median(seconds)
            print(
                f"{mode:<28} {medians[mode]:.3f} s median ({min(seconds):.3f}-"
                f"{max(seconds):.3f}) for {len(data) / 2**20:.0f} MiB; stored "
                f"{stored / len(data):.3f} of its size"
            )
        engine.dispose()
    default = next(iter(medians.values()))
    for mode, median in medians.items():
        print(f"{mode}: {median / default:.2f} × the default's time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
