"""A volunteer who cheats is caught, and the run ends as if it had never joined (SQLite, in process).

Honest volunteers and one cheater (tests/coordinator/attacks.py) share a run whose policy holds
every result of a new volunteer until another volunteer's computation agrees. The run's final
weights must equal the reference trainer's bitwise, the cheater must be quarantined within its
first two results, and no honest volunteer is ever quarantined or outvoted.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from coordinator.loop import Coordinator
from core.store import Store, StoreError
from core.store.trust import Quarantined
from tests.coordinator.attacks import ATTACKS, CAUGHT, Cheater
from tests.coordinator.harness import (
    TinyRun,
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
)
from tests.coordinator.simulate import LocalWorker

VERSIONS = 3  # 9 units, each computed at least twice
VERSIONS_LATER = 10  # long enough for a volunteer to earn trust, turn and be caught


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))


def drive(
    coordinator: Coordinator, workers: Sequence[LocalWorker], version: int, passes: int = 400
) -> None:
    """Each pass, every worker completes one unit if it may; then the coordinator steps."""
    coordinator.verifier.poll_every_s = 0.0
    for _ in range(passes):
        if coordinator.version >= version:
            return
        for worker in workers:
            with contextlib.suppress(Quarantined):  # refused from now on; it keeps trying
                worker.work_one()
        coordinator.step()
    raise AssertionError(f"version {version} not reached; at {coordinator.version}")


def attacked_run(tmp_path: Path, attack: str) -> tuple[TinyRun, Store, Cheater]:
    run = make_tiny_run(tmp_path, verification="adaptive")
    store = run.store()
    coordinator = Coordinator(store)
    honest = [LocalWorker(run, store, name) for name in ("ada", "bob")]
    cheater = Cheater(run, store, "mallory", attack)
    carol = LocalWorker(run, store, "carol")
    # The cheater claims second: it computes designated units and verification copies.
    drive(coordinator, [honest[0], cheater, honest[1], carol], VERSIONS)
    return run, store, cheater


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_attacked_run_ends_bitwise_equal_to_the_honest_run(tmp_path: Path, attack: str) -> None:
    run, store, cheater = attacked_run(tmp_path, attack)

    assert_bitwise_equal(published_params(store, VERSIONS), reference_params(run, VERSIONS))
    trust = {row.record.identity: row.record for row in store.trust_rows()}
    for name in ("ada", "bob", "carol"):  # no false positive
        assert not trust[name].quarantined and trust[name].outvoted == 0, trust[name]
    mallory = trust["mallory"]
    if attack in CAUGHT:
        assert mallory.quarantined and mallory.reason, mallory
        assert 1 <= cheater.cheated <= 2, f"{cheater.cheated} bad results before quarantine"
        assert mallory.verified == cheater.submitted - cheater.cheated  # its honest ones only
        events = [e for e in store.events(1000) if e.kind == "quarantined"]
        assert len(events) == 1 and "stop the computers running 'mallory'" in events[0].message
        with pytest.raises(Quarantined):
            store.claim(cheater.id)
    elif attack == "within_tolerance":  # outvoted by a bitwise pair, never counted
        assert not mallory.quarantined and mallory.outvoted >= 1 and mallory.verified == 0
    else:  # copier: credit for what agreed, but trust only from what it computed first
        assert not mallory.quarantined
        assert mallory.earned < mallory.verified


def test_results_count_only_once_another_volunteer_agreed(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, verification="quorum")
    store = run.store()
    coordinator = Coordinator(store)
    coordinator.verifier.poll_every_s = 0.0
    alone = LocalWorker(run, store, "alone")
    for _ in range(3):
        alone.work_one()
        coordinator.step()
    assert alone.work_one() is None  # the copies that wait are not its to compute
    assert coordinator.version == 0 and store.held_count() == 3
    assert store.accepted_result(0, 0) is None

    helper = LocalWorker(run, store, "helper")
    drive(coordinator, [helper], 1)
    assert_bitwise_equal(published_params(store, 1), reference_params(run, 1))
    assert [w.verified for w in store.workers()] == [3, 3]
    assert {r.record.identity: r.record.earned for r in store.trust_rows()} == {
        "alone": 3,  # computed first
        "helper": 0,  # confirmed what already existed: credit, but no trust earned
    }


def test_switching_verification_off_lets_held_results_count(tmp_path: Path) -> None:
    """An owner who turns verification off mid-version (one worker left) is not left with a
    version that waits for ever: the held results are judged as any result, at once."""
    run = make_tiny_run(tmp_path, verification="quorum")
    store = run.store()
    coordinator = Coordinator(store)
    coordinator.verifier.poll_every_s = 0.0
    alone = LocalWorker(run, store, "alone")
    for _ in range(3):
        alone.work_one()
        coordinator.step()
    assert store.held_count() == 3 and coordinator.version == 0
    store.update_settings({"verification": "off"})
    coordinator._live_settings = None  # as a second later
    drive(coordinator, [alone], 2)
    assert store.held_count() == 0
    assert_bitwise_equal(published_params(store, 2), reference_params(run, 2))


def test_a_unit_no_two_volunteers_agree_on_is_parked_not_waited_for(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, verification="quorum")
    store = run.store()
    coordinator = Coordinator(store)
    attacks = ("scaled", "sign_flipped", "zeros", "swapped_labels", "scaled_and_flipped")
    cheaters = [Cheater(run, store, f"c{i}", attack) for i, attack in enumerate(attacks)]
    drive(coordinator, cheaters, 1)  # closes, without the units nobody agreed on
    parked = [e for e in store.events(1000) if e.kind == "parked"]
    assert len(parked) == 3 and all("no two agree" in e.message for e in parked)
    assert store.held_count() == 0
    assert not any(r.record.quarantined for r in store.trust_rows())  # nobody is blamed


def test_several_workers_of_one_volunteer_never_confirm_each_other(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, verification="quorum")
    store = run.store()
    coordinator = Coordinator(store)
    coordinator.verifier.poll_every_s = 0.0
    # On SQLite a worker's name is its identity: two processes started with one --name.
    twins = [Cheater(run, store, "mallory", "sign_flipped") for _ in range(2)]
    for _ in range(4):
        for twin in twins:
            twin.work_one()
        coordinator.step()
    assert coordinator.version == 0 and store.held_count() == 3
    assert not [r for r in store.trust_rows() if r.record.verified]


def test_a_trusted_volunteer_is_spot_checked_and_the_rest_counts_at_once(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, verification="adaptive", trust_after=2, spot_check=0.0)
    store = run.store()
    coordinator = Coordinator(store)
    workers = [LocalWorker(run, store, name) for name in ("ada", "bob")]
    drive(coordinator, workers, 2)
    earned = {r.record.identity: r.record.earned for r in store.trust_rows()}
    assert earned["ada"] >= 2 and earned["bob"] >= 2, earned
    held_before = store.held_count()
    drive(coordinator, workers, 4)  # both trusted now: nothing is held, nothing recomputed
    assert held_before == store.held_count() == 0
    copies = [u for v in (3,) for u in store.version_units(v) if u.copy > 0]
    assert not copies
    assert_bitwise_equal(published_params(store, 4), reference_params(run, 4))


def test_a_quarantined_volunteer_is_refused_on_every_path(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path, verification="quorum")
    store = run.store()
    coordinator = Coordinator(store)
    mallory = LocalWorker(run, store, "mallory")
    lease = mallory.claim()
    assert store.quarantine("mallory", "caught by hand")
    assert not store.quarantine("mallory", "twice")
    assert [u.status for u in store.version_units(0) if u.id == lease.unit_id] == ["pending"]
    with pytest.raises(StoreError, match="quarantined"):
        store.claim(mallory.id)
    # A result it still manages to send (a late submit on an old lease) never counts.
    other = LocalWorker(run, store, "mallory")  # a new worker of the same identity
    with pytest.raises(Quarantined):
        other.work_one()
    coordinator.step()
    assert store.held_count() == 0


def test_a_trusted_volunteer_caught_later_is_undone_by_going_back(tmp_path: Path) -> None:
    """Mallory earns trust honestly, then cheats: its unchecked results counted until a
    spot-check caught it; the run goes back to before the oldest of them and replays."""
    run = make_tiny_run(
        tmp_path, verification="adaptive", trust_after=2, spot_check=0.3, keep_versions=20
    )
    store = run.store()
    coordinator = Coordinator(store)
    coordinator.verifier._random = random.Random(7)  # type: ignore[assignment]  # spot-checks
    workers = [LocalWorker(run, store, name) for name in ("ada", "bob", "carol")]
    mallory = Cheater(run, store, "mallory", "scaled_and_flipped", honest_first=8)
    drive(coordinator, [workers[0], mallory, workers[1], workers[2]], VERSIONS_LATER, passes=3000)

    assert_bitwise_equal(
        published_params(store, VERSIONS_LATER), reference_params(run, VERSIONS_LATER)
    )
    events = store.events(1000)
    assert [e for e in events if e.kind == "quarantined"], "mallory was never caught"
    assert [e for e in events if e.kind == "rollback" and "mallory" in e.message], (
        "no result of mallory counted unchecked before it was caught: the test proves nothing"
    )
    trust = {row.record.identity: row.record for row in store.trust_rows()}
    assert trust["mallory"].quarantined
    assert not any(trust[n].quarantined for n in ("ada", "bob", "carol"))
    assert store.unchecked("mallory") == [], "what was undone would be undone again"


def test_two_colluding_volunteers_cannot_confirm_each_other_while_a_trusted_one_works(
    tmp_path: Path,
) -> None:
    """Two new identities sending the same poisoned value: while a trusted volunteer is at
    work a pair needs a trusted member to count, so the colluders' agreement counts for
    nothing and both are caught by the trusted computations (the threshold: colluders are
    outvoted as long as trusted volunteers are at work; see docs/verification.md)."""
    run = make_tiny_run(tmp_path, verification="adaptive", trust_after=2, spot_check=0.0)
    store = run.store()
    coordinator = Coordinator(store)
    honest = [LocalWorker(run, store, name) for name in ("ada", "bob", "carol")]
    drive(coordinator, honest, 3)
    earned = {r.record.identity: r.record.earned for r in store.trust_rows()}
    assert sum(e >= 2 for e in earned.values()) >= 2, earned  # trusted volunteers at work
    colluders = [Cheater(run, store, name, "scaled_and_flipped") for name in ("mal", "vic")]
    drive(coordinator, [colluders[0], colluders[1], *honest], 7)

    assert_bitwise_equal(published_params(store, 7), reference_params(run, 7))
    trust = {row.record.identity: row.record for row in store.trust_rows()}
    assert trust["mal"].quarantined and trust["vic"].quarantined
    assert not any(trust[n].quarantined for n in ("ada", "bob", "carol"))
