"""Speed of the synthetic dataset and of the quality figure, against their budgets.

    .venv/bin/python -m benchmarks.data_and_quality_speed

Budgets on a 2-core CPU: 10,000 synthetic images at 32×32 in < 2 s (64×64 in < 5 s); the
sliced Wasserstein distance of 512 against 512 images of 32×32 in < 2 s; a worker's gather of
one class-preset unit (4,096 shuffled images of 32×32 from 4 shards already in memory,
`ShardFetcher.images`) in < 0.05 s, 2 % of a laptop's 2.4-s unit. Each figure is the median of
3 runs; the ratio is budget ÷ measured (above 1 is within budget).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from core.cache import ShardCache
from core.data import Shard, synthetic_images, synthetic_shards
from core.quality import sliced_wasserstein
from core.shards import ShardFetcher
from core.store import ShardRow


def median_s(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _InMemory:
    """The shards of a synthetic set, as the store would hand them to a fetcher."""

    def __init__(self, count: int) -> None:
        self.shards = list(synthetic_shards(count, 32, seed=0))

    def shard_index(self) -> list[ShardRow]:
        return [ShardRow(s.index, s.count, s.image_size, s.sha256) for s in self.shards]

    def shard(self, idx: int) -> Shard:
        return self.shards[idx]


def gather_s(directory: Path) -> float:
    """Seconds to gather one 4,096-image unit once its shards are in the fetcher's memory."""
    fetcher = ShardFetcher(_InMemory(4096), ShardCache(directory))
    order = torch.randperm(4096, generator=torch.Generator().manual_seed(0)).tolist()
    fetcher.images(order)  # the shards are decoded and kept in memory once
    return median_s(lambda: fetcher.images(order))


def main() -> None:
    images = synthetic_images(1024, 32, seed=0)
    with tempfile.TemporaryDirectory() as directory:
        gather = gather_s(Path(directory))
    rows = [
        ("synthetic 10k @32", 2.0, median_s(lambda: synthetic_images(10_000, 32, seed=0))),
        ("synthetic 10k @64", 5.0, median_s(lambda: synthetic_images(10_000, 64, seed=0))),
        (
            "SWD 512 vs 512 @32",
            2.0,
            median_s(lambda: sliced_wasserstein(images[:512], images[512:])),
        ),
        ("gather 4,096 of 4 shards", 0.05, gather),
    ]
    print(f"{'what':<26}{'seconds':>9}{'budget':>8}{'budget/measured':>17}")
    for name, budget, seconds in rows:
        print(f"{name:<26}{seconds:>9.3f}{budget:>8.2f}{budget / seconds:>17.2f}")


if __name__ == "__main__":
    main()
