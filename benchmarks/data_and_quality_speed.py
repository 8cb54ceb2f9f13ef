"""Speed of the synthetic dataset and of the quality figure, against their budgets.

    .venv/bin/python -m benchmarks.data_and_quality_speed

Budgets on a 2-core CPU: 10,000 synthetic images at 32×32 in < 2 s (64×64 in < 5 s); the
sliced Wasserstein distance of 512 against 512 images of 32×32 in < 2 s. Each figure is the
median of 3 runs; the ratio is budget ÷ measured (above 1 is within budget).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from core.data import synthetic_images
from core.quality import sliced_wasserstein


def median_s(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    images = synthetic_images(1024, 32, seed=0)
    rows = [
        ("synthetic 10k @32", 2.0, median_s(lambda: synthetic_images(10_000, 32, seed=0))),
        ("synthetic 10k @64", 5.0, median_s(lambda: synthetic_images(10_000, 64, seed=0))),
        (
            "SWD 512 vs 512 @32",
            2.0,
            median_s(lambda: sliced_wasserstein(images[:512], images[512:])),
        ),
    ]
    print(f"{'what':<22}{'seconds':>9}{'budget':>8}{'budget/measured':>17}")
    for name, budget, seconds in rows:
        print(f"{name:<22}{seconds:>9.2f}{budget:>8.1f}{budget / seconds:>17.2f}")


if __name__ == "__main__":
    main()
