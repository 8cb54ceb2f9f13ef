"""Going back to a kept version: the owner's `rollback --to`, the repair of damaged state, and
undoing a caught volunteer's unchecked results.

A version can be gone back to when its weights and its optimizer state are both kept (every
version retention keeps has both) and its designated units are recorded. Going back deletes
what came after it and designates its units again; the run then replays deterministically,
so with unchanged settings it reproduces the trajectory it had.
"""

from __future__ import annotations

import logging

from core.config import RunSettings
from core.schedule import plan_version
from core.store import DamagedData, Store, StoreError, UnitSpec

log = logging.getLogger(__name__)


def full_states(store: Store) -> list[int]:
    """Versions that can be gone back to, newest first."""
    with_state = store.optimizer_state_versions()
    return sorted(
        (
            v.version
            for v in store.versions()
            if v.version in with_state and v.unit_start is not None and v.unit_count
        ),
        reverse=True,
    )


def roll_back(store: Store, version: int, reason: str) -> None:
    """Make `version` the latest again; StoreError (or DamagedData) if it cannot be."""
    run = store.get_run()
    settings = RunSettings.from_dict(run.settings)
    kept = {v.version: v for v in store.versions()}
    row = kept.get(version)
    if version not in full_states(store) or row is None:
        targets = ", ".join(map(str, full_states(store))) or "none"
        raise StoreError(
            f"version {version} has no full state (weights and optimizer state) kept; "
            f"versions you can roll back to: {targets}"
        )
    if version == run.version:
        raise StoreError(f"the run is at version {version} already")
    store.version_weights(version)  # both checked against their sha256 before anything changes
    store.optimizer_state_of(version)
    assert row.unit_start is not None and row.unit_count is not None
    plans = plan_version(
        settings.seed,
        run.dataset_size,
        settings.images_per_work_unit,
        row.unit_start,
        row.unit_count,
    )
    store.rollback(
        version, [UnitSpec(p.unit_index, p.seed, p.sample_indices) for p in plans], reason
    )


def undo_unchecked(
    store: Store, current: int, identity: str, reached: list[tuple[int, int]]
) -> None:
    """Take a caught volunteer's unchecked results ((version, result id), oldest first) out of
    the run at version `current`: go back to the version before the oldest of them reached and
    replay, or, when all of them are in the open version, compute those units again. Either way
    the run goes on as if the volunteer's unchecked work had never been done (bitwise, as long
    as that version is kept). The caller reloads its state from the database afterwards."""
    oldest = reached[0][0]
    why = f"{identity} was caught; {len(reached)} of its results had counted unchecked"
    if oldest >= current:
        for _, result_id in reached:
            store.withdraw_result(result_id, why)
    else:
        kept = [v for v in full_states(store) if oldest <= v < current]
        target = oldest if oldest in kept else min(kept, default=None)
        if target is None:
            store.add_event(
                "undo_failed",
                f"{why}, from version {oldest} on, but no version since is kept to go back "
                "to: its results stay in the run (raise keep_versions to cover spot-checks)",
                version=current,
            )
        else:
            if target != oldest:
                store.add_event(
                    "undo_partial",
                    f"{why}, from version {oldest} on, but the oldest version kept since is "
                    f"{target}: what it gave before that stays in the run",
                    version=current,
                )
            roll_back(store, target, why)
    store.forget_unchecked(identity)


def repair(store: Store, damage: DamagedData) -> int:
    """Go back to the newest intact full state older than the damaged one; the version."""
    current = store.get_run().version
    for version in full_states(store):
        if version >= current:
            continue
        try:
            roll_back(store, version, f"repairing damage: {damage}")
        except DamagedData as also:
            log.warning("version %d is damaged too: %s", version, also)
            continue
        return version
    raise StoreError(
        f"{damage}; no kept version has intact weights and optimizer state to rebuild from: "
        "restore the database from a backup"
    )
