"""Exactly-once under real concurrency: 8 worker processes share one SQLite file.

The invariant: every designated unit gets exactly one accepted result and no unit is ever
held by two workers at once. A deliberately broken claim (select in one transaction, update
in another, no status check) must break it, which proves the check can fail.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from core.store import (
    AlreadySubmitted,
    Lease,
    LeaseLost,
    RunPaused,
    Store,
    make_engine,
    open_store,
)
from core.store.queue import unpack_indices
from core.store.schema import work_units

from .factories import METRICS, close_metrics, make_shards, make_units

WORKERS = 8
IDLE_SLEEP_S = (0.005, 0.05)  # a worker's first and longest pause while the queue is empty
DEADLINE_S = 50.0  # nothing in this test may run longer


class BrokenClaimStore(Store):
    """A claim without a row lock: SELECT the pending id, then UPDATE it in a new transaction."""

    def claim(self, worker_id: int) -> Lease | None:
        run = self.get_run()
        with self.session() as conn:
            unit_id = conn.execute(
                select(work_units.c.id)
                .where(work_units.c.status == "pending", work_units.c.version == run.version)
                .order_by(work_units.c.unit_index, work_units.c.copy)
                .limit(1)
            ).scalar()
        if unit_id is None:
            return None
        time.sleep(0.001)  # a network round trip between the two statements
        token, now = secrets.token_hex(16), self.clock()
        with self.session() as conn:  # another worker may have taken it meanwhile: not checked
            row = conn.execute(
                update(work_units)
                .where(work_units.c.id == unit_id)
                .values(
                    status="leased",
                    lease_token=token,
                    lease_expires_at=now + 600,
                    leased_at=now,
                    worker_id=worker_id,
                    attempts=work_units.c.attempts + 1,
                )
                .returning(work_units)
            ).one()
        return Lease(
            unit_id=row.id,
            version=row.version,
            unit_index=row.unit_index,
            copy=row.copy,
            seed=row.seed,
            sample_indices=unpack_indices(row.sample_indices),
            token=token,
            expires_at=now + 600,
            worker_id=worker_id,
        )


def worker_main(url: str, log_path: str, stop: Any, broken: bool, deadline: float) -> None:
    """One worker process: claim → submit until told to stop. Catches no database error."""
    store = (BrokenClaimStore if broken else Store)(make_engine(url))
    worker_id = store.register_worker(f"p{os.getpid()}", "test", "cpu")
    claims: list[list[Any]] = []
    refused = 0
    idle_s = IDLE_SLEEP_S[0]
    while not stop.is_set() and time.time() < deadline:
        try:
            lease = store.claim(worker_id)
        except RunPaused:
            break
        if lease is None:
            # Back off like the real worker: idle polls would otherwise starve the coordinator.
            time.sleep(idle_s)
            idle_s = min(idle_s * 2, IDLE_SLEEP_S[1])
            continue
        idle_s = IDLE_SLEEP_S[0]
        claims.append([lease.unit_id, lease.version, lease.unit_index, lease.copy, worker_id])
        payload = str(os.getpid()).encode()
        try:
            store.submit(lease, payload, "fp32", len(lease.sample_indices), METRICS, 0.0)
        except (LeaseLost, AlreadySubmitted):
            refused += 1  # only the broken claim gets here: its unit was taken twice
    Path(log_path).write_text(
        json.dumps({"pid": os.getpid(), "claims": claims, "refused": refused})
    )
    store.dispose()


@dataclass
class Outcome:
    accepted: Counter[tuple[int, int]]  # (version, unit_index) → accepted results
    crosschecks: int
    claims: list[list[Any]]  # [unit_id, version, unit_index, copy, worker_id] of every claim
    refused: int
    pids: set[int]


def run_queue(tmp_path: Path, *, broken: bool, units_per_version: int, total_units: int) -> Outcome:
    """Workers in processes, this process as the coordinator: resolve all, close each version."""
    url = f"sqlite:///{tmp_path / 'run.db'}"
    store = open_store(url, create=True)
    store.create_run(
        name="exactly-once",
        model_config={},
        # No expiries and no backups: with a correct claim each unit is claimed exactly once.
        settings={"lease_s": 600.0, "backup_after_s": 1e9},
        shards=make_shards(),
        weights=b"w",
        weights_sha256="0" * 64,
        optimizer_state=b"",
        first_units=make_units(0, units_per_version),
    )
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    deadline = time.time() + DEADLINE_S
    logs = [tmp_path / f"worker{i}.json" for i in range(WORKERS)]
    processes = [
        context.Process(target=worker_main, args=(url, str(log), stop, broken, deadline))
        for log in logs
    ]
    for process in processes:
        process.start()
    accepted: Counter[tuple[int, int]] = Counter()
    crosschecks, version, done = 0, 0, 0
    try:
        while done < total_units and time.time() < deadline:
            if any(p.exitcode not in (None, 0) for p in processes):
                break  # a worker crashed: stop now, the exit codes are checked below
            new = store.new_results(500)
            with store.session():  # one transaction for the batch
                for result in new:
                    if store.resolve_result(result.id, "accepted") == "accepted":
                        accepted[(result.version, result.unit_index)] += 1
                    else:
                        crosschecks += 1
            if store.unit_counts(version).done == units_per_version:
                payloads = list(store.accepted_payloads(version))
                assert [p[0] for p in payloads] == list(
                    range(version * units_per_version, (version + 1) * units_per_version)
                )
                done += units_per_version
                cursor = store.get_run().cursor
                store.close_version(
                    version,
                    weights=b"w",
                    weights_sha256="0" * 64,
                    model_config={},
                    optimizer_state=b"",
                    metrics=close_metrics(units_per_version),
                    next_units=make_units(cursor, units_per_version),
                    new_cursor=cursor + units_per_version,
                )
                version += 1
            elif not new:
                time.sleep(0.005)
    finally:
        stop.set()
        store.set_status("paused")
        for process in processes:
            process.join(timeout=20)
            if process.is_alive():
                process.kill()
        store.dispose()
    assert [p.exitcode for p in processes] == [0] * WORKERS, "a worker crashed (see stderr)"
    assert done >= total_units, f"only {done} of {total_units} units done before the deadline"
    reports = [json.loads(log.read_text()) for log in logs]
    return Outcome(
        accepted=accepted,
        crosschecks=crosschecks,
        claims=[claim for report in reports for claim in report["claims"]],
        refused=sum(report["refused"] for report in reports),
        pids={report["pid"] for report in reports},
    )


def units_held_twice(claims: list[list[Any]]) -> list[int]:
    """Unit copies (ids) that were handed out more than once."""
    return [unit_id for unit_id, n in Counter(c[0] for c in claims).items() if n > 1]


@pytest.mark.slow
def test_every_unit_is_accepted_exactly_once(tmp_path: Path) -> None:
    outcome = run_queue(tmp_path, broken=False, units_per_version=50, total_units=2000)
    designated = {(i // 50, i) for i in range(2000)}
    assert set(outcome.accepted) >= designated
    assert all(n == 1 for n in outcome.accepted.values())
    assert units_held_twice(outcome.claims) == []
    assert (outcome.refused, outcome.crosschecks) == (0, 0)
    assert len({c[4] for c in outcome.claims}) > 1  # the work really was shared


@pytest.mark.slow
def test_the_check_catches_a_claim_without_a_lock(tmp_path: Path) -> None:
    outcome = run_queue(tmp_path, broken=True, units_per_version=200, total_units=200)
    assert units_held_twice(outcome.claims) != []
