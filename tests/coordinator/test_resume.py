"""The coordinator keeps no state outside the database: a new one carries on bitwise."""

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
from tests.coordinator.simulate import LocalWorker, run_to

K = 3  # versions before the restart; as many after it


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))


def test_new_coordinator_on_a_fresh_store_continues(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path)
    store = run.store()
    worker = LocalWorker(run, store, "w")
    first = Coordinator(store)
    run_to(first, [worker], K)
    del first
    store.dispose()

    fresh = run.store()
    second = Coordinator(fresh)
    assert second.version == K
    run_to(second, [LocalWorker(run, fresh, "w2")], 2 * K)

    assert_bitwise_equal(published_params(fresh, 2 * K), reference_params(run, 2 * K))
    assert [m.version for m in fresh.metrics()] == list(range(2 * K))


def test_results_accepted_before_a_restart_are_summed_after_it(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path)
    store = run.store()
    worker = LocalWorker(run, store, "w")
    first = Coordinator(store)
    run_to(first, [worker], 1)  # so the restart also has Adam moments to carry over
    leases = [worker.claim() for _ in range(3)]
    # Units 0 and 2 of the version are accepted; 2 cannot be summed before 1 arrives.
    worker.submit_honest(leases[0])
    worker.submit_honest(leases[2])
    first.step()
    accepted = {r.unit_index for r in store.version_results(1) if r.status == "accepted"}
    assert accepted == {leases[0].unit_index, leases[2].unit_index}
    assert first.version == 1
    del first
    store.dispose()

    fresh = run.store()
    second = Coordinator(fresh)
    worker.submit_honest(leases[1])
    second.step()

    assert second.version == 2
    closed = fresh.metrics()[-1]
    assert (closed.version, closed.units, closed.images) == (1, 3, 36)
    assert_bitwise_equal(published_params(fresh, 2), reference_params(run, 2))
