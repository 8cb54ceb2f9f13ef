"""What the coordinator's fence costs: a fenced transaction against the same one unfenced.

Every transaction of a coordinator first checks its epoch (core.store.fence.check: one SELECT,
FOR SHARE on PostgreSQL). This times N small coordinator transactions (`Store.add_event`, the
smallest write the coordinator makes) through a fenced store and through a plain one on the
same database, alternating in rounds, and prints the medians and their ratio.

    .venv/bin/python -m benchmarks.fence_overhead [--backend sqlite|postgresql] [--n 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from core.store import Store, open_store
from tests.core.store.factories import create_test_run


def _per_call_ms(call: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--n", type=int, default=300, help="transactions per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'run.db'}"
        else:
            from tests.postgres import PostgresServer

            server = PostgresServer.start()
            url = server.database_url(server.create_database())
        try:
            plain: Store = open_store(url, create=True)
            create_test_run(plain)
            fenced = plain.take_run()
            times: dict[str, list[float]] = {"plain": [], "fenced": []}
            for _ in range(args.rounds):
                for name, store in (("plain", plain), ("fenced", fenced)):
                    times[name].append(_per_call_ms(partial(store.add_event, "x", "y"), args.n))
            plain.dispose()
        finally:
            if server is not None:
                server.stop()
    p, f = statistics.median(times["plain"]), statistics.median(times["fenced"])
    print(f"{args.backend}: plain {p:.3f} ms, fenced {f:.3f} ms per transaction; ratio {f / p:.2f}")


if __name__ == "__main__":
    main()
