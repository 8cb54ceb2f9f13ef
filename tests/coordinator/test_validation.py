"""Hostile and odd results through the real store and Coordinator: refused, recorded, never summed."""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.loop import ABSOLUTE_MAX_NORM, Coordinator
from core.codec import global_norm
from core.store import Lease, ResultRow, Store
from tests.coordinator.harness import (
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
)
from tests.coordinator.simulate import LocalWorker, encode_payload, run_to

Attack = Callable[[LocalWorker, Lease, Path], int]  # submits a bad result; returns its id


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))


class PickleBomb:
    """Unpickling this writes `marker`: proof that someone called pickle.loads on a payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",)


def pickle_payload(worker: LocalWorker, lease: Lease, tmp_path: Path) -> int:
    return worker.submit(lease, pickle.dumps(PickleBomb(tmp_path / "unpickled"), protocol=2))


def wrong_names(worker: LocalWorker, lease: Lease, tmp_path: Path) -> int:
    result = worker.gradients(lease)
    grads = dict(result.grads)
    grads["G.net.0.evil"] = grads.pop("G.net.0.weight")
    return worker.submit(lease, encode_payload(grads, "fp32"), metrics=result.metrics.as_dict())


def nan_gradient(worker: LocalWorker, lease: Lease, tmp_path: Path) -> int:
    result = worker.gradients(lease)
    grads = {name: g.clone() for name, g in result.grads.items()}
    grads["D.net.0.weight"].view(-1)[3] = math.nan
    return worker.submit(lease, encode_payload(grads, "fp32"), metrics=result.metrics.as_dict())


def huge_norm(worker: LocalWorker, lease: Lease, tmp_path: Path) -> int:
    result = worker.gradients(lease)
    grads = {name: g * 1000 for name, g in result.grads.items()}
    # Below the absolute cap: only the bound from the median of accepted norms refuses it.
    assert global_norm(grads) < ABSOLUTE_MAX_NORM
    return worker.submit(lease, encode_payload(grads, "fp32"), metrics=result.metrics.as_dict())


def wrong_precision(worker: LocalWorker, lease: Lease, tmp_path: Path) -> int:
    result = worker.gradients(lease)  # the run travels in fp32; this worker sends bf16
    payload = encode_payload(result.grads, "bf16")
    return worker.submit(lease, payload, precision="bf16", metrics=result.metrics.as_dict())


def nan_metrics(worker: LocalWorker, lease: Lease, tmp_path: Path) -> int:
    result = worker.gradients(lease)
    metrics = {**result.metrics.as_dict(), "d_loss": math.nan}
    return worker.submit(lease, encode_payload(result.grads, "fp32"), metrics=metrics)


@dataclass(frozen=True)
class Case:
    attack: Attack
    reason: str  # a word the recorded rejection reason must contain
    needs_norm_history: bool = False  # the median norm bound needs a few accepted results


CASES = {
    "pickle": Case(pickle_payload, "pickle"),
    "wrong_names": Case(wrong_names, "names"),
    "nan_gradient": Case(nan_gradient, "NaN"),
    "norm_x1000": Case(huge_norm, "norm", needs_norm_history=True),
    "wrong_precision": Case(wrong_precision, "dtype"),
    "nan_metrics": Case(nan_metrics, "metrics"),
}


def result_row(store: Store, version: int, result_id: int) -> ResultRow:
    return next(r for r in store.version_results(version) if r.id == result_id)


def unit_status(store: Store, lease: Lease) -> str:
    return next(u.status for u in store.version_units(lease.version) if u.id == lease.unit_id)


def rejected_by_name(store: Store) -> dict[str, int]:
    return {w.name: w.rejected for w in store.workers()}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_result_is_rejected_and_never_summed(tmp_path: Path, case: Case) -> None:
    run = make_tiny_run(tmp_path, max_attempts=20)  # rejections must not park the unit
    store = run.store()
    coordinator = Coordinator(store)
    alice, mallory = LocalWorker(run, store, "alice"), LocalWorker(run, store, "mallory")
    if case.needs_norm_history:
        run_to(coordinator, [alice], 1)  # 3 accepted norms …
        alice.work_one()
        coordinator.step()  # … and a 4th: the median bound now applies

    lease = mallory.claim()
    result_id = case.attack(mallory, lease, tmp_path)
    coordinator.step()

    row = result_row(store, lease.version, result_id)
    assert row.status == "rejected"
    assert row.reason is not None and case.reason in row.reason, row.reason
    assert unit_status(store, lease) == "pending"
    assert rejected_by_name(store) == {"alice": 0, "mallory": 1}
    assert coordinator.version == lease.version
    assert not (tmp_path / "unpickled").exists()

    closes = lease.version + 1
    run_to(coordinator, [alice], closes)
    assert_bitwise_equal(published_params(store, closes), reference_params(run, closes))
    assert not (tmp_path / "unpickled").exists()


def test_claimed_sample_count_is_ignored(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path)
    store = run.store()
    coordinator = Coordinator(store)
    liar = LocalWorker(run, store, "liar")
    # Only one unit lies: were the claim used, that unit would outweigh the others 800:1.
    liar.submit_honest(liar.claim(), claimed_samples=10_000)
    liar.submit_honest(liar.claim())
    liar.submit_honest(liar.claim())
    rows = store.version_results(0)
    assert [(r.claimed_samples, r.sample_count) for r in rows] == [(10_000, 12), (12, 12), (12, 12)]

    coordinator.step()

    assert coordinator.version == 1
    assert_bitwise_equal(published_params(store, 1), reference_params(run, 1))
    assert store.metrics()[0].images == 36
    assert store.workers()[0].images == 36


def test_backup_copies_are_crosschecked(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, backup_after_s=0.0)
    store = run.store()
    coordinator = Coordinator(store)
    slow, spare = LocalWorker(run, store, "slow"), LocalWorker(run, store, "spare")
    leases = [slow.claim() for _ in range(3)]  # every unit is out: the next claim is a backup
    # The coordinator's passes stamp the leases' start by its clock and publish that clock
    # for workers (on SQLite, at most once a second): then the spare's claim sees them running.
    coordinator.step()
    time.sleep(1.1)
    coordinator.step()

    # An honest second copy agrees with the first.
    backup = spare.claim()
    assert (backup.unit_index, backup.copy) == (leases[0].unit_index, 1)
    first = slow.submit_honest(leases[0])
    coordinator.step()
    second = spare.submit_honest(backup)
    coordinator.step()
    assert result_row(store, 0, first).status == "accepted"
    agreeing = result_row(store, 0, second)
    assert (agreeing.status, agreeing.reason) == ("crosscheck", None)
    assert not [e for e in store.events(1000) if e.kind == "mismatch"]

    # A second copy with different gradients is kept out and reported.
    backup = spare.claim()
    assert (backup.unit_index, backup.copy) == (leases[1].unit_index, 1)
    slow.submit_honest(leases[1])
    coordinator.step()
    result = spare.gradients(backup)
    perturbed = {name: g * 1.2 for name, g in result.grads.items()}  # 20% off: above tolerance
    third = spare.submit(
        backup, encode_payload(perturbed, "fp32"), metrics=result.metrics.as_dict()
    )
    coordinator.step()
    disagreeing = result_row(store, 0, third)
    assert disagreeing.status == "crosscheck"
    assert disagreeing.reason is not None and "disagrees" in disagreeing.reason
    mismatches = [e for e in store.events(1000) if e.kind == "mismatch"]
    assert [(e.worker_id, e.version) for e in mismatches] == [(spare.id, 0)]
    assert f"unit {backup.unit_index}" in mismatches[0].message

    slow.submit_honest(leases[2])
    coordinator.step()
    assert coordinator.version == 1
    assert_bitwise_equal(published_params(store, 1), reference_params(run, 1))
    assert rejected_by_name(store) == {"slow": 0, "spare": 0}
