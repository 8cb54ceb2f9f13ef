"""Results read and decoded in parallel: verdicts and the sum stay in unit order, bitwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coordinator import intake
from coordinator.loop import Coordinator
from core.codec import PayloadError
from core.store import DamagedData
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


def test_results_are_read_a_group_at_a_time_spread_over_the_threads_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "decode_threads", lambda: 2)
    reads: list[list[int]] = []
    damaged = DamagedData("flipped", "result_payloads", 4)

    def read(ids):
        reads.append(list(ids))
        return {i: damaged if i == 4 else bytes([i]) for i in ids}

    def decode(payload: bytes) -> dict[str, torch.Tensor]:
        if payload == bytes([7]):
            raise PayloadError("not finite")
        return {"g": torch.tensor([float(payload[0]), 0.0])}

    results = intake.ResultIntake(read, decode, per_read=3)
    try:
        outcomes = results.decode_all(list(range(10)))
        assert sorted(reads) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # at most per_read each
        assert outcomes[4] is damaged and isinstance(outcomes[7], PayloadError)
        norms = [o.norm for o in outcomes if isinstance(o, intake.Decoded)]
        assert norms == [0, 1, 2, 3, 5, 6, 8, 9]  # in the order asked
        reads.clear()
        results.expect(intake.READ_BYTES // 32)  # payloads of 2 MiB: 32 a read
        assert results.per_read == 32
        assert len(results.decode_all([0, 1, 2, 3])) == 4
        assert sorted(reads) == [[0, 1], [2, 3]]  # a small batch still keeps both threads busy
        assert results.decode_one(2).norm == 2 and reads[-1] == [2]
    finally:
        results.close()
