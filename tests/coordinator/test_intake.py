"""Results read and decoded in parallel: verdicts and the sum stay in unit order, bitwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.loop import Coordinator
from tests.coordinator.harness import (
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
)
from tests.coordinator.simulate import LocalWorker


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))


def test_results_arriving_together_and_out_of_order_are_summed_in_unit_order(tmp_path) -> None:
    run = make_tiny_run(tmp_path)  # 3 units per version
    store = run.store()
    coordinator = Coordinator(store)
    batches: list[int] = []
    decode_all = coordinator._intake.decode_all

    def recorded(ids):
        batches.append(len(ids))
        return decode_all(ids)

    coordinator._intake.decode_all = recorded  # type: ignore[method-assign]
    workers = [LocalWorker(run, store, f"w{i}") for i in range(3)]
    for version in range(3):
        leases = [worker.claim() for worker in workers]
        # Submitted last unit first: the first two verdicts hold their results for later.
        for worker, lease in reversed(list(zip(workers, leases, strict=True))):
            worker.submit_honest(lease)
        coordinator.step()  # all three validated in one pass, decoded in parallel
        assert coordinator.version == version + 1
    assert batches.count(3) == 3
    assert_bitwise_equal(published_params(store, 3), reference_params(run, 3))
