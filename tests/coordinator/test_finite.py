"""A close never publishes non-finite weights or optimizer state."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from coordinator import stall
from coordinator.loop import Coordinator
from core.unit_kinds import GradientUnits
from tests.coordinator.harness import (
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
)
from tests.coordinator.simulate import LocalWorker, run_to
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(params=["sqlite", "postgresql"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> TinyRun:
    if request.param == "sqlite":
        return make_tiny_run(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return make_tiny_run(tmp_path, server.database_url(request.getfixturevalue("pg_database")))


def test_a_non_finite_step_is_not_published_and_the_owner_is_told(
    run: TinyRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stall, "CHECK_EVERY_S", 0.0)
    real_step, calls = GradientUnits.apply, []

    def overflowing_once(*args: Any, **kwargs: Any) -> Any:
        params, adam = real_step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # as lr=1e300 or a damaged moment would
            params = dict(params)
            name = sorted(params)[0]
            params[name] = params[name].clone().fill_(math.inf)
        return params, adam

    monkeypatch.setattr(GradientUnits, "apply", overflowing_once)
    store = run.store()
    worker = LocalWorker(run, store, "w")
    coordinator = Coordinator(store)
    for _ in range(3):
        worker.work_one()
    coordinator.step()
    assert calls == [1]
    assert coordinator.version == 0 and store.get_run().version == 0  # nothing published
    run_row = store.get_run()
    assert run_row.status == "paused"
    assert run_row.alert is not None and run_row.alert["kind"] == "non_finite"
    assert "non-finite" in str(run_row.alert["message"])
    assert "rollback --to VERSION" in str(run_row.alert["remedy"])
    assert not [r for r in store.version_results(0) if r.status == "accepted"]  # recomputed
    assert store.unit_counts(0).pending == 3
    store.set_status("active")  # the owner fixed the cause and resumes
    run_to(coordinator, [worker], 2)
    assert_bitwise_equal(published_params(store, 2), reference_params(run, 2))
    assert store.get_run().alert is None
    store.dispose()
